//! Driving a page in headless Chromium for the players tests: play it to
//! the end, read what the page measured with its own clock, and wait for
//! the view's facts in the api.

use std::path::PathBuf;
use std::time::Duration;

use qoe_testkit::webdriver::Browser;
use serde_json::Value;

/// Where `deploy/local/stack install` keeps the players' and SDKs'
/// scripts (`QOE_TEST_PLAYERS`, else the default cache).
pub fn players_dir() -> PathBuf {
    std::env::var("QOE_TEST_PLAYERS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/qoe-pipeline/players")
        })
}

/// `GET {api}{path}` with `token`, as JSON.
pub async fn api_get(api: &str, token: &str, path: &str) -> Value {
    let reply = qoe_common::httpc::send(
        hyper::Method::GET,
        &format!("{api}{path}"),
        &[("authorization", &format!("Bearer {token}"))],
        bytes::Bytes::new(),
        Duration::from_secs(10),
    )
    .await
    .expect("the api answers");
    serde_json::from_slice(&reply.body).expect("JSON")
}

/// What the page measured with its own clock.
#[derive(Debug)]
pub struct Measured {
    /// The page asking to play → first `playing`, ms.
    pub startup: Option<f64>,
    /// Each stall while playing (not while seeking), ms.
    pub stalls: Vec<f64>,
    /// Time from each `playing` to the next `waiting`, stall, `pause`,
    /// `seeking`, `ended` or `finish`, summed, ms.
    pub playing_ms: f64,
    pub seeked: bool,
    pub fatal: bool,
}

pub fn measured(marks: &[(String, f64)]) -> Measured {
    let at = |name: &str| marks.iter().find(|(m, _)| m == name).map(|(_, t)| *t);
    let startup = at("request").zip(at("playing")).map(|(a, b)| b - a);
    let mut stalls = Vec::new();
    let (mut started, mut seeking, mut waiting) = (false, false, None);
    let (mut playing_ms, mut playing_since) = (0.0, None);
    for (what, t) in marks {
        let stops_playing = matches!(
            what.as_str(),
            "waiting" | "stall" | "pause" | "seeking" | "ended" | "finish"
        );
        if stops_playing {
            if let Some(since) = playing_since.take() {
                playing_ms += t - since;
            }
        } else if what == "playing" || what == "unstall" {
            playing_since.get_or_insert(*t);
        }
        match what.as_str() {
            "playing" => {
                if let Some(w) = waiting.take() {
                    stalls.push(t - w);
                }
                started = true;
                seeking = false;
            }
            // A player may say it buffers just before it says it seeks.
            "seeking" => {
                seeking = true;
                waiting = None;
            }
            "waiting" | "stall" if started && !seeking => waiting = Some(*t),
            "unstall" => {
                if let Some(w) = waiting.take() {
                    stalls.push(t - w);
                }
            }
            _ => {}
        }
    }
    Measured {
        startup,
        stalls,
        playing_ms,
        seeked: at("seeked").is_some(),
        fatal: at("fatal").is_some(),
    }
}

/// Plays `url` in `browser` until the page says it is done; its marks.
pub async fn play(browser: &Browser<'_>, url: &str, what: &str) -> Vec<(String, f64)> {
    browser.open(url).await;
    browser
        .wait_for(
            "return window.qoe && window.qoe.done === true",
            what,
            Duration::from_secs(90),
        )
        .await;
    let marks = browser.script("return window.qoe.marks").await;
    marks
        .as_array()
        .expect("marks")
        .iter()
        .map(|m| {
            (
                m[0].as_str().unwrap_or_default().to_owned(),
                m[1].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

/// The api's facts of `view_id` once `done` accepts its answer (`view`
/// and `events`).
pub async fn view_facts(
    api: &str,
    token: &str,
    collector_admin: &str,
    view_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let url = format!("{api}/v1/video-views/{view_id}");
    let mut last = Value::Null;
    for _ in 0..150 {
        let reply = qoe_common::httpc::send(
            hyper::Method::GET,
            &url,
            &[("authorization", &format!("Bearer {token}"))],
            bytes::Bytes::new(),
            Duration::from_secs(10),
        )
        .await
        .expect("the api answers");
        last = serde_json::from_slice(&reply.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&reply.body).into_owned()));
        if reply.status == 200 && done(&last["data"]) {
            return last["data"]["view"].clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = qoe_common::httpc::get(
        &format!("{collector_admin}/metrics"),
        Duration::from_secs(5),
    )
    .await
    .map(|r| r.text())
    .unwrap_or_default();
    let refusals: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("qoe_collector_requests_total")
                || l.starts_with("qoe_collector_events_rejected")
        })
        .collect();
    panic!("{view_id}: the api never showed the finished view; last answer {last}; collector: {refusals:?}");
}
