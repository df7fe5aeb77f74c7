//! Real players, no SDK of ours: unmodified hls.js, dash.js and Shaka (from
//! the npm registry, cached by `deploy/local/stack install`) play HLS and
//! DASH streams made with `ffmpeg` in Debian's headless Chromium, their
//! CMCD v2 event targets pointing at the collector. Through the api, each
//! view has the startup time the page measured with `performance.now()`
//! (within 100 ms), the stall the origin caused as one rebuffer of about
//! its length, no rebuffer for a seek, and a segment answering 404 as a
//! playback failure.
#![allow(clippy::field_reassign_with_default)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use qoe_testkit::unique;
use qoe_testkit::webdriver::{Browser, Driver};
use serde_json::{json, Value};
use support::origin::{make_media, Origin};
use support::page::{measured, play, view_facts};

const KEY: &str = "players-key";

/// A player under test: its script, stream and how a page drives it.
struct Player {
    name: &'static str,
    script: &'static str,
    stream: &'static str,
    /// Segments: the one held back (6 s of media in), the one the seek
    /// lands in, the one that fails.
    stalled: &'static str,
    seek_target: &'static str,
    failing: &'static str,
    /// Whether the player reports a segment error that ends playback
    /// (hls.js 1.7.4 does not: its CMCD controller hears of the error
    /// before its error controller makes it fatal, and never again).
    reports_fatal_segment_error: bool,
    /// The error code it reports then, if any (Shaka sends none).
    segment_error_code: &'static str,
    /// JS starting playback with `cfg` (target, sid, cid, src), calling
    /// `finish(stop)` on a fatal error and at the end.
    start: &'static str,
}

const EVENTS: &str = "['ps', 'e', 't', 'bc']";
/// The keys a report carries (dash.js sends only `e`, `ts` and `v` unless
/// told; hls.js sends every key by default).
const KEYS: &str = "['br', 'bl', 'cdn', 'cid', 'e', 'ec', 'msd', 'mtp', 'pr', 'sf', 'sid', 'sn', 'st', 'sta', 'ts', 'v']";

fn players() -> [Player; 3] {
    [
        Player {
            name: "hls.js",
            script: "hls.js-1.7.4-hls.min.js",
            stream: "hls/index.m3u8",
            stalled: "/hls/seg_003.ts",
            seek_target: "/hls/seg_012.ts",
            failing: "/hls/seg_001.ts",
            reports_fatal_segment_error: false,
            segment_error_code: "",
            start: "const hls = new Hls({ maxBufferLength: 4, maxMaxBufferLength: 4,
                fragLoadPolicy: { default: { maxTimeToFirstByteMs: 20000, maxLoadTimeMs: 30000,
                                             timeoutRetry: null, errorRetry: null } },
                cmcd: { version: 2, sessionId: cfg.sid, contentId: cfg.cid,
                        eventTargets: [{ url: cfg.target, events: EVENTS, interval: 10, batchSize: 1 }] } });
              hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) { mark('fatal'); mark('details ' + d.details + ' ' + (d.error && d.error.stack)); finish(() => hls.destroy()); } });
              v.addEventListener('ended', () => finish(() => hls.destroy()));
              hls.on(Hls.Events.MANIFEST_PARSED, () => { mark('request'); v.play(); });
              hls.attachMedia(v);
              hls.loadSource(cfg.src);",
        },
        Player {
            name: "dash.js",
            script: "dashjs-5.2.1-dash.all.min.js",
            stream: "dash/manifest.mpd",
            stalled: "/dash/seg_004.m4s",
            seek_target: "/dash/seg_013.m4s",
            failing: "/dash/seg_002.m4s",
            reports_fatal_segment_error: true,
            // DOWNLOAD_ERROR_ID_CONTENT
            segment_error_code: "27",
            start: "const p = dashjs.MediaPlayer().create();
              p.updateSettings({ streaming: {
                buffer: { bufferTimeAtTopQuality: 4, bufferTimeAtTopQualityLongForm: 4, stableBufferTime: 4 },
                retryAttempts: { MediaSegment: 0 },
                cmcd: { enabled: true, version: 2, sid: cfg.sid, cid: cfg.cid,
                        eventTargets: [{ url: cfg.target, events: EVENTS, interval: 10, batchSize: 1,
                                         enabledKeys: KEYS }] } } });
              p.on(dashjs.MediaPlayer.events.ERROR, (e) => {
                mark('error ' + JSON.stringify(e.error).slice(0, 200));
                if (e.error && e.error.code) { mark('fatal'); finish(() => p.reset()); } });
              v.addEventListener('ended', () => finish(() => p.reset()));
              // dash.js reports starting from its initialisation on.
              mark('request');
              p.initialize(v, cfg.src, true);",
        },
        Player {
            name: "shaka",
            script: "shaka-player-5.2.12-shaka-player.compiled.debug.js",
            stream: "dash/manifest.mpd",
            stalled: "/dash/seg_004.m4s",
            seek_target: "/dash/seg_013.m4s",
            failing: "/dash/seg_002.m4s",
            reports_fatal_segment_error: true,
            segment_error_code: "",
            start: "shaka.polyfill.installAll();
              const player = new shaka.Player();
              player.configure({
                streaming: { bufferingGoal: 4, rebufferingGoal: 0.5,
                             retryParameters: { maxAttempts: 1, timeout: 30000 } },
                cmcd: { enabled: true, version: 2, sessionId: cfg.sid, contentId: cfg.cid,
                        eventTargets: [{ enabled: true, mode: 'event', url: cfg.target, events: EVENTS,
                                         interval: 10, batchSize: 1, useHeaders: false, includeKeys: KEYS }] } });
              // Shaka stalls by setting the playback rate to 0: no `waiting`.
              player.addEventListener('buffering', (e) => mark(e.buffering ? 'stall' : 'unstall'));
              player.addEventListener('error', () => { mark('fatal'); finish(() => player.destroy()); });
              v.addEventListener('ended', () => finish(() => player.destroy()));
              player.attach(v)
                .then(() => { mark('request'); return player.load(cfg.src); })
                .then(() => v.play())
                .catch(() => { mark('fatal'); finish(() => player.destroy()); });",
        },
    ]
}

