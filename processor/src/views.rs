//! Per-view state: the latest `seq` of each open view, so exact duplicates
//! are skipped and the view's lifecycle (open, closed by `viewend` or by
//! inactivity) is known. Memory is bounded by `max_open_views`: past it the
//! least recently seen views are evicted (counted) — an evicted view's later
//! heartbeats are still written; only the duplicate filter forgets it.
//!
//! Older `seq`s are *not* dropped: the view's state ignores them, but their
//! row still goes to ClickHouse, where it may be the only evidence that the
//! view was active in an earlier minute. Per-view truth in ClickHouse is the
//! highest `seq` either way (`ReplacingMergeTree(seq)`, `argMax`).

use std::collections::HashMap;
use std::sync::Arc;

use qoe_schema::beacon::Event;
use qoe_schema::beacon::EventType;

use crate::metrics::metrics;

/// What one heartbeat means for its view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First event of a view this process knows.
    New,
    /// A higher `seq` than any seen: the view's new state.
    Newer,
    /// A `seq` already seen: skip it.
    Duplicate,
    /// A lower `seq` arriving late: state unchanged, row still written.
    Older,
}

#[derive(Debug, Clone, Copy)]
struct ViewState {
    seq: u32,
    last_ts_ms: i64,
}

/// Open views of one worker, by property then view (the `open_views` gauge
/// sums every worker's table). Nested maps so a
/// lookup borrows the record's strings: no allocation per record, only per
/// new view.
pub struct ViewTable {
    views: HashMap<String, HashMap<Arc<str>, ViewState>>,
    len: usize,
    cap: usize,
    timeout_ms: i64,
}

impl ViewTable {
    /// An empty table of at most `cap` views closing after `timeout_ms`.
    pub fn new(cap: usize, timeout_ms: i64) -> Self {
        ViewTable {
            views: HashMap::new(),
            len: 0,
            cap: cap.max(1),
            timeout_ms,
        }
    }

    /// Records event `e` of `property_id` and says what it was.
    pub fn observe(&mut self, property_id: &str, e: &Event) -> Seen {
        if !self.views.contains_key(property_id) {
            self.views.insert(property_id.to_owned(), HashMap::new());
        }
        let views = self.views.get_mut(property_id).expect("inserted above");
        let seen = match views.get_mut(&*e.view_id) {
            None => {
                views.insert(
                    e.view_id.clone(),
                    ViewState {
                        seq: e.seq,
                        last_ts_ms: e.ts_ms,
                    },
                );
                self.len += 1;
                metrics().open_views.inc();
                Seen::New
            }
            Some(state) if e.seq > state.seq => {
                *state = ViewState {
                    seq: e.seq,
                    last_ts_ms: e.ts_ms.max(state.last_ts_ms),
                };
                Seen::Newer
            }
            Some(state) if e.seq == state.seq => return Seen::Duplicate,
            Some(_) => return Seen::Older,
        };
        if e.event == EventType::Viewend {
            views.remove(&*e.view_id);
            self.len -= 1;
            metrics().open_views.dec();
            metrics().views_closed.with_label_values(&["viewend"]).inc();
        } else if self.len > self.cap {
            self.evict();
        }
        seen
    }

    /// Closes views idle for the timeout as of `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let timeout = self.timeout_ms;
        self.retain(|v| now_ms - v.last_ts_ms < timeout, usize::MAX, "timeout");
    }

    /// Keeps the views `keep` accepts, dropping at most `limit` others
    /// (counted under `reason`); empty properties go too.
    fn retain(&mut self, keep: impl FnMut(&ViewState) -> bool, limit: usize, reason: &str) {
        let dropped = retain_nested(&mut self.views, keep, limit);
        self.len -= dropped;
        metrics().open_views.sub(dropped as i64);
        if dropped > 0 {
            metrics()
                .views_closed
                .with_label_values(&[reason])
                .inc_by(dropped as u64);
        }
    }

    /// Forgets everything (after a rebalance, the pending rows are gone and
    /// their records will be read again: none may count as a duplicate).
    pub fn clear(&mut self) {
        self.views.clear();
        metrics().open_views.sub(self.len as i64);
        self.len = 0;
    }

    /// Views held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no view is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the least recently seen ~1 % (at least one) in one pass, so
    /// eviction costs O(1) amortized per insert.
    fn evict(&mut self) {
        let n = (self.cap / 100).max(1).min(self.len);
        let cutoff = nth_oldest(&self.views, n, |v| v.last_ts_ms);
        self.retain(|v| v.last_ts_ms > cutoff, n, "evicted");
    }
}

/// Keeps the entries of per-property maps that `keep` accepts, dropping
/// at most `limit` others, and the maps left empty; how many it dropped.
pub(crate) fn retain_nested<K, V>(
    maps: &mut HashMap<String, HashMap<K, V>>,
    mut keep: impl FnMut(&V) -> bool,
    limit: usize,
) -> usize {
    let mut dropped = 0;
    for map in maps.values_mut() {
        map.retain(|_, v| {
            if dropped < limit && !keep(v) {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
    maps.retain(|_, map| !map.is_empty());
    dropped
}

/// The `n`-th oldest (1-based) of the entries' times `seen`: dropping
/// those at or before it drops the `n` least recently seen.
pub(crate) fn nth_oldest<K, V>(
    maps: &HashMap<String, HashMap<K, V>>,
    n: usize,
    seen: impl Fn(&V) -> i64,
) -> i64 {
    let mut times: Vec<i64> = maps.values().flat_map(|m| m.values().map(&seen)).collect();
    let (_, cutoff, _) = times.select_nth_unstable(n - 1);
    *cutoff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(view: &str, seq: u32, ts: i64, event: EventType) -> Event {
        let mut e = qoe_schema::sample::event(view, seq);
        e.ts_ms = ts;
        e.event = event;
        e
    }

    #[test]
    fn newer_duplicate_older() {
        let mut t = ViewTable::new(10, 1000);
        let steps = [
            (5, 1, EventType::Heartbeat, Seen::New),
            (5, 1, EventType::Heartbeat, Seen::Duplicate),
            (3, 1, EventType::Heartbeat, Seen::Older),
            (6, 2, EventType::Heartbeat, Seen::Newer),
            (7, 3, EventType::Viewend, Seen::Newer),
        ];
        for (seq, ts, event, seen) in steps {
            assert_eq!(t.observe("p", &hb("a", seq, ts, event)), seen, "seq {seq}");
        }
        assert!(t.is_empty(), "viewend closes the view");
    }

    #[test]
    fn bounded_and_expiring() {
        let mut t = ViewTable::new(100, 1000);
        for i in 0..500 {
            t.observe("p", &hb(&format!("v{i}"), 1, i, EventType::Heartbeat));
        }
        assert!(t.len() <= 100, "{}", t.len());
        // The most recent views are the ones kept.
        assert_eq!(
            t.observe("p", &hb("v499", 1, 499, EventType::Heartbeat)),
            Seen::Duplicate
        );
        t.expire(499 + 1000);
        assert!(t.is_empty());
    }
}
