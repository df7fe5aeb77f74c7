//! The viewer model: each simulated viewer plays one view after another,
//! and every time it is woken (about every heartbeat interval) it reports
//! what happened since, the way a player SDK batches: state events
//! (`playing`, `rebufferstart`/`end`, `renditionchange`, `pause`,
//! `seeking`/`seeked`, `error`, `viewend`) followed by a `heartbeat`, each
//! carrying the view's cumulative counters at its own time.
//!
//! Time only moves forward through [`View::advance_to`], which adds the
//! elapsed time to the counters of the current phase — so counters are
//! exactly what an SDK measuring the same playback would send.
//! Every viewer draws from its own [`Rng`] stream: a run is reproducible
//! from its seed whatever order viewers are woken in.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use qoe_schema::beacon::{Event, EventType, PlayerState, StreamType};

use crate::rng::Rng;

/// Distributions and mixes of the simulated audience (`[model]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Time between a viewer's reports (one SDK batch each), ms.
    pub heartbeat_interval_ms: u64,
    /// ± jitter on the interval, as a fraction of it.
    pub heartbeat_jitter: f64,
    /// Median startup time (play request → first frame), ms (log-normal).
    pub startup_median_ms: f64,
    /// Log-normal shape of the startup time.
    pub startup_sigma: f64,
    /// Share of views whose viewer leaves before the first frame.
    pub exit_before_start: f64,
    /// Share of views that fail fatally before the first frame.
    pub startup_failure: f64,
    /// Fatal playback errors per hour of playing.
    pub fatal_errors_per_hour: f64,
    /// Rebuffers per minute of playing.
    pub rebuffers_per_min: f64,
    /// Median rebuffer duration, ms (log-normal, capped below the interval).
    pub rebuffer_median_ms: f64,
    /// Log-normal shape of the rebuffer duration.
    pub rebuffer_sigma: f64,
    /// Rendition (bitrate) changes per minute of playing.
    pub renditions_per_min: f64,
    /// The bitrate ladder, kbit/s.
    pub bitrates_kbps: Vec<u32>,
    /// Seeks per minute of playing.
    pub seeks_per_min: f64,
    /// Pauses per minute of playing.
    pub pauses_per_min: f64,
    /// Median view length, seconds (log-normal, shape 1).
    pub view_median_s: f64,
    /// Share of views that end without a `viewend` (tab closed, crash).
    pub abandon: f64,
    /// Share of views that are live.
    pub live_share: f64,
    /// Titles in the catalogue; popularity falls off as 1/rank.
    pub titles: u32,
    /// Client IPs (one per country-ish region) and their weights; the
    /// collector resolves the country from the IP when it trusts the
    /// loadgen as a proxy (`X-Forwarded-For`).
    pub client_ips: Vec<(String, f64)>,
    /// User-Agent strings and their weights (device, OS, browser).
    pub user_agents: Vec<(String, f64)>,
    /// Player name, version and weight.
    pub players: Vec<(String, String, f64)>,
    /// CDNs and their weights.
    pub cdns: Vec<(String, f64)>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let w = |items: &[(&str, f64)]| -> Vec<(String, f64)> {
            items.iter().map(|(s, w)| (s.to_string(), *w)).collect()
        };
        ModelConfig {
            heartbeat_interval_ms: 10_000,
            heartbeat_jitter: 0.1,
            startup_median_ms: 1_200.0,
            startup_sigma: 0.6,
            exit_before_start: 0.03,
            startup_failure: 0.01,
            fatal_errors_per_hour: 0.05,
            rebuffers_per_min: 0.08,
            rebuffer_median_ms: 1_500.0,
            rebuffer_sigma: 0.8,
            renditions_per_min: 0.3,
            bitrates_kbps: vec![800, 1_800, 3_500, 6_000],
            seeks_per_min: 0.03,
            pauses_per_min: 0.03,
            view_median_s: 600.0,
            abandon: 0.1,
            live_share: 0.3,
            titles: 500,
            client_ips: w(&[
                ("8.8.8.8", 40.0),
                ("81.2.69.160", 15.0),
                ("5.9.10.10", 10.0),
                ("200.160.2.3", 10.0),
                ("133.11.0.1", 10.0),
                ("49.44.10.1", 15.0),
            ]),
            user_agents: w(&[
                ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", 35.0),
                ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", 25.0),
                ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", 25.0),
                ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0", 10.0),
                ("Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/5.0 Chrome/94.0.4606.31 TV Safari/537.36", 5.0),
            ]),
            players: vec![
                ("web-player".into(), "3.2.1".into(), 50.0),
                ("ios-player".into(), "5.0.2".into(), 25.0),
                ("android-player".into(), "4.1.0".into(), 25.0),
            ],
            cdns: w(&[("cdn-a", 50.0), ("cdn-b", 35.0), ("cdn-c", 15.0)]),
        }
    }
}

