//! The dashboard in a real browser: Debian's Chromium, driven over
//! WebDriver by `chromedriver` (both installed by `deploy/local/stack
//! install`). Signed in with a read token, its tiles show the api's own
//! answers; choosing a breakdown value filters the page (address and
//! numbers) and its views list; choosing a view opens its timeline.
//! Screenshots (overview, timeline, wall screen) go to
//! `target/dashboard-screenshots/`.

mod support;

use std::time::{Duration, Instant};

use qoe_testkit::webdriver::{Browser, Driver};
use serde_json::{json, Value};
use support::{events, setup, TOKEN_A};

/// What this test asks of the dashboard page.
trait Dashboard {
    async fn loaded_after(&self, since: u64);
    async fn tiles(&self) -> Vec<(String, f64)>;
    async fn shot(&self, name: &str);
}

impl Dashboard for Browser<'_> {
    /// Waits until the page has (re)loaded its data after `since`.
    async fn loaded_after(&self, since: u64) {
        let started = Instant::now();
        loop {
            let loaded = self
                .script("return Number(document.body.dataset.loaded || 0)")
                .await;
            if loaded.as_u64().unwrap_or(0) > since {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page did not load its data"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Each tile's metric and its raw value.
    async fn tiles(&self) -> Vec<(String, f64)> {
        let got = self
            .script("return [...document.querySelectorAll('.tile')].map(t => [t.dataset.metric, Number(t.querySelector('.value').dataset.raw)])")
            .await;
        got.as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_f64().unwrap()))
            .collect()
    }

    async fn shot(&self, name: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/dashboard-screenshots");
        self.screenshot(&dir, name).await;
    }
}

