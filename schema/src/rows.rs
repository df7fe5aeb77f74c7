//! Rows as ClickHouse stores them, and which shard each one belongs to.
//!
//! Writers insert [`HeartbeatRow`]s into each shard's `heartbeats_local`;
//! ClickHouse's materialized views derive the per-view and per-minute tables
//! from every inserted block (see `schema/migrations/`). All rows of one view
//! go to one shard ([`shard_for`]), so per-view collapsing happens locally.

use serde::{Deserialize, Serialize};

use crate::record::Heartbeat;

/// One row of `heartbeats_local` (column names = field names).
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
    pub video_duration_ms: u64,
    pub player_name: String,
    pub player_version: String,
    pub player_width: u16,
    pub player_height: u16,
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
    pub watch_time_ms: u64,
    pub playing_time_ms: u64,
    pub rebuffer_count: u32,
    pub rebuffer_duration_ms: u64,
    pub bitrate_kbps: u32,
    pub avg_bitrate_kbps: u32,
    pub dropped_frames: u64,
    pub playhead_ms: u64,
    pub error_code: String,
    pub error_message: String,
    pub error_fatal: u8,
}

fn seconds(ms: i64) -> u32 {
    (ms.max(0) / 1000).min(i64::from(u32::MAX)) as u32
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
            video_duration_ms: e.video_duration_ms,
            player_name: e.player_name.to_string(),
            player_version: e.player_version.to_string(),
            player_width: e.player_width,
            player_height: e.player_height,
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
            watch_time_ms: e.watch_time_ms,
            playing_time_ms: e.playing_time_ms,
            rebuffer_count: e.rebuffer_count,
            rebuffer_duration_ms: e.rebuffer_duration_ms,
            bitrate_kbps: e.bitrate_kbps,
            avg_bitrate_kbps: e.avg_bitrate_kbps,
            dropped_frames: e.dropped_frames,
            playhead_ms: e.playhead_ms,
            error_code: e.error_code.to_string(),
            error_message: e.error_message.to_string(),
            error_fatal: u8::from(e.error_fatal),
        }
    }
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
