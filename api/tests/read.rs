//! The read API against the test stack: known views in both shards, then
//! every answer checked against `schema::metrics`' Rust definitions.

mod support;

use qoe_schema::metrics::{self, Range, ViewFacts};
use support::{events, range_of, setup, TOKEN_A, TOKEN_A2, TOKEN_B};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_overall_matches_the_definition() {
    let events = events();
    let api = setup(&events).await;
    let r = range_of(&events);
    let now = (qoe_common::clock::now_ms() / 1000) as u32;
    let facts = ViewFacts::latest_per_view(&events);
    let want = metrics::overview(&facts, r, now, metrics::DEFAULT_INACTIVITY_TIMEOUT_S);
    assert_eq!(want.views, 60);
    let tf = format!("timeframe[]={}&timeframe[]={}", r.from, r.to);

    let (status, list) = api.get("/v1/metrics", Some(TOKEN_A)).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(list["total_row_count"], ids.len());
    for (id, expected) in [
        ("views", want.views as f64),
        ("unique_viewers", want.unique_viewers as f64),
        ("watch_time", want.watch_time_ms as f64),
        ("playing_time", want.playing_time_ms as f64),
        ("video_startup_time", want.startup_time_ms_p50.into()),
        ("playback_failure_percentage", want.playback_failure_pct),
        ("exits_before_video_start", want.exits_before_start_pct),
        ("rebuffer_percentage", want.rebuffer_pct),
        ("rebuffer_frequency", want.rebuffer_frequency_per_min),
        ("rebuffer_duration", want.rebuffer_duration_ms_per_view),
        ("weighted_average_bitrate", want.avg_bitrate_kbps),
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} listed");
        let (status, body) = api
            .get(&format!("/v1/metrics/{id}/overall?{tf}"), Some(TOKEN_A2))
            .await;
        assert_eq!(status, 200, "{id}: {body}");
        let got = body["data"]["value"].as_f64().unwrap();
        assert!(
            (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{id}: api {got}, definition {expected}"
        );
        assert_eq!(body["data"]["total_views"], want.views);
        assert_eq!(body["data"]["total_watch_time"], want.watch_time_ms);
        assert_eq!(body["data"]["previous"]["total_views"], 0);
        assert_eq!(body["timeframe"], serde_json::json!([r.from, r.to]));
    }
    let (_, p95) = api
        .get(
            &format!("/v1/metrics/video_startup_time/overall?{tf}&measurement=95th"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(p95["data"]["value"], want.startup_time_ms_p95);
    assert!(
        p95["data"]["value"].is_u64(),
        "a quantile is a whole number of ms"
    );

    // A filter: the views of one CDN, and of the other.
    let cdn_a: Vec<ViewFacts> = facts
        .iter()
        .filter(|v| {
            events
                .iter()
                .any(|e| *e.view_id == v.view_id && &*e.cdn == "cdn-a")
        })
        .cloned()
        .collect();
    let want_a = metrics::overview(&cdn_a, r, now, metrics::DEFAULT_INACTIVITY_TIMEOUT_S);
    let (_, a) = api
        .get(
            &format!("/v1/metrics/views/overall?{tf}&filters[]=cdn:cdn-a"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(a["data"]["value"], want_a.views);
    let (_, not_a) = api
        .get(
            &format!("/v1/metrics/views/overall?{tf}&filters[]=!cdn:cdn-a"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(
        not_a["data"]["value"].as_f64().unwrap() + want_a.views as f64,
        60.0
    );

    // The CDN values, most views first.
    let (status, values) = api
        .get(&format!("/v1/dimensions/cdn?{tf}"), Some(TOKEN_A))
        .await;
    assert_eq!(status, 200, "{values}");
    let listed: Vec<(String, u64)> = values["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_owned(),
                v["views"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().map(|(_, n)| n).sum::<u64>(), 60);
    assert!(listed[0].1 >= listed[1].1);
    assert!(listed.contains(&("cdn-a".into(), want_a.views)));

    // Another property's token sees none of it.
    let (_, b) = api
        .get(&format!("/v1/metrics/views/overall?{tf}"), Some(TOKEN_B))
        .await;
    assert_eq!(b["data"]["value"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakdown_rows_match_the_definition_per_value() {
    let events = events();
    let api = setup(&events).await;
    let r = range_of(&events);
    let now = (qoe_common::clock::now_ms() / 1000) as u32;
    let facts = ViewFacts::latest_per_view(&events);
    let of_cdn = |cdn: &str| -> Vec<ViewFacts> {
        facts
            .iter()
            .filter(|v| {
                let last = events
                    .iter()
                    .filter(|e| *e.view_id == v.view_id)
                    .max_by_key(|e| e.seq)
                    .unwrap();
                &*last.cdn == cdn
            })
            .cloned()
            .collect()
    };
    let def = |views: &[ViewFacts]| {
        metrics::overview(views, r, now, metrics::DEFAULT_INACTIVITY_TIMEOUT_S)
    };
    let (all, a, b) = (def(&facts), def(&of_cdn("cdn-a")), def(&of_cdn("cdn-b")));
    let tf = format!("timeframe[]={}&timeframe[]={}", r.from, r.to);
    let (status, body) = api
        .get(
            &format!("/v1/metrics/rebuffer_percentage/breakdown?{tf}&group_by=cdn&order_by=value&order_direction=asc"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_row_count"], 2);
    let rows = body["data"].as_array().unwrap();
    let mut want = [("cdn-a", &a), ("cdn-b", &b)];
    want.sort_by(|x, y| x.1.rebuffer_pct.total_cmp(&y.1.rebuffer_pct));
    for (row, (cdn, o)) in rows.iter().zip(want) {
        assert_eq!(row["value"], cdn);
        let got = row["metric_value"].as_f64().unwrap();
        assert!(
            (got - o.rebuffer_pct).abs() < 1e-9,
            "{cdn}: {got} vs {}",
            o.rebuffer_pct
        );
        assert_eq!(row["views"], o.ended_in_range, "QoE: views that ended");
        assert_eq!(row["total_watch_time"], o.watch_time_ms);
        // Worse than overall pulls it up: a positive impact, and back.
        let impact = (o.rebuffer_pct - all.rebuffer_pct) * o.ended_in_range as f64
            / all.ended_in_range as f64;
        assert!((row["negative_impact"].as_f64().unwrap() - impact).abs() < 1e-9);
    }
    // Paging: one row a page, the second page is the second row.
    let (_, page2) = api
        .get(
            &format!("/v1/metrics/views/breakdown?{tf}&group_by=cdn&order_by=views&limit=1&page=2"),
            Some(TOKEN_A),
        )
        .await;
    let rows = page2["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(page2["total_row_count"], 2);
    assert_eq!(rows[0]["views"], a.views.min(b.views));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeseries_buckets_match_the_definition() {
    let events = events();
    let api = setup(&events).await;
    let r = range_of(&events);
    let now = (qoe_common::clock::now_ms() / 1000) as u32;
    let facts = ViewFacts::latest_per_view(&events);
    let tf = format!("timeframe[]={}&timeframe[]={}", r.from, r.to);
    for (metric, group_by, step) in [
        ("views", "ten_minutes", 600),
        ("playback_failure_percentage", "ten_minutes", 600),
        ("video_startup_time", "minute", 60),
    ] {
        let (status, body) = api
            .get(
                &format!("/v1/metrics/{metric}/timeseries?{tf}&group_by={group_by}"),
                Some(TOKEN_A),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let points = body["data"].as_array().unwrap();
        // Every bucket from the one holding the start, empty ones too.
        let first = r.from / step * step;
        assert_eq!(points.len() as u32, (r.to - first).div_ceil(step));
        assert_eq!(body["total_row_count"], points.len());
        for p in points {
            let t = p[0].as_u64().unwrap() as u32;
            let part = Range {
                from: t.max(r.from),
                to: (t + step).min(r.to),
            };
            let o = metrics::overview(&facts, part, now, metrics::DEFAULT_INACTIVITY_TIMEOUT_S);
            let (want, views) = match metric {
                "views" => (o.views as f64, o.views),
                "playback_failure_percentage" => (o.playback_failure_pct, o.ended_in_range),
                _ => (f64::from(o.startup_time_ms_p50), o.ended_in_range),
            };
            let got = p[1].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-9,
                "{metric} at {t}: {got} vs {want}"
            );
            assert_eq!(p[2], views, "{metric} at {t}");
        }
    }
    let (status, body) = api
        .get(
            &format!("/v1/metrics/views/timeseries?{tf}&group_by=week"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_granularity"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_views_list_and_one_view_with_its_events() {
    let events = events();
    let api = setup(&events).await;
    let r = range_of(&events);
    let tf = format!("timeframe[]={}&timeframe[]={}", r.from, r.to);
    let latest = |view: &str| {
        events
            .iter()
            .filter(|e| &*e.view_id == view)
            .max_by_key(|e| e.seq)
            .unwrap()
    };

    // Newest first, paged.
    let (status, first) = api
        .get(&format!("/v1/video-views?{tf}&limit=25"), Some(TOKEN_A))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["total_row_count"], 60);
    let rows = first["data"].as_array().unwrap();
    assert_eq!(rows.len(), 25);
    let starts: Vec<u64> = rows
        .iter()
        .map(|v| v["view_start"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let (_, third) = api
        .get(
            &format!("/v1/video-views?{tf}&limit=25&page=3"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(third["data"].as_array().unwrap().len(), 10);
    // Each row is the view's latest facts.
    for row in rows {
        let e = latest(row["view_id"].as_str().unwrap());
        assert_eq!(row["viewer_id"], &*e.viewer_id);
        assert_eq!(row["watch_time_ms"], e.watch_time_ms);
        assert_eq!(row["last_event"], e.event.as_str());
        assert_eq!(row["started"], u8::from(e.startup_time_ms.is_some()));
    }

    // One viewer's, and one CDN's.
    let viewer = &*events[0].viewer_id;
    let theirs: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| &*e.viewer_id == viewer)
        .map(|e| &*e.view_id)
        .collect();
    let (_, mine) = api
        .get(
            &format!("/v1/video-views?{tf}&viewer_id={viewer}"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(mine["total_row_count"], theirs.len());
    let (_, cdn) = api
        .get(
            &format!("/v1/video-views?{tf}&filters[]=cdn:cdn-b&limit=1000"),
            Some(TOKEN_A),
        )
        .await;
    assert!(cdn["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["cdn"] == "cdn-b"));

    // One view: its facts and every event in seq order, once each.
    let id = &*events[0].view_id;
    let (status, one) = api
        .get(&format!("/v1/video-views/{id}"), Some(TOKEN_A))
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"]["view"]["view_id"], id);
    assert_eq!(
        one["data"]["view"]["watch_time_ms"],
        latest(id).watch_time_ms
    );
    let seqs: Vec<u64> = one["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut want: Vec<u64> = events
        .iter()
        .filter(|e| &*e.view_id == id)
        .map(|e| u64::from(e.seq))
        .collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(seqs, want);

    // Another property's token does not see it; an unknown view is 404.
    let (status, body) = api
        .get(&format!("/v1/video-views/{id}"), Some(TOKEN_B))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_view"))
    );
    let (status, _) = api.get("/v1/video-views/nope%27--", Some(TOKEN_A)).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_count_views_by_their_latest_code() {
    let events = events();
    let api = setup(&events).await;
    let r = range_of(&events);
    let tf = format!("timeframe[]={}&timeframe[]={}", r.from, r.to);
    let mut want: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    let facts = ViewFacts::latest_per_view(&events);
    for v in &facts {
        let e = events
            .iter()
            .filter(|e| *e.view_id == v.view_id)
            .max_by_key(|e| e.seq)
            .unwrap();
        if !e.error_code.is_empty() {
            let w = want.entry(e.error_code.to_string()).or_default();
            w.0 += 1;
            w.1 += u64::from(e.error_fatal);
            w.2 = w.2.max((e.ts_ms / 1000) as u64);
        }
    }
    assert!(!want.is_empty(), "the sample has errors");
    let (status, body) = api.get(&format!("/v1/errors?{tf}"), Some(TOKEN_A)).await;
    assert_eq!(status, 200, "{body}");
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for row in rows {
        let (views, fatal, last) = want[row["code"].as_str().unwrap()];
        assert_eq!(row["views"], views);
        assert_eq!(row["fatal"], fatal);
        assert_eq!(row["last_seen"], last);
        let share = 100.0 * views as f64 / facts.len() as f64;
        assert!((row["percentage"].as_f64().unwrap() - share).abs() < 1e-9);
    }
}
