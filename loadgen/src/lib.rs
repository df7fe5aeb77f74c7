//! `qoe-loadgen`: the viewer simulator, end-to-end verifier and SLO recorder.
//!
//! Today it has `check`: wait until every service of the pipeline under test
//! reports ready, with the loadgen's own admin listener up meanwhile. The
//! simulator, `verify` and `capacity` arrive with the loadgen issue.

pub mod config;
pub mod generate;

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