/// The page playing `player`'s stream with its CMCD target at `target`.
fn page(player: &Player, cfg: &Value, seek: Option<(f64, f64)>) -> String {
    let (seek_at, seek_to) = seek.unwrap_or((0.0, 0.0));
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>{name}</title>
<video id="v" muted playsinline width="320" height="180"></video>
<script src="/players/{script}"></script>
<script>
const cfg = {cfg};
const EVENTS = {EVENTS};
const KEYS = {KEYS};
window.qoe = {{ marks: [], done: false }};
const v = document.getElementById('v');
const mark = (what) => qoe.marks.push([what, performance.now()]);
// Each CMCD report the player posts, for the test's messages.
const sent = window.fetch;
window.fetch = (url, init) => {{
  if (init && init.method === 'POST') mark('report ' + String(init.body).trim().replace(/sid="[^"]*",?/g, ''));
  return sent(url, init);
}};
const xhrSend = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {{
  if (typeof body === 'string') mark('xhr ' + body.trim().slice(0, 300));
  return xhrSend.call(this, body);
}};
for (const n of ['play', 'playing', 'waiting', 'seeking', 'seeked', 'ended']) v.addEventListener(n, () => mark(n));
let seeked = false;
v.addEventListener('timeupdate', () => {{
  if ({seek_at} > 0 && !seeked && v.currentTime >= {seek_at}) {{ seeked = true; v.currentTime = {seek_to}; }}
}});
function finish(stop) {{
  if (qoe.finishing) return;
  qoe.finishing = true;
  mark('finish');
  setTimeout(() => {{ try {{ stop(); }} catch (e) {{}} qoe.done = true; }}, 500);
}}
try {{ {start} }} catch (e) {{ mark('threw ' + e); qoe.done = true; }}
</script>"#,
        name = player.name,
        script = player.script,
        start = player.start,
    )
}

fn root(players: &Path) -> PathBuf {
    let root = std::env::temp_dir().join(unique("players"));
    make_media(&root);
    std::fs::create_dir_all(root.join("players")).unwrap();
    std::fs::create_dir_all(root.join("pages")).unwrap();
    for p in players_list() {
        let from = players.join(p);
        std::fs::copy(&from, root.join("players").join(p)).unwrap_or_else(|e| {
            panic!("{}: {e}; run `deploy/local/stack install`", from.display())
        });
    }
    root
}

fn players_list() -> Vec<&'static str> {
    players().iter().map(|p| p.script).collect()
}

/// Where the players' views go and how to read them back.
struct Setup {
    root: PathBuf,
    origin: Origin,
    target: String,
    api: String,
    token: String,
    collector_admin: String,
    run: String,
}

impl Setup {
    /// Writes `player`'s page for a view of session `sid` and plays it.
    async fn play(
        &self,
        browser: &Browser<'_>,
        player: &Player,
        sid: &str,
        seek: Option<(f64, f64)>,
    ) -> Vec<(String, f64)> {
        let src = format!("{}/{}", self.origin.url, player.stream);
        let cfg = json!({"target": self.target, "sid": sid, "cid": "clip", "src": src});
        let file = format!("pages/{sid}.html");
        std::fs::write(self.root.join(&file), page(player, &cfg, seek)).unwrap();
        let url = format!("{}/{file}", self.origin.url);
        play(browser, &url, &format!("{sid} to finish")).await
    }

