//! Limiting repeated authentication failures from one client address, so that guessing keys
//! or signatures is slow: GCRA (the generic cell rate algorithm) over an injected clock.
//!
//! Each failure takes `per / max` of credit; a client whose failures are more than `max`
//! ahead of that pace (`per` worth) is refused until it is back within it, and told exactly
//! when (`Retry-After`, whole seconds rounded up, never 0). Successes cost nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many failures, over how long, a client address may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureRate {
    /// Failures allowed at once.
    pub max: u32,
    /// The time over which `max` failures are forgiven.
    pub per: Duration,
}

impl FailureRate {
    fn interval(&self) -> Duration {
        self.per / self.max.max(1)
    }
}

/// The failures of every client address seen lately.
#[derive(Default)]
pub struct FailureLimiter {
    /// Per address, the theoretical arrival time of its next failure.
    tat: Mutex<HashMap<IpAddr, Instant>>,
    /// How many addresses `tat` holds (written under its lock, read without it).
    tracked: AtomicUsize,
}

/// Addresses kept before stale ones are swept out.
const SWEEP_AT: usize = 65_536;

impl FailureLimiter {
    /// An empty limiter.
    pub fn new() -> FailureLimiter {
        FailureLimiter::default()
    }

    /// Whether no address has failed lately: then nobody is blocked, and a caller can skip
    /// reading the clock and the map (the common case, on every authenticated request).
    pub fn is_empty(&self) -> bool {
        self.tracked.load(Ordering::Relaxed) == 0
    }

    /// `None` when `ip` may try; else how long it must wait, in whole seconds (at least 1).
    pub fn blocked(&self, ip: IpAddr, rate: FailureRate, now: Instant) -> Option<u64> {
        let mut map = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = *map.get(&ip)?;
        if tat <= now {
            // Every failure is forgiven: forget the address.
            map.remove(&ip);
            self.tracked.store(map.len(), Ordering::Relaxed);
            return None;
        }
        let free_at = tat.checked_sub(rate.per)?;
        let wait = free_at.checked_duration_since(now)?;
        if wait.is_zero() {
            return None;
        }
        Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }

    /// Records a failure by `ip`.
    pub fn failed(&self, ip: IpAddr, rate: FailureRate, now: Instant) {
        let mut map = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= SWEEP_AT {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.entry(ip).or_insert(now);
        *tat = (*tat).max(now) + rate.interval();
        self.tracked.store(map.len(), Ordering::Relaxed);
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.tat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    const RATE: FailureRate = FailureRate {
        max: 3,
        per: Duration::from_secs(30),
    };

    #[test]
    fn the_failure_after_the_allowance_blocks_until_the_pace_allows_again() {
        let l = FailureLimiter::new();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.blocked(ip, RATE, t0), None);
            l.failed(ip, RATE, t0);
        }
        // Three failures at once are allowed; a fourth puts the address 10 s ahead.
        assert_eq!(l.blocked(ip, RATE, t0), None);
        l.failed(ip, RATE, t0);
        assert_eq!(l.blocked(ip, RATE, t0), Some(10));
        assert_eq!(
            l.blocked(ip, RATE, t0 + Duration::from_millis(9_001)),
            Some(1)
        );
        assert_eq!(l.blocked(ip, RATE, t0 + Duration::from_secs(10)), None);
        // Another address is not touched.
        assert_eq!(l.blocked(other, RATE, t0), None);
        // Once back within pace, one more failure blocks again for one interval.
        l.failed(ip, RATE, t0 + Duration::from_secs(10));
        assert_eq!(l.blocked(ip, RATE, t0 + Duration::from_secs(10)), Some(10));
        // And after long enough, everything is forgiven, and the address forgotten.
        assert!(!l.is_empty());
        assert_eq!(l.blocked(ip, RATE, t0 + Duration::from_secs(60)), None);
        assert!(l.is_empty());
    }

    #[test]
    fn stale_addresses_are_swept() {
        let l = FailureLimiter::new();
        let t0 = Instant::now();
        for i in 0..SWEEP_AT as u32 {
            l.failed(IpAddr::from(i.to_be_bytes()), RATE, t0);
        }
        assert_eq!(l.tracked(), SWEEP_AT);
        l.failed(
            "10.0.0.1".parse().unwrap(),
            RATE,
            t0 + Duration::from_secs(60),
        );
        assert_eq!(l.tracked(), 1);
    }
}
