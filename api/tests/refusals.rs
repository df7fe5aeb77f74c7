//! What the read API refuses: every bad parameter, authentication and
//! authorization failures, and injection attempts in every parameter —
//! each with its status, stable code and the parameter at fault.

mod support;

use support::{events, range_of, setup, setup_with, TOKEN_A};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_a_status_a_code_and_the_parameter() {
    let events = events();
    let api = setup(&events[..10]).await;
    let r = range_of(&events);
    let tf = format!("timeframe[]={}&timeframe[]={}", r.from, r.to);
    let cases = [
        ("/v1/metrics", None, 401, "unauthorized"),
        (
            "/v1/metrics",
            Some("readtokenforpropa000X"),
            401,
            "unauthorized",
        ),
        (
            "/v1/metrics?property_id=prop-b",
            Some(TOKEN_A),
            403,
            "forbidden_property",
        ),
        (
            "/v1/metrics/nope/overall",
            Some(TOKEN_A),
            404,
            "unknown_metric",
        ),
        ("/v1/nothing", Some(TOKEN_A), 404, "not_found"),
        (
            "/v1/metrics?limitt=3",
            Some(TOKEN_A),
            400,
            "unknown_parameter",
        ),
        (
            "/v1/metrics?timeframe[]=9:weeks",
            Some(TOKEN_A),
            400,
            "invalid_timeframe",
        ),
        (
            "/v1/metrics?timeframe[]=90:days",
            Some(TOKEN_A),
            400,
            "timeframe_beyond_retention",
        ),
        (
            "/v1/metrics?filters[]=planet:mars",
            Some(TOKEN_A),
            400,
            "unknown_dimension",
        ),
        (
            "/v1/metrics?filters[]=asn:1%20OR%201",
            Some(TOKEN_A),
            400,
            "invalid_filter",
        ),
        (
            "/v1/metrics/views/overall?measurement=95th",
            Some(TOKEN_A),
            400,
            "invalid_measurement",
        ),
    ];
    for (path, token, status, code) in cases {
        let (got, body) = api.get(path, token).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (_, body) = api.get("/v1/metrics?limitt=3", Some(TOKEN_A)).await;
    assert_eq!(body["error"]["parameter"], "limitt");

    // A query string over `http.max_query_bytes` (4096) is refused unread.
    let long = format!("/v1/metrics?video_id={}", "a".repeat(5000));
    let (status, body) = api.get(&long, Some(TOKEN_A)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (414, Some("query_too_long"))
    );

    // Injection attempts are values like any other: no match, no error,
    // and the data is intact afterwards.
    for attempt in [
        "x%27%20OR%20%271%27%3D%271",
        "x%5C%27%3B%20DROP%20TABLE%20views%3B%20--",
        "%3F%3F%3F",
    ] {
        let (status, body) = api
            .get(
                &format!("/v1/metrics/views/overall?{tf}&filters[]=video_title:{attempt}"),
                Some(TOKEN_A),
            )
            .await;
        assert_eq!(status, 200, "{attempt}: {body}");
        assert_eq!(body["data"]["value"], 0, "{attempt}");
    }
    // The same text in every other parameter: refused by name, or (a
    // viewer id is free text) matching nothing.
    let bad = "x%27%20OR%201%3D1%20--";
    for (path, code) in [
        (
            format!("/v1/metrics/views/overall?timeframe[]={bad}"),
            "invalid_timeframe",
        ),
        (
            format!("/v1/metrics/views/overall?measurement={bad}"),
            "invalid_measurement",
        ),
        (
            format!("/v1/metrics/views/breakdown?group_by={bad}"),
            "unknown_dimension",
        ),
        (
            format!("/v1/metrics/views/breakdown?group_by=cdn&order_by={bad}"),
            "invalid_order",
        ),
        (
            format!("/v1/metrics/views/breakdown?group_by=cdn&order_direction={bad}"),
            "invalid_order",
        ),
        (
            format!("/v1/metrics/views/breakdown?group_by=cdn&limit={bad}"),
            "invalid_page",
        ),
        (format!("/v1/video-views?page={bad}"), "invalid_page"),
        (
            format!("/v1/metrics/views/timeseries?group_by={bad}"),
            "invalid_granularity",
        ),
        (
            format!("/v1/metrics/views/overall?filters[]={bad}"),
            "invalid_filter",
        ),
        (
            format!("/v1/metrics/views/overall?{bad}=1"),
            "unknown_parameter",
        ),
    ] {
        let (status, body) = api.get(&path, Some(TOKEN_A)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{path}: {body}"
        );
    }
    let (status, body) = api
        .get(
            &format!("/v1/metrics/views/overall?property_id={bad}"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden_property"))
    );
    let (status, body) = api
        .get(
            &format!("/v1/video-views?{tf}&viewer_id={bad}"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(
        (status, &body["total_row_count"]),
        (200, &serde_json::json!(0)),
        "{body}"
    );
    let (status, _) = api
        .get(&format!("/v1/metrics/{bad}/overall"), Some(TOKEN_A))
        .await;
    assert_eq!(status, 404);

    let (_, all) = api
        .get(&format!("/v1/metrics/views/overall?{tf}"), Some(TOKEN_A))
        .await;
    assert!(all["data"]["value"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_row_limit_is_refused_not_hung() {
    let events = events();
    let api = setup_with(&events, &[("QOE_QUERY__MAX_ROWS_TO_READ", "1".into())]).await;
    let r = range_of(&events);
    let (status, body) = api
        .get(
            &format!(
                "/v1/metrics/views/overall?timeframe[]={}&timeframe[]={}",
                r.from, r.to
            ),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("query_too_large")),
        "{body}"
    );
}
