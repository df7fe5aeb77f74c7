//! Live numbers against the test stack: views of the last hour in both
//! shards, their buckets settled as the processor's live job does, then
//! every live metric's series and a breakdown held to
//! `schema::metrics::live`'s definition.

mod support;

use qoe_schema::metrics::live::{self, LiveCounts};
use qoe_schema::metrics::Range;
use qoe_schema::sample;
use serde_json::Value;
use support::{setup, TOKEN_A};

/// A live metric's value and the views it is over, from counts.
type Reading = fn(&LiveCounts) -> (f64, u64);

fn close(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: api {got}, definition {want}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_series_and_breakdowns_match_the_definition() {
    let now_ms = qoe_common::clock::now_ms();
    let events = sample::views(60, now_ms - 600_000);
    let api = setup(&events).await;
    let now = (now_ms / 1000) as u32;
    let settled = Range {
        from: live::bucket_of(now - 3600),
        to: live::bucket_of(now),
    };
    for shard in &api.shards {
        live::settle_query(&shard.client, &api.db, settled)
            .execute()
            .await
            .unwrap();
    }
    let want = live::live_counts(&events, settled);
    let last = *want.keys().last().unwrap();

    let (status, list) = api.get("/v1/monitoring/metrics", Some(TOKEN_A)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total_row_count"], 5);
    let values: [(&str, Reading); 5] = [
        ("current-concurrent-viewers", |c| {
            (c.concurrent as f64, c.concurrent)
        }),
        ("current-rebuffering-percentage", |c| {
            (c.rebuffering_pct(), c.concurrent)
        }),
        ("playback-failure-percentage", |c| {
            (c.failure_pct(), c.ended)
        }),
        ("exits-before-video-start", |c| (c.exits_pct(), c.ended)),
        ("current-average-bitrate", |c| {
            (c.avg_bitrate_kbps(), c.playing)
        }),
    ];
    for (id, of) in values {
        let (status, body) = api
            .get(
                &format!("/v1/monitoring/metrics/{id}/timeseries"),
                Some(TOKEN_A),
            )
            .await;
        assert_eq!(status, 200, "{id}: {body}");
        let points = body["data"].as_array().unwrap();
        // The last hour's buckets, up to the latest settled one.
        let end = points.last().unwrap()[0].as_u64().unwrap() as u32;
        let settled = live::last_settled((qoe_common::clock::now_ms() / 1000) as u32);
        assert!(
            end > last && end <= settled && settled - end <= live::BUCKET_S,
            "{id}: ends at {end}, settled {settled}"
        );
        assert_eq!(body["timeframe"][1], end + live::BUCKET_S);
        assert!(points.len() > 600, "{id}: {} points", points.len());
        for p in points {
            let t = p[0].as_u64().unwrap() as u32;
            let (value, views) = want.get(&t).map_or((0.0, 0), of);
            close(&p[1], value, &format!("{id} at {t}"));
            assert_eq!(p[2], views, "{id} at {t}");
        }
    }

    // One CDN's concurrent viewers, and the breakdown by CDN at the
    // busiest bucket.
    let of_cdn = |cdn: &str| {
        let mine: Vec<&qoe_schema::beacon::Event> =
            events.iter().filter(|e| &*e.cdn == cdn).collect();
        live::live_counts(mine, settled)
    };
    let (status, body) = api
        .get(
            "/v1/monitoring/metrics/current-concurrent-viewers/timeseries?filters[]=cdn:cdn-b",
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cdn_b = of_cdn("cdn-b");
    for p in body["data"].as_array().unwrap() {
        let t = p[0].as_u64().unwrap() as u32;
        assert_eq!(
            p[1],
            cdn_b.get(&t).map_or(0, |c| c.concurrent),
            "cdn-b at {t}"
        );
    }
    let (busiest, _) = want.iter().max_by_key(|(_, c)| c.concurrent).unwrap();
    let (status, body) = api
        .get(
            &format!(
                "/v1/monitoring/metrics/current-concurrent-viewers/breakdown?group_by=cdn&order_by=value&order_direction=asc&timestamp={busiest}"
            ),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timeframe"][0], *busiest);
    let rows = body["data"].as_array().unwrap();
    let mut want_rows: Vec<(String, u64)> = ["cdn-a", "cdn-b"]
        .iter()
        .filter_map(|cdn| Some((cdn.to_string(), of_cdn(cdn).get(busiest)?.concurrent)))
        .collect();
    want_rows.sort_by_key(|(cdn, n)| (*n, cdn.clone()));
    let got: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap().to_owned(),
                r["views"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want_rows);

    // What live metrics cannot answer is refused with a code.
    for (query, code) in [
        ("timeseries?filters[]=!cdn:cdn-a", "unsupported_filter"),
        (
            "timeseries?filters[]=cdn:cdn-a&filters[]=country:SE",
            "unsupported_filter",
        ),
        ("timeseries?filters[]=video_title:x", "unsupported_filter"),
        ("timeseries?measurement=median", "invalid_measurement"),
        ("timeseries?timeframe[]=7:days", "invalid_timeframe"),
        ("breakdown?group_by=error_code", "unsupported_dimension"),
        ("breakdown?group_by=cdn&timestamp=12", "invalid_timestamp"),
        (
            "breakdown?group_by=cdn&filters[]=cdn:cdn-a",
            "unsupported_filter",
        ),
    ] {
        let (status, body) = api
            .get(
                &format!("/v1/monitoring/metrics/current-concurrent-viewers/{query}"),
                Some(TOKEN_A),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    let (status, _) = api
        .get("/v1/monitoring/metrics/no-such/timeseries", Some(TOKEN_A))
        .await;
    assert_eq!(status, 404);
}
