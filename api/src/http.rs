//! The customers' listener: authentication, routing and the JSON envelope
//! every answer shares, `{"data", "total_row_count", "timeframe", "meta"}`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use qoe_schema::metrics::Range;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::auth::Tokens;
use crate::catalog::{DIMENSIONS, METRICS};
use crate::config::ApiConfig;
use crate::error::RequestError;
use crate::metrics::metrics;
use crate::monitoring::{self, LIVE_METRICS};
use crate::params::{self, Common};
use crate::routes::{breakdown, dimension_values, overall, timeseries};
use crate::store::Store;

/// What every request needs.
pub struct App {
    tokens: Tokens,
    store: Store,
    max_query_bytes: usize,
    retention_s: u32,
}

impl App {
    pub fn new(cfg: &ApiConfig) -> App {
        App {
            tokens: Tokens::new(&cfg.read_tokens),
            store: Store::new(&cfg.clickhouse, &cfg.query),
            max_query_bytes: cfg.http.max_query_bytes,
            retention_s: cfg.query.retention.as_secs().min(u64::from(u32::MAX)) as u32,
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (configuration key `http.listen`): {source}")]
pub struct BindError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds the customers' listener.
pub async fn bind(cfg: &ApiConfig) -> Result<TcpListener, BindError> {
    let addr = cfg.http.listen;
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// Serves `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: qoe_common::serve::Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let handle = Arc::new(move |req: Request<Incoming>| {
        let app = app.clone();
        async move { handle(&app, req).await }
    });
    qoe_common::serve::serve("api", listener, limits, handle, shutdown).await;
}

/// The dashboard's files, built into the binary: `(path, content type,
/// body)`. The page reads the api's own endpoints with the token its user
/// signs in with; nothing is fetched from elsewhere.
const DASHBOARD: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../dashboard/index.html"),
    ),
    (
        "/dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/dashboard.js"),
    ),
    (
        "/chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/chart.js"),
    ),
    (
        "/views.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/views.js"),
    ),
    (
        "/dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/dashboard.css"),
    ),
];

/// Only this origin's files and endpoints; no inline script.
const DASHBOARD_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                                img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// One of the dashboard's files, for a `GET` of its path.
fn dashboard_file(req: &Request<Incoming>, path: &str) -> Option<Response<Full<Bytes>>> {
    if req.method() != Method::GET {
        return None;
    }
    let (_, content_type, body) = DASHBOARD.iter().find(|(p, _, _)| *p == path)?;
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(DASHBOARD_POLICY),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    Some(resp)
}

/// Answers one request, counting it by route and status.
async fn handle(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    if let Some(file) = dashboard_file(&req, &path) {
        metrics()
            .responses
            .with_label_values(&["dashboard", file.status().as_str()])
            .inc();
        return file;
    }
    let route = route_name(&path);
    let answer = match answer(app, &req, &path).await {
        Ok(body) => respond(
            StatusCode::OK,
            serde_json::to_vec(&body).unwrap_or_default(),
        ),
        Err(err) => {
            let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
            respond(status, err.body())
        }
    };
    let m = metrics();
    m.request_seconds
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    m.responses
        .with_label_values(&[route, answer.status().as_str()])
        .inc();
    answer
}

/// Every route: its path as `openapi.json` writes it, and the query
/// parameters it takes besides the common ones. `openapi.json` must list
/// exactly these (a test holds them together).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/metrics", &[]),
    ("/v1/metrics/{metric}/overall", &[]),
    ("/v1/metrics/{metric}/breakdown", params::LISTING),
    ("/v1/metrics/{metric}/timeseries", &["group_by"]),
    ("/v1/dimensions", &[]),
    ("/v1/dimensions/{dimension}", &["limit", "page"]),
    ("/v1/video-views", &["viewer_id", "limit", "page"]),
    ("/v1/video-views/{view_id}", &[]),
    ("/v1/errors", &[]),
    ("/v1/monitoring/metrics", &[]),
    ("/v1/monitoring/metrics/{metric}/timeseries", &[]),
    (
        "/v1/monitoring/metrics/{metric}/breakdown",
        &[
            "group_by",
            "order_by",
            "order_direction",
            "limit",
            "page",
            "timestamp",
        ],
    ),
    ("/v1/openapi.json", &[]),
];

