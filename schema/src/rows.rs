//! Rows as ClickHouse stores them, and which shard each one belongs to.
//!
//! Writers insert [`HeartbeatRow`]s into each shard's `heartbeats_local`;
//! ClickHouse's materialized views derive the per-view and per-minute tables
//! from every inserted block (see `schema/migrations/`). All rows of one view
//! go to one shard ([`shard_for`]), so per-view collapsing happens locally.
//!
//! The processor does not build `HeartbeatRow`s: [`write_row_binary`]
//! encodes a heartbeat straight into the RowBinary bytes of the same row
//! (no per-field allocation), and [`insert_sql`] names the columns in that
//! order. `HeartbeatRow` stays the readable definition that tests, the
//! loadgen and the row encoder's own test compare against.

use clickhouse::Row as _;
use serde::{Deserialize, Serialize};

use crate::beacon::Event;
use crate::fields::integer_fields;
use crate::record::binary::{put_str, put_varint};
use crate::record::{Heartbeat, Record};

macro_rules! heartbeat_row {
    ({} $($name:ident: $ty:ty = $max:expr, $doc:literal;)*) => {
        /// One row of `heartbeats_local` (column names = field names); the
        /// integer fields ([`crate::fields`]) come last.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clickhouse::Row)]
        pub struct HeartbeatRow {
            pub property_id: String,
            pub view_id: String,
            pub seq: u32,
            pub event: String,
            /// Client time, seconds (ClickHouse `DateTime`).
            pub ts: u32,
            /// Server receive time, seconds.
            pub received_at: u32,
            /// View start, client time, seconds.
            pub view_start: u32,
            pub viewer_id: String,
            pub video_id: String,
            pub video_title: String,
            pub stream_type: String,
            pub player_name: String,
            pub player_version: String,
            pub autoplay: u8,
            pub cdn: String,
            pub country: String,
            pub asn: u32,
            pub os: String,
            pub browser: String,
            pub device_type: String,
            pub state: String,
            pub play_requested: u8,
            /// 1 once a startup time is known.
            pub started: u8,
            pub startup_time_ms: u32,
            pub error_code: String,
            pub error_message: String,
            pub error_fatal: u8,
            /// The wire format (`Source`): `beacon` or `cmcd`.
            pub source: String,
            /// The milliseconds of `ts` (0-999).
            pub ts_millis: u16,
            /// mux-embed: the keys the event carried (`Event::extra`) …
            pub extra_keys: Vec<String>,
            /// … and their values, in the same order.
            pub extra_values: Vec<String>,
            $(pub $name: $ty,)*
        }

        impl From<&Heartbeat> for HeartbeatRow {
            fn from(hb: &Heartbeat) -> Self {
                let e = &hb.event;
                let x = &hb.enrichment;
                HeartbeatRow {
                    property_id: hb.property_id.clone(),
                    view_id: e.view_id.to_string(),
                    seq: e.seq,
                    event: e.event.as_str().to_owned(),
                    ts: seconds(e.ts_ms),
                    received_at: seconds(hb.received_at_ms),
                    view_start: seconds(e.view_start_ms),
                    viewer_id: e.viewer_id.to_string(),
                    video_id: e.video_id.to_string(),
                    video_title: e.video_title.to_string(),
                    stream_type: e.stream_type.as_str().to_owned(),
                    player_name: e.player_name.to_string(),
                    player_version: e.player_version.to_string(),
                    autoplay: u8::from(e.autoplay),
                    cdn: e.cdn.to_string(),
                    country: x.country.clone(),
                    asn: x.asn,
                    os: x.os.clone(),
                    browser: x.browser.clone(),
                    device_type: x.device_type.clone(),
                    state: e.state.as_str().to_owned(),
                    play_requested: u8::from(e.play_requested),
                    started: u8::from(e.startup_time_ms.is_some()),
                    startup_time_ms: e.startup_time_ms.unwrap_or(0),
                    error_code: e.error_code.to_string(),
                    error_message: e.error_message.to_string(),
                    error_fatal: u8::from(e.error_fatal),
                    source: x.source.as_str().to_owned(),
                    ts_millis: millis(e.ts_ms),
                    extra_keys: e.extra.iter().map(|(k, _)| k.clone()).collect(),
                    extra_values: e.extra.iter().map(|(_, v)| v.clone()).collect(),
                    $($name: e.$name,)*
                }
            }
        }

        /// Appends event `e` of record `r` as one RowBinary row of
        /// [`HeartbeatRow`]'s columns: the same values as `HeartbeatRow::from` the
        /// heartbeat they make, without building it.
        pub fn write_row_binary(r: &Record, e: &Event, buf: &mut Vec<u8>) {
            fn u8_(buf: &mut Vec<u8>, v: bool) {
                buf.push(u8::from(v));
            }
            let x = &r.enrichment;
            put_str(buf, &r.property_id);
            put_str(buf, &e.view_id);
            buf.extend_from_slice(&e.seq.to_le_bytes());
            put_str(buf, e.event.as_str());
            buf.extend_from_slice(&seconds(e.ts_ms).to_le_bytes());
            buf.extend_from_slice(&seconds(r.received_at_ms).to_le_bytes());
            buf.extend_from_slice(&seconds(e.view_start_ms).to_le_bytes());
            put_str(buf, &e.viewer_id);
            put_str(buf, &e.video_id);
            put_str(buf, &e.video_title);
            put_str(buf, e.stream_type.as_str());
            put_str(buf, &e.player_name);
            put_str(buf, &e.player_version);
            u8_(buf, e.autoplay);
            put_str(buf, &e.cdn);
            put_str(buf, &x.country);
            buf.extend_from_slice(&x.asn.to_le_bytes());
            put_str(buf, &x.os);
            put_str(buf, &x.browser);
            put_str(buf, &x.device_type);
            put_str(buf, e.state.as_str());
            u8_(buf, e.play_requested);
            u8_(buf, e.startup_time_ms.is_some());
            buf.extend_from_slice(&e.startup_time_ms.unwrap_or(0).to_le_bytes());
            put_str(buf, &e.error_code);
            put_str(buf, &e.error_message);
            u8_(buf, e.error_fatal);
            put_str(buf, x.source.as_str());
            buf.extend_from_slice(&millis(e.ts_ms).to_le_bytes());
            put_varint(buf, e.extra.len() as u64);
            for (key, _) in &e.extra {
                put_str(buf, key);
            }
            put_varint(buf, e.extra.len() as u64);
            for (_, value) in &e.extra {
                put_str(buf, value);
            }
            $(buf.extend_from_slice(&e.$name.to_le_bytes());)*
        }
    };
}
integer_fields!(heartbeat_row! {});

