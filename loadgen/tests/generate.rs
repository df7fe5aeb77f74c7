//! `qoe-loadgen generate` writes exactly the heartbeats asked for, each a
//! valid current-format record keyed by its view.

use std::time::Duration;

use qoe_schema::record::Record;
use qoe_testkit::{consume, unique, Stack};
use rdkafka::message::Message;

#[tokio::test]
async fn generates_decodable_heartbeats() {
    let stack = Stack::from_env();
    let topic = unique("generate");
    stack.create_topic(&topic, 2).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_qoe-loadgen"))
        .args(["generate", "--heartbeats", "500", "--property", "p-gen"])
        .env("QOE_KAFKA__BROKERS", &stack.brokers)
        .env("QOE_KAFKA__TOPIC", &topic)
        .output()
        .await
        .expect("run qoe-loadgen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("generated 500 heartbeats"));
    let records = consume(&stack.brokers, &topic, 500, Duration::from_secs(60)).await;
    assert_eq!(records.len(), 500);
    for m in &records {
        let record = Record::decode(m.payload().unwrap()).unwrap();
        assert_eq!(record.property_id, "p-gen");
        assert_eq!(record.events.len(), 1, "one event per record");
        assert_eq!(m.key().unwrap(), record.key().as_bytes());
    }
}