/// The OpenAPI 3.1 document of [`ROUTES`], served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The route `path` takes, and the segments its `{…}` placeholders
/// matched.
fn route_of(path: &str) -> Option<(&'static str, &'static [&'static str], Vec<&str>)> {
    let parts: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find_map(|(pattern, allowed)| {
        let want: Vec<&str> = pattern.split('/').collect();
        if want.len() != parts.len() {
            return None;
        }
        let mut captured = Vec::new();
        for (w, p) in want.iter().zip(&parts) {
            if w.starts_with('{') {
                captured.push(*p);
            } else if w != p {
                return None;
            }
        }
        Some((*pattern, *allowed, captured))
    })
}

/// The route a path belongs to, for metrics (a fixed set: paths carry ids).
fn route_name(path: &str) -> &'static str {
    route_of(path).map_or("other", |(pattern, _, _)| pattern)
}

async fn answer(app: &App, req: &Request<Incoming>, path: &str) -> Result<Value, RequestError> {
    if req.method() != Method::GET {
        return Err(RequestError::new(405, "method_not_allowed", "use GET"));
    }
    let Some((route, allowed, captured)) = route_of(path) else {
        return Err(RequestError::new(
            404,
            "not_found",
            format!("no route {path}: see /v1/openapi.json"),
        ));
    };
    if route == "/v1/openapi.json" {
        // A constant, checked by the tests below.
        return Ok(serde_json::from_str(OPENAPI).unwrap_or_default());
    }
    let query = req.uri().query().unwrap_or("");
    if query.len() > app.max_query_bytes {
        return Err(RequestError::new(
            414,
            "query_too_long",
            format!("the query string is over {} bytes", app.max_query_bytes),
        ));
    }
    let auth = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
    let property = app.tokens.property(auth)?;
    let pairs = params::pairs(query)?;
    let now = (qoe_common::clock::now_ms() / 1000) as u32;
    let c = checked(&pairs, allowed, now, app.retention_s, property)?;
    let id = captured.first().copied().unwrap_or_default();
    let mut timeframe = c.range;
    let (data, total) = match route {
        "/v1/monitoring/metrics" => (json!(LIVE_METRICS), Some(LIVE_METRICS.len())),
        "/v1/monitoring/metrics/{metric}/timeseries" => {
            let (points, range) =
                monitoring::timeseries(&app.store, property, id, &c, &pairs, now).await?;
            timeframe = range;
            let count = points.len();
            (json!(points), Some(count))
        }
        "/v1/monitoring/metrics/{metric}/breakdown" => {
            let (rows, total, bucket) =
                monitoring::breakdown(&app.store, property, id, &c, &pairs, now).await?;
            timeframe = Range {
                from: bucket,
                to: bucket + qoe_schema::metrics::live::BUCKET_S,
            };
            (rows, Some(total))
        }
        "/v1/metrics" => (json!(METRICS), Some(METRICS.len())),
        "/v1/dimensions" => {
            let ids: Vec<&str> = DIMENSIONS.iter().map(|d| d.id).collect();
            let n = ids.len();
            (json!(ids), Some(n))
        }
        "/v1/dimensions/{dimension}" => {
            let (values, total) =
                dimension_values(&app.store, property, id, &c, &pairs, now).await?;
            (values, Some(total))
        }
        "/v1/metrics/{metric}/overall" => (overall(&app.store, property, id, &c, now).await?, None),
        "/v1/errors" => {
            let (rows, total) = crate::views::errors(&app.store, property, &c, now).await?;
            (rows, Some(total))
        }
        "/v1/video-views" => {
            let (rows, total) = crate::views::list(&app.store, property, &c, &pairs, now).await?;
            (rows, Some(total))
        }
        "/v1/video-views/{view_id}" => (
            crate::views::one(&app.store, property, id, app.retention_s, now).await?,
            None,
        ),
        "/v1/metrics/{metric}/breakdown" => {
            let listing = params::listing(&pairs)?;
            let (rows, total) = breakdown(&app.store, property, id, &c, &listing, now).await?;
            (rows, Some(total))
        }
        _ => {
            let step = params::step(&pairs, c.range)?;
            let points = timeseries(&app.store, property, id, &c, step, now).await?;
            let count = points.len();
            (json!(points), Some(count))
        }
    };
    Ok(json!({
        "data": data,
        "total_row_count": total,
        "timeframe": [timeframe.from, timeframe.to],
        "meta": { "property_id": property },
    }))
}

