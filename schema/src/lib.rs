//! The contract of qoe-pipeline: what SDKs send, what travels through Kafka,
//! how it is stored in ClickHouse and what each QoE number means.
