use super::*;

/// An audience without disruptions: views start, play and go on.
fn quiet() -> ModelConfig {
    ModelConfig {
        exit_before_start: 0.0,
        startup_failure: 0.0,
        fatal_errors_per_hour: 0.0,
        rebuffers_per_min: 0.0,
        pauses_per_min: 0.0,
        seeks_per_min: 0.0,
        renditions_per_min: 0.0,
        view_median_s: 100_000.0,
        ..ModelConfig::default()
    }
}

fn run_viewer(model: &ModelConfig, seed: u64, minutes: i64) -> Vec<Event> {
    let run: Arc<str> = "t".into();
    let mut v = Viewer::new(model, &run, seed, 1, 1_000_000);
    let mut now = 1_000_000;
    let mut out = Vec::new();
    while now < 1_000_000 + minutes * 60_000 {
        let sent = out.len();
        let next = v.wake(model, now, &mut out);
        // An SDK reports what happened, never what is yet to happen
        // (bar the few ms its own viewstart/playerready take).
        assert!(out[sent..].iter().all(|e| e.ts_ms <= now + PLAYER_READY_MS));
        now = next;
    }
    out
}

#[test]
fn counters_are_cumulative_and_consistent() {
    let model = ModelConfig {
        rebuffers_per_min: 3.0,
        pauses_per_min: 1.0,
        seeks_per_min: 1.0,
        renditions_per_min: 2.0,
        view_median_s: 120.0,
        ..ModelConfig::default()
    };
    for seed in 0..50 {
        let events = run_viewer(&model, seed, 30);
        assert!(!events.is_empty());
        let mut by_view: std::collections::BTreeMap<&str, Vec<&Event>> = Default::default();
        for e in &events {
            by_view.entry(&e.view_id).or_default().push(e);
        }
        for (view, evs) in by_view {
            assert_eq!(evs[0].event, EventType::Viewstart, "{view}");
            // The contract (schema/README.md): startup time and watch
            // time count from the play request.
            let play = evs.iter().find(|e| e.event == EventType::Play).unwrap();
            for e in evs.iter().filter(|e| e.seq < play.seq) {
                assert_eq!(e.watch_time_ms, 0, "{view}: nothing counts before play");
            }
            for w in evs.windows(2) {
                let (a, b) = (w[0], w[1]);
                assert_eq!(b.seq, a.seq + 1, "{view}: seq increases by one");
                assert!(b.ts_ms >= a.ts_ms, "{view}: time order");
                assert!(b.watch_time_ms >= a.watch_time_ms);
                assert!(b.playing_time_ms >= a.playing_time_ms);
                assert!(b.rebuffer_count >= a.rebuffer_count);
                assert!(b.rebuffer_duration_ms >= a.rebuffer_duration_ms);
                assert!(!a.play_requested || b.play_requested, "sticky");
                // The stall in progress: its length so far, within the
                // view's rebuffering; none outside a stall.
                if b.state == PlayerState::Rebuffering {
                    assert!(b.current_rebuffer_ms <= b.rebuffer_duration_ms, "{view}");
                    if a.state == PlayerState::Rebuffering {
                        let grew = b.current_rebuffer_ms - a.current_rebuffer_ms;
                        assert_eq!(
                            grew as i64,
                            b.ts_ms - a.ts_ms,
                            "{view}: a stall grows in time"
                        );
                    }
                } else {
                    assert_eq!(b.current_rebuffer_ms, 0, "{view}");
                }
                // Watch time never exceeds the time since play was requested.
                if b.seq >= play.seq {
                    assert!(b.watch_time_ms as i64 <= b.ts_ms - play.ts_ms);
                }
                assert!(b.playing_time_ms + b.rebuffer_duration_ms <= b.watch_time_ms);
            }
            let last = evs[evs.len() - 1];
            let rebuffers = evs
                .iter()
                .filter(|e| e.event == EventType::Rebufferstart)
                .count();
            assert_eq!(last.rebuffer_count as usize, rebuffers, "{view}");
            if let Some(s) = last.startup_time_ms {
                let playing = evs.iter().find(|e| e.event == EventType::Playing).unwrap();
                assert_eq!(i64::from(s), playing.ts_ms - play.ts_ms);
            }
        }
    }
}

