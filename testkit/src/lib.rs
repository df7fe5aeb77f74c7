//! Test helper shared by every crate's integration tests.
