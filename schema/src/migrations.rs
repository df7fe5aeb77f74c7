//! The list of migrations, in order. Add a file under `schema/migrations/`
//! and a line here; never edit a migration that has been applied anywhere.

#[allow(unused_imports)]
use crate::migrate::{Migration, Sql};

/// Every migration, oldest first.
pub const ALL: &[Migration] = &[];
