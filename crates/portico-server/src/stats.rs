//! Per-route counts of responses by status code: what `GET /admin/v1/routes/{id}/stats` shows
//! and `POST …/stats/reset` clears (205), and what the dashboard will read.
//!
//! The registry is shared by every gateway a reload or a store change builds, so counts survive
//! rebuilds; a gateway takes each route's counters once, when it is built, and counting is one
//! relaxed atomic add on the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The status codes counted: 100 to 599.
const FIRST: u16 = 100;
const COUNT: usize = 500;

/// One route's counts, by status.
pub struct StatusCounts([AtomicU64; COUNT]);

impl StatusCounts {
    fn new() -> StatusCounts {
        StatusCounts(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    /// Counts one response (a status outside 100..=599 is not counted: none is sent).
    pub fn record(&self, status: u16) {
        if let Some(slot) = status
            .checked_sub(FIRST)
            .and_then(|i| self.0.get(usize::from(i)))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The statuses seen since the last reset, with their counts, in status order.
    pub fn snapshot(&self) -> Vec<(u16, u64)> {
        (FIRST..)
            .zip(self.0.iter())
            .filter_map(|(status, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then_some((status, n))
            })
            .collect()
    }

    /// Back to zero.
    pub fn reset(&self) {
        for n in &self.0 {
            n.store(0, Ordering::Relaxed);
        }
    }
}

/// Counts for every route, by route name.
#[derive(Default)]
pub struct RouteStats {
    routes: Mutex<HashMap<Arc<str>, Arc<StatusCounts>>>,
}

impl RouteStats {
    /// An empty registry.
    pub fn new() -> Arc<RouteStats> {
        Arc::new(RouteStats::default())
    }

    /// The counters of the route `name`, made on first use.
    pub fn route(&self, name: &str) -> Arc<StatusCounts> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = routes.get(name) {
            return c.clone();
        }
        let c = Arc::new(StatusCounts::new());
        routes.insert(name.into(), c.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_resets() {
        let stats = RouteStats::new();
        let a = stats.route("a");
        a.record(200);
        a.record(200);
        a.record(599);
        a.record(99);
        a.record(600);
        assert_eq!(a.snapshot(), vec![(200, 2), (599, 1)]);
        // The same counters for the same name: a rebuilt gateway keeps counting.
        stats.route("a").record(404);
        assert_eq!(a.snapshot(), vec![(200, 2), (404, 1), (599, 1)]);
        assert!(stats.route("b").snapshot().is_empty());
        a.reset();
        assert!(a.snapshot().is_empty());
    }
}
