//! The contract of qoe-pipeline: what SDKs send, what travels through Kafka,
//! how it is stored in ClickHouse and what each QoE number means.
//!
//! Data moves through these modules in order:
//! - [`beacon`]: the wire types an SDK posts (one event or an envelope);
//!   [`fields`]: the table their integer fields are generated from.
//! - [`cmcd`]: CMCD v2 event-mode reports, decoded into the same events
//!   (sparse: the processor sessionizes them).
//! - [`mux`]: mux-embed beacons, their keys expanded (sparse: the processor
//!   rebuilds each view from them).
//! - [`validate`]: decoding and checking a body, with a stable reason code
//!   per refused body or event.
//! - [`record`]: the Kafka record — the validated event plus the collector's
//!   enrichment, versioned.
//! - [`rows`]: the ClickHouse row a record becomes (and its RowBinary
//!   encoding), and its shard.
//! - [`migrate`] / [`migrations`]: the ClickHouse DDL as versioned
//!   migrations, applied to every shard by `qoe-migrate`; [`retain`]: the
//!   partitions `qoe-migrate retain` drops when their rows age out.
//! - [`metrics`]: every QoE metric's definition, in Rust and in SQL.
//! - [`sample`]: realistic events for tests and benches.
//! - [`golden`]: hand-written beacon sequences with their expected metrics.
//!
//! `schema/README.md` documents the beacon format for SDK authors.

pub mod beacon;
pub mod cmcd;
pub mod fields;
pub mod golden;
pub mod metrics;
pub mod migrate;
pub mod migrations;
pub mod mux;
pub mod record;
pub mod retain;
pub mod rows;
pub mod sample;
pub mod validate;
