//! Reading the pipeline's numbers the way its customers do: through the
//! api (`qoe-api`), with a read token.

use std::time::Duration;

use qoe_schema::metrics::{Overview, Range};

/// Where the api is, and the token to read the target property with.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub url: String,
    pub token: String,
}

impl ApiClient {
    /// `GET /v1/metrics/{metric}/overall` over `range`: the answer's `data`.
    pub async fn overall(
        &self,
        metric: &str,
        range: Range,
        measurement: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        let mut path = format!(
            "/v1/metrics/{metric}/overall?timeframe[]={}&timeframe[]={}",
            range.from, range.to
        );
        if let Some(m) = measurement {
            path.push_str(&format!("&measurement={m}"));
        }
        Ok(self.get(&path).await?["data"].clone())
    }

    /// `GET path` (with its query string): the whole answer, or the error
    /// it came with.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, String> {
        let url = format!("{}{path}", self.url);
        let auth = format!("Bearer {}", self.token);
        let reply = qoe_common::httpc::send(
            hyper::Method::GET,
            &url,
            &[("authorization", auth.as_str())],
            Vec::new().into(),
            Duration::from_secs(30),
        )
        .await?;
        let body: serde_json::Value =
            serde_json::from_slice(&reply.body).map_err(|e| format!("{url}: not JSON ({e})"))?;
        if reply.status != 200 {
            return Err(format!("{url}: {} {}", reply.status, body["error"]));
        }
        Ok(body)
    }

    /// Every metric of the [`Overview`] over `range`, one request per
    /// metric and measurement.
    pub async fn overview(&self, range: Range) -> Result<Overview, String> {
        let value = |data: &serde_json::Value| data["value"].as_f64().unwrap_or(f64::NAN);
        let whole = |data: &serde_json::Value, key: &str| data[key].as_u64().unwrap_or(u64::MAX);
        let views = self.overall("views", range, None).await?;
        let startup = |m| self.overall("video_startup_time", range, Some(m));
        let (p50, p90, p95) =
            tokio::try_join!(startup("median"), startup("90th"), startup("95th"))?;
        let of = |metric| self.overall(metric, range, None);
        let (viewers, failures, exits, rebuffer, frequency, duration, bitrate) = tokio::try_join!(
            of("unique_viewers"),
            of("playback_failure_percentage"),
            of("exits_before_video_start"),
            of("rebuffer_percentage"),
            of("rebuffer_frequency"),
            of("rebuffer_duration"),
            of("weighted_average_bitrate"),
        )?;
        Ok(Overview {
            views: whole(&views, "value"),
            unique_viewers: whole(&viewers, "value"),
            watch_time_ms: whole(&views, "total_watch_time"),
            playing_time_ms: whole(&views, "total_playing_time"),
            ended_in_range: whole(&views, "total_ended_views"),
            playback_failure_pct: value(&failures),
            exits_before_start_pct: value(&exits),
            startup_time_ms_p50: whole(&p50, "value") as u32,
            startup_time_ms_p90: whole(&p90, "value") as u32,
            startup_time_ms_p95: whole(&p95, "value") as u32,
            rebuffer_pct: value(&rebuffer),
            rebuffer_frequency_per_min: value(&frequency),
            rebuffer_duration_ms_per_view: value(&duration),
            avg_bitrate_kbps: value(&bitrate),
        })
    }
}
