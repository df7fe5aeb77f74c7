//! The metric routes' answers: each turns checked parameters into the
//! `data` of the envelope, from one or two store queries.

use serde_json::{json, Value};

use crate::catalog::{metric, Measurement, Metric};
use crate::error::RequestError;
use crate::params::{self, Common};
use crate::store::{Read, Store};

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
pub async fn breakdown(
    store: &Store,
    property: &str,
    id: &str,
    c: &Common,
    listing: &params::Listing,
    now: u32,
) -> Result<(Value, usize), RequestError> {
    let (m, measurement) = measured(id, c)?;
    let filters = c.filters();
    let read = c.read("breakdown", property, &filters, now);
    let fields = m.fields_with(&["watch_time_ms"]);
    let (groups, total) = tokio::try_join!(
        store.breakdown(&read, listing.group_by, &fields),
        store.overview(&read, &fields),
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
pub async fn dimension_values(
    store: &Store,
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
    let read = c.read("dimension_values", property, &filters, now);
    let mut groups = store.breakdown(&read, d.column, &["views"]).await?;
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
pub async fn timeseries(
    store: &Store,
    property: &str,
    id: &str,
    c: &Common,
    step: u32,
    now: u32,
) -> Result<Vec<Value>, RequestError> {
    let (m, measurement) = measured(id, c)?;
    let filters = c.filters();
    let read = c.read("timeseries", property, &filters, now);
    let groups = store.timeseries(&read, step, &m.fields_with(&[])).await?;
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
pub async fn overall(
    store: &Store,
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
    let this_period = c.read("overall", property, &filters, now);
    let period_before = Read {
        range: previous,
        ..this_period
    };
    let fields = m.fields_with(&[
        "views",
        "watch_time_ms",
        "playing_time_ms",
        "ended_in_range",
    ]);
    let (this, before) = tokio::try_join!(
        store.overview(&this_period, &fields),
        store.overview(&period_before, &fields),
    )?;
    let summary = |o: &qoe_schema::metrics::Overview| {
        json!({
            "value": number(m.value(o, measurement)),
            "total_views": o.views,
            "total_watch_time": o.watch_time_ms,
            "total_playing_time": o.playing_time_ms,
            "total_ended_views": o.ended_in_range,
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
pub(crate) fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}
