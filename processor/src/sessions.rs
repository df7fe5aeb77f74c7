//! CMCD sessionization: sparse reports → the view state a beacon carries.
//!
//! A CMCD report says what changed (a state, a bitrate, an error) and when;
//! a beacon says the view's totals so far. For each session (`sid`) the
//! worker keeps its current view and, from the reports in `sn` order,
//! derives the same facts a beacon carries. Each report becomes one row
//! with the view's totals as of its `ts`, so everything downstream (the
//! per-view table, the metrics, the api) treats CMCD views like beacon
//! views. The rules, stated for users in `schema::metrics`:
//!
//! - Time between two reports belongs to the state the first one set:
//!   starting, seeking and rebuffering count as watch time; playing counts
//!   as watch and playing time (and weighs the bitrate); paused,
//!   preloading, ended and failed count as nothing. Waiting (`w`) is
//!   rebuffering.
//! - Startup time is the first `starting` report → the first `playing`
//!   one (from the view's first report when no `starting` came).
//!   Rebuffering before the first frame is startup, not a rebuffer.
//! - Rebuffering (or waiting) right after a seek, before playing resumes,
//!   is seek latency: the view stays `seeking`, and no rebuffer is
//!   counted; nor is rebuffering reported at most
//!   [`SEEK_STALL_GRACE_MS`] before a seek (the seek's own stall, which
//!   Shaka reports first).
//! - A rebuffer is each change into rebuffering; its time runs until the
//!   next state.
//! - A report without `sta` (the collector sends it as idle) keeps the
//!   state; `br=0` keeps the bitrate (players send 0 when not known yet).
//! - A report whose `sn` is not above the session's last is late or
//!   repeated: it changes nothing and writes no row.
//! - A content change (a report of another `cid`) ends the current view
//!   with a `viewend` row of its own at that report's `ts` and `sn`, and
//!   starts the new one.
//!
//! **Taking over a session** (after a crash, a rebalance, or when memory
//! evicted it): the first report of a session this worker does not know,
//! unless its `sn` is 0, makes the worker read the session's rows back
//! from ClickHouse ([`Resume`]) and replay them through these same rules
//! before applying the report. Rows are this module's own output, and
//! replaying an output gives the state that produced it ([`Sessions`]'s
//! tests check it), so the view's numbers come out as if the worker had
//! never lost it. Offsets are committed only after rows are written, so
//! every report not in ClickHouse is read again from Kafka.
//!
//! [`Sessions`] is shared by both sparse formats: it holds the open states
//! of a [`Fold`] (CMCD's [`Session`] here, mux-embed's view in
//! [`crate::mux`]), expires and evicts them, and reads an unknown one back.

use std::collections::HashMap;
use std::sync::Arc;

use qoe_schema::beacon::{Event, EventType, PlayerState};
use qoe_schema::cmcd::session_of;
use qoe_schema::record::Source;

use crate::metrics::metrics;
use crate::views::{nth_oldest, retain_nested};

/// A rebuffer this short that a seek ends was the seek's own stall.
pub const SEEK_STALL_GRACE_MS: u64 = 100;

/// Reads back the rows of a session (or view) a worker does not know.
pub trait Resume: Send + Sync {
    /// Every row of `source` under `key` in `property`, in any order: a
    /// CMCD session's views (rows carry `view_id`, `seq`, `event`,
    /// `ts_ms`, `state`, `bitrate_kbps`, `error_code`, `error_fatal` and
    /// the view's dimensions), or a mux-embed view (`seq`, `ts_ms` and
    /// `extra` matter).
    fn rows(&self, property: &str, source: Source, key: &str) -> Result<Vec<Event>, String>;
}

/// No storage to read from: every unknown session starts afresh.
pub struct Forgetful;

