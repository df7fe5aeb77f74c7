//! The admin listener: `/healthz`, `/readyz` and `/metrics`.
//!
//! - `/healthz` — 200 while the process serves HTTP at all (liveness).
//! - `/readyz` — 200 when every dependency probe passed and the service is
//!   not draining, else 503; the body is JSON naming each dependency.
//! - `/metrics` — Prometheus text format of the process-wide registry.
//!
//! It is deliberately separate from any public listener so that probes and
//! scrapes keep working while the public side sheds load.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use prometheus::Encoder;
use tokio::net::TcpListener;

use crate::health::Health;

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (configuration key `admin.listen`): {source}")]
pub struct BindError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// A bound admin listener, not yet serving.
pub struct AdminServer {
    listener: TcpListener,
    health: Arc<Health>,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, health: Arc<Health>) -> Result<Self, BindError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })?;
        Ok(AdminServer { listener, health })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        tracing::info!(addr = %self.local_addr(), "admin listener up (/healthz /readyz /metrics)");
        let health = self.health;
        let handle = Arc::new(move |req: Request<Incoming>| {
            let answer = route(&req, &health);
            async move { answer }
        });
        crate::serve::serve(
            "admin",
            self.listener,
            // Scrapers and probes: a few connections at a time.
            crate::serve::Limits {
                header_timeout: std::time::Duration::from_secs(5),
                max_connections: 256,
            },
            handle,
            shutdown,
        )
        .await;
    }
}

fn route(req: &Request<Incoming>, health: &Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let readiness = health.readiness();
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_vec(&readiness).unwrap_or_default();
            with_type(status, body, "application/json")
        }
        "/metrics" => {
            let mut buf = Vec::with_capacity(16 * 1024);
            let encoder = prometheus::TextEncoder::new();
            if let Err(err) = encoder.encode(&prometheus::gather(), &mut buf) {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot encode metrics: {err}\n"),
                );
            }
            with_type(StatusCode::OK, buf, "text/plain; version=0.0.4")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the admin listener serves /healthz, /readyz and /metrics\n",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    with_type(
        status,
        body.as_bytes().to_vec(),
        "text/plain; charset=utf-8",
    )
}

fn with_type(
    status: StatusCode,
    body: Vec<u8>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A running admin listener plus its probe poller.
pub struct AdminHandle {
    /// The readiness state `/readyz` reports; services mark draining here.
    pub health: Arc<Health>,
    /// Where the listener is bound.
    pub addr: SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl AdminHandle {
    /// Stops the listener and the poller.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds the admin listener of `cfg` and starts polling `probes`.
pub async fn start(
    cfg: &crate::config::AdminConfig,
    probes: Vec<crate::health::Probe>,
) -> Result<AdminHandle, BindError> {
    let health = Health::new(probes);
    let server = AdminServer::bind(cfg.listen, health.clone()).await?;
    let addr = server.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let poller = tokio::spawn(health.clone().poll(
        cfg.probe_interval,
        cfg.probe_timeout,
        stop.clone().cancelled_owned(),
    ));
    let listener = tokio::spawn(server.serve(stop.clone().cancelled_owned()));
    Ok(AdminHandle {
        health,
        addr,
        stop,
        tasks: vec![poller, listener],
    })
}
