//! A rate limit on diagnostic log lines, per place in the code that logs: a flood of bad
//! requests (each 502 logs its cause) cannot fill a disk or drown the lines that matter.
//!
//! Each callsite has a bucket of [`BURST`] lines refilled at [`PER_SECOND`]; a line that finds
//! its bucket empty is left out and counted ([`suppressed`], which the metrics expose as
//! `portico_log_lines_suppressed_total` and the process reports in a line of its own now and
//! then). Written here because it is a few lines over `tracing-subscriber`'s `Filter` trait,
//! and the count must reach Portico's metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tracing::Metadata;
use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, Filter};

/// Lines a callsite may write at once.
pub const BURST: f64 = 20.0;
/// Lines a callsite may write per second, over time.
pub const PER_SECOND: f64 = 10.0;

static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Lines left out since the process started.
pub fn suppressed() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// The filter: events pass while their callsite has lines left; spans always pass.
#[derive(Default)]
pub struct Throttle {
    buckets: Mutex<HashMap<Identifier, (f64, Instant)>>,
}

impl Throttle {
    /// A filter with every callsite's bucket full.
    pub fn new() -> Throttle {
        Throttle::default()
    }

    fn take(&self, callsite: Identifier, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = buckets.entry(callsite).or_insert((BURST, now));
        let refilled = now.saturating_duration_since(*last).as_secs_f64() * PER_SECOND;
        *tokens = (*tokens + refilled).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

impl<S> Filter<S> for Throttle {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !meta.is_event() || self.take(meta.callsite(), Instant::now())
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> Interest {
        // Asked per event: the answer changes with time.
        Interest::sometimes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Callsites that exist only to give identifiers: the throttle never asks one for its
    /// metadata. Not zero-sized: an identifier is the callsite's address, and two statics of
    /// a zero-sized type may share one (they did, in a build without incremental compilation).
    struct Site(#[allow(dead_code)] u8);
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        #[allow(clippy::unimplemented)] // never called: see above
        fn metadata(&self) -> &Metadata<'_> {
            unimplemented!("not asked by the throttle")
        }
    }
    static A: Site = Site(0);
    static B: Site = Site(1);

    #[test]
    fn a_burst_then_the_rate_per_callsite() {
        let t = Throttle::new();
        let start = Instant::now();
        let a = || Identifier(&A);
        let passed = (0..100).filter(|_| t.take(a(), start)).count();
        assert_eq!(passed, BURST as usize);
        // Another callsite has its own bucket.
        assert!(t.take(Identifier(&B), start));
        // A second later, ten more.
        let later = start + Duration::from_secs(1);
        let passed = (0..100).filter(|_| t.take(a(), later)).count();
        assert_eq!(passed, PER_SECOND as usize);
        assert!(suppressed() >= 170);
    }
}