impl ModelConfig {
    /// Checks ranges, naming the key.
    pub fn check(&self) -> Result<(), String> {
        let shares = [
            ("model.heartbeat_jitter", self.heartbeat_jitter),
            ("model.exit_before_start", self.exit_before_start),
            ("model.startup_failure", self.startup_failure),
            ("model.abandon", self.abandon),
            ("model.live_share", self.live_share),
        ];
        for (key, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{key} must be between 0 and 1, got {v}"));
            }
        }
        if self.heartbeat_interval_ms < 1_000 {
            return Err("model.heartbeat_interval_ms must be at least 1000".into());
        }
        let empty = [
            ("model.bitrates_kbps", self.bitrates_kbps.is_empty()),
            ("model.client_ips", self.client_ips.is_empty()),
            ("model.user_agents", self.user_agents.is_empty()),
            ("model.players", self.players.is_empty()),
            ("model.cdns", self.cdns.is_empty()),
            ("model.titles", self.titles == 0),
        ];
        for (key, is_empty) in empty {
            if is_empty {
                return Err(format!("{key} must not be empty"));
            }
        }
        Ok(())
    }
}

/// Time from `viewstart` to `playerready`, ms.
const PLAYER_READY_MS: i64 = 5;

/// What a view is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Loaded, play not yet requested: nothing is counted.
    Idle,
    /// Play requested, waiting for the first frame.
    Starting,
    Playing,
    Rebuffering,
    Paused,
    Seeking,
    /// Over (viewend sent, failed, or abandoned).
    Over,
}

/// How a view will end before it plays, drawn at its start.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Plays,
    ExitsBeforeStart,
    FailsBeforeStart,
}

/// One view: identity, dimensions and the counters an SDK keeps.
#[derive(Debug, Clone)]
pub struct View {
    /// The event template: identity, dimensions and current counters.
    e: Event,
    phase: Phase,
    fate: Fate,
    /// Client time the counters were last advanced to, ms.
    at: i64,
    /// When play is requested (autoplay, or the viewer's click).
    play_at: i64,
    /// When the first frame arrives (or the pre-start exit/failure happens).
    first_frame_at: i64,
    /// When the viewer stops watching.
    ends_at: i64,
    /// Σ bitrate × playing ms, for the playing-time-weighted average.
    bitrate_ms: u128,
}

/// A simulated viewer: who they are, and the view they are on.
pub struct Viewer {
    rng: Rng,
    /// `viewer_id`.
    pub id: Arc<str>,
    /// Index into `client_ips`.
    pub ip: usize,
    /// Index into `user_agents`.
    pub user_agent: usize,
    views: u32,
    /// The current view.
    pub view: View,
}

impl Viewer {
    /// Viewer `index` of run `run` (a short tag unique per run), starting
    /// its first view at `now_ms`.
    pub fn new(model: &ModelConfig, run: &Arc<str>, seed: u64, index: u64, now_ms: i64) -> Viewer {
        let mut rng = Rng::new(seed, index);
        let ip = rng.weighted(model.client_ips.iter().map(|c| c.1));
        let user_agent = rng.weighted(model.user_agents.iter().map(|c| c.1));
        let id: Arc<str> = format!("{run}-u{index}").into();
        let view = View::start(model, &mut rng, &id, 0, now_ms);
        Viewer {
            rng,
            id,
            ip,
            user_agent,
            views: 1,
            view,
        }
    }

