//! `qoe-api` is ready only while every ClickHouse shard answers.

use std::time::Duration;

use qoe_testkit::{socket_of, Service, Stack, TcpProxy};

#[tokio::test]
async fn ready_follows_every_shard() {
    let stack = Stack::from_env();
    let mut proxies = Vec::new();
    for url in &stack.shards {
        let p = TcpProxy::start(socket_of(url)).await;
        p.set_enabled(false);
        proxies.push(p);
    }
    let shards: Vec<String> = proxies
        .iter()
        .map(|p| format!("http://{}", p.addr))
        .collect();
    let svc = Service::spawn(
        "qoe-api",
        env!("CARGO_BIN_EXE_qoe-api"),
        &[
            ("QOE_CLICKHOUSE__SHARDS", shards.join(",")),
            (
                "QOE_HTTP__LISTEN",
                format!("127.0.0.1:{}", qoe_testkit::free_port()),
            ),
            ("QOE_READ_TOKENS__BOOTTESTTOKEN0001", "prop-1".into()),
        ],
    );
    svc.wait_ready(false, Duration::from_secs(20)).await;
    for p in &proxies {
        p.set_enabled(true);
    }
    svc.wait_ready(true, Duration::from_secs(15)).await;
    proxies[0].set_enabled(false);
    svc.wait_ready(false, Duration::from_secs(15)).await;
    proxies[0].set_enabled(true);
    svc.wait_ready(true, Duration::from_secs(15)).await;
    assert!(svc
        .metrics()
        .await
        .contains("qoe_dependency_up{dependency=\"clickhouse_shard_1\"} 1"));
}
