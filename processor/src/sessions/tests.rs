//! Hand-written report sequences with the view facts they must give, and
//! the take-over rule: a worker that reads a session's rows back and goes
//! on ends with the numbers of one that never stopped.

use std::sync::Mutex;

use proptest::prelude::*;
use qoe_schema::cmcd;
use qoe_schema::validate::Checks;

use super::*;

const T0: i64 = 1_795_951_800_000;

/// The event the collector makes of one report line: `sn`, `ms` after T0,
/// then the line's other keys.
fn report(sid: &str, cid: &str, sn: u32, ms: i64, keys: &str) -> Event {
    let line = format!("sid=\"{sid}\",cid=\"{cid}\",sn={sn},ts={},{keys}", T0 + ms);
    let d = cmcd::decode(line.as_bytes(), &Checks::at(T0 + ms)).expect("CMCD");
    assert!(d.rejected.is_empty(), "{line}: {:?}", d.rejected);
    d.accepted.into_iter().next().expect("one report")
}

/// `(ms, keys)` steps of session `s`, content `c`, numbered from sn 0.
fn steps(steps: &[(i64, &str)]) -> Vec<Event> {
    steps
        .iter()
        .enumerate()
        .map(|(sn, (ms, keys))| report("s", "c", sn as u32, *ms, keys))
        .collect()
}

fn run(reports: &[Event]) -> Vec<Event> {
    let mut sessions = Sessions::<Session>::new(100, 3_600_000, Arc::new(Forgetful));
    let mut rows = Vec::new();
    for r in reports {
        sessions.apply("p", r, &mut rows);
    }
    rows
}

/// The facts a row states, in one comparable line.
#[derive(Debug, PartialEq)]
struct Facts {
    state: PlayerState,
    startup: Option<u32>,
    watch: u64,
    playing: u64,
    rebuffers: u32,
    rebuffering: u64,
    avg_bitrate: u32,
    fatal: bool,
    code: String,
}

fn facts(row: &Event) -> Facts {
    Facts {
        state: row.state,
        startup: row.startup_time_ms,
        watch: row.watch_time_ms,
        playing: row.playing_time_ms,
        rebuffers: row.rebuffer_count,
        rebuffering: row.rebuffer_duration_ms,
        avg_bitrate: row.avg_bitrate_kbps,
        fatal: row.error_fatal,
        code: row.error_code.to_string(),
    }
}

fn last(rows: &[Event]) -> Facts {
    facts(rows.last().expect("a row"))
}

#[test]
fn startup_then_pause_is_not_rebuffering() {
    let rows = run(&steps(&[
        (0, "e=ps,sta=d"),
        (1000, "e=ps,sta=s"),
        (1800, "e=ps,sta=p,br=(2000)"),
        (11_800, "e=t,sta=p"),
        (15_000, "e=ps,sta=a"),
        (25_000, "e=t,sta=a"),
        (30_000, "e=ps,sta=p"),
        (40_000, "e=ps,sta=e"),
    ]));
    assert_eq!(rows.len(), 8, "one row per report");
    assert_eq!(
        last(&rows),
        Facts {
            state: PlayerState::Ended,
            startup: Some(800),
            watch: 800 + 23_200,
            playing: 23_200,
            rebuffers: 0,
            rebuffering: 0,
            avg_bitrate: 2000,
            fatal: false,
            code: String::new(),
        }
    );
    assert!(rows[0].startup_time_ms.is_none() && !rows[0].play_requested);
    assert!(rows[1].play_requested);
    assert_eq!(rows[4].state, PlayerState::Paused);
    assert_eq!(rows[7].event, EventType::Viewend);
    assert!(rows.iter().all(|r| r.view_start_ms == T0));
}

