//! Rate limits: GCRA (the generic cell rate algorithm) per key, over a clock the caller gives
//! (nanoseconds from any fixed origin), so that tests drive time and nothing here reads it.
//!
//! A limit of `count` per `per` with a burst of `burst` lets `burst` requests through at once
//! and then one every `per / count` (the emission interval, T). Each key keeps one number, its
//! theoretical arrival time (TAT): a request at `now` is admitted when `max(TAT, now) + T -
//! burst·T <= now`, and then TAT becomes `max(TAT, now) + T`. A refused request changes
//! nothing, and the time until it would have been admitted is exact: `max(TAT, now) + T -
//! burst·T - now`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// A rate: `count` per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// How many.
    pub count: u64,
    /// Per how long.
    pub per: Duration,
}

impl Rate {
    /// Reads `N/s`, `N/m`, `N/h` or `N/d` (N above 0).
    pub fn parse(s: &str) -> Option<Rate> {
        let (n, unit) = s.split_once('/')?;
        let count = n.trim().parse::<u64>().ok().filter(|n| *n > 0)?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return None,
        };
        Some(Rate { count, per })
    }
}

/// What a limit decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Admitted.
    Allowed {
        /// How many more requests would be admitted right now.
        remaining: u64,
        /// Until the key's whole burst is available again.
        reset: Duration,
    },
    /// Refused.
    Limited {
        /// Until this request would have been admitted (never zero).
        retry_after: Duration,
        /// Until the key's whole burst is available again.
        reset: Duration,
    },
}

/// Keys kept before the ones whose TAT has passed (nothing to remember) are swept out.
const SWEEP_AT: usize = 65_536;
/// Keys kept at most: past this (after a sweep), new keys share one bucket per shard, so a
/// flood of distinct keys (addresses, header values) costs bounded memory.
const MAX_KEYS: usize = 4 * 1024 * 1024;
const SHARDS: usize = 16;

/// One limit's state for every key.
pub struct Limiter {
    interval: u64,
    tolerance: u64,
    max_keys_per_shard: usize,
    /// The shard size at which sweeping starts.
    sweep_from: usize,
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
}

struct Shard {
    tat: HashMap<Box<[u8]>, u64>,
    /// The bucket keys share once the shard is full.
    overflow: u64,
    /// The size at which the next sweep happens: doubled after each, so that sweeping costs
    /// O(1) per key however many keys there are.
    sweep_at: usize,
    /// When the last sweep happened (a full shard sweeps at most once a second).
    swept: u64,
}

impl Shard {
    fn new(sweep_at: usize) -> Shard {
        Shard {
            tat: HashMap::new(),
            overflow: 0,
            sweep_at,
            swept: 0,
        }
    }
}

impl Limiter {
    /// A limiter of `rate` with a burst of `burst` (at least 1).
    pub fn new(rate: Rate, burst: u64) -> Limiter {
        Limiter::with_max_keys(rate, burst, MAX_KEYS)
    }