impl Resume for Forgetful {
    fn rows(&self, _: &str, _: Source, _: &str) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

/// How a sparse format's events fold into rows, one state per key.
pub trait Fold: Sized {
    /// The format.
    const SOURCE: Source;
    /// The key a state is kept and read back under, from an event's view.
    fn key(view_id: &str) -> &str;
    /// Whether `e` begins its state, so an unknown key need not be read back.
    fn begins(e: &Event) -> bool;
    /// Applies `e` to the state in `slot` (`None`: none yet), pushing the
    /// rows it makes (none for a late or repeated event) onto `out`.
    fn apply(slot: &mut Option<Self>, e: &Event, out: &mut Vec<Event>);
    /// Puts rows read back in the order they are applied again.
    fn replay_order(rows: &mut [Event]);
}

/// One view's derived state.
#[derive(Debug, Clone)]
struct View {
    /// The view's last row: its identity and dimensions for a row the
    /// session writes on its behalf (a content change's `viewend`).
    last: Event,
    view_start_ms: i64,
    /// Time of the last applied report (never goes backwards).
    ts_ms: i64,
    state: PlayerState,
    play_ts_ms: Option<i64>,
    startup_ms: Option<u32>,
    watch_ms: u64,
    playing_ms: u64,
    rebuffer_count: u32,
    rebuffer_ms: u64,
    rebuffer_since_ms: Option<i64>,
    bitrate_kbps: u32,
    /// Σ bitrate × playing ms, for the time-weighted average.
    bitrate_weight: u128,
    error_code: Arc<str>,
    error_fatal: bool,
}

impl View {
    fn start(e: &Event) -> View {
        View {
            last: e.clone(),
            view_start_ms: e.ts_ms,
            ts_ms: e.ts_ms,
            state: PlayerState::Idle,
            play_ts_ms: None,
            startup_ms: None,
            watch_ms: 0,
            playing_ms: 0,
            rebuffer_count: 0,
            rebuffer_ms: 0,
            rebuffer_since_ms: None,
            bitrate_kbps: 0,
            bitrate_weight: 0,
            error_code: e.error_code.clone(),
            error_fatal: false,
        }
    }

    fn is_over(&self) -> bool {
        matches!(self.state, PlayerState::Ended | PlayerState::Errored)
    }

