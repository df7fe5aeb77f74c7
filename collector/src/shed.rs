//! Load shedding that is not the channel: per-property token buckets, a
//! budget for request bodies being received, and the runtime-lag probe
//! that sheds when the process is short of CPU. (The channel's own bound
//! is in `channel.rs`; the connection cap in `http.rs`.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::metrics::metrics;

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

/// Bytes of request bodies being received at once, across connections:
/// without it, `max_connections` slow clients each sending up to
/// `max_body_bytes` could hold gigabytes. Counted in KiB.
pub struct BodyBudget {
    kib: Semaphore,
}

impl BodyBudget {
    /// A budget of `bytes` (at least one KiB).
    pub fn new(bytes: usize) -> Self {
        BodyBudget {
            kib: Semaphore::new(kib(bytes)),
        }
    }

    /// Reserves room for a body of `bytes`, or `None` if the budget has
    /// less left. The room is given back when the permit drops.
    pub fn try_reserve(&self, bytes: usize) -> Option<SemaphorePermit<'_>> {
        let n = u32::try_from(kib(bytes)).ok()?;
        self.kib.try_acquire_many(n).ok()
    }
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

/// How late the runtime runs a task that asked to wake up: when every
/// core is busy, requests wait in the run queue before any handler sees
/// them, and answering more of them only lengthens the wait for all. Above
/// `limit` the collector sheds a share of new requests (503 +
/// `Retry-After`) that grows with the lag, so the ones it takes are
/// answered within about `limit` plus their own work.
pub struct Overload {
    /// Smoothed lag, microseconds.
    lag_us: AtomicU64,
    limit: Duration,
    /// Spreads the shed share evenly over requests.
    ticket: AtomicU64,
}

/// The probe's period: short enough to react within ~100 ms.
const PROBE_EVERY: Duration = Duration::from_millis(10);

impl Overload {
    /// A probe shedding above `limit` (zero: never).
    pub fn new(limit: Duration) -> Self {
        Overload {
            lag_us: AtomicU64::new(0),
            limit,
            ticket: AtomicU64::new(0),
        }
    }

    /// Measures the lag until the process ends: sleeps `PROBE_EVERY` and
    /// takes the overshoot, smoothed over about ten samples.
    pub async fn probe(&self) {
        let m = metrics();
        loop {
            let asked = Instant::now();
            tokio::time::sleep(PROBE_EVERY).await;
            let late = asked.elapsed().saturating_sub(PROBE_EVERY);
            let lag = self.record(late);
            m.runtime_lag.set(lag.as_secs_f64());
        }
    }

    /// Folds one sample into the smoothed lag and returns it.
    fn record(&self, late: Duration) -> Duration {
        let sample = late.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.lag_us.load(Ordering::Relaxed);
        let new = (old * 9 + sample) / 10;
        self.lag_us.store(new, Ordering::Relaxed);
        Duration::from_micros(new)
    }

    /// Whether to shed this request: none below the limit, all at twice
    /// it, a share in between.
    pub fn shed(&self) -> bool {
        if self.limit.is_zero() {
            return false;
        }
        let lag = self.lag_us.load(Ordering::Relaxed);
        let limit = self.limit.as_micros() as u64;
        if lag <= limit {
            return false;
        }
        let per_mille = ((lag - limit) * 1000 / limit).min(1000);
        // Fibonacci hashing of a counter: evenly spread, no random source.
        let t = self.ticket.fetch_add(1, Ordering::Relaxed);
        let spread = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (spread * 1000) >> 32 < per_mille
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_body_budget_gives_room_back() {
        let budget = BodyBudget::new(10 * 1024);
        let a = budget.try_reserve(6 * 1024).expect("room");
        assert!(budget.try_reserve(5 * 1024).is_none());
        // Any body takes at least a KiB.
        let b = budget.try_reserve(1).expect("room");
        drop(a);
        drop(b);
        assert!(budget.try_reserve(10 * 1024).is_some());
        assert!(budget.try_reserve(10 * 1024 + 1).is_none());
    }

    #[test]
    fn overload_sheds_a_share_growing_with_the_lag() {
        let shed_share = |o: &Overload| (0..10_000).filter(|_| o.shed()).count();
        let o = Overload::new(Duration::from_millis(100));
        assert_eq!(shed_share(&o), 0);
        for _ in 0..200 {
            o.record(Duration::from_millis(150));
        }
        let half = shed_share(&o);
        assert!((4_500..5_500).contains(&half), "{half}");
        for _ in 0..200 {
            o.record(Duration::from_millis(300));
        }
        assert_eq!(shed_share(&o), 10_000);
        // It recovers as the lag falls.
        for _ in 0..200 {
            o.record(Duration::ZERO);
        }
        assert_eq!(shed_share(&o), 0);
        // A zero limit never sheds.
        let off = Overload::new(Duration::ZERO);
        off.record(Duration::from_secs(5));
        assert!(!off.shed());
    }
}
