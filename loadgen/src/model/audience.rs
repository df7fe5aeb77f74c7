//! What the simulated audience is like: its distributions and mixes.

use serde::{Deserialize, Serialize};

/// Distributions and mixes of the simulated audience (`[model]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Time between a viewer's reports (one SDK batch each), ms.
    pub heartbeat_interval_ms: u64,
    /// ± jitter on the interval, as a fraction of it.
    pub heartbeat_jitter: f64,
    /// Median startup time (play request → first frame), ms (log-normal).
    pub startup_median_ms: f64,
    /// Log-normal shape of the startup time.
    pub startup_sigma: f64,
    /// Share of views whose viewer leaves before the first frame.
    pub exit_before_start: f64,
    /// Share of views that fail fatally before the first frame.
    pub startup_failure: f64,
    /// Fatal playback errors per hour of playing.
    pub fatal_errors_per_hour: f64,
    /// Rebuffers per minute of playing.
    pub rebuffers_per_min: f64,
    /// Median rebuffer duration, ms (log-normal, capped below the interval).
    pub rebuffer_median_ms: f64,
    /// Log-normal shape of the rebuffer duration.
    pub rebuffer_sigma: f64,
    /// Rendition (bitrate) changes per minute of playing.
    pub renditions_per_min: f64,
    /// The bitrate ladder, kbit/s.
    pub bitrates_kbps: Vec<u32>,
    /// Seeks per minute of playing.
    pub seeks_per_min: f64,
    /// Pauses per minute of playing.
    pub pauses_per_min: f64,
    /// Median view length, seconds (log-normal, shape 1).
    pub view_median_s: f64,
    /// Share of views that end without a `viewend` (tab closed, crash).
    pub abandon: f64,
    /// Share of views that are live.
    pub live_share: f64,
    /// Titles in the catalogue; popularity falls off as 1/rank.
    pub titles: u32,
    /// Client IPs (one per country-ish region) and their weights; the
    /// collector resolves the country from the IP when it trusts the
    /// loadgen as a proxy (`X-Forwarded-For`).
    pub client_ips: Vec<(String, f64)>,
    /// User-Agent strings and their weights (device, OS, browser).
    pub user_agents: Vec<(String, f64)>,
    /// Player name, version and weight.
    pub players: Vec<(String, String, f64)>,
    /// CDNs and their weights.
    pub cdns: Vec<(String, f64)>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        let w = |items: &[(&str, f64)]| -> Vec<(String, f64)> {
            items.iter().map(|(s, w)| (s.to_string(), *w)).collect()
        };
        ModelConfig {
            heartbeat_interval_ms: 10_000,
            heartbeat_jitter: 0.1,
            startup_median_ms: 1_200.0,
            startup_sigma: 0.6,
            exit_before_start: 0.03,
            startup_failure: 0.01,
            fatal_errors_per_hour: 0.05,
            rebuffers_per_min: 0.08,
            rebuffer_median_ms: 1_500.0,
            rebuffer_sigma: 0.8,
            renditions_per_min: 0.3,
            bitrates_kbps: vec![800, 1_800, 3_500, 6_000],
            seeks_per_min: 0.03,
            pauses_per_min: 0.03,
            view_median_s: 600.0,
            abandon: 0.1,
            live_share: 0.3,
            titles: 500,
            client_ips: w(&[
                ("8.8.8.8", 40.0),
                ("81.2.69.160", 15.0),
                ("5.9.10.10", 10.0),
                ("200.160.2.3", 10.0),
                ("133.11.0.1", 10.0),
                ("49.44.10.1", 15.0),
            ]),
            user_agents: w(&[
                ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", 35.0),
                ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", 25.0),
                ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", 25.0),
                ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0", 10.0),
                ("Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/5.0 Chrome/94.0.4606.31 TV Safari/537.36", 5.0),
            ]),
            players: vec![
                ("web-player".into(), "3.2.1".into(), 50.0),
                ("ios-player".into(), "5.0.2".into(), 25.0),
                ("android-player".into(), "4.1.0".into(), 25.0),
            ],
            cdns: w(&[("cdn-a", 50.0), ("cdn-b", 35.0), ("cdn-c", 15.0)]),
        }
    }
}

impl ModelConfig {
    /// Checks ranges, naming the key.
    pub fn check(&self) -> Result<(), String> {
        let shares = [
            ("model.heartbeat_jitter", self.heartbeat_jitter),
            ("model.exit_before_start", self.exit_before_start),
            ("model.startup_failure", self.startup_failure),
            ("model.abandon", self.abandon),
            ("model.live_share", self.live_share),
        ];
        for (key, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{key} must be between 0 and 1, got {v}"));
            }
        }
        if self.heartbeat_interval_ms < 1_000 {
            return Err("model.heartbeat_interval_ms must be at least 1000".into());
        }
        let empty = [
            ("model.bitrates_kbps", self.bitrates_kbps.is_empty()),
            ("model.client_ips", self.client_ips.is_empty()),
            ("model.user_agents", self.user_agents.is_empty()),
            ("model.players", self.players.is_empty()),
            ("model.cdns", self.cdns.is_empty()),
            ("model.titles", self.titles == 0),
        ];
        for (key, is_empty) in empty {
            if is_empty {
                return Err(format!("{key} must not be empty"));
            }
        }
        Ok(())
    }
}