#[test]
fn rebuffering_right_after_a_seek_is_seek_latency() {
    let rows = run(&steps(&[
        (0, "e=ps,sta=s"),
        (500, "e=ps,sta=p"),
        (5000, "e=ps,sta=r"),
        (7000, "e=ps,sta=p"),
        (10_000, "e=ps,sta=k"),
        (10_200, "e=ps,sta=r"),
        (11_000, "e=ps,sta=p"),
        (20_000, "e=ps,sta=r"),
        (20_400, "e=t,sta=r"),
        (20_500, "e=ps,sta=p"),
        (21_000, "e=ps,sta=q"),
    ]));
    let f = last(&rows);
    assert_eq!((f.rebuffers, f.rebuffering), (2, 2000 + 500));
    assert_eq!(f.playing, 4500 + 3000 + 9000 + 500);
    assert_eq!(
        f.watch,
        500 + f.playing + 2500 + 1000,
        "seeking counts as watch time"
    );
    assert_eq!(
        rows[5].state,
        PlayerState::Seeking,
        "the stall after the seek"
    );
    assert_eq!(rows[5].event, EventType::Heartbeat);
    assert_eq!(rows[2].current_rebuffer_ms, 0);
    assert_eq!(rows[8].current_rebuffer_ms, 400, "the stall in progress");
    assert_eq!(
        rows[8].rebuffer_count, 2,
        "a report during a stall is not a new one"
    );
}

#[test]
fn a_stall_reported_at_the_instant_of_a_seek_is_the_seeks() {
    let rows = run(&steps(&[
        (0, "e=ps,sta=s"),
        (500, "e=ps,sta=p"),
        (5000, "e=ps,sta=r"),
        (5001, "e=ps,sta=k"),
        (5800, "e=ps,sta=p"),
        (9000, "e=ps,sta=r"),
        (9500, "e=ps,sta=k"),
        (10_000, "e=ps,sta=p"),
    ]));
    let f = last(&rows);
    assert_eq!(
        (f.rebuffers, f.rebuffering),
        (1, 500),
        "only the stall that lasted"
    );
    assert_eq!(rows[2].rebuffer_count, 1, "until the seek came");
    assert_eq!(rows[3].rebuffer_count, 0);
}

#[test]
fn an_error_report_is_a_playback_failure_and_a_stall_before_start_is_startup() {
    let rows = run(&steps(&[
        (0, "e=ps,sta=s"),
        (300, "e=ps,sta=r"),
        (1000, "e=ps,sta=p"),
        (3000, "e=e,sta=p,ec=(\"MEDIA_ERR_NETWORK\")"),
        (9000, "e=t,sta=f"),
    ]));
    assert_eq!(
        last(&rows),
        Facts {
            state: PlayerState::Errored,
            startup: Some(1000),
            watch: 3000,
            playing: 2000,
            rebuffers: 0,
            rebuffering: 0,
            avg_bitrate: 0,
            fatal: true,
            code: "MEDIA_ERR_NETWORK".into(),
        }
    );
    assert_eq!(rows[1].state, PlayerState::Starting);
    assert_eq!(
        (rows[3].event, rows[3].error_fatal),
        (EventType::Error, true)
    );
}

#[test]
fn quitting_before_the_first_frame_is_an_exit_before_start() {
    let rows = run(&steps(&[
        (0, "e=ps,sta=s"),
        (4000, "e=t,sta=s"),
        (6000, "e=ps,sta=q"),
    ]));
    let f = last(&rows);
    assert_eq!(
        (f.state, f.startup, f.watch, f.playing),
        (PlayerState::Ended, None, 6000, 0)
    );
    assert!(rows[2].play_requested);
}

#[test]
fn late_and_repeated_reports_change_nothing() {
    let r = |sn, ms, keys| report("s", "c", sn, ms, keys);
    let rows = run(&[
        r(0, 0, "e=ps,sta=s"),
        r(1, 1000, "e=ps,sta=p"),
        r(3, 11_000, "e=t,sta=p"),
        r(2, 6000, "e=ps,sta=r"),
        r(3, 11_000, "e=t,sta=p"),
        r(1, 1000, "e=ps,sta=p"),
        r(4, 12_000, "e=ps,sta=e"),
    ]);
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 3, 4]);
    let f = last(&rows);
    assert_eq!((f.playing, f.rebuffers), (11_000, 0));
}

