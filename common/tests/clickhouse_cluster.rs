//! The two local ClickHouse servers form cluster `qoe`: a `Distributed`
//! table over per-shard `*_local` tables sees the rows of both shards.

use qoe_common::clickhouse::{server_client, shards};
use qoe_testkit::{unique, Stack};

#[tokio::test]
async fn distributed_table_sees_both_shards() {
    let stack = Stack::from_env();
    let db = unique("cluster_test");
    let cfg = stack.clickhouse(&db);
    assert_eq!(cfg.shards.len(), 2, "the test stack has two shards");

    for url in &cfg.shards {
        let c = server_client(&cfg, url);
        for sql in [
            format!("CREATE DATABASE {db}"),
            format!(
                "CREATE TABLE {db}.t_local (k UInt64, shard UInt8) ENGINE = MergeTree() ORDER BY k"
            ),
            format!(
                "CREATE TABLE {db}.t AS {db}.t_local ENGINE = Distributed(qoe, {db}, t_local, k)"
            ),
        ] {
            c.query(&sql)
                .execute()
                .await
                .unwrap_or_else(|e| panic!("{url}: {sql}: {e}"));
        }
    }
    let shards = shards(&cfg);
    for (shard, rows) in shards.iter().zip([3u64, 5]) {
        let values: Vec<String> = (0..rows)
            .map(|k| format!("({k}, {})", shard.number))
            .collect();
        shard
            .client
            .query(&format!(
                "INSERT INTO t_local (k, shard) VALUES {}",
                values.join(",")
            ))
            .execute()
            .await
            .expect("insert into the shard's local table");
    }
    for shard in &shards {
        let total: u64 = shard
            .client
            .query("SELECT count() FROM t")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(total, 8, "Distributed count through shard {}", shard.number);
        let local: u64 = shard
            .client
            .query("SELECT count() FROM t_local")
            .fetch_one()
            .await
            .unwrap();
        assert_eq!(local, if shard.number == 1 { 3 } else { 5 });
        let per_shard: Vec<(u8, u64)> = shard
            .client
            .query("SELECT shard, count() FROM t GROUP BY shard ORDER BY shard")
            .fetch_all()
            .await
            .unwrap();
        assert_eq!(per_shard, vec![(1, 3), (2, 5)]);
    }
    for url in &cfg.shards {
        let _ = server_client(&cfg, url)
            .query(&format!("DROP DATABASE IF EXISTS {db}"))
            .execute()
            .await;
    }
}
