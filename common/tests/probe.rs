//! `qoe-probe kafka`, which `deploy/local/stack status` uses: healthy only
//! when the broker answers metadata for every topic through the Kafka
//! protocol — an open port alone (a broker whose storage stopped answering
//! keeps it open) is unhealthy.

use std::process::Command;
use std::time::{Duration, Instant};

use qoe_testkit::{unique, Stack};

fn probe(brokers: &str, topics: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qoe-probe"))
        .args(["kafka", "--brokers", brokers, "--timeout", "2s"])
        .args(topics)
        .output()
        .expect("run qoe-probe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn healthy_only_when_the_broker_answers_for_every_topic() {
    let stack = Stack::from_env();
    let topic = unique("probe");
    stack.create_topic(&topic, 1).await;
    let (ok, said) = probe(&stack.brokers, &[&topic]);
    assert!(ok, "{said}");

    let missing = unique("missing");
    let (ok, said) = probe(&stack.brokers, &[&topic, &missing]);
    assert!(!ok, "a missing topic is unhealthy: {said}");
    assert!(said.contains(&missing), "{said}");
}

#[test]
fn an_open_port_that_does_not_speak_kafka_is_unhealthy() {
    // Accepts connections and never answers: what a broker with dead
    // storage looks like from outside.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok((c, _)) = listener.accept() {
                conns.push(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let started = Instant::now();
    let (ok, said) = probe(&addr, &["qoe.heartbeats"]);
    assert!(!ok, "{said}");
    assert!(said.contains("broker unreachable"), "{said}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by --timeout"
    );
    drop(held);
}