    /// Applies report `e` and returns its row.
    fn advance(&mut self, e: &Event) -> Event {
        let dt = (e.ts_ms - self.ts_ms).max(0) as u64;
        self.ts_ms = self.ts_ms.max(e.ts_ms);
        match self.state {
            PlayerState::Playing => {
                self.watch_ms += dt;
                self.playing_ms += dt;
                self.bitrate_weight += u128::from(self.bitrate_kbps) * u128::from(dt);
            }
            PlayerState::Starting | PlayerState::Seeking => self.watch_ms += dt,
            PlayerState::Rebuffering => {
                self.watch_ms += dt;
                self.rebuffer_ms += dt;
            }
            PlayerState::Paused | PlayerState::Idle | PlayerState::Ended | PlayerState::Errored => {
            }
        }
        let said = e.state != PlayerState::Idle || e.event == EventType::Viewstart;
        let mut next = if said { e.state } else { self.state };
        if next == PlayerState::Rebuffering && self.state == PlayerState::Seeking {
            next = PlayerState::Seeking;
        }
        if next == PlayerState::Rebuffering && self.startup_ms.is_none() {
            next = PlayerState::Starting;
        }
        if next == PlayerState::Seeking && self.state == PlayerState::Rebuffering {
            // A player may report the seek's stall just before the seek
            // itself (Shaka does, the same instant): that was no rebuffer.
            if let Some(since) = self.rebuffer_since_ms {
                let lasted = (e.ts_ms - since).max(0) as u64;
                if lasted <= SEEK_STALL_GRACE_MS {
                    self.rebuffer_count = self.rebuffer_count.saturating_sub(1);
                    self.rebuffer_ms = self.rebuffer_ms.saturating_sub(lasted);
                }
            }
        }
        if next != self.state {
            match next {
                PlayerState::Starting => {
                    self.play_ts_ms.get_or_insert(e.ts_ms);
                }
                PlayerState::Playing if self.startup_ms.is_none() => {
                    let asked = *self.play_ts_ms.get_or_insert(self.view_start_ms);
                    self.startup_ms = Some((e.ts_ms - asked).clamp(0, i64::from(u32::MAX)) as u32);
                }
                PlayerState::Rebuffering => {
                    self.rebuffer_count += 1;
                    self.rebuffer_since_ms = Some(e.ts_ms);
                }
                _ => {}
            }
            self.state = next;
        }
        if self.state != PlayerState::Rebuffering {
            self.rebuffer_since_ms = None;
        }
        if e.bitrate_kbps > 0 {
            self.bitrate_kbps = e.bitrate_kbps;
        }
        if !e.error_code.is_empty() {
            self.error_code = e.error_code.clone();
        }
        self.error_fatal |= e.error_fatal || self.state == PlayerState::Errored;
        let mut row = e.clone();
        if row.event == EventType::Rebufferstart && self.state != PlayerState::Rebuffering {
            row.event = EventType::Heartbeat;
        }
        row.state = self.state;
        row.view_start_ms = self.view_start_ms;
        row.play_requested = self.play_ts_ms.is_some();
        row.startup_time_ms = self.startup_ms;
        row.watch_time_ms = self.watch_ms;
        row.playing_time_ms = self.playing_ms;
        row.rebuffer_count = self.rebuffer_count;
        row.rebuffer_duration_ms = self.rebuffer_ms;
        row.current_rebuffer_ms = self
            .rebuffer_since_ms
            .map_or(0, |since| (e.ts_ms - since).max(0) as u64);
        row.bitrate_kbps = self.bitrate_kbps;
        row.avg_bitrate_kbps = match self.playing_ms {
            0 => 0,
            ms => ((self.bitrate_weight + u128::from(ms) / 2) / u128::from(ms)) as u32,
        };
        row.error_code = self.error_code.clone();
        row.error_fatal = self.error_fatal;
        self.last = row.clone();
        row
    }
}

/// One CMCD session: its current view and the last `sn` applied.
#[derive(Debug, Clone)]
pub struct Session {
    view: View,
    last_seq: u32,
}

impl Fold for Session {
    const SOURCE: Source = Source::Cmcd;

    fn key(view_id: &str) -> &str {
        session_of(view_id)
    }

    fn begins(e: &Event) -> bool {
        e.seq == 0
    }

    fn replay_order(rows: &mut [Event]) {
        // `sn` order; a content change's `viewend` of the previous view
        // before the new view's row of the same `sn`.
        rows.sort_by_key(|r| (r.seq, r.event != EventType::Viewend));
    }

    /// Applies report `e` (of this session), pushing its rows onto `out`.
    fn apply(slot: &mut Option<Session>, e: &Event, out: &mut Vec<Event>) {
        let Some(s) = slot else {
            let mut view = View::start(e);
            out.push(view.advance(e));
            *slot = Some(Session {
                view,
                last_seq: e.seq,
            });
            return;
        };
        // Late or repeated. The same `sn` in another view is the content
        // change's `viewend` of the previous view, met when replaying.
        if e.seq < s.last_seq || (e.seq == s.last_seq && *e.view_id == *s.view.last.view_id) {
            return;
        }
        s.last_seq = e.seq;
        if *e.view_id != *s.view.last.view_id {
            if !s.view.is_over() {
                let mut end = s.view.last.clone();
                end.seq = e.seq;
                end.ts_ms = e.ts_ms;
                end.event = EventType::Viewend;
                end.state = PlayerState::Ended;
                end.error_fatal = false;
                out.push(s.view.advance(&end));
            }
            s.view = View::start(e);
        }
        out.push(s.view.advance(e));
    }
}

/// The open states of one worker, by property then key, each with the
/// latest event time seen (for expiry and eviction).
pub struct Sessions<F: Fold> {
    open: HashMap<String, HashMap<String, (Option<F>, i64)>>,
    len: usize,
    cap: usize,
    timeout_ms: i64,
    resume: Arc<dyn Resume>,
}

impl<F: Fold> Sessions<F> {
    /// At most `cap` states, forgotten after `timeout_ms` without an
    /// event; unknown ones are read back through `resume`.
    pub fn new(cap: usize, timeout_ms: i64, resume: Arc<dyn Resume>) -> Self {
        Sessions {
            open: HashMap::new(),
            len: 0,
            cap: cap.max(1),
            timeout_ms,
            resume,
        }
    }

