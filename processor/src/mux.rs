//! mux-embed views: events that carry only what changed → the view state
//! a beacon carries.
//!
//! The collector keeps every key of a mux-embed event, expanded, in
//! `Event::extra` (`schema::mux`). For each view (`xid`) the worker folds
//! the events in `xsqno` order into one map (each key's latest value; the
//! SDK's `null` is kept as "not known") and writes one row per event with
//! what the map says (`schema::mux::facts`): the SDK's own startup, watch,
//! playing and rebuffering numbers, the dimensions it sent once. What the
//! keys do not say is derived from the events, in order:
//!
//! - the state: `play` → starting (before the first frame), `playing` and
//!   `rebufferend` → playing, `pause` → paused, `seeking` → seeking,
//!   `rebufferstart` → rebuffering, `ended` and `viewend` → ended, `error`
//!   → failed unless `player_error_severity` is `warning`; other events
//!   keep the state (`waiting` is not a rebuffer: the SDK says
//!   `rebufferstart` once a stall lasts);
//! - `play_requested` from the first `play` (or a known startup time);
//! - the rebuffering in progress, from the `rebufferstart` event's time;
//! - the average bitrate, weighting each bitrate by the playing time the
//!   SDK counted while it held;
//! - `error_fatal`, sticky once the view failed.
//!
//! An event whose `xsqno` is not above the view's last is late or repeated
//! and writes nothing. A view the worker does not know, met at an event
//! after its first (`xsqno` > 1), is read back from ClickHouse: its rows
//! hold each event's keys as they came (`extra_keys`/`extra_values`), so
//! replaying them through these same rules gives the state exactly
//! ([`crate::sessions::Sessions`] does the reading, holding and expiry).

use std::collections::HashMap;

use qoe_schema::beacon::{Event, PlayerState};
use qoe_schema::mux::facts;
use qoe_schema::record::Source;

use crate::sessions::Fold;

/// One mux-embed view's state.
#[derive(Debug, Clone)]
pub struct MuxView {
    /// Each key's latest value.
    keys: HashMap<String, String>,
    /// The last `xsqno` applied.
    last_seq: Option<u32>,
    /// The view's last row: its totals and dimensions so far.
    last: Event,
    rebuffer_since_ms: Option<i64>,
    /// Σ bitrate × playing ms, for the time-weighted average.
    bitrate_weight: u128,
}

impl MuxView {
    fn start(e: &Event) -> MuxView {
        let mut last = Event {
            view_id: e.view_id.clone(),
            view_start_ms: e.ts_ms,
            ..Event::default()
        };
        last.state = PlayerState::Idle;
        MuxView {
            keys: HashMap::new(),
            last_seq: None,
            last,
            rebuffer_since_ms: None,
            bitrate_weight: 0,
        }
    }

    /// Applies event `e` and returns its row.
    fn advance(&mut self, e: &Event) -> Event {
        self.last_seq = Some(e.seq);
        for (key, value) in &e.extra {
            match self.keys.get_mut(key) {
                Some(v) => v.clone_from(value),
                None => {
                    self.keys.insert(key.clone(), value.clone());
                }
            }
        }
        let prev = &self.last;
        let mut row = prev.clone();
        facts::fill(&self.keys, &mut row);
        let played = row.playing_time_ms.saturating_sub(prev.playing_time_ms);
        self.bitrate_weight += u128::from(prev.bitrate_kbps) * u128::from(played);
        let name = self
            .keys
            .get("event")
            .map_or(e.event.as_str(), String::as_str);
        let state = match name {
            "play" if row.startup_time_ms.is_none() => PlayerState::Starting,
            "playing" | "rebufferend" => PlayerState::Playing,
            "pause" => PlayerState::Paused,
            "seeking" => PlayerState::Seeking,
            "rebufferstart" => PlayerState::Rebuffering,
            "ended" | "viewend" => PlayerState::Ended,
            "error"
                if self.keys.get("player_error_severity").map(String::as_str)
                    != Some("warning") =>
            {
                PlayerState::Errored
            }
            _ => prev.state,
        };
        match (state, self.rebuffer_since_ms) {
            (PlayerState::Rebuffering, None) => self.rebuffer_since_ms = Some(e.ts_ms),
            (PlayerState::Rebuffering, Some(_)) => {}
            _ => self.rebuffer_since_ms = None,
        }
        row.view_id = e.view_id.clone();
        row.seq = e.seq;
        row.event = e.event;
        row.ts_ms = e.ts_ms;
        row.state = state;
        row.play_requested |= name == "play" || row.startup_time_ms.is_some();
        row.current_rebuffer_ms = self
            .rebuffer_since_ms
            .map_or(0, |since| (e.ts_ms - since).max(0) as u64);
        row.avg_bitrate_kbps = match row.playing_time_ms {
            0 => 0,
            ms => ((self.bitrate_weight + u128::from(ms) / 2) / u128::from(ms)) as u32,
        };
        row.error_fatal |= state == PlayerState::Errored;
        row.extra = e.extra.clone();
        self.last = row.clone();
        row
    }
}

impl Fold for MuxView {
    const SOURCE: Source = Source::MuxEmbed;

    fn key(view_id: &str) -> &str {
        view_id
    }

    /// The SDK numbers a view's events from 1.
    fn begins(e: &Event) -> bool {
        e.seq <= 1
    }

    fn apply(slot: &mut Option<MuxView>, e: &Event, out: &mut Vec<Event>) {
        let view = slot.get_or_insert_with(|| MuxView::start(e));
        if view.last_seq.is_some_and(|last| e.seq <= last) {
            return;
        }
        out.push(view.advance(e));
    }

    fn replay_order(rows: &mut [Event]) {
        rows.sort_by_key(|r| r.seq);
    }
}

#[cfg(test)]
mod tests;