/// The common parameters, allowed keys checked, and the property named
/// (if any) the token's.
fn checked(
    pairs: &[(String, String)],
    allowed: &[&str],
    now: u32,
    retention_s: u32,
    property: &str,
) -> Result<Common, RequestError> {
    params::only(pairs, allowed)?;
    let c = params::common(pairs, now, retention_s)?;
    if c.property.as_deref().is_some_and(|p| p != property) {
        return Err(RequestError::new(
            403,
            "forbidden_property",
            "this token reads another property's data",
        ));
    }
    Ok(c)
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document and the router agree: the same paths, and on each the
    /// same query parameters.
    #[test]
    fn openapi_lists_every_route_and_its_parameters() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
        let mut routed: Vec<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
        documented.sort_unstable();
        routed.sort_unstable();
        assert_eq!(documented, routed);
        let component = |r: &str| {
            let name = r.trim_start_matches("#/components/parameters/");
            doc["components"]["parameters"][name]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        for (route, allowed) in ROUTES {
            let mut names: Vec<String> = paths[*route]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] != "path")
                .map(|p| match p["$ref"].as_str() {
                    Some(r) => component(r),
                    None => p["name"].as_str().unwrap().to_owned(),
                })
                .collect();
            names.sort_unstable();
            let mut want: Vec<String> = if *route == "/v1/openapi.json" {
                Vec::new()
            } else {
                ["timeframe[]", "filters[]", "measurement", "property_id"]
                    .iter()
                    .chain(allowed.iter())
                    .map(|s| (*s).to_owned())
                    .collect()
            };
            want.sort_unstable();
            assert_eq!(names, want, "{route}");
        }
    }

    #[test]
    fn paths_find_their_route() {
        assert_eq!(
            route_name("/v1/metrics/views/breakdown"),
            "/v1/metrics/{metric}/breakdown"
        );
        assert_eq!(
            route_name("/v1/dimensions/cdn"),
            "/v1/dimensions/{dimension}"
        );
        assert_eq!(route_name("/v1/metrics/views"), "other");
        assert_eq!(route_name("/v1/metrics/views/overall/x"), "other");
        let (_, _, captured) = route_of("/v1/metrics/rebuffer_percentage/timeseries").unwrap();
        assert_eq!(captured, ["rebuffer_percentage"]);
    }

    #[test]
    fn every_error_code_is_documented() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let codes = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
            ["code"]["enum"];
        let readme = include_str!("../README.md");
        for code in codes.as_array().unwrap() {
            let code = code.as_str().unwrap();
            assert!(
                readme.contains(&format!("`{code}`")),
                "api/README.md lacks `{code}`"
            );
        }
        let sources = [
            include_str!("auth.rs"),
            include_str!("http.rs"),
            include_str!("monitoring.rs"),
            include_str!("params.rs"),
            include_str!("routes.rs"),
            include_str!("store.rs"),
            include_str!("views.rs"),
        ]
        .concat();
        for code in codes.as_array().unwrap() {
            let code = code.as_str().unwrap();
            assert!(
                sources.contains(&format!("\"{code}\"")),
                "`{code}` is never returned"
            );
        }
    }
}
