//! The list of migrations, in order. Add a file under `schema/migrations/`
//! and a line here; never edit a migration that has been applied anywhere.

use crate::migrate::{Migration, Sql};

/// Every migration, oldest first.
pub const ALL: &[Migration] = &[
    Migration {
        version: 1,
        name: "heartbeats",
        sql: Sql::Any(include_str!("../migrations/0001_heartbeats.sql")),
    },
    Migration {
        version: 2,
        name: "views",
        sql: Sql::Any(include_str!("../migrations/0002_views.sql")),
    },
    Migration {
        version: 3,
        name: "minute_dims",
        sql: Sql::Any(include_str!("../migrations/0003_minute_dims.sql")),
    },
    Migration {
        version: 4,
        name: "buffer_length",
        sql: Sql::Any(include_str!("../migrations/0004_buffer_length.sql")),
    },
    Migration {
        version: 5,
        name: "live",
        sql: Sql::Any(include_str!("../migrations/0005_live.sql")),
    },
    Migration {
        version: 6,
        name: "drop_minute_dims",
        sql: Sql::Any(include_str!("../migrations/0006_drop_minute_dims.sql")),
    },
    Migration {
        version: 7,
        name: "sealed",
        sql: Sql::Any(include_str!("../migrations/0007_sealed.sql")),
    },
    Migration {
        version: 8,
        name: "source",
        sql: Sql::Any(include_str!("../migrations/0008_source.sql")),
    },
    Migration {
        version: 9,
        name: "extra",
        sql: Sql::Any(include_str!("../migrations/0009_extra.sql")),
    },
    Migration {
        version: 10,
        name: "view_days",
        sql: Sql::Any(include_str!("../migrations/0010_view_days.sql")),
    },
];