    /// The api's facts of session `sid`'s view once `done` accepts them.
    async fn view(&self, sid: &str, done: impl Fn(&Value) -> bool) -> Value {
        let id = qoe_schema::cmcd::view_id(sid, "clip");
        view_facts(&self.api, &self.token, &self.collector_admin, &id, done).await
    }

    fn sid(&self, player: &Player, what: &str) -> String {
        format!("{}-{what}-{}", player.name.replace('.', ""), self.run)
    }
}

/// Plays through a stall and a seek; checks the view's numbers.
async fn playing(setup: &Setup, browser: &Browser<'_>, player: &Player) {
    let name = player.name;
    setup.origin.delay(player.stalled, Duration::from_secs(6));
    setup
        .origin
        .delay(player.seek_target, Duration::from_millis(800));
    let sid = setup.sid(player, "play");
    let marks = setup.play(browser, player, &sid, Some((8.0, 24.0))).await;
    setup.origin.reset();
    let page_saw = measured(&marks);
    assert!(!page_saw.fatal, "{name}: the page failed: {marks:?}");
    assert_eq!(
        page_saw.stalls.len(),
        1,
        "{name}: the page saw one stall: {marks:?}"
    );
    assert!(page_saw.seeked, "{name}: the page seeked: {marks:?}");
    let view = setup
        .view(&sid, |v| {
            v["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["event"] == "viewend"))
        })
        .await;
    let startup = page_saw.startup.expect("the page saw playback start");
    assert_eq!(view["started"], 1, "{name}: {view}");
    let api_startup = view["startup_time_ms"].as_f64().unwrap();
    assert!(
        (api_startup - startup).abs() <= 100.0,
        "{name}: startup {api_startup} ms in the api, {startup:.0} ms in the page: {marks:?}"
    );
    assert_eq!(
        view["rebuffer_count"], 1,
        "{name}: one rebuffer, the seek not one: {view}; {marks:?}"
    );
    let api_stall = view["rebuffer_duration_ms"].as_f64().unwrap();
    assert!(
        (api_stall - page_saw.stalls[0]).abs() <= 250.0,
        "{name}: stall {api_stall} ms in the api, {:.0} ms in the page",
        page_saw.stalls[0]
    );
    assert_eq!(view["error_fatal"], 0, "{name}: {view}");
}

/// A segment answering 404: the view is a playback failure.
async fn failing(setup: &Setup, browser: &Browser<'_>, player: &Player) {
    let name = player.name;
    setup.origin.missing(player.failing);
    let sid = setup.sid(player, "fail");
    let marks = setup.play(browser, player, &sid, None).await;
    setup.origin.reset();
    assert!(
        measured(&marks).fatal,
        "{name}: the page saw the failure: {marks:?}"
    );
    let view = setup.view(&sid, |v| v["view"]["error_fatal"] == 1).await;
    assert_eq!(
        view["error_code"], player.segment_error_code,
        "{name}: {view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_dash_js_and_shaka_views_arrive_with_their_numbers() {
    let players_dir = support::page::players_dir();
    let root = root(&players_dir);
    let origin = Origin::start(root.clone()).await;

    let (settings, property) = support::Settings::on_test_stack("players", KEY).await;
    let (api, token) = settings.api_for(&property);
    let [collector_admin, _] = settings.admin_urls();
    let setup = Setup {
        target: format!("{}/v1/cmcd/{KEY}", settings.ingest_url()),
        root,
        origin,
        api,
        token,
        collector_admin,
        run: unique("run"),
    };
    let pipeline = support::Pipeline::start(settings).await;

    let driver = Driver::start().await;
    let mut views = 0;
    for player in players() {
        let browser = driver
            .browser(&[
                "--autoplay-policy=no-user-gesture-required",
                "--window-size=400,300",
            ])
            .await;
        playing(&setup, &browser, &player).await;
        views += 1;
        if player.reports_fatal_segment_error {
            failing(&setup, &browser, &player).await;
            views += 1;
        }
        browser.close().await;
    }

    // The views are CMCD's, and the metrics serve them like any others.
    let body = support::page::api_get(
        &setup.api,
        &setup.token,
        "/v1/metrics/views/breakdown?group_by=source&timeframe[]=24:hours",
    )
    .await;
    assert_eq!(body["data"][0]["value"], "cmcd", "{body}");
    assert_eq!(body["data"][0]["views"], views, "{body}");
    assert!(pipeline.stop().await, "the pipeline stopped cleanly");
    let _ = std::fs::remove_dir_all(&setup.root);
}
