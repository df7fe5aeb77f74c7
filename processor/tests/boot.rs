//! `qoe-processor` is ready only while the broker and every ClickHouse shard
//! answer, and follows them down and up without a restart.

use std::time::Duration;

use qoe_testkit::{create_topic, socket_of, unique, Broker, Service, Stack, TcpProxy};

#[tokio::test]
async fn ready_follows_broker_and_every_shard() {
    let stack = Stack::from_env();
    let mut broker = Broker::stopped();
    let topic = unique("boot_processor");
    let mut proxies = Vec::new();
    for url in &stack.shards {
        proxies.push(TcpProxy::start(socket_of(url)).await);
    }
    let shards: Vec<String> = proxies
        .iter()
        .map(|p| format!("http://{}", p.addr))
        .collect();
    let svc = Service::spawn(
        "qoe-processor",
        env!("CARGO_BIN_EXE_qoe-processor"),
        &[
            ("QOE_KAFKA__BROKERS", broker.addr.clone()),
            ("QOE_KAFKA__TOPIC", topic.clone()),
            ("QOE_CLICKHOUSE__SHARDS", shards.join(",")),
        ],
    );
    svc.wait_ready(false, Duration::from_secs(20)).await;

    broker.start().await;
    create_topic(&broker.addr, &topic, 2).await;
    svc.wait_ready(true, Duration::from_secs(30)).await;

    // A shard going away makes the processor unready; coming back, ready.
    proxies[1].set_enabled(false);
    svc.wait_ready(false, Duration::from_secs(15)).await;
    let body = svc.readiness().await;
    let shard2 = body["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "clickhouse_shard_2")
        .expect("shard 2 is a dependency");
    assert_eq!(shard2["ok"], false);
    proxies[1].set_enabled(true);
    svc.wait_ready(true, Duration::from_secs(15)).await;
}
