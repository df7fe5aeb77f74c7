//! The customers' listener: authentication, routing and the JSON envelope
//! every answer shares, `{"data", "total_row_count", "timeframe", "meta"}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::auth::Tokens;
use crate::catalog::{metric, Measurement, Metric, DIMENSIONS, METRICS};
use crate::config::ApiConfig;
use crate::error::RequestError;
use crate::metrics::metrics;
use crate::params::{self, Common};
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
    header_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
}

/// Answers one request, counting it by route and status.
async fn handle(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
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

/// The route a path belongs to, for metrics (a fixed set: paths carry ids).
fn route_name(path: &str) -> &'static str {
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["", "v1", "metrics"] => "metrics",
        ["", "v1", "metrics", _, "overall"] => "overall",
        ["", "v1", "metrics", _, "breakdown"] => "breakdown",
        ["", "v1", "metrics", _, "timeseries"] => "timeseries",
        ["", "v1", "dimensions"] => "dimensions",
        ["", "v1", "dimensions", _] => "dimension_values",
        _ => "other",
    }
}

async fn answer(app: &App, req: &Request<Incoming>, path: &str) -> Result<Value, RequestError> {
    if req.method() != Method::GET {
        return Err(RequestError::new(405, "method_not_allowed", "use GET"));
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
    let parts: Vec<&str> = path.split('/').collect();
    let (common, data, total) = match parts.as_slice() {
        ["", "v1", "metrics"] => {
            let c = checked(&pairs, &[], now, app.retention_s, property)?;
            (c, json!(METRICS), Some(METRICS.len()))
        }
        ["", "v1", "dimensions"] => {
            let c = checked(&pairs, &[], now, app.retention_s, property)?;
            let ids: Vec<&str> = DIMENSIONS.iter().map(|d| d.id).collect();
            (c, json!(ids), Some(ids.len()))
        }
        ["", "v1", "dimensions", dim] => {
            let c = checked(&pairs, &["limit", "page"], now, app.retention_s, property)?;
            let (values, total) = dimension_values(app, property, dim, &c, &pairs, now).await?;
            (c, values, Some(total))
        }
        ["", "v1", "metrics", id, "overall"] => {
            let c = checked(&pairs, &[], now, app.retention_s, property)?;
            let data = overall(app, property, id, &c, now).await?;
            (c, data, None)
        }
        ["", "v1", "metrics", id, "breakdown"] => {
            let c = checked(&pairs, params::LISTING, now, app.retention_s, property)?;
            let listing = params::listing(&pairs)?;
            let (rows, total) = breakdown(app, property, id, &c, &listing, now).await?;
            (c, rows, Some(total))
        }
        ["", "v1", "metrics", id, "timeseries"] => {
            let c = checked(&pairs, &["group_by"], now, app.retention_s, property)?;
            let step = params::step(&pairs, c.range)?;
            let points = timeseries(app, property, id, &c, step, now).await?;
            let count = points.len();
            (c, json!(points), Some(count))
        }
        _ => {
            return Err(RequestError::new(
                404,
                "not_found",
                format!("no route {path}: see /v1/metrics"),
            ))
        }
    };
    Ok(json!({
        "data": data,
        "total_row_count": total,
        "timeframe": [common.range.from, common.range.to],
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

/// The metric `id` and its measurement (the default unless asked).
fn measured(id: &str, c: &Common) -> Result<(&'static Metric, Measurement), RequestError> {
    let m = metric(id).ok_or_else(|| {
        RequestError::new(
            404,
            "unknown_metric",
            format!("no metric `{id}`: GET /v1/metrics lists them"),
        )
    })?;
    let measurement = c.measurement.unwrap_or(m.default_measurement);
    if !m.measurements.contains(&measurement) {
        return Err(RequestError::bad(
            "invalid_measurement",
            "measurement",
            format!("`{id}` is measured as {:?}", m.measurements),
        ));
    }
    Ok((m, measurement))
}

/// `/v1/metrics/{id}/breakdown`: one row per value of a dimension, with
/// its negative impact — how much it pulls the overall value the wrong
/// way: (its value − the overall value) × its share of the views, signed
/// so that worse is positive. Returns a page of rows and the row count.
async fn breakdown(
    app: &App,
    property: &str,
    id: &str,
    c: &Common,
    listing: &params::Listing,
    now: u32,
) -> Result<(Value, usize), RequestError> {
    let (m, measurement) = measured(id, c)?;
    let filters = c.filters();
    let (groups, total) = tokio::try_join!(
        app.store.breakdown(
            "breakdown",
            property,
            c.range,
            &filters,
            now,
            listing.group_by
        ),
        app.store
            .overview("breakdown", property, c.range, &filters, now),
    )?;
    let overall = m.value(&total, measurement);
    let all_views = m.views(&total).max(1) as f64;
    let sign = if m.higher_is_worse { 1.0 } else { -1.0 };
    let mut rows: Vec<(String, f64, u64, f64, u64)> = groups
        .into_iter()
        .map(|g| {
            let value = m.value(&g.overview, measurement);
            let views = m.views(&g.overview);
            let impact = sign * (value - overall) * views as f64 / all_views;
            (g.value, value, views, impact, g.overview.watch_time_ms)
        })
        .collect();
    rows.sort_by(|a, b| {
        let order = match listing.order_by {
            params::OrderBy::Value => a.1.total_cmp(&b.1),
            params::OrderBy::Views => a.2.cmp(&b.2),
            params::OrderBy::NegativeImpact => a.3.total_cmp(&b.3),
        };
        // Ties in value order, so pages are stable.
        let order = if listing.descending {
            order.reverse()
        } else {
            order
        };
        order.then_with(|| a.0.cmp(&b.0))
    });
    let count = rows.len();
    let page: Vec<Value> = rows
        .into_iter()
        .skip((listing.page - 1) * listing.limit)
        .take(listing.limit)
        .map(|(value, metric_value, views, impact, watch)| {
            json!({
                "value": value,
                "metric_value": number(metric_value),
                "views": views,
                "negative_impact": impact,
                "total_watch_time": watch,
            })
        })
        .collect();
    Ok((json!(page), count))
}

/// `/v1/dimensions/{dim}`: the dimension's values among the views that
/// started in the timeframe, most views first: `{value, views}`.
async fn dimension_values(
    app: &App,
    property: &str,
    dim: &str,
    c: &Common,
    pairs: &[(String, String)],
    now: u32,
) -> Result<(Value, usize), RequestError> {
    let d = crate::catalog::dimension(dim).ok_or_else(|| {
        RequestError::new(
            404,
            "unknown_dimension",
            format!("no dimension `{dim}`: GET /v1/dimensions lists them"),
        )
    })?;
    let mut with_group = pairs.to_vec();
    with_group.push(("group_by".into(), dim.into()));
    let listing = params::listing(&with_group)?;
    let filters = c.filters();
    let mut groups = app
        .store
        .breakdown(
            "dimension_values",
            property,
            c.range,
            &filters,
            now,
            d.column,
        )
        .await?;
    groups.retain(|g| g.overview.views > 0);
    groups.sort_by(|a, b| {
        b.overview
            .views
            .cmp(&a.overview.views)
            .then_with(|| a.value.cmp(&b.value))
    });
    let total = groups.len();
    let page: Vec<Value> = groups
        .into_iter()
        .skip((listing.page - 1) * listing.limit)
        .take(listing.limit)
        .map(|g| json!({ "value": g.value, "views": g.overview.views }))
        .collect();
    Ok((json!(page), total))
}

/// `/v1/metrics/{id}/timeseries`: `[time, value, views]` for every
/// `step`-second bucket from the one holding the timeframe's start, empty
/// buckets included (value 0, views 0).
async fn timeseries(
    app: &App,
    property: &str,
    id: &str,
    c: &Common,
    step: u32,
    now: u32,
) -> Result<Vec<Value>, RequestError> {
    let (m, measurement) = measured(id, c)?;
    let filters = c.filters();
    let groups = app
        .store
        .timeseries("timeseries", property, c.range, &filters, now, step)
        .await?;
    let by_time: std::collections::BTreeMap<u32, qoe_schema::metrics::Overview> = groups
        .into_iter()
        .filter_map(|g| Some((g.value.parse().ok()?, g.overview)))
        .collect();
    let first = c.range.from / step * step;
    Ok((first..c.range.to)
        .step_by(step as usize)
        .map(|t| match by_time.get(&t) {
            Some(o) => json!([t, number(m.value(o, measurement)), m.views(o)]),
            None => json!([t, 0, 0]),
        })
        .collect())
}

/// `/v1/metrics/{id}/overall`: the value over the timeframe and the same
/// length before it, with the views and times behind it.
async fn overall(
    app: &App,
    property: &str,
    id: &str,
    c: &Common,
    now: u32,
) -> Result<Value, RequestError> {
    let (m, measurement) = measured(id, c)?;
    let filters = c.filters();
    let len = c.range.to - c.range.from;
    let previous = qoe_schema::metrics::Range {
        from: c.range.from.saturating_sub(len),
        to: c.range.from,
    };
    let (this, before) = tokio::try_join!(
        app.store
            .overview("overall", property, c.range, &filters, now),
        app.store
            .overview("overall", property, previous, &filters, now),
    )?;
    let summary = |o: &qoe_schema::metrics::Overview| {
        json!({
            "value": number(m.value(o, measurement)),
            "total_views": o.views,
            "total_watch_time": o.watch_time_ms,
            "total_playing_time": o.playing_time_ms,
        })
    };
    let mut data = summary(&this);
    data["previous"] = summary(&before);
    data["previous"]["timeframe"] = json!([previous.from, previous.to]);
    data["metric"] = json!(m.id);
    data["measurement"] = json!(measurement);
    data["unit"] = json!(m.unit);
    Ok(data)
}

/// A whole value as an integer (counts, sums, quantiles), else as is.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn respond(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