    /// Reports what happened up to `now_ms` into `out` (events in time
    /// order, a `heartbeat` last unless the view ended), and returns when
    /// to wake next. A view that is over is replaced by a fresh one, which
    /// sends its `viewstart` at the next wake.
    pub fn wake(&mut self, model: &ModelConfig, now_ms: i64, out: &mut Vec<Event>) -> i64 {
        if self.view.phase == Phase::Over {
            self.view = View::start(model, &mut self.rng, &self.id, self.views, now_ms);
            self.views += 1;
        }
        self.view.report(model, &mut self.rng, now_ms, out);
        let interval = model.heartbeat_interval_ms as f64;
        let jitter = interval * model.heartbeat_jitter * (2.0 * self.rng.unit() - 1.0);
        now_ms + (interval + jitter).max(1_000.0) as i64
    }
}

impl View {
    /// The `n`th view of `viewer` (its id: `<viewer_id>-<n>`), from `now_ms`.
    fn start(model: &ModelConfig, rng: &mut Rng, viewer: &Arc<str>, n: u32, now_ms: i64) -> View {
        let live = rng.chance(model.live_share);
        // Popularity ∝ 1/rank: rank = titles^u spreads draws that way.
        let rank = ((model.titles as f64).powf(rng.unit()) as u32).clamp(1, model.titles);
        let player = rng.weighted(model.players.iter().map(|p| p.2));
        let cdn = rng.weighted(model.cdns.iter().map(|c| c.1));
        let bitrate = model.bitrates_kbps[rng.below(model.bitrates_kbps.len() as u64) as usize];
        let fate = if rng.chance(model.exit_before_start) {
            Fate::ExitsBeforeStart
        } else if rng.chance(model.startup_failure) {
            Fate::FailsBeforeStart
        } else {
            Fate::Plays
        };
        let autoplay = rng.chance(0.5);
        // Autoplay requests play as soon as the player is ready; a viewer
        // clicks a little later. Startup time and watch time count from
        // that request, not from `viewstart`.
        let play_after = if autoplay {
            PLAYER_READY_MS
        } else {
            rng.between(500, 4_000)
        };
        let startup = rng
            .lognormal(model.startup_median_ms, model.startup_sigma)
            .clamp(50.0, 60_000.0) as i64;
        let length = rng
            .lognormal(model.view_median_s * 1000.0, 1.0)
            .clamp(10_000.0, 4.0 * 3_600_000.0) as i64;
        let (player_name, player_version, _) = &model.players[player];
        let e = Event {
            view_id: format!("{viewer}-{n}").into(),
            seq: 0,
            event: EventType::Viewstart,
            ts_ms: now_ms,
            view_start_ms: now_ms,
            viewer_id: viewer.clone(),
            video_id: format!("title-{rank}").into(),
            video_title: format!("Title {rank}").into(),
            stream_type: if live {
                StreamType::Live
            } else {
                StreamType::OnDemand
            },
            video_duration_ms: if live { 0 } else { 3_600_000 },
            player_name: player_name.as_str().into(),
            player_version: player_version.as_str().into(),
            player_width: 1280,
            player_height: 720,
            autoplay,
            cdn: model.cdns[cdn].0.as_str().into(),
            state: PlayerState::Idle,
            play_requested: false,
            watch_time_ms: 0,
            playing_time_ms: 0,
            startup_time_ms: None,
            rebuffer_count: 0,
            rebuffer_duration_ms: 0,
            bitrate_kbps: bitrate,
            avg_bitrate_kbps: 0,
            dropped_frames: 0,
            playhead_ms: 0,
            error_code: "".into(),
            error_message: "".into(),
            error_fatal: false,
        };
        View {
            e,
            phase: Phase::Idle,
            fate,
            at: now_ms,
            play_at: now_ms + play_after,
            first_frame_at: now_ms + play_after + startup,
            ends_at: now_ms + play_after + length.max(startup + 1_000),
            bitrate_ms: 0,
        }
    }

