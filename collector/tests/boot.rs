//! `qoe-collector` boots, is live at once, and is ready only while the
//! broker answers with the heartbeat topic — without being restarted.

use std::time::Duration;

use qoe_testkit::{create_topic, free_port, status_of, unique, Broker, Service};

fn listen() -> (&'static str, String) {
    ("QOE_HTTP__LISTEN", format!("127.0.0.1:{}", free_port()))
}

/// A spill directory of its own: one collector at a time may hold one.
fn spill_dir() -> (&'static str, String) {
    let dir = std::env::temp_dir().join(unique("boot-spill"));
    ("QOE_PRODUCER__SPILL_DIR", dir.display().to_string())
}

#[tokio::test]
async fn ready_follows_the_broker() {
    let mut broker = Broker::stopped();
    let topic = unique("boot_collector");
    let svc = Service::spawn(
        "qoe-collector",
        env!("CARGO_BIN_EXE_qoe-collector"),
        &[
            ("QOE_KAFKA__BROKERS", broker.addr.clone()),
            ("QOE_KAFKA__TOPIC", topic.clone()),
            listen(),
            spill_dir(),
        ],
    );
    qoe_testkit::wait_until(Duration::from_secs(20), "healthz", || async {
        status_of(&format!("{}/healthz", svc.admin)).await == Some(200)
    })
    .await;
    svc.wait_ready(false, Duration::from_secs(10)).await;
    let body = svc.readiness().await;
    assert_eq!(body["ready"], false);
    assert_eq!(body["dependencies"][0]["name"], "kafka");

    broker.start().await;
    create_topic(&broker.addr, &topic, 2).await;
    svc.wait_ready(true, Duration::from_secs(30)).await;
    let metrics = svc.metrics().await;
    assert!(metrics.contains("qoe_dependency_up{dependency=\"kafka\"} 1"));
    // Ready also means the producer's own client reached the broker.
    assert!(metrics.contains("qoe_dependency_up{dependency=\"kafka_producer\"} 1"));

    broker.stop();
    svc.wait_ready(false, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn sigterm_exits_cleanly() {
    let mut svc = Service::spawn(
        "qoe-collector",
        env!("CARGO_BIN_EXE_qoe-collector"),
        &[listen(), spill_dir()],
    );
    qoe_testkit::wait_until(Duration::from_secs(20), "healthz", || async {
        status_of(&format!("{}/healthz", svc.admin)).await == Some(200)
    })
    .await;
    let status = svc
        .process
        .terminate(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
}
