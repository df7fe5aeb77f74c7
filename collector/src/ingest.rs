//! One ingest request, top to bottom: route → property key → content type
//! and encoding → bounded body → decode and validate → rate limit → enrich →
//! enqueue → answer. Every refusal has its status and a machine-readable
//! code; nothing a request does can disturb another.
//!
//! Routes (the property key is public, from the SDK snippet or the player's
//! configuration):
//! - `POST /v1/beacon/{key}` — beacons; what `sendBeacon` uses (it cannot
//!   set headers);
//! - `POST /v1/beacon` with header `X-QOE-Key: {key}` or `?key={key}`;
//! - `POST /v1/cmcd/{key}` (or `/v1/cmcd?key={key}`) — CMCD v2 event-mode
//!   reports (`application/cmcd` or `text/cmcd`), which players send
//!   natively. An unknown key answers `410 Gone`, which makes a player stop
//!   reporting to this target; success is `204` (`202` with the refused
//!   lines when some were refused).
//! - `POST /` on the mux-embed listener (`[mux_embed]`; the path is
//!   configurable) — the `mux-embed` SDK's beacons (`text/plain` JSON); the
//!   property key is each event's `ake` (`env_key`), so the body is read
//!   before the key is known. The SDK retries only on 5xx.
//! - `OPTIONS` on any — CORS preflight.
//!
//! A `202` or `204` means every accepted event is in the channel to Kafka.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use qoe_schema::beacon::MAX_EVENTS_PER_BATCH;
use qoe_schema::record::Record;
use qoe_schema::validate::{self, Checks};
use qoe_schema::{cmcd, mux};

use crate::channel::{Channel, EnqueueError};
use crate::config::CollectorConfig;
use crate::enrich::Enricher;
use crate::metrics::metrics;
pub use crate::route::Listener;
use crate::route::{query_key, Format, Route};
use crate::shed::{BodyBudget, Overload, TokenBucket};

/// Header carrying the property key when it is not in the path.
pub const KEY_HEADER: &str = "x-qoe-key";
// Header names as `HeaderName` constants: looking a header up by `&str`
// parses the name again on every request.
const KEY_HEADER_NAME: HeaderName = HeaderName::from_static(KEY_HEADER);
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

struct Property {
    id: String,
    bucket: Option<TokenBucket>,
}

/// Shared state of every request handler.
pub struct Ingest {
    properties: HashMap<String, Property>,
    channel: RwLock<Option<Channel>>,
    enricher: Enricher,
    cfg: CollectorConfig,
    cors_origin: HeaderValue,
    bodies: BodyBudget,
    overload: Overload,
}

/// The answer to a beacon: how many events were accepted and why the others
/// were not (`error` when none was).
#[derive(Serialize)]
struct Answer<'a> {
    accepted: usize,
    rejected: &'a [validate::Rejection],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody<'a>>,
}

/// `{"code": ..., "message": ...}`: a machine-readable code and its words.
#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

/// Why a gzip body was refused.
#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    #[error("it inflates to more than the limit")]
    TooLarge,
    #[error("{0}")]
    Invalid(std::io::Error),
}

/// `body` inflated, refusing more than `limit` bytes out: a gzip bomb
/// stops after `limit` + 1 bytes, whatever it claims.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit + 1));
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Invalid)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

/// A refusal: status, stable code, human message.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

impl Ingest {
    /// Handler state over `channel`.
    pub fn new(cfg: &CollectorConfig, channel: Channel, enricher: Enricher) -> Ingest {
        let properties = cfg
            .properties
            .iter()
            .map(|(key, id)| {
                let bucket = (cfg.ingest.rate_limit_per_property > 0).then(|| {
                    TokenBucket::new(
                        cfg.ingest.rate_limit_per_property,
                        cfg.ingest.rate_limit_burst,
                    )
                });
                (
                    key.clone(),
                    Property {
                        id: id.clone(),
                        bucket,
                    },
                )
            })
            .collect();
        Ingest {
            properties,
            channel: RwLock::new(Some(channel)),
            enricher,
            cors_origin: HeaderValue::from_str(&cfg.http.cors_allow_origin)
                .unwrap_or(HeaderValue::from_static("*")),
            bodies: BodyBudget::new(cfg.http.max_body_bytes_in_flight),
            overload: Overload::new(cfg.http.overload_lag),
            cfg: cfg.clone(),
        }
    }