    /// As [`Limiter::new`], remembering at most about `max_keys` keys.
    pub fn with_max_keys(rate: Rate, burst: u64, max_keys: usize) -> Limiter {
        let count = u128::from(rate.count.max(1));
        let interval = u64::try_from((rate.per.as_nanos() / count).max(1)).unwrap_or(u64::MAX);
        Limiter {
            interval,
            tolerance: interval.saturating_mul(burst.max(1)),
            max_keys_per_shard: (max_keys / SHARDS).max(1),
            sweep_from: SWEEP_AT.min(max_keys / SHARDS / 4).max(16),
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard::new(SWEEP_AT.min(max_keys / SHARDS / 4).max(16)))
            }),
        }
    }

    /// Decides a request for `key` at `now` (nanoseconds from the caller's origin, never
    /// going back).
    pub fn check(&self, key: &[u8], now: u64) -> Decision {
        let mut shard = self.shard(key);
        let shard = &mut *shard;
        let known = shard.tat.contains_key(key);
        if !known {
            let at_cap = shard.tat.len() >= self.max_keys_per_shard;
            let due = shard.tat.len() >= shard.sweep_at.min(self.max_keys_per_shard)
                && (!at_cap || now.saturating_sub(shard.swept) >= 1_000_000_000);
            if due {
                // Keys whose TAT has passed are as good as new: nothing is lost.
                shard.tat.retain(|_, tat| *tat > now);
                shard.sweep_at = (shard.tat.len() * 2).max(self.sweep_from);
                shard.swept = now;
            }
        }
        let full = !known && shard.tat.len() >= self.max_keys_per_shard;
        let tat = if full {
            shard.overflow
        } else {
            shard.tat.get(key).copied().unwrap_or(0)
        };
        let (decision, next) = self.decide(tat, now);
        if let Some(next) = next {
            if full {
                shard.overflow = next;
            } else if let Some(slot) = shard.tat.get_mut(key) {
                *slot = next;
            } else {
                shard.tat.insert(key.into(), next);
            }
        }
        decision
    }

    /// The GCRA step: the decision, and the new TAT when the request is admitted.
    fn decide(&self, tat: u64, now: u64) -> (Decision, Option<u64>) {
        let next = tat.max(now).saturating_add(self.interval);
        let allow_at = next.saturating_sub(self.tolerance);
        if allow_at > now {
            let reset = Duration::from_nanos(tat.max(now) - now);
            return (
                Decision::Limited {
                    retry_after: Duration::from_nanos(allow_at - now),
                    reset,
                },
                None,
            );
        }
        let remaining = (now + self.tolerance - next) / self.interval;
        (
            Decision::Allowed {
                remaining,
                reset: Duration::from_nanos(next - now),
            },
            Some(next),
        )
    }

    /// Forgets `key`: its next request has the whole burst.
    pub fn reset(&self, key: &[u8]) {
        self.shard(key).tat.remove(key);
    }

    /// Forgets every key.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.tat.clear();
            shard.overflow = 0;
        }
    }

    /// How many keys are remembered.
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).tat.len())
            .sum()
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` says.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    fn ten_per_second(burst: u64) -> Limiter {
        Limiter::new(Rate::parse("10/s").unwrap(), burst)
    }

    #[test]
    fn rates_read_as_written() {
        assert_eq!(
            Rate::parse("100/s"),
            Some(Rate {
                count: 100,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(Rate::parse("5/d").unwrap().per, Duration::from_secs(86_400));
        for bad in ["0/s", "1/w", "x/s", "10", "-1/s", "/s"] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_burst_then_one_per_interval_and_the_wait_is_exact() {
        let l = ten_per_second(3);
        let t0 = 1_000 * S;
        for remaining in [2, 1, 0] {
            assert!(
                matches!(l.check(b"k", t0), Decision::Allowed { remaining: r, .. } if r == remaining)
            );
        }
        // The fourth at once waits exactly one interval (100 ms).
        assert_eq!(
            l.check(b"k", t0),
            Decision::Limited {
                retry_after: Duration::from_millis(100),
                reset: Duration::from_millis(300)
            }
        );
        // 30 ms later it waits 70 ms; at 100 ms it is admitted, and the next waits 100 ms.
        assert!(
            matches!(l.check(b"k", t0 + 30 * MS), Decision::Limited { retry_after, .. } if retry_after == Duration::from_millis(70))
        );
        assert!(matches!(
            l.check(b"k", t0 + 100 * MS),
            Decision::Allowed { remaining: 0, .. }
        ));
        assert!(
            matches!(l.check(b"k", t0 + 100 * MS), Decision::Limited { retry_after, .. } if retry_after == Duration::from_millis(100))
        );
        // Another key is not touched; after a long pause the whole burst is back.
        assert!(matches!(
            l.check(b"other", t0),
            Decision::Allowed { remaining: 2, .. }
        ));
        assert!(matches!(
            l.check(b"k", t0 + 10 * S),
            Decision::Allowed { remaining: 2, .. }
        ));
    }

    #[test]
    fn admitted_requests_never_exceed_rate_times_time_plus_burst() {
        let l = ten_per_second(5);
        let t0 = 7 * S;
        let mut admitted = 0u64;
        // A request every millisecond for 10 s: 10,000 asked.
        for i in 0..10_000 {
            if matches!(l.check(b"k", t0 + i * MS), Decision::Allowed { .. }) {
                admitted += 1;
            }
        }
        // 10/s × 10 s, plus the burst.
        assert_eq!(admitted, 100 + 5 - 1);
    }

    #[test]
    fn reset_gives_the_burst_back() {
        let l = ten_per_second(1);
        assert!(matches!(l.check(b"k", S), Decision::Allowed { .. }));
        assert!(matches!(l.check(b"k", S), Decision::Limited { .. }));
        l.reset(b"k");
        assert!(matches!(l.check(b"k", S), Decision::Allowed { .. }));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn keys_whose_time_has_passed_are_swept_and_sweeps_stay_rare() {
        // Shards of 4,000 keys at most, swept from 1,000.
        let l = Limiter::with_max_keys(Rate::parse("1/s").unwrap(), 1, 64_000);
        let n = 32_000u32;
        for i in 0..n {
            l.check(&i.to_be_bytes(), S);
        }
        // Every key stays a second: none could be swept yet.
        assert_eq!(l.keys(), n as usize);
        // A second later they are all as good as new; fresh keys sweep them out.
        for i in n..n + 40_000 {
            l.check(&i.to_be_bytes(), 3 * S);
        }
        assert!(l.keys() < 60_000, "{}", l.keys());
    }

    #[test]
    fn many_distinct_keys_cost_bounded_memory() {
        let l = Limiter::with_max_keys(Rate::parse("1/h").unwrap(), 1, 1_600);
        let mut admitted = 0;
        for i in 0u32..10_000 {
            if matches!(l.check(&i.to_be_bytes(), S), Decision::Allowed { .. }) {
                admitted += 1;
            }
        }
        assert!(l.keys() <= 1_600, "{}", l.keys());
        // Past the bound, new keys share their shard's bucket: a flood of fresh keys does
        // not get a fresh burst each.
        assert!(admitted < 1_700, "{admitted}");
    }
}
