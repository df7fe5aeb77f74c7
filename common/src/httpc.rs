//! A tiny HTTP/1.1 client for probes, tools and tests (GET and POST, bounded
//! by a timeout). Services' hot paths do not use it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A response: status and whole body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: hyper::HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url` with a deadline.
pub async fn get(url: &str, timeout: Duration) -> Result<Reply, String> {
    send(Method::GET, url, &[], Bytes::new(), timeout).await
}

/// Sends one request with `headers` and `body`, bounded by `timeout`.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> Result<Reply, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("bad request for {url}: {e}"))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{url}: reading body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}

/// A probe that passes when `GET url` answers 200.
pub fn probe(name: impl Into<String>, url: String) -> crate::health::Probe {
    crate::health::Probe::new(name, move || {
        let url = url.clone();
        async move {
            let reply = get(&url, Duration::from_secs(5)).await?;
            if reply.status == StatusCode::OK {
                Ok(())
            } else {
                Err(format!("{url}: {} {}", reply.status, reply.text().trim()))
            }
        }
    })
}
