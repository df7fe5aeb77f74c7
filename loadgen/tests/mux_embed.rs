//! The real mux-embed SDK, no SDK of ours: unmodified `mux-embed` 5.19.0
//! (from the npm registry, cached by `deploy/local/stack install`)
//! monitors a `<video>` in Debian's headless Chromium, its
//! `beaconCollectionDomain` pointing at the collector's mux-embed
//! listener. The video plays an `ffmpeg`-made stream (through hls.js) with
//! a stall the origin causes, a seek and a pause; another view's video
//! is a file that is not one. Through the api: the startup time is the
//! SDK's own (`view_time_to_first_frame`, within 100 ms), the stall is one
//! rebuffer, the playing time is the page's own measure within 1 s, and
//! the broken file is a playback failure with the SDK's error code.
#![allow(clippy::field_reassign_with_default)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use qoe_testkit::webdriver::{Browser, Driver};
use qoe_testkit::{free_port, unique};
use serde_json::{json, Value};
use support::origin::{make_media, Origin};
use support::page::{api_get, measured, play, players_dir, view_facts};

const KEY: &str = "mux-embed-key";
const SDK: &str = "mux-embed-5.19.0-mux.js";
const HLS: &str = "hls.js-1.7.4-hls.min.js";

/// A page monitored by mux-embed: `cfg` has the SDK's `domain` and the
/// `env_key`; `body` starts playback, calling `finish()` at the end.
fn page(cfg: &Value, body: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>mux-embed</title>
<video id="v" muted playsinline width="320" height="180"></video>
<script src="/players/{SDK}"></script>
<script src="/players/{HLS}"></script>
<script>
const cfg = {cfg};
window.qoe = {{ marks: [], done: false }};
const v = document.getElementById('v');
const mark = (what) => qoe.marks.push([what, performance.now()]);
// Every body the SDK sends, whichever way it sends it.
const sent = window.fetch;
window.fetch = (url, init) => {{
  if (init && init.method === 'POST') mark('beacon ' + init.body);
  return sent(url, init);
}};
const xhrSend = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {{
  if (typeof body === 'string') mark('beacon ' + body);
  return xhrSend.call(this, body);
}};
const beacon = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = (url, body) => {{ mark('beacon ' + body); return beacon(url, body); }};
for (const n of ['play', 'playing', 'waiting', 'pause', 'seeking', 'seeked', 'ended', 'error'])
  v.addEventListener(n, () => mark(n));
mux.monitor(v, {{ beaconCollectionDomain: cfg.domain,
  data: {{ env_key: cfg.env_key, player_name: 'qoe-test', video_id: cfg.video, video_title: 'Test clip',
           player_init_time: Date.now() }} }});
// The SDK sends `viewend` when its monitor is destroyed, then flushes.
function finish() {{
  if (qoe.finishing) return;
  qoe.finishing = true;
  mark('finish');
  mux.destroyMonitor(v);
  setTimeout(() => {{ qoe.done = true; }}, 1500);
}}
try {{ {body} }} catch (e) {{ mark('threw ' + e); qoe.done = true; }}
</script>"#
    )
}

/// hls.js plays the stream; at 8 s the page seeks to 24 s, at 26 s it
/// pauses for 1.5 s.
const PLAY: &str = "const hls = new Hls({ maxBufferLength: 4, maxMaxBufferLength: 4,
    fragLoadPolicy: { default: { maxTimeToFirstByteMs: 20000, maxLoadTimeMs: 30000,
                                 timeoutRetry: null, errorRetry: null } } });
  hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) { mark('fatal'); finish(); } });
  let seeked = false, paused = false;
  v.addEventListener('timeupdate', () => {
    if (!seeked && v.currentTime >= 8) { seeked = true; v.currentTime = 24; }
    if (seeked && !paused && v.currentTime >= 26) {
      paused = true; v.pause(); setTimeout(() => v.play(), 1500);
    }
  });
  v.addEventListener('ended', () => setTimeout(finish, 300));
  hls.on(Hls.Events.MANIFEST_PARSED, () => { mark('request'); v.play(); });
  hls.attachMedia(v);
  hls.loadSource(cfg.src);";