#[test]
fn a_content_change_ends_the_view_and_starts_another() {
    let rows = run(&[
        report("s", "a", 0, 0, "e=ps,sta=s"),
        report("s", "a", 1, 1000, "e=ps,sta=p"),
        report("s", "a", 2, 5000, "e=t,sta=p"),
        report("s", "b", 3, 6000, "e=c,sta=s"),
        report("s", "b", 4, 6500, "e=ps,sta=p"),
        report("s", "b", 5, 10_000, "e=ps,sta=e"),
    ]);
    let a = cmcd::view_id("s", "a");
    let b = cmcd::view_id("s", "b");
    let ends: Vec<(&str, u32, EventType)> = rows
        .iter()
        .map(|r| (&*r.view_id, r.seq, r.event))
        .filter(|r| r.2 == EventType::Viewend)
        .collect();
    assert_eq!(
        ends,
        [
            (a.as_str(), 3, EventType::Viewend),
            (b.as_str(), 5, EventType::Viewend)
        ]
    );
    let end_a = rows
        .iter()
        .find(|r| *r.view_id == *a && r.seq == 3)
        .expect("A's end");
    assert_eq!(
        (end_a.playing_time_ms, end_a.startup_time_ms),
        (5000, Some(1000))
    );
    assert_eq!(&*end_a.video_id, "a", "A's end row keeps A's dimensions");
    let f = last(&rows);
    assert_eq!((f.startup, f.playing), (Some(500), 3500));
    assert!(rows
        .iter()
        .filter(|r| *r.view_id == *b)
        .all(|r| r.view_start_ms == T0 + 6000));
}

#[test]
fn the_average_bitrate_weighs_playing_time() {
    let rows = run(&steps(&[
        (0, "e=ps,sta=s,br=(0)"),
        (0, "e=ps,sta=p,br=(1000)"),
        (4000, "e=bc,sta=p,br=(3000)"),
        (5000, "e=ps,sta=a,br=(0)"),
        (9000, "e=ps,sta=p"),
        (10_000, "e=ps,sta=e"),
    ]));
    // (1000 × 4000 + 3000 × 1000 + 3000 × 1000) / 6000 = 1666.7
    assert_eq!(last(&rows).avg_bitrate, 1667);
    assert_eq!(rows[3].bitrate_kbps, 3000, "br=0 keeps the bitrate");
}

/// ClickHouse as far as resuming goes: the rows written so far.
struct Stored(Mutex<Vec<Event>>);

impl Resume for Stored {
    fn rows(&self, _: &str, _: Source, key: &str) -> Result<Vec<Event>, String> {
        let rows = self.0.lock().expect("not poisoned");
        // Newest first: the order of storage is not the order of reports.
        // Every row whose id starts with the key, as the range read gives.
        Ok(rows
            .iter()
            .rev()
            .filter(|r| r.view_id.starts_with(key))
            .cloned()
            .collect())
    }
}

/// The rows of `events` when the worker (folding with `F`) is replaced
/// after the first `crash_at` (rows written, then a new worker reads them
/// back).
pub(crate) fn run_with_takeover<F: Fold>(events: &[Event], crash_at: usize) -> Vec<Event> {
    let reports = events;
    let stored = Arc::new(Stored(Mutex::new(Vec::new())));
    let mut first = Sessions::<F>::new(100, 3_600_000, Arc::new(Forgetful));
    let mut rows = Vec::new();
    for r in &reports[..crash_at] {
        first.apply("p", r, &mut rows);
    }
    stored
        .0
        .lock()
        .expect("not poisoned")
        .extend(rows.iter().cloned());
    let mut second = Sessions::<F>::new(100, 3_600_000, stored.clone());
    for r in &reports[crash_at..] {
        second.apply("p", r, &mut rows);
    }
    rows
}

