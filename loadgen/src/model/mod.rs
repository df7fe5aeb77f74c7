//! The viewer model: each simulated viewer plays one view after another,
//! and every time it is woken (about every heartbeat interval) it reports
//! what happened since, the way a player SDK batches: state events
//! (`playing`, `rebufferstart`/`end`, `renditionchange`, `pause`,
//! `seeking`/`seeked`, `error`, `viewend`) followed by a `heartbeat`, each
//! carrying the view's cumulative counters at its own time.
//!
//! Time only moves forward through [`View::advance_to`], which adds the
//! elapsed time to the counters of the current phase — so counters are
//! exactly what an SDK measuring the same playback would send. Nothing
//! counts before play is requested: startup time and watch time run from
//! the play request, as `schema/README.md` defines them.
//! Every viewer draws from its own [`Rng`] stream: a run is reproducible
//! from its seed whatever order viewers are woken in.

mod audience;
#[cfg(test)]
mod tests;

pub use audience::ModelConfig;

use std::sync::Arc;

use qoe_schema::beacon::{Event, EventType, PlayerState, StreamType};

use crate::rng::Rng;

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
            startup_time_ms: None,
            bitrate_kbps: bitrate,
            // Counters start at 0, with no error.
            ..Event::default()
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
                e.current_rebuffer_ms += dt;
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
                e.current_rebuffer_ms = 0;
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
        if self.phase != Phase::Rebuffering {
            self.e.current_rebuffer_ms = 0;
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
