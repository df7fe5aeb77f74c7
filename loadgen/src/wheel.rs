//! The open-loop scheduler: a hashed timer wheel. Millions of viewers each
//! wake about every 10 s; a task per viewer sleeping would cost a timer and
//! a stack each, while the wheel costs one `(time, item)` per pending wake
//! in a slot vector.
//!
//! Items come out only once their slot has fully passed, so never before
//! their intended time and at most one slot (plus the caller's tick) late;
//! each comes out with its intended time, which is what latency is measured
//! from — a slow server cannot hide behind a slow sender.

/// A timer wheel of `T`s.
pub struct Wheel<T> {
    slots: Vec<Vec<(i64, T)>>,
    slot_ms: i64,
    /// Absolute slot number of the next slot to expire.
    next: i64,
    /// Items beyond the wheel's horizon, re-filed as it turns.
    far: Vec<(i64, T)>,
    len: usize,
}

impl<T> Wheel<T> {
    /// A wheel of `slots` slots of `slot_ms` each, starting at `now_ms`.
    pub fn new(slots: usize, slot_ms: i64, now_ms: i64) -> Wheel<T> {
        Wheel {
            slots: (0..slots.max(2)).map(|_| Vec::new()).collect(),
            slot_ms: slot_ms.max(1),
            next: now_ms.div_euclid(slot_ms.max(1)),
            far: Vec::new(),
            len: 0,
        }
    }

    /// Items pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Files `item` to come out at `at_ms` (at once if that has passed).
    pub fn schedule(&mut self, at_ms: i64, item: T) {
        self.len += 1;
        let slot = at_ms.div_euclid(self.slot_ms).max(self.next);
        if slot - self.next >= self.slots.len() as i64 {
            self.far.push((at_ms, item));
        } else {
            let i = slot.rem_euclid(self.slots.len() as i64) as usize;
            self.slots[i].push((at_ms, item));
        }
    }

    /// Moves every item whose slot ended at or before `now_ms` into `due`,
    /// slot by slot (earliest first), each with its intended time.
    pub fn advance(&mut self, now_ms: i64, due: &mut Vec<(i64, T)>) {
        let n = self.slots.len() as i64;
        while (self.next + 1) * self.slot_ms <= now_ms {
            let i = self.next.rem_euclid(n) as usize;
            self.len -= self.slots[i].len();
            due.append(&mut self.slots[i]);
            self.next += 1;
            // Once per turn, bring far items within the horizon.
            if self.next.rem_euclid(n) == 0 && !self.far.is_empty() {
                let far = std::mem::take(&mut self.far);
                for (at, item) in far {
                    self.len -= 1;
                    self.schedule(at, item);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn never_early_at_most_a_slot_late_in_order() {
        let start = 1_000_003;
        let mut wheel = Wheel::new(64, 10, start);
        let mut rng = Rng::new(1, 1);
        let mut want = Vec::new();
        for i in 0..5_000u32 {
            // Up to 5 s ahead: far beyond the 640 ms horizon too.
            let at = start + rng.below(5_000) as i64;
            wheel.schedule(at, i);
            want.push(at);
        }
        assert_eq!(wheel.len(), 5_000);
        let mut seen = 0;
        let mut last_slot = i64::MIN;
        let mut due = Vec::new();
        // Ticks of 7 ms, like a driver loop with jitter.
        let mut now = start;
        while now < start + 6_000 {
            now += 7;
            due.clear();
            wheel.advance(now, &mut due);
            for &(at, i) in &due {
                assert_eq!(at, want[i as usize], "comes out with its intended time");
                assert!(at <= now, "never early: {at} > {now}");
                assert!(
                    now - at < 10 + 7,
                    "at most a slot plus a tick late: {}",
                    now - at
                );
                assert!(at / 10 >= last_slot, "slot order");
                last_slot = at / 10;
                seen += 1;
            }
        }
        assert_eq!(seen, 5_000);
        assert!(wheel.is_empty());
    }

    #[test]
    fn past_times_come_out_at_once() {
        let mut wheel = Wheel::new(8, 10, 1_000);
        wheel.schedule(500, "late");
        let mut due = Vec::new();
        wheel.advance(1_009, &mut due);
        assert!(due.is_empty(), "its slot has not ended yet");
        wheel.advance(1_010, &mut due);
        assert_eq!(due, vec![(500, "late")]);
    }
}
