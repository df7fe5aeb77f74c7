//! Readiness: probes of a service's dependencies, polled in the background.
//!
//! `/readyz` must be cheap and must not let a load balancer's polling hammer
//! the broker or ClickHouse, so probes run on a timer and the endpoint answers
//! from the last result. A service is ready when every probe passed on its
//! last run and the service is not draining for shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus::IntGaugeVec;
use serde::Serialize;

/// One dependency check: resolves to `Ok` when the dependency answered.
pub type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A named dependency check.
#[derive(Clone)]
pub struct Probe {
    name: String,
    check: CheckFn,
}

impl Probe {
    /// A probe called `name` (e.g. `kafka`, `clickhouse_shard_1`).
    pub fn new<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        Probe {
            name: name.into(),
            check: Arc::new(move || Box::pin(check())),
        }
    }
}

/// Last result of one probe, as `/readyz` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeStatus {
    /// Probe name.
    pub name: String,
    /// Whether it passed on its last run.
    pub ok: bool,
    /// Why it failed, if it did (or "not yet checked").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `/readyz` answers, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Every probe passed and the service is not draining.
    pub ready: bool,
    /// The service is shutting down and wants no new traffic.
    pub draining: bool,
    /// Each dependency.
    pub dependencies: Vec<ProbeStatus>,
}

/// The readiness state of one service.
pub struct Health {
    probes: Vec<Probe>,
    status: Mutex<Vec<ProbeStatus>>,
    draining: AtomicBool,
    gauge: IntGaugeVec,
}

impl Health {
    /// Health over `probes`; nothing is ready until the first probe run.
    pub fn new(probes: Vec<Probe>) -> Arc<Self> {
        let status = probes
            .iter()
            .map(|p| ProbeStatus {
                name: p.name.clone(),
                ok: false,
                error: Some("not yet checked".into()),
            })
            .collect();
        Arc::new(Health {
            probes,
            status: Mutex::new(status),
            draining: AtomicBool::new(false),
            gauge: dependency_up_gauge(),
        })
    }

    /// Runs every probe once (concurrently, each bounded by `timeout`) and
    /// records the results.
    pub async fn check_now(&self, timeout: Duration) {
        let runs = self.probes.iter().map(|probe| async move {
            let result = match tokio::time::timeout(timeout, (probe.check)()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            ProbeStatus {
                name: probe.name.clone(),
                ok: result.is_ok(),
                error: result.err(),
            }
        });
        let results = futures::future::join_all(runs).await;
        for r in &results {
            self.gauge
                .with_label_values(&[r.name.as_str()])
                .set(i64::from(r.ok));
        }
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        for (old, new) in status.iter_mut().zip(results) {
            if old.ok != new.ok {
                match &new.error {
                    None => tracing::info!(dependency = %new.name, "dependency is up"),
                    Some(err) => {
                        tracing::warn!(dependency = %new.name, error = %err, "dependency is down")
                    }
                }
            }
            *old = new;
        }
    }

    /// Polls the probes every `interval` until `stop` resolves.
    pub async fn poll(
        self: Arc<Self>,
        interval: Duration,
        timeout: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticker.tick() => self.check_now(timeout).await,
            }
        }
    }

    /// Marks the service as draining: `/readyz` fails from now on so load
    /// balancers stop sending traffic while in-flight work finishes.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The current readiness.
    pub fn readiness(&self) -> Readiness {
        let dependencies = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let draining = self.draining.load(Ordering::SeqCst);
        Readiness {
            ready: !draining && dependencies.iter().all(|d| d.ok),
            draining,
            dependencies,
        }
    }

    /// Whether the last probe run passed, for a dependency by name.
    pub fn is_up(&self, name: &str) -> bool {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|s| s.name == name && s.ok)
    }
}

fn dependency_up_gauge() -> IntGaugeVec {
    use std::sync::OnceLock;
    static GAUGE: OnceLock<IntGaugeVec> = OnceLock::new();
    GAUGE
        .get_or_init(|| {
            let g = IntGaugeVec::new(
                prometheus::Opts::new(
                    "qoe_dependency_up",
                    "1 if the dependency answered its last readiness probe, else 0",
                ),
                &["dependency"],
            )
            .expect("static metric definition is valid");
            // Registration fails only for a duplicate name, which OnceLock rules out.
            let _ = prometheus::register(Box::new(g.clone()));
            g
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test]
    async fn ready_only_when_every_probe_passes() {
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        let health = Health::new(vec![
            Probe::new("always", || async { Ok(()) }),
            Probe::new("toggle", move || {
                let ok = flag.load(Ordering::SeqCst);
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err("refused".to_string())
                    }
                }
            }),
        ]);
        assert!(
            !health.readiness().ready,
            "not ready before the first check"
        );
        health.check_now(Duration::from_secs(1)).await;
        let r = health.readiness();
        assert!(!r.ready);
        assert_eq!(r.dependencies[1].error.as_deref(), Some("refused"));
        up.store(true, Ordering::SeqCst);
        health.check_now(Duration::from_secs(1)).await;
        assert!(health.readiness().ready);
        assert!(health.is_up("toggle"));
        health.set_draining();
        assert!(!health.readiness().ready, "draining is never ready");
    }

    #[tokio::test]
    async fn a_hanging_probe_times_out() {
        let health = Health::new(vec![Probe::new("hang", || async {
            futures::future::pending::<()>().await;
            Ok(())
        })]);
        health.check_now(Duration::from_millis(50)).await;
        let r = health.readiness();
        assert!(!r.ready);
        assert!(r.dependencies[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("no answer"));
    }
}
