//! The project's producer and consumer settings against the real broker:
//! idempotent lz4 producer, consumer group with manual commits.

use std::collections::BTreeSet;
use std::time::Duration;

use qoe_common::kafka::{consumer_config, producer_config};
use qoe_testkit::{unique, Stack};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

async fn consume_n(consumer: &StreamConsumer, n: usize) -> Vec<(String, String, i32, i64)> {
    let mut got = Vec::new();
    while got.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a record within 30s")
            .expect("consumer error");
        got.push((
            String::from_utf8(msg.key().unwrap().to_vec()).unwrap(),
            String::from_utf8(msg.payload().unwrap().to_vec()).unwrap(),
            msg.partition(),
            msg.offset(),
        ));
    }
    got
}

#[tokio::test]
async fn produce_consume_commit_resume() {
    let stack = Stack::from_env();
    let topic = unique("roundtrip");
    stack.create_topic(&topic, 4).await;
    let kafka = stack.kafka(&topic);

    let producer: FutureProducer = producer_config(&kafka).create().expect("producer");
    let sent: BTreeSet<(String, String)> = (0..200)
        .map(|i| (format!("view-{}", i % 17), format!("record-{i}")))
        .collect();
    for (key, value) in &sent {
        producer
            .send(
                FutureRecord::to(&topic).key(key).payload(value),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }

    let group = unique("group");
    let consumer: StreamConsumer = consumer_config(&kafka, &group).create().expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let first = consume_n(&consumer, 150).await;

    // One key always lands on one partition: per-view ordering depends on it.
    let mut partition_of = std::collections::HashMap::new();
    for (key, _, partition, _) in &first {
        assert_eq!(
            *partition_of.entry(key.clone()).or_insert(*partition),
            *partition
        );
    }

    // Commit exactly what was consumed (next offset per partition), then leave.
    let mut commit = TopicPartitionList::new();
    let mut next = std::collections::HashMap::new();
    for (_, _, partition, offset) in &first {
        let e = next.entry(*partition).or_insert(0);
        *e = (*e).max(offset + 1);
    }
    for (partition, offset) in &next {
        commit
            .add_partition_offset(&topic, *partition, Offset::Offset(*offset))
            .unwrap();
    }
    consumer.commit(&commit, CommitMode::Sync).expect("commit");
    drop(consumer);

    // A new member of the same group resumes after the committed offsets:
    // together the two see every record exactly once.
    let resumed: StreamConsumer = consumer_config(&kafka, &group).create().expect("consumer");
    resumed.subscribe(&[&topic]).expect("subscribe");
    let rest = consume_n(&resumed, sent.len() - first.len()).await;
    let all: Vec<(String, String)> = first
        .iter()
        .chain(rest.iter())
        .map(|(k, v, _, _)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(all.len(), sent.len(), "no record twice");
    assert_eq!(
        all.into_iter().collect::<BTreeSet<_>>(),
        sent,
        "every record once"
    );
}