/// The video is a file that is not one: the element fails.
const BROKEN: &str =
    "v.addEventListener('error', () => { mark('fatal'); setTimeout(finish, 300); });
  mark('request');
  v.src = '/broken.mp4';
  v.play().catch(() => {});";

/// What the SDK sent, from the page's marks: every event, in order.
fn sdk_events(marks: &[(String, f64)]) -> Vec<Value> {
    marks
        .iter()
        .filter_map(|(m, _)| m.strip_prefix("beacon "))
        .flat_map(|body| {
            let body: Value = serde_json::from_str(body).expect("the SDK sends JSON");
            body["events"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

/// The view ids (`xid`) of `events`.
fn view_ids(events: &[Value]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter_map(|e| e["xid"].as_str().map(str::to_owned))
        .collect()
}

/// The last value the SDK sent for short key `key`.
fn last_sent(events: &[Value], key: &str) -> Option<Value> {
    events.iter().rev().find_map(|e| e.get(key).cloned())
}

fn root() -> PathBuf {
    let root = std::env::temp_dir().join(unique("mux-embed"));
    make_media(&root);
    std::fs::create_dir_all(root.join("players")).unwrap();
    std::fs::create_dir_all(root.join("pages")).unwrap();
    let from = players_dir();
    for script in [SDK, HLS] {
        std::fs::copy(from.join(script), root.join("players").join(script)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `deploy/local/stack install`",
                from.join(script).display()
            )
        });
    }
    std::fs::write(
        root.join("broken.mp4"),
        b"this is not a video file\n".repeat(40),
    )
    .unwrap();
    root
}

/// The origin serving the pages, and where their SDK sends.
struct Site {
    root: PathBuf,
    origin: Origin,
    /// The SDK's `beaconCollectionDomain`.
    domain: String,
}

/// One page played to its end.
struct Visit {
    marks: Vec<(String, f64)>,
    /// Every event the SDK sent.
    sent: Vec<Value>,
    /// The view id (`xid`) it sent.
    xid: String,
}

impl Site {
    /// Plays page `name` (its video `name`, started by `body`) to its end.
    async fn visit(&self, browser: &Browser<'_>, name: &str, body: &str) -> Visit {
        let cfg = json!({"domain": self.domain, "env_key": KEY, "video": name,
                         "src": format!("{}/hls/index.m3u8", self.origin.url)});
        let file = format!("pages/{name}.html");
        std::fs::write(self.root.join(&file), page(&cfg, body)).unwrap();
        let url = format!("{}/{file}", self.origin.url);
        let marks = play(browser, &url, &format!("{name} to finish")).await;
        let sent = sdk_events(&marks);
        let xid = last_sent(&sent, "xid").and_then(|x| x.as_str().map(str::to_owned));
        let xid = xid.unwrap_or_else(|| panic!("{name}: the SDK sent a view id: {marks:?}"));
        Visit { marks, sent, xid }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mux_embed_views_arrive_with_the_sdks_numbers() {
    let root = root();
    let origin = Origin::start(root.clone()).await;
    let (mut settings, property) = support::Settings::on_test_stack("muxembed", KEY).await;
    let mux_port = free_port();
    settings.collector.mux_embed.listen = Some(([127, 0, 0, 1], mux_port).into());
    let (api, token) = settings.api_for(&property);
    let [collector_admin, _] = settings.admin_urls();
    let pipeline = support::Pipeline::start(settings).await;
    // The SDK sends plain `http://` only to `localhost`.
    let site = Site {
        root,
        origin,
        domain: format!("localhost:{mux_port}"),
    };

    let driver = Driver::start().await;
    let browser = driver
        .browser(&[
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=400,300",
        ])
        .await;

    // Play through a stall (the 4th segment held back 6 s), a seek whose
    // target segment comes late (seek latency, not a rebuffer) and a pause.
    site.origin.delay("/hls/seg_003.ts", Duration::from_secs(6));
    site.origin
        .delay("/hls/seg_012.ts", Duration::from_millis(800));
    let Visit { marks, sent, xid } = site.visit(&browser, "played", PLAY).await;
    let mut views: std::collections::BTreeSet<String> = view_ids(&sent);
    site.origin.reset();
    let page_saw = measured(&marks);
    assert!(!page_saw.fatal, "the page failed: {marks:?}");
    assert_eq!(
        page_saw.stalls.len(),
        1,
        "the page saw one stall: {marks:?}"
    );
    assert!(page_saw.seeked, "the page seeked: {marks:?}");
    let view = view_facts(&api, &token, &collector_admin, &xid, |d| {
        d["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event"] == "viewend"))
    })
    .await;
    let sdk_startup = last_sent(&sent, "xtitofifr")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("the SDK sent its time to first frame: {sent:?}"));
    assert_eq!(view["started"], 1, "{view}");
    let startup = view["startup_time_ms"].as_f64().unwrap();
    assert!(
        (startup - sdk_startup).abs() <= 100.0,
        "startup {startup} ms in the api, {sdk_startup} ms from the SDK"
    );
    assert_eq!(
        view["rebuffer_count"], 1,
        "one rebuffer, the seek not one: {view}; SDK sent {sent:?}"
    );
    let playing = view["playing_time_ms"].as_f64().unwrap();
    assert!(
        (playing - page_saw.playing_ms).abs() <= 1000.0,
        "playing {playing} ms in the api, {:.0} ms in the page; the SDK sent {:?} \
         (content playback) and {:?} (cumulative): {marks:?}",
        page_saw.playing_ms,
        last_sent(&sent, "xctpbti"),
        last_sent(&sent, "xpntimscv"),
    );
    eprintln!(
        "mux-embed view: startup {startup} ms (SDK {sdk_startup}, page {:.0}), playing {playing} ms \
         (page {:.0}), rebuffer {} ms (page {:.0})",
        page_saw.startup.unwrap_or(-1.0),
        page_saw.playing_ms,
        view["rebuffer_duration_ms"],
        page_saw.stalls[0],
    );
    assert_eq!(view["error_fatal"], 0, "{view}");
    assert_eq!(view["video_id"], "played", "{view}");
    assert_eq!(view["player_name"], "qoe-test", "{view}");

    // A file that is not a video: the SDK reports the element's error.
    let Visit { marks, sent, xid } = site.visit(&browser, "broken", BROKEN).await;
    views.extend(view_ids(&sent));
    assert!(
        measured(&marks).fatal,
        "the page saw the failure: {marks:?}"
    );
    let code = last_sent(&sent, "percd").unwrap_or_else(|| panic!("an error code: {sent:?}"));
    let view = view_facts(&api, &token, &collector_admin, &xid, |d| {
        d["view"]["error_fatal"] == 1
    })
    .await;
    assert_eq!(
        view["error_code"],
        code.to_string().trim_matches('"'),
        "{view}"
    );
    browser.close().await;

    // The views are mux-embed's, and the metrics serve them like any others.
    // One view for each the SDK sent events of (a view whose start moved
    // would count twice), once the last is written.
    let mut body = Value::Null;
    for _ in 0..50 {
        body = api_get(
            &api,
            &token,
            "/v1/metrics/views/breakdown?group_by=source&timeframe[]=24:hours",
        )
        .await;
        if body["data"][0]["views"] == views.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(body["data"][0]["value"], "mux-embed", "{body}");
    if body["data"][0]["views"] != views.len() {
        let listed = api_get(&api, &token, "/v1/video-views?timeframe[]=24:hours").await;
        panic!("{body}; the SDK sent {views:?}; the api lists {listed}");
    }
    assert!(pipeline.stop().await, "the pipeline stopped cleanly");
    let _ = std::fs::remove_dir_all(&site.root);
}
