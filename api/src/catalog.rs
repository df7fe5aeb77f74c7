//! What can be asked for: the metrics (each mapped onto its definition in
//! `schema::metrics`) and the dimensions (each mapped onto a fixed column of
//! the `views` table — user text never becomes SQL).

use serde::Serialize;

use qoe_schema::metrics::Overview;

/// How a metric is summarised over views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measurement {
    Count,
    Sum,
    Avg,
    Percentage,
    Median,
    #[serde(rename = "90th")]
    P90,
    #[serde(rename = "95th")]
    P95,
}

impl Measurement {
    pub fn parse(s: &str) -> Option<Measurement> {
        Some(match s {
            "count" => Measurement::Count,
            "sum" => Measurement::Sum,
            "avg" => Measurement::Avg,
            "percentage" => Measurement::Percentage,
            "median" => Measurement::Median,
            "90th" => Measurement::P90,
            "95th" => Measurement::P95,
            _ => return None,
        })
    }
}

/// One metric of the API.
#[derive(Debug, Serialize)]
pub struct Metric {
    pub id: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    /// The definition, as `schema::metrics` states it.
    pub definition: &'static str,
    pub default_measurement: Measurement,
    /// Every measurement it answers to.
    pub measurements: &'static [Measurement],
    /// Whether a higher value is worse (failures, rebuffering, startup).
    pub higher_is_worse: bool,
    /// Whether it counts the views that ended in the timeframe (QoE), not
    /// those that started in it (engagement).
    #[serde(skip)]
    by_end: bool,
    /// The [`Overview`] fields `value` reads (the api computes no others).
    #[serde(skip)]
    fields: &'static [&'static str],
    #[serde(skip)]
    value: fn(&Overview, Measurement) -> f64,
}

impl Metric {
    /// Its value in an overview.
    pub fn value(&self, o: &Overview, m: Measurement) -> f64 {
        (self.value)(o, m)
    }

