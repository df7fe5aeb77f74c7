//! `run` and `capacity`: drive simulated viewers against the collector in
//! open loop, watch write and read latency while doing so, judge each step
//! against the SLOs, then verify the stored numbers against the ground
//! truth.
//!
//! One driver task owns everything mutable (viewers, timer wheel, truth,
//! statistics) and wakes every 10 ms: new viewers join as the profile
//! ramps, due viewers report into the send queue, finished requests come
//! back. Side tasks poll ClickHouse for write-latency markers and time
//! overview queries (read latency); they report through channels.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use serde::{Deserialize, Serialize};

use qoe_schema::metrics::Range;

use crate::config::LoadgenConfig;
use crate::model::Viewer;
use qoe_common::clock::now_ms;

use crate::send::{self, Done, Job, Outcome, Pool};
use crate::step::{breaches, pick, StepResult, Window};
use crate::truth::Truth;
use crate::watch::{backlogs, time_reads, watch_markers};
use crate::wheel::Wheel;

/// One step of a load profile: ramp to `viewers` over `ramp`, then hold.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Step {
    pub viewers: u64,
    #[serde(with = "humantime_serde")]
    pub ramp: Duration,
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
}

/// Everything a run measured.
pub struct Outcomes {
    pub steps: Vec<StepResult>,
    pub truth: Truth,
    pub range: Range,
    pub view_prefix: String,
    /// Whole-run figures (every step together).
    pub total: StepResult,
}