#[test]
fn a_plain_view_counts_exactly() {
    // No disruptions: watch = startup + playing, avg bitrate = bitrate.
    let model = quiet();
    let events = run_viewer(&model, 3, 5);
    let last = events.last().unwrap();
    assert_eq!(last.event, EventType::Heartbeat);
    let startup = u64::from(last.startup_time_ms.unwrap());
    let play = events.iter().find(|e| e.event == EventType::Play).unwrap();
    let since_play = (last.ts_ms - play.ts_ms) as u64;
    assert_eq!(last.watch_time_ms, since_play);
    assert_eq!(last.playing_time_ms, since_play - startup);
    assert_eq!(last.avg_bitrate_kbps, last.bitrate_kbps);
    assert_eq!(last.rebuffer_count, 0);
    assert!(events.iter().all(|e| e.state != PlayerState::Rebuffering));
}

#[test]
fn the_model_counts_as_the_golden_readme_view_does() {
    // The README's view (schema::golden): play requested 500 ms after
    // viewstart, first frame 850 ms later, a heartbeat 10 s after that.
    let golden = qoe_schema::golden::cases()
        .into_iter()
        .find(|c| c.name == "readme_example")
        .unwrap()
        .beacons(0);
    let beacon = |event: &str| golden.iter().find(|b| b["event"] == event).unwrap().clone();
    let (playing, heartbeat) = (beacon("playing"), beacon("heartbeat"));
    let model = quiet();
    let start = 1_000_000;
    let mut view = View::start(&model, &mut Rng::new(1, 1), &"u".into(), 0, start);
    view.play_at = start + 500;
    view.first_frame_at = start + 1350;
    let mut out = Vec::new();
    view.report(&model, &mut Rng::new(1, 2), start + 11_350, &mut out);
    let sent = |kind: EventType| out.iter().find(|e| e.event == kind).unwrap();
    for (ours, theirs) in [
        (sent(EventType::Playing), playing),
        (sent(EventType::Heartbeat), heartbeat),
    ] {
        assert_eq!(
            ours.ts_ms - start,
            theirs["ts"].as_i64().unwrap() - theirs["view_start"].as_i64().unwrap()
        );
        assert_eq!(ours.startup_time_ms, Some(850));
        assert_eq!(json_u64(&theirs, "startup_time_ms"), 850);
        assert_eq!(
            ours.watch_time_ms,
            json_u64(&theirs, "watch_time_ms"),
            "{:?}",
            ours.event
        );
        assert_eq!(
            ours.playing_time_ms,
            json_u64(&theirs, "playing_time_ms"),
            "{:?}",
            ours.event
        );
    }
}

fn json_u64(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key).and_then(|n| n.as_u64()).unwrap_or(0)
}

#[test]
fn a_run_is_reproducible_from_its_seed() {
    let model = ModelConfig::default();
    assert_eq!(run_viewer(&model, 9, 20), run_viewer(&model, 9, 20));
    assert_ne!(run_viewer(&model, 9, 20), run_viewer(&model, 10, 20));
}

#[test]
fn rates_come_out_as_configured() {
    let model = ModelConfig {
        exit_before_start: 0.2,
        ..ModelConfig::default()
    };
    let (mut views, mut exits) = (0, 0);
    for seed in 0..2000 {
        let events = run_viewer(&model, seed, 1);
        let first: Vec<&Event> = events
            .iter()
            .filter(|e| e.view_id.ends_with("-0"))
            .collect();
        views += 1;
        let last = first.last().unwrap();
        if last.event == EventType::Viewend && last.startup_time_ms.is_none() && !last.error_fatal {
            exits += 1;
        }
    }
    let share = exits as f64 / views as f64;
    assert!((share - 0.2).abs() < 0.03, "{share}");
}
