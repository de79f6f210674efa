//! A target's health as its own requests show it (passive health): consecutive failures eject
//! it for a while; a success forgets them. Also how many requests wait on it, for
//! least-in-flight balancing.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use portico_http::ErrorCode;

use super::settings::Passive;

static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds on the process's monotonic clock.
pub(super) fn now_ms() -> u64 {
    u64::try_from(ORIGIN.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Failures that say the target itself is unwell (not the client, not the request).
pub(super) fn is_target_failure(code: ErrorCode) -> bool {
    never_sent(code)
        || matches!(
            code,
            ErrorCode::UpstreamReset | ErrorCode::UpstreamInvalidResponse
        )
}

/// Failures before the request reached the target: it can go to another one.
pub(super) fn never_sent(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UpstreamConnectRefused
            | ErrorCode::UpstreamConnectFailed
            | ErrorCode::UpstreamConnectTimeout
            | ErrorCode::UpstreamTlsFailed
    )
}

#[derive(Default)]
pub(super) struct Health {
    /// Marked down by active checks (until they pass again).
    down: std::sync::atomic::AtomicBool,
    failures: AtomicU32,
    /// Ejected until this time (`now_ms`); 0 when not ejected.
    ejected_until: AtomicU64,
    in_flight: AtomicUsize,
}

/// A request waiting on a target; dropping it says it no longer waits.
pub(super) struct Flight<'a>(&'a AtomicUsize);

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Health {
    pub(super) fn ejected(&self, now: u64) -> bool {
        self.down.load(Ordering::Relaxed) || self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Whether active checks have marked it down.
    pub(super) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// What active checks say: down, or up again.
    pub(super) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// Whole seconds until it is back (0 when it is not ejected); a target marked down by
    /// active checks is back no sooner than `check_every`.
    pub(super) fn ejected_for(&self, now: u64, check_every: u64) -> u64 {
        let passive = self
            .ejected_until
            .load(Ordering::Relaxed)
            .saturating_sub(now)
            .div_ceil(1000);
        if self.down.load(Ordering::Relaxed) {
            passive.max(check_every)
        } else {
            passive
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(super) fn enter(&self) -> Flight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Flight(&self.in_flight)
    }

    /// Counts a failure; whether it ejected the target.
    pub(super) fn failed(&self, passive: Passive) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n < passive.failures.max(1) {
            return false;
        }
        self.failures.store(0, Ordering::Relaxed);
        let eject = u64::try_from(passive.eject_for.as_millis()).unwrap_or(u64::MAX);
        self.ejected_until
            .store(now_ms().saturating_add(eject), Ordering::Relaxed);
        true
    }

    pub(super) fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }
}
