//! Load shedding that is not the channel: per-property token buckets.
//! (The channel's own bound is in `channel.rs`; the connection cap in
//! `http.rs`.)

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket in events: `rate` per second sustained, `burst` at once.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(rate).max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes `n` tokens if there are that many; otherwise takes none and
    /// says how many seconds until there will be.
    pub fn try_take(&self, n: usize) -> Result<(), u32> {
        self.try_take_at(n, Instant::now())
    }

    fn try_take_at(&self, n: usize, now: Instant) -> Result<(), u32> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = *state;
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst);
        let want = n as f64;
        if tokens >= want {
            *state = (tokens - want, now);
            Ok(())
        } else {
            *state = (tokens, now);
            let wait = if self.rate > 0.0 {
                (want.min(self.burst) - tokens) / self.rate
            } else {
                1.0
            };
            Err(wait.ceil().max(1.0) as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let bucket = TokenBucket::new(10, 20);
        let t0 = Instant::now();
        assert!(bucket.try_take_at(20, t0).is_ok());
        assert_eq!(bucket.try_take_at(5, t0), Err(1));
        assert!(bucket
            .try_take_at(5, t0 + Duration::from_millis(500))
            .is_ok());
        assert!(bucket
            .try_take_at(1, t0 + Duration::from_millis(500))
            .is_err());
        // A long pause refills only to the burst.
        assert!(bucket
            .try_take_at(20, t0 + Duration::from_secs(100))
            .is_ok());
        assert!(bucket
            .try_take_at(1, t0 + Duration::from_secs(100))
            .is_err());
    }
}