    /// The [`Overview`] fields a query must compute for [`Metric::value`]
    /// and [`Metric::views`], and `extra`.
    pub fn fields_with(&self, extra: &[&'static str]) -> Vec<&'static str> {
        let views = if self.by_end {
            "ended_in_range"
        } else {
            "views"
        };
        let mut fields: Vec<&'static str> = self.fields.to_vec();
        fields.push(views);
        fields.extend_from_slice(extra);
        fields
    }

    /// The views its value is computed over.
    pub fn views(&self, o: &Overview) -> u64 {
        if self.by_end {
            o.ended_in_range
        } else {
            o.views
        }
    }
}

use Measurement::*;

/// Every metric, in the order `/v1/metrics` lists them.
pub const METRICS: &[Metric] = &[
    Metric {
        id: "views",
        name: "Views",
        unit: "views",
        definition: "Views that started in the timeframe.",
        default_measurement: Count,
        measurements: &[Count],
        higher_is_worse: false,
        by_end: false,
        fields: &["views"],
        value: |o, _| o.views as f64,
    },
    Metric {
        id: "unique_viewers",
        name: "Unique viewers",
        unit: "viewers",
        definition: "Distinct viewer_id among the views that started in the timeframe.",
        default_measurement: Count,
        measurements: &[Count],
        higher_is_worse: false,
        by_end: false,
        fields: &["unique_viewers"],
        value: |o, _| o.unique_viewers as f64,
    },
    Metric {
        id: "watch_time",
        name: "Watch time",
        unit: "ms",
        definition: "Total time since the play request, startup and rebuffering included and pauses not, of the views that started in the timeframe.",
        default_measurement: Sum,
        measurements: &[Sum],
        higher_is_worse: false,
        by_end: false,
        fields: &["watch_time_ms"],
        value: |o, _| o.watch_time_ms as f64,
    },
    Metric {
        id: "playing_time",
        name: "Playing time",
        unit: "ms",
        definition: "Total time with frames advancing, of the views that started in the timeframe.",
        default_measurement: Sum,
        measurements: &[Sum],
        higher_is_worse: false,
        by_end: false,
        fields: &["playing_time_ms"],
        value: |o, _| o.playing_time_ms as f64,
    },
    Metric {
        id: "video_startup_time",
        name: "Video startup time",
        unit: "ms",
        definition: "Play request to first moving frame, over views that ended in the timeframe and started playing (exact quantile).",
        default_measurement: Median,
        measurements: &[Median, P90, P95],
        higher_is_worse: true,
        by_end: true,
        fields: &["startup_time_ms_p50", "startup_time_ms_p90", "startup_time_ms_p95"],
        value: |o, m| match m {
            P90 => o.startup_time_ms_p90.into(),
            P95 => o.startup_time_ms_p95.into(),
            _ => o.startup_time_ms_p50.into(),
        },
    },
    Metric {
        id: "playback_failure_percentage",
        name: "Playback failure percentage",
        unit: "%",
        definition: "Views that ended in a fatal error, of all views that ended in the timeframe.",
        default_measurement: Percentage,
        measurements: &[Percentage],
        higher_is_worse: true,
        by_end: true,
        fields: &["playback_failure_pct"],
        value: |o, _| o.playback_failure_pct,
    },
    Metric {
        id: "exits_before_video_start",
        name: "Exits before video start",
        unit: "%",
        definition: "Ended views where play was requested but no frame ever moved, failures excluded, of all views that ended in the timeframe.",
        default_measurement: Percentage,
        measurements: &[Percentage],
        higher_is_worse: true,
        by_end: true,
        fields: &["exits_before_start_pct"],
        value: |o, _| o.exits_before_start_pct,
    },
    Metric {
        id: "rebuffer_percentage",
        name: "Rebuffer percentage",
        unit: "%",
        definition: "Rebuffering time over watch time, of the views that ended in the timeframe.",
        default_measurement: Percentage,
        measurements: &[Percentage],
        higher_is_worse: true,
        by_end: true,
        fields: &["rebuffer_pct"],
        value: |o, _| o.rebuffer_pct,
    },
    Metric {
        id: "rebuffer_frequency",
        name: "Rebuffer frequency",
        unit: "rebuffers/min",
        definition: "Rebuffer events per minute of watch time, of the views that ended in the timeframe.",
        default_measurement: Avg,
        measurements: &[Avg],
        higher_is_worse: true,
        by_end: true,
        fields: &["rebuffer_frequency_per_min"],
        value: |o, _| o.rebuffer_frequency_per_min,
    },
    Metric {
        id: "rebuffer_duration",
        name: "Rebuffer duration",
        unit: "ms",
        definition: "Rebuffering time per view, of the views that ended in the timeframe.",
        default_measurement: Avg,
        measurements: &[Avg],
        higher_is_worse: true,
        by_end: true,
        fields: &["rebuffer_duration_ms_per_view"],
        value: |o, _| o.rebuffer_duration_ms_per_view,
    },
    Metric {
        id: "weighted_average_bitrate",
        name: "Weighted average bitrate",
        unit: "kbps",
        definition: "Each view's average bitrate weighted by its playing time, of the views that ended in the timeframe.",
        default_measurement: Avg,
        measurements: &[Avg],
        higher_is_worse: false,
        by_end: true,
        fields: &["avg_bitrate_kbps"],
        value: |o, _| o.avg_bitrate_kbps,
    },
];

/// The metric called `id`.
pub fn metric(id: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.id == id)
}

/// One dimension: its API name, the `views` column behind it, and whether
/// its values are numbers.
#[derive(Debug, Serialize)]
pub struct Dimension {
    pub id: &'static str,
    #[serde(skip)]
    pub column: &'static str,
    #[serde(skip)]
    pub numeric: bool,
}

const fn dim(id: &'static str, column: &'static str) -> Dimension {
    Dimension {
        id,
        column,
        numeric: false,
    }
}

/// Every dimension views can be filtered (and broken down) by.
pub const DIMENSIONS: &[Dimension] = &[
    dim("country", "country"),
    Dimension {
        id: "asn",
        column: "asn",
        numeric: true,
    },
    dim("operating_system", "os"),
    dim("browser", "browser"),
    dim("device_type", "device_type"),
    dim("player_name", "player_name"),
    dim("player_version", "player_version"),
    dim("cdn", "cdn"),
    dim("stream_type", "stream_type"),
    dim("video_id", "video_id"),
    dim("video_title", "video_title"),
    dim("error_code", "error_code"),
    // `beacon`, `cmcd` or `mux-embed`: the wire format the view came in.
    dim("source", "source"),
];

/// The dimension called `id`.
pub fn dimension(id: &str) -> Option<&'static Dimension> {
    DIMENSIONS.iter().find(|d| d.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_reads_its_own_overview_field() {
        let o = Overview {
            views: 1,
            unique_viewers: 2,
            watch_time_ms: 3,
            playing_time_ms: 4,
            ended_in_range: 5,
            playback_failure_pct: 6.0,
            exits_before_start_pct: 7.0,
            startup_time_ms_p50: 8,
            startup_time_ms_p90: 9,
            startup_time_ms_p95: 10,
            rebuffer_pct: 11.0,
            rebuffer_frequency_per_min: 12.0,
            rebuffer_duration_ms_per_view: 13.0,
            avg_bitrate_kbps: 14.0,
        };
        let got: Vec<f64> = METRICS
            .iter()
            .map(|m| m.value(&o, m.default_measurement))
            .collect();
        assert_eq!(
            got,
            [1.0, 2.0, 3.0, 4.0, 8.0, 6.0, 7.0, 11.0, 12.0, 13.0, 14.0]
        );
        let startup = metric("video_startup_time").unwrap();
        assert_eq!(startup.value(&o, P95), 10.0);
        assert_eq!(startup.value(&o, P90), 9.0);
    }

    #[test]
    fn a_metric_reads_only_the_fields_it_asks_for() {
        let full = Overview {
            views: 1,
            unique_viewers: 2,
            watch_time_ms: 3,
            playing_time_ms: 4,
            ended_in_range: 5,
            playback_failure_pct: 6.0,
            exits_before_start_pct: 7.0,
            startup_time_ms_p50: 8,
            startup_time_ms_p90: 9,
            startup_time_ms_p95: 10,
            rebuffer_pct: 11.0,
            rebuffer_frequency_per_min: 12.0,
            rebuffer_duration_ms_per_view: 13.0,
            avg_bitrate_kbps: 14.0,
        };
        let names: Vec<&str> = qoe_schema::metrics::OVERVIEW_METRICS
            .iter()
            .map(|m| m.name)
            .collect();
        for m in METRICS {
            let fields = m.fields_with(&[]);
            assert!(fields.iter().all(|f| names.contains(f)), "{}", m.id);
            // What a query selecting only those fields returns.
            let mut json = serde_json::to_value(&full).unwrap();
            json.as_object_mut()
                .unwrap()
                .retain(|k, _| fields.contains(&k.as_str()));
            let partial: Overview = serde_json::from_value(json).unwrap();
            for &measurement in m.measurements {
                assert_eq!(
                    m.value(&partial, measurement),
                    m.value(&full, measurement),
                    "{} {measurement:?}",
                    m.id
                );
            }
            assert_eq!(m.views(&partial), m.views(&full), "{}", m.id);
        }
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = METRICS.iter().map(|m| m.id).collect();
        ids.extend(DIMENSIONS.iter().map(|d| d.id));
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    /// A dimension the seal job does not roll up still reads right, but
    /// view by view: every one must be rolled up.
    #[test]
    fn every_dimension_is_rolled_up() {
        for d in DIMENSIONS {
            assert!(
                qoe_schema::metrics::seal::ROLLED_UP.contains(&d.column),
                "{} is missing from schema::metrics::seal::ROLLED_UP",
                d.column
            );
        }
    }
}