/// Runs `steps` (stopping at the first that breaks an SLO when
/// `stop_on_breach`), then lets in-flight batches finish.
pub async fn drive(cfg: &LoadgenConfig, steps: &[Step], stop_on_breach: bool) -> Outcomes {
    let run_tag: Arc<str> = format!("lg{}", now_ms() / 1000 % 100_000_000).into();
    let url = format!(
        "{}/v1/beacon/{}",
        cfg.target.collector_url.trim_end_matches('/'),
        cfg.target.property_key
    );
    let pool = Pool::start(url, cfg.run.connections, cfg.run.request_timeout);
    let (marker_tx, marker_rx) = flume::unbounded::<(String, i64)>();
    let (write_tx, write_rx) = flume::unbounded::<(i64, f64)>();
    let (read_tx, read_rx) = flume::unbounded::<(i64, f64)>();
    let started_ms = now_ms();
    let watchers = [
        tokio::spawn(watch_markers(
            cfg.clickhouse.clone(),
            cfg.target.property_id.clone(),
            marker_rx,
            write_tx,
        )),
        tokio::spawn(time_reads(
            cfg.target.api(),
            started_ms,
            cfg.run.read_interval,
            read_tx,
        )),
    ];
    let headers = Headers::new(cfg);
    let mut d = Driver {
        cfg,
        run_tag: run_tag.clone(),
        headers,
        viewers: Vec::new(),
        wheel: Wheel::new(8192, 10, started_ms),
        truth: Truth::default(),
        pool,
        outstanding: 0,
        window: Window::default(),
        total: Window::new(started_ms),
        markers_pending: HashMap::new(),
        next_marker: 0,
        draining: false,
        retries_pending: 0,
        due: Vec::new(),
    };
    let mut results = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_progress = Instant::now();
    let mut next_marker_at = started_ms;
    let mut from_viewers = 0u64;
    'steps: for step in steps {
        let step_start = now_ms();
        let step_end = step_start + (step.ramp + step.hold).as_millis() as i64;
        d.window = Window::new(step_start);
        let backlog_start = backlogs(cfg).await;
        eprintln!(
            "run: step to {} viewers (ramp {:?}, hold {:?})",
            step.viewers, step.ramp, step.hold
        );
        loop {
            tick.tick().await;
            let now = now_ms();
            if now >= step_end {
                break;
            }
            // Viewers join along the ramp, spread over a heartbeat interval
            // so a step does not arrive as one burst.
            let ramp_ms = step.ramp.as_millis().max(1) as f64;
            let progress = ((now - step_start) as f64 / ramp_ms).min(1.0);
            let target =
                from_viewers as f64 + (step.viewers as f64 - from_viewers as f64) * progress;
            while (d.viewers.len() as f64) < target.floor() {
                d.add_viewer(now);
            }
            if now >= next_marker_at {
                d.send_marker(now);
                next_marker_at = now + cfg.run.marker_interval.as_millis() as i64;
            }
            d.turn(now, &marker_tx, &write_rx, &read_rx);
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                d.progress(now, started_ms);
            }
        }
        from_viewers = step.viewers;
        // Markers sent in the step's last seconds are judged with the
        // step: give them a moment to appear.
        let grace = Instant::now() + Duration::from_secs(5);
        while Instant::now() < grace && d.window.markers_open(&d.markers_pending) {
            tick.tick().await;
            d.turn(now_ms(), &marker_tx, &write_rx, &read_rx);
        }
        let backlog_end = backlogs(cfg).await;
        let mut result = d.window.result(step.viewers, now_ms(), &d.markers_pending);
        result.backlog_start = backlog_start;
        result.backlog_end = backlog_end;
        result.broken = breaches(cfg, &result);
        eprintln!(
            "run: step {} viewers: {} ({} sent/s, errors {:.3}/s, write p99 {:.1}s, read p90 {})",
            step.viewers,
            if result.broken.is_empty() {
                "passed".to_string()
            } else {
                format!("BROKE {}", result.broken.join(", "))
            },
            result.sent_per_s as u64,
            result.errors_per_s,
            result.write_latency_p99_s,
            crate::step::read_p90_text(result.read_latency_p90_ms),
        );
        let broke = !result.broken.is_empty();
        results.push(result);
        if broke && stop_on_breach {
            break 'steps;
        }
    }
    // Load stops. Batches still queued here never reached the server: they
    // are taken back (not acknowledged, so not in the truth), and so are
    // pending retries. Requests in flight are waited for, so that nothing
    // the server accepted is missing from the truth.
    let end_ms = now_ms();
    let unsent = d.pool.unqueue() as u64;
    d.outstanding -= unsent;
    d.draining = true;
    let drain_until = Instant::now() + cfg.run.request_timeout + Duration::from_secs(2);
    while d.outstanding > 0 && Instant::now() < drain_until {
        tick.tick().await;
        d.collect(&marker_tx);
    }
    d.total.unsent += unsent + d.retries_pending;
    if d.total.unsent > 0 {
        eprintln!(
            "run: {} batches were still queued or waiting to retry when the load stopped; not sent",
            d.total.unsent
        );
    }
    if d.outstanding > 0 {
        eprintln!(
            "run: {} batches got no answer within the request timeout: their outcome is unknown",
            d.outstanding
        );
    }
    for w in watchers {
        w.abort();
    }
    let total = d
        .total
        .result(d.viewers.len() as u64, end_ms, &d.markers_pending);
    d.pool.stop();
    Outcomes {
        steps: results,
        range: Range {
            from: (started_ms / 1000) as u32,
            to: (end_ms / 1000) as u32 + 1,
        },
        view_prefix: format!("{run_tag}-"),
        truth: d.truth,
        total,
    }
}

/// What the wheel holds.
enum Item {
    Viewer(u32),
    Retry(Job),
}

struct Headers {
    ips: Vec<HeaderValue>,
    agents: Vec<HeaderValue>,
}

impl Headers {
    fn new(cfg: &LoadgenConfig) -> Headers {
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
        Headers {
            ips: cfg.model.client_ips.iter().map(|c| value(&c.0)).collect(),
            agents: cfg.model.user_agents.iter().map(|c| value(&c.0)).collect(),
        }
    }
}