/// The api's value of `metric` over the last 24 hours, with `filter`.
async fn api_value(api: &support::Api, metric: &str, filter: Option<&str>) -> f64 {
    let measurement = match metric {
        "video_startup_time" => "median",
        "views" | "unique_viewers" => "count",
        "weighted_average_bitrate" => "avg",
        _ => "percentage",
    };
    let filter = filter
        .map(|f| format!("&filters[]={f}"))
        .unwrap_or_default();
    let (status, body) = api
        .get(
            &format!("/v1/metrics/{metric}/overall?timeframe[]=24:hours&measurement={measurement}{filter}"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(status, 200, "{metric}: {body}");
    body["data"]["value"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_the_page_shows_the_apis_numbers_and_filters_by_a_click() {
    let events = events();
    let api = setup(&events).await;
    let driver = Driver::start().await;
    let browser = driver.browser(&["--window-size=1400,1800"]).await;

    browser
        .post(
            "/url",
            json!({ "url": format!("{}/?range=24:hours", api.url()) }),
        )
        .await;
    let token = browser.element("#token").await;
    browser
        .post(
            &format!("/element/{token}/value"),
            json!({ "text": TOKEN_A }),
        )
        .await;
    let submit = browser.element("#signin-form button").await;
    browser
        .post(&format!("/element/{submit}/click"), json!({}))
        .await;
    browser.loaded_after(0).await;
    let stored = browser
        .script("return sessionStorage.getItem('qoe-read-token')")
        .await;
    assert_eq!(stored, TOKEN_A);
    let address = browser.script("return location.href").await;
    assert!(
        !address.as_str().unwrap().contains(TOKEN_A),
        "the token stays out of the address"
    );

    let tiles = browser.tiles().await;
    assert_eq!(tiles.len(), 7);
    for (metric, shown) in &tiles {
        let want = api_value(&api, metric, None).await;
        assert!(
            (shown - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{metric}: page {shown}, api {want}"
        );
    }
    assert!(tiles.iter().any(|(m, v)| m == "views" && *v == 60.0));
    browser.shot("overview.png").await;

    // Choosing a breakdown value filters the page by it: by CDN (the
    // sample views carry no country).
    browser
        .script(
            "const s = document.getElementById('breakdown-dimension'); \
             s.value = 'cdn'; s.dispatchEvent(new Event('change'))",
        )
        .await;
    let started = Instant::now();
    let by_cdn = "const b = document.querySelector('#breakdown tbody button'); \
                  return !!b && b.textContent.startsWith('cdn-')";
    while !browser.script(by_cdn).await.as_bool().unwrap_or(false) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no breakdown by cdn"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before = browser
        .script("return Number(document.body.dataset.loaded)")
        .await;
    let value = browser
        .script("return document.querySelector('#breakdown tbody button').textContent")
        .await;
    let value = value.as_str().unwrap().to_owned();
    let first = browser.element("#breakdown tbody button").await;
    browser
        .post(&format!("/element/{first}/click"), json!({}))
        .await;
    browser.loaded_after(before.as_u64().unwrap()).await;
    let filter = format!("cdn:{value}");
    let address = browser
        .script("return decodeURIComponent(location.search)")
        .await;
    assert!(address.as_str().unwrap().contains(&filter), "{address}");
    let views = browser
        .tiles()
        .await
        .into_iter()
        .find(|(m, _)| m == "views")
        .unwrap()
        .1;
    assert_eq!(views, api_value(&api, "views", Some(&filter)).await);

    // The views list shows the api's views for the filter, newest first;
    // choosing one opens its timeline: every event, marks on the axis.
    let (status, listed) = api
        .get(
            &format!("/v1/video-views?timeframe[]=24:hours&filters[]={filter}&limit=20"),
            Some(TOKEN_A),
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let want: Vec<Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["view_id"].clone())
        .collect();
    assert!(!want.is_empty());
    let shown = browser
        .script("return [...document.querySelectorAll('#views button.open-view')].map(b => b.dataset.view)")
        .await;
    assert_eq!(shown.as_array().unwrap(), &want);
    let view_id = want[0].as_str().unwrap().to_owned();
    let open = browser.element("#views button.open-view").await;
    browser
        .post(&format!("/element/{open}/click"), json!({}))
        .await;
    let started = Instant::now();
    let opened =
        format!("return document.getElementById('timeline-panel').dataset.view === '{view_id}'");
    while !browser.script(&opened).await.as_bool().unwrap_or(false) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the timeline did not open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, one) = api
        .get(&format!("/v1/video-views/{view_id}"), Some(TOKEN_A))
        .await;
    assert_eq!(status, 200, "{one}");
    let events = one["data"]["events"].as_array().unwrap();
    let rows = browser
        .script("return [...document.querySelectorAll('#timeline-events tbody tr')].map(r => r.dataset.event)")
        .await;
    let want: Vec<&Value> = events.iter().map(|e| &e["event"]).collect();
    assert_eq!(rows.as_array().unwrap().iter().collect::<Vec<_>>(), want);
    let marks = browser
        .script("return [...document.querySelectorAll('#timeline-chart .mark')].map(m => m.dataset.event)")
        .await;
    let marks: Vec<&str> = marks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if one["data"]["view"]["started"] == 1 {
        assert_eq!(marks.first(), Some(&"startup"), "{marks:?}");
    }
    let rebuffers = events
        .iter()
        .filter(|e| e["event"] == "rebufferstart")
        .count();
    assert_eq!(
        marks.iter().filter(|m| **m == "rebufferstart").count(),
        rebuffers
    );
    let address = browser
        .script("return decodeURIComponent(location.search)")
        .await;
    assert!(
        address
            .as_str()
            .unwrap()
            .contains(&format!("view={view_id}")),
        "{address}"
    );
    browser
        .script("document.getElementById('timeline-panel').scrollIntoView()")
        .await;
    browser.shot("timeline.png").await;
    browser.script("window.scrollTo(0, 0)").await;

    browser
        .post("/window/rect", json!({ "width": 2560, "height": 1440 }))
        .await;
    browser.shot("wall-screen.png").await;
    browser.close().await;
}
