//! mux-embed views through the real broker and ClickHouse: a processor
//! killed in the middle of its views, and another taking them over (reading
//! each view's stored keys back from ClickHouse and replaying them), write
//! the numbers one processor that never stopped would.
//!
//! The views are timed just before the wall clock: a processor forgets
//! views idle for an hour by it, and these must stay in memory until the
//! crash takes them.

mod support;

use qoe_processor::mux::MuxView;
use qoe_schema::beacon::Event;
use qoe_schema::metrics::Range;
use qoe_schema::record::Source;
use qoe_schema::sample;
use serde_json::{json, Value};
use support::{assert_matches, records_of, whole_run, Setup};

/// One view's events as mux-embed sends them (after the first, only what
/// changed): `(ms after its start, name, keys)`, varied by `i` so views
/// stall, seek, fail or pause; the views start 7 s apart from `base_ms`.
fn view(i: usize, base_ms: i64) -> Vec<Event> {
    let start = base_ms + i as i64 * 7_000;
    let first_frame = 300 + i as i64 * 11;
    let mut plan: Vec<(i64, &str, Value)> = vec![
        (
            0,
            "viewstart",
            json!({"xst": start, "mvrid": format!("viewer-{}", i % 5),
            "vid": format!("clip-{}", i % 3), "vtt": "Clip", "psw": "HTML5 Video Element",
            "pnm": "main", "vsodu": 60000, "vsobi": 2500000, "xwati": 0, "xpntimscv": 0}),
        ),
        (20, "play", json!({})),
        (
            first_frame,
            "playing",
            json!({"xtitofifr": first_frame - 20,
            "xwati": first_frame - 20}),
        ),
        (
            10_000,
            "heartbeat",
            json!({"xwati": 9_980, "xpntimscv": 9_700}),
        ),
        (
            14_000,
            "rebufferstart",
            json!({"xwati": 13_980, "xpntimscv": 13_700, "xreco": 1}),
        ),
        (
            15_500,
            "rebufferend",
            json!({"xwati": 15_480, "xredu": 1_500}),
        ),
        (
            21_000,
            "renditionchange",
            json!({"vsobi": 4500000, "xwati": 20_980,
            "xpntimscv": 19_200}),
        ),
        (
            25_000,
            "seeking",
            json!({"xwati": 24_980, "xpntimscv": 23_200, "xskco": 1}),
        ),
        (25_100, "seeked", json!({"xskdu": 100})),
        (25_120, "playing", json!({"xwati": 25_100})),
    ];
    match i % 3 {
        0 => plan.push((
            35_000,
            "ended",
            json!({"xwati": 34_980, "xpntimscv": 33_080}),
        )),
        1 => plan.push((
            36_000,
            "error",
            json!({"percd": 3, "perme": "MEDIA_ERR_DECODE",
            "xwati": 35_980, "xpntimscv": 34_080}),
        )),
        _ => plan.extend([
            (
                33_000,
                "pause",
                json!({"xwati": 32_980, "xpntimscv": 31_080}),
            ),
            (40_000, "play", json!({})),
            (40_010, "playing", json!({})),
            (
                46_000,
                "heartbeat",
                json!({"xwati": 38_970, "xpntimscv": 37_070}),
            ),
        ]),
    }
    sample::mux_events(&format!("mux-view-{i}"), start, &plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_taking_over_views_writes_the_same_numbers() {
    let setup = Setup::new("mux").await;
    let now_ms = qoe_common::clock::now_ms();
    let views: Vec<Vec<Event>> = (0..24).map(|i| view(i, now_ms - 600_000)).collect();
    let now = (now_ms / 1000) as u32;
    let range = Range {
        from: now - 7200,
        to: now + 7200,
    };
    let expected = whole_run::<MuxView>(&views);
    // The first half of every view, then the processor dies (kill -9).
    let (mut first, mut second): (Vec<&Event>, Vec<&Event>) = (Vec::new(), Vec::new());
    for v in &views {
        let (early, late) = v.split_at(v.len() / 2);
        first.extend(early);
        second.extend(late);
    }
    let successor = setup
        .crash_and_take_over(
            &records_of(Source::MuxEmbed, &first),
            &records_of(Source::MuxEmbed, &second),
        )
        .await;
    let metrics = successor.metrics().await;
    assert!(
        metrics.contains("qoe_processor_sessions_resumed_total{outcome=\"found\"} 24"),
        "every view was read back: {metrics}"
    );
    assert!(
        metrics.contains(
            "qoe_processor_sparse_events_total{outcome=\"applied\",source=\"mux-embed\"} "
        ),
        "{metrics}"
    );
    assert_matches(&setup.overview(range, now).await, &expected, range, now);
    setup.drop_database().await;
}
