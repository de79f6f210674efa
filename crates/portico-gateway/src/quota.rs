//! Prepaid request quotas (a plan's `quota: {requests: N, period: month}`): each request a
//! project makes through the access phase takes one; when the period's are spent, 402 until
//! the next period begins (UTC calendar).
//!
//! The count lives in a [`QuotaLedger`]: the store when one is open (one atomic statement per
//! reservation, shared by every node on it), else this process's memory. A node does not ask the
//! ledger for every request: it reserves a few at a time (a thousandth of the quota, between 1
//! and 100) and spends them locally. A node can therefore hold requests it has not used yet
//! while another is refused: at most that reservation per node, never more than the quota in
//! all. A quota of 1,000 or less is reserved one request at a time, so it is exact.
//!
//! When the ledger cannot be reached, the request goes through (uncounted) and a warning is
//! logged: a billing counter does not take an API down.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use portico_config::Quota;
use portico_http::ErrorCode;
use portico_server::Error;
use portico_store::StoreError;

use crate::access_log::rfc3339_millis;

/// A boxed future, for the ledger's object-safe method.
pub type QuotaFuture<'a> = Pin<Box<dyn Future<Output = Result<u64, StoreError>> + Send + 'a>>;

/// Where the requests each project took in a period are counted.
pub trait QuotaLedger: Send + Sync + 'static {
    /// Takes up to `want` of `limit` requests for `project` in the period that began at
    /// `period_start` (seconds since the Unix epoch), atomically; how many it got.
    fn reserve<'a>(
        &'a self,
        project: &'a str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> QuotaFuture<'a>;
}

/// Counts kept in this process: for a Portico without a store (one node).
#[derive(Default)]
pub struct MemoryLedger {
    /// By project: the latest period asked about, and how many were taken in it.
    taken: Mutex<HashMap<String, (i64, u64)>>,
}

impl QuotaLedger for MemoryLedger {
    fn reserve<'a>(
        &'a self,
        project: &'a str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> QuotaFuture<'a> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let (start, used) = taken
            .entry(project.to_string())
            .or_insert((period_start, 0));
        // A new period starts afresh; a past one is over (a clock that went back gets nothing).
        if period_start > *start {
            *start = period_start;
            *used = 0;
        }
        let got = if period_start == *start {
            limit.saturating_sub(*used).min(want)
        } else {
            0
        };
        *used += got;
        Box::pin(std::future::ready(Ok(got)))
    }
}

/// What this node holds of one project's quota.
#[derive(Default)]
struct Slot {
    period_start: i64,
    limit: u64,
    /// Reserved from the ledger and not used yet.
    held: u64,
    /// The ledger gave nothing: spent until the period (or the limit) changes.
    spent: bool,
}

/// Every project's quota as this node sees it; outlives the gateways that reloads build.
pub struct Quotas {
    ledger: Arc<dyn QuotaLedger>,
    slots: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<Slot>>>>,
    /// When a ledger failure was last logged (seconds since the epoch): one line a second.
    last_warning: AtomicI64,
}

impl Quotas {
    /// Quotas counted in `ledger`.
    pub fn new(ledger: Arc<dyn QuotaLedger>) -> Arc<Quotas> {
        Arc::new(Quotas {
            ledger,
            slots: Mutex::new(HashMap::new()),
            last_warning: AtomicI64::new(i64::MIN),
        })
    }

    /// Takes one request of `project`'s `quota` at `now`: 402 when the period's are spent.
    pub(crate) async fn take(
        &self,
        project: &Arc<str>,
        quota: Quota,
        now: SystemTime,
    ) -> Result<(), Error> {
        let seconds = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        let (start, end) = quota.period.bounds(seconds);
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(project.clone())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if slot.period_start != start || slot.limit != quota.requests {
            *slot = Slot {
                period_start: start,
                limit: quota.requests,
                ..Slot::default()
            };
        }
        if slot.held == 0 && !slot.spent {
            let want = reservation(quota.requests);
            match self
                .ledger
                .reserve(project, start, want, quota.requests)
                .await
            {
                Ok(0) => slot.spent = true,
                Ok(got) => slot.held = got,
                Err(e) => {
                    self.warn(seconds, project, &e);
                    return Ok(());
                }
            }
        }
        if slot.spent {
            return Err(Error::new(ErrorCode::QuotaSpent).with_detail(format!(
                "The project's {} requests for this {} are spent; the next {} begins at {}.",
                quota.requests,
                quota.period.name(),
                quota.period.name(),
                rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_secs(end.unsigned_abs())),
            )));
        }
        slot.held -= 1;
        Ok(())
    }

    fn warn(&self, now: i64, project: &str, error: &StoreError) {
        if self.last_warning.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                project,
                %error,
                "the quota ledger cannot be reached; requests go through uncounted"
            );
        }
    }
}

/// How many requests a node reserves at a time from a quota of `limit`.
fn reservation(limit: u64) -> u64 {
    (limit / 1000).clamp(1, 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_config::QuotaPeriod;

    fn quota(requests: u64) -> Quota {
        Quota {
            requests,
            period: QuotaPeriod::Day,
        }
    }

    #[tokio::test]
    async fn a_spent_quota_is_402_until_the_next_period() {
        let quotas = Quotas::new(Arc::new(MemoryLedger::default()));
        let project: Arc<str> = "p".into();
        let day = UNIX_EPOCH + std::time::Duration::from_secs(20_000 * 86_400);
        for _ in 0..3 {
            quotas.take(&project, quota(3), day).await.unwrap();
        }
        let refused = quotas.take(&project, quota(3), day).await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::QuotaSpent);
        let detail = refused.detail().unwrap_or_default();
        assert!(detail.contains("begins at 2024-10-05T00:00:00"), "{detail}");
        // A larger quota (the plan changed) gives what it added.
        quotas.take(&project, quota(4), day).await.unwrap();
        assert!(quotas.take(&project, quota(4), day).await.is_err());
        // Another project is not touched; the next day starts afresh.
        quotas.take(&"q".into(), quota(3), day).await.unwrap();
        let next = day + std::time::Duration::from_secs(86_400);
        quotas.take(&project, quota(3), next).await.unwrap();
    }

    #[tokio::test]
    async fn nodes_sharing_a_ledger_never_take_more_than_the_quota() {
        let ledger: Arc<dyn QuotaLedger> = Arc::new(MemoryLedger::default());
        let nodes = [Quotas::new(ledger.clone()), Quotas::new(ledger)];
        let project: Arc<str> = "p".into();
        let now = SystemTime::now();
        let mut admitted = 0;
        for i in 0..30_000 {
            if nodes[i % 2]
                .take(&project, quota(20_000), now)
                .await
                .is_ok()
            {
                admitted += 1;
            }
        }
        // Reserved 20 at a time: at most one reservation per node held back unused.
        assert!((20_000 - 2 * 20..=20_000).contains(&admitted), "{admitted}");
    }

    #[test]
    fn reservations_are_a_thousandth_of_the_quota_between_1_and_100() {
        assert_eq!(reservation(1), 1);
        assert_eq!(reservation(1_999), 1);
        assert_eq!(reservation(50_000), 50);
        assert_eq!(reservation(10_000_000), 100);
    }
}
