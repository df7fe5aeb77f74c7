//! Wall-clock time since the Unix epoch, the unit heartbeats carry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch (zero if the clock is set before it).
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}

#[cfg(test)]
mod tests {
    #[test]
    fn after_2020_and_consistent() {
        let ms = super::now_ms();
        assert!(ms > 1_577_836_800_000, "{ms}");
        assert!((super::since_epoch().as_millis() as i64 - ms).abs() < 1000);
    }
}