    /// Applies event `e` of `property`, pushing the rows it makes (none
    /// for a late or repeated one, two on a CMCD content change) onto
    /// `out`.
    pub fn apply(&mut self, property: &str, e: &Event, out: &mut Vec<Event>) {
        let key = F::key(&e.view_id);
        let known = self.open.get(property).is_some_and(|s| s.contains_key(key));
        if !known {
            let resumed = (!F::begins(e))
                .then(|| self.resume_state(property, key))
                .flatten();
            self.open
                .entry(property.to_owned())
                .or_default()
                .insert(key.to_owned(), (resumed, e.ts_ms));
            self.len += 1;
            metrics().open_sessions.inc();
        }
        if let Some((slot, seen)) = self.open.get_mut(property).and_then(|s| s.get_mut(key)) {
            *seen = (*seen).max(e.ts_ms);
            let before = out.len();
            F::apply(slot, e, out);
            let outcome = if out.len() > before {
                "applied"
            } else {
                "late_or_repeated"
            };
            metrics()
                .sparse_events
                .with_label_values(&[F::SOURCE.as_str(), outcome])
                .inc();
        }
        if self.len > self.cap {
            self.evict();
        }
    }

    /// The state as its rows in ClickHouse left it, or `None` when it has
    /// none (or they cannot be read: then it starts afresh, counted).
    fn resume_state(&self, property: &str, key: &str) -> Option<F> {
        let resumed = &metrics().sessions_resumed;
        let mut rows = match self.resume.rows(property, F::SOURCE, key) {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(property, key, source = F::SOURCE.as_str(), error = %err, "cannot read a session back; it starts afresh");
                resumed.with_label_values(&["failed"]).inc();
                return None;
            }
        };
        // The read is by range: keep the rows of this key alone.
        rows.retain(|r| F::key(&r.view_id) == key);
        F::replay_order(&mut rows);
        let mut slot = None;
        let mut sink = Vec::new();
        for row in &rows {
            F::apply(&mut slot, row, &mut sink);
            sink.clear();
        }
        resumed
            .with_label_values(&[if slot.is_some() { "found" } else { "empty" }])
            .inc();
        slot
    }

    /// Forgets sessions without a report for the timeout as of `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let timeout = self.timeout_ms;
        self.retain(|seen| now_ms - seen < timeout, usize::MAX);
    }

    /// Forgets everything (after a rebalance; see `ViewTable::clear`).
    pub fn clear(&mut self) {
        self.open.clear();
        metrics().open_sessions.sub(self.len as i64);
        self.len = 0;
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn retain(&mut self, mut keep: impl FnMut(i64) -> bool, limit: usize) {
        let dropped = retain_nested(&mut self.open, |(_, seen)| keep(*seen), limit);
        self.len -= dropped;
        metrics().open_sessions.sub(dropped as i64);
    }

    /// Drops the least recently seen ~1 %: a session seen again is read
    /// back from ClickHouse.
    fn evict(&mut self) {
        let n = (self.cap / 100).max(1).min(self.len);
        let cutoff = nth_oldest(&self.open, n, |(_, seen)| *seen);
        self.retain(|seen| seen > cutoff, n);
    }
}

#[cfg(test)]
pub(crate) mod tests;