struct Driver<'c> {
    cfg: &'c LoadgenConfig,
    run_tag: Arc<str>,
    headers: Headers,
    viewers: Vec<Viewer>,
    wheel: Wheel<Item>,
    truth: Truth,
    pool: Pool,
    /// Batches sent and not answered yet.
    outstanding: u64,
    window: Window,
    total: Window,
    /// Marker view → intended send time, until seen in the store.
    markers_pending: HashMap<String, i64>,
    next_marker: u64,
    /// The load has stopped: nothing is retried any more.
    draining: bool,
    /// Retries waiting in the wheel.
    retries_pending: u64,
    /// Scratch for the wheel's due items.
    due: Vec<(i64, Item)>,
}

impl Driver<'_> {
    fn add_viewer(&mut self, now: i64) {
        let index = self.viewers.len() as u64;
        let viewer = Viewer::new(
            &self.cfg.model,
            &self.run_tag,
            self.cfg.run.seed,
            index,
            now,
        );
        // First report somewhere in the coming interval.
        let spread =
            (index.wrapping_mul(0x9E37_79B9) % self.cfg.model.heartbeat_interval_ms) as i64;
        self.viewers.push(viewer);
        self.wheel
            .schedule(now + spread, Item::Viewer(index as u32));
    }

    /// A marker: the first report of a view of its own (indexes far above
    /// any viewer's), whose arrival in the store is timed.
    fn send_marker(&mut self, now: i64) {
        const MARKER_BASE: u64 = 1 << 40;
        let index = MARKER_BASE + self.next_marker;
        self.next_marker += 1;
        let mut marker = Viewer::new(
            &self.cfg.model,
            &self.run_tag,
            self.cfg.run.seed,
            index,
            now,
        );
        let mut events = Vec::with_capacity(4);
        marker.wake(&self.cfg.model, now, &mut events);
        self.dispatch(Job {
            viewer: self.next_marker as u32,
            intended_ms: now,
            body: send::body(&events),
            events,
            client: (
                self.headers.ips[marker.ip].clone(),
                self.headers.agents[marker.user_agent].clone(),
            ),
            attempt: 0,
            marker: true,
        });
    }

    /// One driver turn: due reports and retries out, answers and
    /// latencies in.
    fn turn(
        &mut self,
        now: i64,
        markers: &flume::Sender<(String, i64)>,
        writes: &flume::Receiver<(i64, f64)>,
        reads: &flume::Receiver<(i64, f64)>,
    ) {
        let mut due = std::mem::take(&mut self.due);
        self.wheel.advance(now, &mut due);
        for (at, item) in due.drain(..) {
            self.fire(at, item);
        }
        self.due = due;
        self.collect(markers);
        self.take_latencies(writes, reads);
    }

    fn fire(&mut self, at: i64, item: Item) {
        match item {
            Item::Retry(job) => {
                self.retries_pending -= 1;
                self.dispatch(job)
            }
            Item::Viewer(i) => {
                let mut events = Vec::with_capacity(4);
                let viewer = &mut self.viewers[i as usize];
                let next = viewer.wake(&self.cfg.model, at, &mut events);
                let client = (
                    self.headers.ips[viewer.ip].clone(),
                    self.headers.agents[viewer.user_agent].clone(),
                );
                self.wheel.schedule(next, Item::Viewer(i));
                if !events.is_empty() {
                    self.dispatch(Job {
                        viewer: i,
                        intended_ms: at,
                        body: send::body(&events),
                        events,
                        client,
                        attempt: 0,
                        marker: false,
                    });
                }
            }
        }
    }

    fn dispatch(&mut self, mut job: Job) {
        if job.attempt == 0 {
            self.window.events_sent += job.events.len() as u64;
            self.total.events_sent += job.events.len() as u64;
        }
        job.attempt += 1;
        self.outstanding += 1;
        self.window.requests += 1;
        self.total.requests += 1;
        self.pool.send(job);
    }

    /// Takes finished requests: acknowledged events into the truth, shed
    /// or unanswered batches back into the wheel for a retry.
    fn collect(&mut self, markers: &flume::Sender<(String, i64)>) {
        while let Ok(Done {
            job,
            outcome,
            latency_ms,
        }) = self.pool.done.try_recv()
        {
            self.outstanding -= 1;
            for w in [&mut self.window, &mut self.total] {
                w.answered += 1;
            }
            let retry_in_ms = match &outcome {
                Outcome::Accepted { rejected } => {
                    for w in [&mut self.window, &mut self.total] {
                        w.request_ms.push(latency_ms as f32);
                    }
                    let mut n_rejected = 0;
                    for (i, e) in job.events.iter().enumerate() {
                        if let Some((_, reason)) = rejected.iter().find(|r| r.0 == i) {
                            n_rejected += 1;
                            if self.total.events_rejected < 5 {
                                tracing::warn!(view = %e.view_id, seq = e.seq, reason, "an event of the model was rejected");
                            }
                        } else {
                            self.truth.accept(e);
                        }
                    }
                    let accepted = job.events.len() as u64 - n_rejected;
                    for w in [&mut self.window, &mut self.total] {
                        w.events_accepted += accepted;
                        w.events_rejected += n_rejected;
                    }
                    if job.marker && accepted > 0 {
                        let view = job.events[0].view_id.to_string();
                        self.markers_pending.insert(view.clone(), job.intended_ms);
                        let _ = markers.send((view, job.intended_ms));
                    }
                    None
                }
                Outcome::Shed { retry_after_s, .. } => {
                    self.window.shed += 1;
                    self.total.shed += 1;
                    Some(*retry_after_s as i64 * 1000)
                }
                Outcome::Refused { status, body } => {
                    self.window.refused += 1;
                    self.total.refused += 1;
                    if self.total.refused <= 5 {
                        tracing::warn!(status, body = %body, "the collector refused a batch");
                    }
                    None
                }
                Outcome::Failed(error) => {
                    self.window.failed += 1;
                    self.total.failed += 1;
                    if self.total.failed <= 5 {
                        tracing::warn!(%error, "a batch got no answer");
                    }
                    Some(1000)
                }
            };
            if let Some(wait) = retry_in_ms {
                if self.draining {
                    self.total.unsent += 1;
                } else if job.attempt < self.cfg.run.max_attempts {
                    self.retries_pending += 1;
                    self.wheel.schedule(now_ms() + wait, Item::Retry(job));
                } else {
                    self.window.dropped += 1;
                    self.total.dropped += 1;
                }
            }
        }
    }

    fn take_latencies(
        &mut self,
        writes: &flume::Receiver<(i64, f64)>,
        reads: &flume::Receiver<(i64, f64)>,
    ) {
        while let Ok((intended, seconds)) = writes.try_recv() {
            self.markers_pending.retain(|_, at| *at != intended);
            for w in [&mut self.window, &mut self.total] {
                if intended >= w.start_ms {
                    w.write_s.push(seconds as f32);
                }
            }
        }
        while let Ok((at, ms)) = reads.try_recv() {
            for w in [&mut self.window, &mut self.total] {
                if at >= w.start_ms {
                    w.read_ms.push(ms as f32);
                }
            }
        }
    }

    fn progress(&mut self, now: i64, started: i64) {
        let w = &mut self.window;
        let sent_per_s = (w.requests - w.last_requests) as f64;
        w.last_requests = w.requests;
        let recent = &mut w.request_ms[w.last_latency..];
        let answered = w.answered - w.last_answered;
        w.last_answered = w.answered;
        recent.sort_by(f32::total_cmp);
        let (p50, p99) = (pick(recent, 0.5), pick(recent, 0.99));
        w.last_latency = w.request_ms.len();
        eprintln!(
            "run: t={:>4}s viewers={} sent/s={:.0} answered/s={} accepted={} shed={} errors={} queued={} accepted p50={:.1}ms p99={:.1}ms",
            (now - started) / 1000,
            self.viewers.len(),
            sent_per_s,
            answered,
            self.total.events_accepted,
            self.total.shed,
            self.total.refused + self.total.failed,
            self.pool.queued(),
            p50,
            p99,
        );
    }
}