fn seconds(ms: i64) -> u32 {
    (ms.max(0) / 1000).min(i64::from(u32::MAX)) as u32
}

/// The part of `ms` below a whole second, as `seconds` leaves it.
fn millis(ms: i64) -> u16 {
    ms.max(0).rem_euclid(1000) as u16
}

/// `INSERT INTO {table} (...) FORMAT RowBinary` with the columns in the
/// order [`write_row_binary`] writes them.
pub fn insert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} ({}) FORMAT RowBinary",
        HeartbeatRow::COLUMN_NAMES.join(", ")
    )
}

/// ClickHouse's `sipHash64(view_id)`: SipHash-2-4 with zero keys over the
/// bytes. The `Distributed` tables shard by the same expression, so rows
/// written directly to `*_local` tables land where the cluster expects them.
pub fn view_hash(view_id: &str) -> u64 {
    #[allow(deprecated)] // SipHasher is exactly SipHash-2-4; that is the point.
    let mut h = std::hash::SipHasher::new_with_keys(0, 0);
    std::hash::Hasher::write(&mut h, view_id.as_bytes());
    std::hash::Hasher::finish(&h)
}

/// The 0-based shard of `view_id` among `shards` shards (equal weights).
pub fn shard_for(view_id: &str, shards: usize) -> usize {
    (view_hash(view_id) % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beacon::{EventType, PlayerState, StreamType};
    use crate::record::Enrichment;
    use crate::sample;

    fn heartbeats() -> Vec<Heartbeat> {
        let enrichment = Enrichment {
            country: "BR".into(),
            asn: 28573,
            os: "iOS".into(),
            browser: "Safari".into(),
            device_type: "mobile".into(),
            ..Enrichment::default()
        };
        let plain = sample::event("view-a", 3);
        let mut failed = sample::event("view-b", 70_000);
        failed.event = EventType::Error;
        failed.state = PlayerState::Errored;
        failed.stream_type = StreamType::OnDemand;
        failed.startup_time_ms = None;
        failed.error_fatal = true;
        failed.error_code = "MEDIA_ERR_DECODE".into();
        failed.error_message = "décodage impossible — 解码失败".into();
        failed.video_title = "x".repeat(300).into(); // a two-byte length varint
        failed.watch_time_ms = u64::from(u32::MAX) + 5;
        failed.extra = vec![
            ("view_id".into(), "view-b".into()),
            ("player_error_code".into(), "4".into()),
        ];
        [plain, failed]
            .into_iter()
            .map(|e| Heartbeat::new("prop-1".into(), sample::NOW_MS + 250, enrichment.clone(), e))
            .collect()
    }

    /// The clickhouse crate's own RowBinary reader, given our bytes, must
    /// read back exactly the `HeartbeatRow`s the same heartbeats make.
    #[tokio::test]
    async fn row_binary_reads_back_as_heartbeat_rows() {
        let mock = clickhouse::test::Mock::new();
        let client = clickhouse::Client::default().with_mock(&mock);
        let recording = mock.add(clickhouse::test::handlers::record::<HeartbeatRow>());
        let hbs = heartbeats();
        let mut buf = Vec::new();
        for hb in &hbs {
            let r = Record::from(hb.clone());
            write_row_binary(&r, &r.events[0], &mut buf);
        }
        let mut insert = client.insert_formatted_with(insert_sql("heartbeats_local"));
        insert
            .send(buf.into())
            .await
            .expect("mock takes the insert");
        insert.end().await.expect("mock answers");
        let read: Vec<HeartbeatRow> = recording.collect().await;
        let expected: Vec<HeartbeatRow> = hbs.iter().map(HeartbeatRow::from).collect();
        assert_eq!(read, expected);
    }
}
