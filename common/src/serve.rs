//! The accept loop a simple HTTP/1 listener needs: one task per
//! connection up to a cap (beyond it, a fixed 503 and close), a bound on
//! the wait for a request's headers, back-off when accepting fails, and an
//! end when `shutdown` resolves. (The collector's ingest listener has its
//! own: HTTP/2, graceful drain and load shedding.)

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Written to connections over a cap: no parsing, no allocation.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: application/json\r\nContent-Length: 71\r\nConnection: close\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"connection limit\"}}\n";

/// What one listener allows a client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request's headers (slowloris guard).
    pub header_timeout: Duration,
    /// Most open connections; beyond it new ones get a 503 and are closed.
    pub max_connections: usize,
}

/// Serves `listener` with `handle` until `shutdown` resolves. `name` tags
/// the log lines.
pub async fn serve<H, Fut>(
    name: &'static str,
    listener: TcpListener,
    limits: Limits,
    handle: Arc<H>,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(listener = name, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(listener = name, "over the connection cap; refused");
            let _ = stream.try_write(TOO_MANY_CONNECTIONS);
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let answer = handle(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                // Request line and headers beyond 64 KiB: 431.
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = conn.await {
                tracing::debug!(listener = name, error = %err, "connection ended with an error");
            }
        });
    }
}
