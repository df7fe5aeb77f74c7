//! The contract of qoe-pipeline: what SDKs send, what travels through Kafka,
//! how it is stored in ClickHouse and what each QoE number means.
//!
//! - [`migrate`] / [`migrations`]: the ClickHouse DDL as versioned
//!   migrations, applied to every shard by `qoe-migrate`.

pub mod migrate;
pub mod migrations;