    /// Whether the view is over (its last events sent).
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Adds the time up to `t` to the counters of the current phase.
    pub fn advance_to(&mut self, t: i64) {
        let dt = (t - self.at).max(0) as u64;
        self.at = self.at.max(t);
        let e = &mut self.e;
        match self.phase {
            Phase::Starting | Phase::Seeking => e.watch_time_ms += dt,
            Phase::Playing => {
                e.watch_time_ms += dt;
                e.playing_time_ms += dt;
                e.playhead_ms += dt;
                self.bitrate_ms += u128::from(e.bitrate_kbps) * u128::from(dt);
                if e.playing_time_ms > 0 {
                    e.avg_bitrate_kbps = (self.bitrate_ms / u128::from(e.playing_time_ms)) as u32;
                }
            }
            Phase::Rebuffering => {
                e.watch_time_ms += dt;
                e.rebuffer_duration_ms += dt;
            }
            Phase::Idle | Phase::Paused | Phase::Over => {}
        }
    }

    /// Moves to `t`, applies `kind` and appends the event as the SDK sends it.
    fn emit(&mut self, t: i64, kind: EventType, out: &mut Vec<Event>) {
        self.advance_to(t);
        let e = &mut self.e;
        e.event = kind;
        e.ts_ms = t;
        e.seq += 1;
        match kind {
            EventType::Play => {
                e.play_requested = true;
                e.state = PlayerState::Starting;
                self.phase = Phase::Starting;
            }
            EventType::Playing | EventType::Rebufferend | EventType::Seeked => {
                if e.startup_time_ms.is_none() && kind == EventType::Playing {
                    e.startup_time_ms = Some((t - self.play_at) as u32);
                }
                self.phase = Phase::Playing;
                e.state = PlayerState::Playing;
            }
            EventType::Rebufferstart => {
                e.rebuffer_count += 1;
                self.phase = Phase::Rebuffering;
                e.state = PlayerState::Rebuffering;
            }
            EventType::Pause => {
                self.phase = Phase::Paused;
                e.state = PlayerState::Paused;
            }
            EventType::Seeking => {
                self.phase = Phase::Seeking;
                e.state = PlayerState::Seeking;
            }
            EventType::Error => {
                e.error_fatal = true;
                e.error_code = "MEDIA_ERR_DECODE".into();
                e.error_message = "the media could not be decoded".into();
                e.state = PlayerState::Errored;
                self.phase = Phase::Over;
            }
            EventType::Viewend => {
                if !e.error_fatal {
                    e.state = PlayerState::Ended;
                }
                self.phase = Phase::Over;
            }
            EventType::Viewstart
            | EventType::Playerready
            | EventType::Renditionchange
            | EventType::Heartbeat => {}
        }
        out.push(self.e.clone());
    }