fn content_change() -> Vec<Event> {
    vec![
        report("s", "a", 0, 0, "e=ps,sta=s"),
        report("s", "a", 1, 1000, "e=ps,sta=p,br=(800)"),
        report("s", "a", 2, 3000, "e=ps,sta=r"),
        report("s", "b", 3, 6000, "e=c,sta=s"),
        report("s", "b", 4, 6500, "e=ps,sta=p,br=(1500)"),
        report("s", "b", 5, 8000, "e=ps,sta=k"),
        report("s", "b", 6, 8100, "e=ps,sta=r"),
        report("s", "b", 7, 9000, "e=ps,sta=p"),
        report("s", "b", 8, 12_000, "e=ps,sta=q"),
    ]
}

#[test]
fn a_worker_taking_over_ends_with_the_same_numbers() {
    let reports = content_change();
    let whole = run(&reports);
    for crash_at in 1..reports.len() {
        let taken_over = run_with_takeover::<Session>(&reports, crash_at);
        assert_eq!(taken_over, whole, "taken over after {crash_at} reports");
    }
}

#[test]
fn a_takeover_that_cannot_read_starts_afresh() {
    struct Broken;
    impl Resume for Broken {
        fn rows(&self, _: &str, _: Source, _: &str) -> Result<Vec<Event>, String> {
            Err("shard down".into())
        }
    }
    let mut sessions = Sessions::<Session>::new(10, 60_000, Arc::new(Broken));
    let mut rows = Vec::new();
    sessions.apply("p", &report("s", "c", 5, 0, "e=ps,sta=p"), &mut rows);
    assert_eq!(rows.len(), 1, "the report is not lost");
    assert_eq!(rows[0].startup_time_ms, Some(0));
}

#[test]
fn sessions_are_bounded_and_expire() {
    let mut sessions = Sessions::<Session>::new(50, 1000, Arc::new(Forgetful));
    let mut rows = Vec::new();
    for i in 0..200 {
        sessions.apply(
            "p",
            &report(&format!("s{i}"), "", 0, i, "e=ps,sta=s"),
            &mut rows,
        );
    }
    assert!(sessions.len() <= 50, "{}", sessions.len());
    sessions.expire(T0 + 199 + 1000);
    assert!(sessions.is_empty());
}

fn any_state() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "e=ps,sta=s",
        "e=ps,sta=p",
        "e=ps,sta=k",
        "e=ps,sta=r",
        "e=ps,sta=a",
        "e=ps,sta=w",
        "e=t,sta=p",
        "e=t",
        "e=bc,sta=p,br=(2500)",
        "e=e,sta=p,ec=(\"E\")",
        "e=ps,sta=e",
        "e=ps,sta=f",
        "e=ps,sta=d",
        "e=c,sta=s",
    ])
}

proptest! {
    /// Any sequence, any crash point, contents changing on `e=c`: a taken-over
    /// session writes what an uninterrupted one writes.
    #[test]
    fn any_takeover_gives_the_same_rows(
        steps in prop::collection::vec((0i64..20_000, any_state()), 1..30),
        crash in any::<prop::sample::Index>(),
    ) {
        let mut ms = 0;
        let mut content = 0;
        let reports: Vec<Event> = steps
            .iter()
            .enumerate()
            .map(|(sn, (gap, keys))| {
                ms += gap;
                if keys.starts_with("e=c") {
                    content += 1;
                }
                report("s", &format!("c{content}"), sn as u32, ms, keys)
            })
            .collect();
        let whole = run(&reports);
        let crash_at = crash.index(reports.len());
        prop_assert_eq!(run_with_takeover::<Session>(&reports, crash_at), whole);
    }
}
