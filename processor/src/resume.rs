//! Reading a CMCD session or a mux-embed view back from ClickHouse, for a
//! worker that meets one it does not know ([`crate::sessions`]): every row
//! of the session's views (or of the view), from each shard's
//! `heartbeats_local` (a session's views may live on different shards; a
//! view's rows all live on one).
//!
//! Rows are read by a range of the sorting key (`property_id`, `view_id`):
//! a session's views are its id alone or its id, `:` and a content hash,
//! all within `[sid, sid + ';')` (`;` follows `:`), narrowed exactly by the
//! filter (a mux-embed view is its id: the caller keeps its rows alone).
//! The raw table keeps rows for 3 days (its TTL, on servers that have
//! TTLs): a session silent for longer than that starts afresh.

use std::time::Duration;

use qoe_common::clickhouse::Shard;
use qoe_schema::beacon::{Event, EventType, PlayerState, StreamType};
use qoe_schema::record::Source;
use serde::Deserialize;

use crate::sessions::Resume;

/// Reads sessions back from every shard.
pub struct ClickHouseResume {
    shards: Vec<Shard>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl ClickHouseResume {
    /// Reads from `shards` on `runtime` (workers are plain threads), each
    /// read bounded by `timeout`.
    pub fn new(shards: Vec<Shard>, runtime: tokio::runtime::Handle, timeout: Duration) -> Self {
        ClickHouseResume {
            shards,
            runtime,
            timeout,
        }
    }
}

/// What a row must say for its session to be replayed.
#[derive(Debug, Deserialize, clickhouse::Row)]
struct Stored {
    view_id: String,
    seq: u32,
    event: String,
    ts_ms: u64,
    state: String,
    bitrate_kbps: u32,
    error_code: String,
    error_fatal: u8,
    viewer_id: String,
    video_id: String,
    stream_type: String,
    cdn: String,
    extra_keys: Vec<String>,
    extra_values: Vec<String>,
}

const SQL: &str =
    "SELECT view_id, seq, event, toUInt64(toUInt32(ts)) * 1000 + ts_millis AS ts_ms, \
    state, bitrate_kbps, error_code, error_fatal, viewer_id, video_id, stream_type, cdn, \
    extra_keys, extra_values \
    FROM heartbeats_local \
    WHERE property_id = ? AND view_id >= ? AND view_id < ? \
      AND (view_id = ? OR substring(view_id, 1, ?) = ?) AND source = ?";

impl Stored {
    fn into_event(self) -> Result<Event, String> {
        Ok(Event {
            view_id: self.view_id.into(),
            seq: self.seq,
            event: EventType::parse(&self.event).ok_or("unknown event in a stored row")?,
            ts_ms: self.ts_ms as i64,
            state: PlayerState::parse(&self.state).ok_or("unknown state in a stored row")?,
            bitrate_kbps: self.bitrate_kbps,
            error_code: self.error_code.into(),
            error_fatal: self.error_fatal != 0,
            viewer_id: self.viewer_id.into(),
            video_id: self.video_id.into(),
            stream_type: StreamType::parse(&self.stream_type).unwrap_or_default(),
            cdn: self.cdn.into(),
            extra: self.extra_keys.into_iter().zip(self.extra_values).collect(),
            ..Event::default()
        })
    }
}

impl Resume for ClickHouseResume {
    fn rows(&self, property: &str, source: Source, session: &str) -> Result<Vec<Event>, String> {
        let prefix = format!("{session}:");
        let end = format!("{session};");
        self.runtime.block_on(async {
            let mut rows = Vec::new();
            for shard in &self.shards {
                let (replica, server) = shard.replica();
                let query = server
                    .client
                    .query(SQL)
                    .bind(property)
                    .bind(session)
                    .bind(&end)
                    .bind(session)
                    .bind(prefix.len() as u64)
                    .bind(&prefix)
                    .bind(source.as_str());
                let fetched = tokio::time::timeout(self.timeout, query.fetch_all::<Stored>())
                    .await
                    .map_err(|_| format!("no answer within {:?}", self.timeout))
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|e| {
                        // The next read tries the shard's next replica.
                        shard.failed(replica);
                        format!("shard {} ({}): {e}", shard.number, server.url)
                    })?;
                for row in fetched {
                    rows.push(row.into_event()?);
                }
            }
            Ok(rows)
        })
    }
}