    /// The SDK batch for `(self.at, now]`.
    fn report(&mut self, model: &ModelConfig, rng: &mut Rng, now: i64, out: &mut Vec<Event>) {
        let from = self.at;
        if self.e.seq == 0 {
            // A new view: viewstart, player ready.
            self.emit(from, EventType::Viewstart, out);
            self.emit(from + PLAYER_READY_MS, EventType::Playerready, out);
        }
        // A wake right at the view's start still reports after those.
        let now = now.max(self.at);
        if self.phase == Phase::Idle {
            if self.play_at > now {
                self.emit(now, EventType::Heartbeat, out);
                return;
            }
            self.emit(self.play_at, EventType::Play, out);
        }
        if self.phase == Phase::Starting {
            if self.first_frame_at > now {
                self.emit(now, EventType::Heartbeat, out);
                return;
            }
            match self.fate {
                Fate::ExitsBeforeStart => {
                    self.emit(self.first_frame_at, EventType::Viewend, out);
                    return;
                }
                Fate::FailsBeforeStart => {
                    self.emit(self.first_frame_at, EventType::Error, out);
                    self.emit(self.first_frame_at + 1, EventType::Viewend, out);
                    return;
                }
                Fate::Plays => self.emit(self.first_frame_at, EventType::Playing, out),
            }
        }
        let start = self.at;
        let end = now.min(self.ends_at);
        let minutes = (end - start).max(0) as f64 / 60_000.0;
        // At most one disruption per report keeps the phases disjoint.
        let room = end - start - 2;
        if room > 100 {
            let fatal = model.fatal_errors_per_hour * minutes / 60.0;
            let p = [
                fatal,
                model.rebuffers_per_min * minutes,
                model.pauses_per_min * minutes,
                model.seeks_per_min * minutes,
            ];
            let draw = rng.unit();
            let at = start + 1 + rng.below(room as u64 / 2) as i64;
            let left = end - 1 - at;
            let mut acc = 0.0;
            for (i, p) in p.iter().enumerate() {
                acc += p;
                if draw >= acc {
                    continue;
                }
                match i {
                    0 => {
                        self.emit(at, EventType::Error, out);
                        self.emit(at + 1, EventType::Viewend, out);
                        return;
                    }
                    1 => {
                        let d = (rng.lognormal(model.rebuffer_median_ms, model.rebuffer_sigma)
                            as i64)
                            .clamp(100, left.max(1));
                        self.emit(at, EventType::Rebufferstart, out);
                        self.emit(at + d, EventType::Rebufferend, out);
                    }
                    2 => {
                        let d = rng.between(1_000, 20_000).min(left.max(1));
                        self.emit(at, EventType::Pause, out);
                        self.emit(at + d, EventType::Playing, out);
                    }
                    _ => {
                        let d = rng.between(100, 800).min(left.max(1));
                        self.emit(at, EventType::Seeking, out);
                        self.e.playhead_ms = rng.below(3_000_000);
                        self.emit(at + d, EventType::Seeked, out);
                    }
                }
                break;
            }
            if rng.chance((model.renditions_per_min * minutes).min(1.0)) {
                let t = (self.at + 1).min(end - 1);
                // The old rendition counts up to the switch, the new one after.
                self.advance_to(t);
                let ladder = &model.bitrates_kbps;
                self.e.bitrate_kbps = ladder[rng.below(ladder.len() as u64) as usize];
                self.emit(t, EventType::Renditionchange, out);
            }
        }
        if now >= self.ends_at {
            if rng.chance(model.abandon) {
                // Gone without a word: the counters stop where they are.
                self.advance_to(self.ends_at);
                self.phase = Phase::Over;
            } else {
                self.emit(self.ends_at, EventType::Viewend, out);
            }
            return;
        }
        self.emit(now, EventType::Heartbeat, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let model = ModelConfig {
            exit_before_start: 0.0,
            startup_failure: 0.0,
            fatal_errors_per_hour: 0.0,
            rebuffers_per_min: 0.0,
            pauses_per_min: 0.0,
            seeks_per_min: 0.0,
            renditions_per_min: 0.0,
            view_median_s: 100_000.0,
            ..ModelConfig::default()
        };
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
        let model = ModelConfig {
            exit_before_start: 0.0,
            startup_failure: 0.0,
            fatal_errors_per_hour: 0.0,
            rebuffers_per_min: 0.0,
            pauses_per_min: 0.0,
            seeks_per_min: 0.0,
            renditions_per_min: 0.0,
            view_median_s: 100_000.0,
            ..ModelConfig::default()
        };
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
            if last.event == EventType::Viewend
                && last.startup_time_ms.is_none()
                && !last.error_fatal
            {
                exits += 1;
            }
        }
        let share = exits as f64 / views as f64;
        assert!((share - 0.2).abs() < 0.03, "{share}");
    }
}
