//! The ingest listener: accepts connections up to a cap (beyond it, a cheap
//! `503` and close), serves HTTP/1.1 keep-alive and HTTP/2 with header and
//! body timeouts, and on shutdown stops accepting and lets in-flight
//! requests finish.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use qoe_common::serve::TOO_MANY_CONNECTIONS;

use crate::config::HttpConfig;
use crate::ingest::{Ingest, Listener};
use crate::metrics::metrics;

/// Serves `listener` (which `which` says) until `shutdown` resolves, then
/// waits for in-flight requests until `deadline`.
pub async fn serve(
    listener: TcpListener,
    which: Listener,
    ingest: Arc<Ingest>,
    cfg: &HttpConfig,
    shutdown: impl std::future::Future<Output = ()>,
    deadline: impl Fn() -> Instant,
) {
    let m = metrics();
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        // Request line and headers beyond 64 KiB: 431 (hyper's default
        // allows ~400 KiB per connection).
        .max_buf_size(64 * 1024)
        .keep_alive(true)
        // Otherwise, while a request is in flight, hyper polls the socket
        // for an early EOF, and to do so reserves a fresh 8 KiB read buffer
        // (the old one is still shared with the request's body): one
        // allocation and copy per request. A client that closes early only
        // loses its own answer; the records are accepted or not all the same.
        .half_close(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            m.drops.with_label_values(&["max_connections"]).inc();
            let _ = stream.try_write(TOO_MANY_CONNECTIONS);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ingest = ingest.clone();
        let peer_ip = peer_ip(peer);
        let service = hyper::service::service_fn(move |req| {
            let ingest = ingest.clone();
            async move { Ok::<_, Infallible>(ingest.handle(req, peer_ip, which).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        m.open_connections.inc();
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            metrics().open_connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    let left = deadline().saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running at the shutdown deadline");
    }
}

fn peer_ip(peer: SocketAddr) -> std::net::IpAddr {
    // IPv4 peers on a dual-stack socket arrive as ::ffff:a.b.c.d.
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(std::net::IpAddr::V6(v6)),
        ip => ip,
    }
}
