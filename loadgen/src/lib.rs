//! `qoe-loadgen`: the viewer simulator, end-to-end verifier and SLO recorder.
//!
//! How a run works:
//! 1. [`model`]: each simulated viewer plays views with drawn startup,
//!    rebuffering, bitrate changes, seeks, pauses, failures, exits and
//!    abandonment, reporting cumulative counters the way an SDK does.
//! 2. [`wheel`]: a timer wheel wakes each viewer at its *intended* time
//!    (open loop); [`send`] posts its batch over keep-alive connections and
//!    measures latency from that intended time, honouring `Retry-After`.
//! 3. [`run`]: the driver ramps viewers through the profile's steps, times
//!    marker views from send to visibility (write latency) and overview
//!    queries (read latency) ([`watch`]); [`step`] turns each step's
//!    samples into figures and judges them against the SLOs.
//! 4. [`truth`]: acknowledged events become the ground truth; `verify`
//!    compares every metric with the store.
//! 5. [`record`]: a JSON result and a RESULTS.md row per run.
//!
//! Also: `check` (wait for the pipeline to be ready) and [`generate`] (bulk
//! history straight into Kafka for benchmarks).

pub mod api;
pub mod config;
pub mod generate;
pub mod model;
pub mod plan;
pub mod reads;
pub mod record;
pub mod rng;
pub mod run;
pub mod send;
pub mod step;
pub mod truth;
pub mod watch;
pub mod wheel;

use std::time::{Duration, Instant};

pub use config::LoadgenConfig;

/// Why a loadgen command failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The admin listener could not bind.
    #[error(transparent)]
    Admin(#[from] qoe_common::admin::BindError),
    /// The pipeline under test did not become ready in time.
    #[error("not ready after {waited:?}: {details}")]
    NotReady { waited: Duration, details: String },
}

/// Waits until every `target.ready_urls` `/readyz` answers 200, up to `timeout`.
pub async fn check(cfg: &LoadgenConfig, timeout: Duration) -> Result<(), LoadgenError> {
    let probes = cfg
        .target
        .ready_urls
        .iter()
        .map(|base| {
            let url = format!("{}/readyz", base.trim_end_matches('/'));
            qoe_common::httpc::probe(base.clone(), url)
        })
        .collect();
    let admin = qoe_common::admin::start(&cfg.admin, probes).await?;
    let started = Instant::now();
    let result = loop {
        admin.health.check_now(cfg.admin.probe_timeout).await;
        let readiness = admin.health.readiness();
        if readiness.dependencies.iter().all(|d| d.ok) {
            tracing::info!(
                targets = readiness.dependencies.len(),
                "every target is ready"
            );
            break Ok(());
        }
        if started.elapsed() >= timeout {
            let details = readiness
                .dependencies
                .iter()
                .filter(|d| !d.ok)
                .map(|d| format!("{} ({})", d.name, d.error.as_deref().unwrap_or("not ready")))
                .collect::<Vec<_>>()
                .join(", ");
            break Err(LoadgenError::NotReady {
                waited: started.elapsed(),
                details,
            });
        }
        tokio::time::sleep(cfg.admin.probe_interval).await;
    };
    admin.stop().await;
    result
}

/// What `run` or `capacity` ended with.
pub struct Finished {
    pub record: record::RunRecord,
    pub result_path: std::path::PathBuf,
}

/// Runs the load `steps` (a `run`, or a `capacity` search when
/// `capacity`), verifies, judges and records. `profile` is recorded as is.
pub async fn load(
    cfg: &LoadgenConfig,
    kind: &str,
    steps: &[run::Step],
    profile: serde_json::Value,
) -> Result<Finished, std::io::Error> {
    let capacity = kind == "capacity";
    let started = std::time::SystemTime::now();
    let started_at = humantime_serde::re::humantime::format_rfc3339_seconds(started).to_string();
    let id = format!("{}-{kind}", started_at.replace([':', '-'], ""));
    let out = run::drive(cfg, steps, capacity).await;
    let saved = out
        .truth
        .saved(&cfg.target.property_id, &out.view_prefix, out.range);
    let dir = std::path::Path::new(&cfg.run.results_dir);
    std::fs::create_dir_all(dir.join("results"))?;
    let (_, truth_path) = record::paths(dir, &id);
    saved.write(&truth_path)?;
    eprintln!(
        "run: {} events of {} views acknowledged; verifying (ground truth in {})",
        saved.events,
        saved.views.len(),
        truth_path.display()
    );
    let api = cfg.target.api();
    let verify = match truth::verify(&cfg.clickhouse, &api, &saved, cfg.run.settle_timeout).await {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("run: verify failed: {e}");
            None
        }
    };
    let mut broken: Vec<String> = if capacity {
        Vec::new()
    } else {
        let mut b = step::breaches(cfg, &out.total);
        for s in out.steps.iter().flat_map(|s| s.broken.iter()) {
            if !b.contains(s) {
                b.push(s.clone());
            }
        }
        b
    };
    let (mut last_passing, mut first_breach, mut grew) = (None, None, None);
    if capacity {
        last_passing = out
            .steps
            .iter()
            .take_while(|s| s.broken.is_empty())
            .last()
            .map(|s| s.viewers);
        if let Some(failed) = out.steps.iter().find(|s| !s.broken.is_empty()) {
            first_breach = Some(format!(
                "at {} viewers: {}",
                failed.viewers,
                failed.broken.join(", ")
            ));
            grew = step::backlog_grew(failed);
        }
    }
    match &verify {
        Some(v) if v.missing > cfg.run.slo.missing => {
            broken.push(format!("missing {} acknowledged heartbeats", v.missing))
        }
        Some(v) if !v.ok => broken.push("verify mismatch".into()),
        Some(_) => {}
        None => broken.push("verify could not run".into()),
    }
    let verdict = if capacity {
        let mut v = match last_passing {
            Some(n) => format!("capacity {n} viewers"),
            None => format!(
                "capacity below the first step ({} viewers)",
                steps.first().map_or(0, |s| s.viewers)
            ),
        };
        if let Some(b) = &first_breach {
            v.push_str(&format!("; first breach {b}"));
        }
        if let Some(g) = &grew {
            v.push_str(&format!("; backlog grew: {g}"));
        }
        if !broken.is_empty() {
            v.push_str(&format!("; {}", broken.join(", ")));
        }
        v
    } else if broken.is_empty() {
        "pass".into()
    } else {
        format!("fail: {}", broken.join(", "))
    };
    let mut config = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(obj) = config.as_object_mut() {
        obj.insert("profile".into(), profile);
    }
    let record = record::RunRecord {
        id,
        kind: kind.into(),
        started_at,
        git_revision: record::git_revision(),
        machine: record::Machine::here(),
        config,
        steps: out.steps,
        total: out.total,
        verify,
        last_passing_viewers: last_passing,
        first_breach,
        backlog_grew: grew,
        verdict,
    };
    let result_path = record::write(dir, &record)?;
    Ok(Finished {
        record,
        result_path,
    })
}