    /// Measures the runtime's lag for overload shedding; runs until the
    /// process ends.
    pub async fn probe_overload(&self) {
        self.overload.probe().await
    }

    /// Stops accepting: drops the channel so the drain workers can finish.
    pub fn close(&self) {
        self.channel
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// Answers one request that arrived on `listener`.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: IpAddr,
        listener: Listener,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let label = self
            .route(listener, req.uri().path())
            .map_or("other", |r| r.format.label());
        let response = match self.handle_inner(req, peer, listener).await {
            Ok(resp) => resp,
            Err(refusal) => self.refusal(refusal),
        };
        let m = metrics();
        let seconds = started.elapsed().as_secs_f64();
        if label == "beacon" && response.status() == StatusCode::ACCEPTED {
            m.beacon_accepted.0.inc();
            m.beacon_accepted.1.observe(seconds);
        } else {
            m.requests
                .with_label_values(&[label, response.status().as_str()])
                .inc();
            m.request_seconds
                .with_label_values(&[label])
                .observe(seconds);
        }
        response
    }

    /// The route of `path` on `listener`.
    fn route<'a>(&self, listener: Listener, path: &'a str) -> Option<Route<'a>> {
        Route::of(listener, path, self.cfg.mux_embed.path())
    }

    async fn handle_inner(
        &self,
        req: Request<Incoming>,
        peer: IpAddr,
        listener: Listener,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let Some(Route {
            format,
            key: path_key,
        }) = self.route(listener, req.uri().path())
        else {
            let message = match listener {
                Listener::Ingest => "POST beacons to /v1/beacon/{property_key}, CMCD reports to /v1/cmcd/{property_key}".to_owned(),
                Listener::MuxEmbed => format!("POST mux-embed beacons to {} on this listener", self.cfg.mux_embed.path()),
            };
            return Err(refuse(StatusCode::NOT_FOUND, "not_found", message));
        };
        if req.method() == Method::OPTIONS {
            return Ok(self.preflight());
        }
        if req.method() != Method::POST {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use POST (or OPTIONS for CORS preflight)",
            ));
        }
        // Before any work: a shed request must cost next to nothing.
        if self.overload.shed() {
            return Err(self.unavailable(
                "cpu_overloaded",
                "the collector is short of CPU; retry after the given seconds",
            ));
        }
        // mux-embed names its key in the body, read first.
        let property = match format {
            Format::MuxEmbed => None,
            _ => Some(
                self.property(
                    format,
                    path_key
                        .or_else(|| header_str(req.headers(), KEY_HEADER_NAME))
                        .or_else(|| query_key(req.uri().query())),
                )?,
            ),
        };
        check_content_type(req.headers(), format)?;
        let gzip = content_encoding_is_gzip(req.headers())?;
        let client_ip = self
            .enricher
            .client_ip(peer, header_str(req.headers(), X_FORWARDED_FOR));
        // A header value shares the request's buffer: no copy to keep it.
        let user_agent = req.headers().get(header::USER_AGENT).cloned();
        let body = self.read_body(req, gzip).await?;

        let checks = self.checks();
        let bad = |err: validate::BodyError| {
            refuse(StatusCode::BAD_REQUEST, err.reason.code(), err.message)
        };
        let (decoded, property) = match property {
            Some(p) if format == Format::Cmcd => (cmcd::decode(&body, &checks).map_err(bad)?, p),
            Some(p) => (validate::decode(&body, &checks).map_err(bad)?, p),
            None => {
                let body = mux::decode(&body, &checks).map_err(bad)?;
                (body.decoded, self.property(format, Some(&body.env_key))?)
            }
        };
        let m = metrics();
        for r in &decoded.rejected {
            m.events_rejected
                .with_label_values(&[r.reason.code()])
                .inc();
            if r.reason == validate::Reason::Stale {
                m.drops.with_label_values(&["stale"]).inc();
            }
        }
        if decoded.accepted.is_empty() {
            // One event: its own reason is the answer; several: see `rejected`.
            let (code, message) = match decoded.rejected.as_slice() {
                [only] => (only.reason.code(), only.message.as_str()),
                _ => ("no_valid_events", "no event of this request is valid"),
            };
            let answer = Answer {
                accepted: 0,
                rejected: &decoded.rejected,
                error: Some(ErrorBody { code, message }),
            };
            return Ok(self.json(StatusCode::BAD_REQUEST, &answer, None));
        }
        if let Some(bucket) = &property.bucket {
            if let Err(wait) = bucket.try_take(decoded.accepted.len()) {
                m.drops.with_label_values(&["rate_limited"]).inc();
                return Err(Refusal {
                    retry_after: Some(wait),
                    ..refuse(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        "this property is over its event rate; retry after the given seconds",
                    )
                });
            }
        }

        let accepted = decoded.accepted.len();
        let user_agent = user_agent.as_ref().and_then(|v| v.to_str().ok());
        let mut enrichment = self.enricher.enrich(client_ip, user_agent);
        enrichment.source = format.source();
        let records = Record::group(
            property.id.clone(),
            checks.now_ms,
            enrichment,
            decoded.accepted,
        );
        let result = match &*self.channel.read().unwrap_or_else(|e| e.into_inner()) {
            Some(channel) => channel.enqueue(records, Instant::now()),
            None => Err(EnqueueError::Closed),
        };
        match result {
            Ok(()) => {
                m.events_accepted.inc_by(accepted as u64);
                if decoded.rejected.is_empty() && format == Format::Cmcd {
                    return Ok(self.respond(StatusCode::NO_CONTENT, Bytes::new(), None));
                }
                if decoded.rejected.is_empty() {
                    return Ok(self.respond(StatusCode::ACCEPTED, all_accepted(accepted), None));
                }
                let answer = Answer {
                    accepted,
                    rejected: &decoded.rejected,
                    error: None,
                };
                Ok(self.json(StatusCode::ACCEPTED, &answer, None))
            }
            Err(EnqueueError::Full) => {
                m.drops.with_label_values(&["channel_full"]).inc();
                Err(Refusal {
                    retry_after: Some(self.cfg.producer.retry_after_s),
                    ..refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "the collector is at capacity; retry after the given seconds",
                    )
                })
            }
            Err(EnqueueError::Journal(err)) => {
                tracing::warn!(error = %err, dir = %self.cfg.producer.spill_dir.display(), "cannot append to the journal; refusing the request");
                Err(self.unavailable(
                    "journal_unavailable",
                    "this collector cannot write its journal (disk full or failing); retry",
                ))
            }
            Err(EnqueueError::Closed) => {
                Err(self.unavailable("shutting_down", "this collector is shutting down; retry"))
            }
        }
    }

    /// The property of `key`, or the refusal its format answers.
    fn property(&self, format: Format, key: Option<&str>) -> Result<&Property, Refusal> {
        // A player answered 410 stops reporting to that target: what a
        // misconfigured CMCD target should do rather than retry forever.
        // mux-embed retries on 5xx only: any 4xx stops it.
        let (missing, unknown) = match format {
            Format::Beacon | Format::MuxEmbed => (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN),
            Format::Cmcd => (StatusCode::GONE, StatusCode::GONE),
        };
        let Some(key) = key else {
            return Err(refuse(
                missing,
                "missing_key",
                "no property key: POST to /v1/beacon/{key} (or /v1/cmcd/{key}) or send X-QOE-Key",
            ));
        };
        self.properties.get(key).ok_or_else(|| {
            refuse(
                unknown,
                "unknown_key",
                "unknown property key; check the key (mux-embed: `env_key`) in your SDK or player configuration",
            )
        })
    }

    fn checks(&self) -> Checks {
        Checks {
            now_ms: qoe_common::clock::now_ms(),
            max_age_ms: self.cfg.ingest.max_age.as_millis() as i64,
            max_future_ms: self.cfg.ingest.max_future.as_millis() as i64,
        }
    }

    /// Reads the body within the size and time limits, gunzipping if asked.
    async fn read_body(&self, req: Request<Incoming>, gzip: bool) -> Result<Bytes, Refusal> {
        let http = &self.cfg.http;
        let m = metrics();
        let too_large = |what: &str, limit: usize| {
            metrics().drops.with_label_values(&["body_too_large"]).inc();
            refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("{what} exceeds {limit} bytes; send smaller batches"),
            )
        };
        let declared =
            header_str(req.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > http.max_body_bytes) {
            return Err(too_large("body", http.max_body_bytes));
        }
        let Some(_room) = self
            .bodies
            .try_reserve(declared.unwrap_or(http.max_body_bytes))
        else {
            return Err(self.unavailable(
                "body_budget",
                "the collector is receiving as many bytes as it may at once; retry after the given seconds",
            ));
        };
        let limited = Limited::new(req.into_body(), http.max_body_bytes);
        let body = match tokio::time::timeout(http.body_timeout, limited.collect()).await {
            Err(_) => {
                m.drops.with_label_values(&["body_timeout"]).inc();
                return Err(refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the body did not arrive within {:?}", http.body_timeout),
                ));
            }
            Ok(Err(err))
                if err
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Err(too_large("body", http.max_body_bytes));
            }
            Ok(Err(err)) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "body_read_error",
                    format!("reading the body failed: {err}"),
                ))
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        if !gzip {
            return Ok(body);
        }
        let limit = http.max_decompressed_bytes;
        match gunzip(&body, limit) {
            Ok(out) => Ok(Bytes::from(out)),
            Err(GunzipError::TooLarge) => Err(too_large("decompressed body", limit)),
            Err(GunzipError::Invalid(err)) => Err(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_gzip",
                format!("Content-Encoding is gzip but the body is not: {err}"),
            )),
        }
    }

    /// A 503 with `Retry-After`, counted in `drops{reason=code}`.
    fn unavailable(&self, code: &'static str, message: &'static str) -> Refusal {
        metrics().drops.with_label_values(&[code]).inc();
        Refusal {
            retry_after: Some(self.cfg.producer.retry_after_s),
            ..refuse(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    fn preflight(&self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.cors_origin.clone(),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, content-encoding, x-qoe-key"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        resp
    }

    fn refusal(&self, r: Refusal) -> Response<Full<Bytes>> {
        #[derive(Serialize)]
        struct Refused<'a> {
            error: ErrorBody<'a>,
        }
        let body = Refused {
            error: ErrorBody {
                code: r.code,
                message: &r.message,
            },
        };
        self.json(r.status, &body, r.retry_after)
    }

    fn json(
        &self,
        status: StatusCode,
        body: &impl Serialize,
        retry_after: Option<u32>,
    ) -> Response<Full<Bytes>> {
        // Plain structs of strings and numbers always serialize.
        let body = serde_json::to_vec(body).unwrap_or_default();
        self.respond(status, Bytes::from(body), retry_after)
    }

    /// A JSON response with the CORS header (and `Retry-After` if given).
    fn respond(
        &self,
        status: StatusCode,
        body: Bytes,
        retry_after: Option<u32>,
    ) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.cors_origin.clone(),
        );
        if let Some(secs) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `{"accepted":n,"rejected":[]}`, the answer to nearly every beacon:
/// serialized once per process for every count a request can carry, and
/// shared as static bytes (no allocation, no reference count).
fn all_accepted(n: usize) -> Bytes {
    fn body(accepted: usize) -> Vec<u8> {
        let answer = Answer {
            accepted,
            rejected: &[],
            error: None,
        };
        serde_json::to_vec(&answer).unwrap_or_default()
    }
    static BODIES: OnceLock<Vec<&'static [u8]>> = OnceLock::new();
    let bodies = BODIES.get_or_init(|| {
        (0..=MAX_EVENTS_PER_BATCH)
            .map(|accepted| &*Box::leak(body(accepted).into_boxed_slice()))
            .collect()
    });
    match bodies.get(n) {
        Some(body) => Bytes::from_static(body),
        None => Bytes::from(body(n)),
    }
}

fn check_content_type(headers: &HeaderMap, format: Format) -> Result<(), Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(()); // curl and some SDK transports send none: try the route's format.
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let accepted = format.content_types();
    if accepted.iter().any(|a| mime.eq_ignore_ascii_case(a)) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type `{mime}` is not accepted here; use {}",
                accepted.join(" or ")
            ),
        ))
    }
}

fn content_encoding_is_gzip(headers: &HeaderMap) -> Result<bool, Refusal> {
    match header_str(headers, header::CONTENT_ENCODING).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "identity" => Ok(false),
        Some(v) if v == "gzip" => Ok(true),
        Some(v) => Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding `{v}` is not accepted; use gzip or none"),
        )),
    }
}
