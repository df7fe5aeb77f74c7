//! What the api's tests share: known views written through the
//! `Distributed` table (so both shards hold some) and an api reading them,
//! with tokens for two properties.
#![allow(dead_code)]

use std::time::Duration;

use qoe_common::clickhouse::shards;
use qoe_schema::metrics::Range;
use qoe_schema::record::{Enrichment, Heartbeat};
use qoe_schema::rows::HeartbeatRow;
use qoe_schema::sample;
use qoe_testkit::{free_port, unique, Service, Stack};
use serde_json::Value;

pub const TOKEN_A: &str = "readtokenforpropa0001";
pub const TOKEN_A2: &str = "readtokenforpropa0002";
pub const TOKEN_B: &str = "readtokenforpropb0001";

pub struct Api {
    pub svc: Service,
    url: String,
    /// The database read, and its shards.
    pub db: String,
    pub shards: Vec<qoe_common::clickhouse::Shard>,
}

impl Api {
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let reply = self.send(path, token).await;
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status.as_u16(), body)
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The whole reply to a `GET` without a token.
    pub async fn raw(&self, path: &str) -> qoe_common::httpc::Reply {
        self.send(path, None).await
    }

    async fn send(&self, path: &str, token: Option<&str>) -> qoe_common::httpc::Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        qoe_common::httpc::send(
            hyper::Method::GET,
            &format!("{}{path}", self.url),
            &headers,
            Vec::new().into(),
            Duration::from_secs(10),
        )
        .await
        .expect("the api answers")
    }
}

/// `events` of property `prop-a` written through the `Distributed` table
/// (so both shards hold some), and an api reading that database.
pub async fn setup(events: &[qoe_schema::beacon::Event]) -> Api {
    setup_with(events, &[]).await
}

/// [`setup`], the api also given the configuration variables `extra`.
pub async fn setup_with(events: &[qoe_schema::beacon::Event], extra: &[(&str, String)]) -> Api {
    let stack = Stack::from_env();
    let db = unique("api");
    let cfg = stack.clickhouse(&db);
    qoe_schema::migrate::apply(&cfg, qoe_schema::migrations::ALL)
        .await
        .expect("migrate");
    let shards = shards(&cfg);
    let client = &shards[0].client;
    let mut insert = client
        .clone()
        .with_setting("insert_distributed_sync", "1")
        .insert::<HeartbeatRow>("heartbeats")
        .await
        .unwrap();
    for e in events {
        let hb = Heartbeat::new("prop-a".into(), e.ts_ms, Enrichment::default(), e.clone());
        insert.write(&HeartbeatRow::from(&hb)).await.unwrap();
    }
    insert.end().await.unwrap();
    let port = free_port();
    let svc = Service::spawn(
        "qoe-api",
        env!("CARGO_BIN_EXE_qoe-api"),
        &[
            ("QOE_CLICKHOUSE__SHARDS", stack.shard_entries().join(",")),
            ("QOE_CLICKHOUSE__DATABASE", db.clone()),
            ("QOE_HTTP__LISTEN", format!("127.0.0.1:{port}")),
            (&format!("QOE_READ_TOKENS__{TOKEN_A}"), "prop-a".into()),
            (&format!("QOE_READ_TOKENS__{TOKEN_A2}"), "prop-a".into()),
            (&format!("QOE_READ_TOKENS__{TOKEN_B}"), "prop-b".into()),
        ]
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, v.clone())))
        .collect::<Vec<_>>(),
    );
    svc.wait_ready(true, Duration::from_secs(20)).await;
    Api {
        svc,
        url: format!("http://127.0.0.1:{port}"),
        db,
        shards,
    }
}

/// 60 views that ended two hours or more ago (so "now" does not matter).
pub fn events() -> Vec<qoe_schema::beacon::Event> {
    let now = qoe_common::clock::now_ms();
    sample::views(60, now - 3 * 3_600_000)
}

pub fn range_of(events: &[qoe_schema::beacon::Event]) -> Range {
    let from = events.iter().map(|e| e.view_start_ms).min().unwrap() / 1000 - 60;
    let to = events.iter().map(|e| e.ts_ms).max().unwrap() / 1000 + 60;
    Range {
        from: from as u32,
        to: to as u32,
    }
}
