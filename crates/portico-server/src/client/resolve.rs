//! Host names resolved without starving the runtime's blocking pool.
//!
//! The system resolver (`getaddrinfo`) holds a thread until it answers, which for a name no
//! server knows can take tens of seconds; tokio runs it on its blocking pool, which the SQLite
//! store, static files and password checks need too, and a caller that gives up (its connect
//! deadline passed) does not free the thread. Upstreams with such names and frequent health
//! checks once filled the pool and froze the admin API. So lookups are bounded: at most
//! [`MAX_LOOKUPS`] at once in the process, each keeping its place until `getaddrinfo` returns
//! (whoever waited for it), and other callers wait for a place without holding a thread,
//! under their own deadline. And a name that failed to resolve is not asked about again for
//! [`FAILED_FOR`]: a dead name behind frequent health checks would otherwise send the machine's
//! resolver a query every interval, which resolvers answer by slowing everyone down.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// The most host-name lookups running at once.
pub const MAX_LOOKUPS: usize = 16;

/// How long a name that failed to resolve answers with that failure without a new lookup.
pub const FAILED_FOR: Duration = Duration::from_secs(5);

/// The most names whose failure is remembered; past that, the oldest memories go.
const FAILURES_KEPT: usize = 4096;

static LOOKUPS: Semaphore = Semaphore::const_new(MAX_LOOKUPS);

/// Names that failed to resolve, and when they may be asked about again.
static FAILED: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Mutex::default);

/// The addresses of `host` (a name, or an IP address, taken as it is) at `port`.
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Some(until) = failed_until(host) {
        let wait = until.saturating_duration_since(Instant::now());
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "`{host}` did not resolve a moment ago; it is looked up again in {} ms",
                wait.as_millis()
            ),
        ));
    }
    let name = host.to_string();
    let found = bounded(move || {
        (name.as_str(), port)
            .to_socket_addrs()
            .map(Iterator::collect::<Vec<SocketAddr>>)
    })
    .await;
    match &found {
        Ok(addrs) if !addrs.is_empty() => {}
        _ => remember_failure(host),
    }
    found
}

/// When `host` may be looked up again, if it failed recently.
fn failed_until(host: &str) -> Option<Instant> {
    let failed = FAILED.lock().unwrap_or_else(PoisonError::into_inner);
    failed
        .get(host)
        .copied()
        .filter(|until| *until > Instant::now())
}

fn remember_failure(host: &str) {
    let mut failed = FAILED.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    if failed.len() >= FAILURES_KEPT {
        failed.retain(|_, until| *until > now);
        if failed.len() >= FAILURES_KEPT {
            failed.clear();
        }
    }
    failed.insert(host.to_string(), now + FAILED_FOR);
}

/// Runs `lookup` on the blocking pool once a place is free; the place is kept until it
/// returns, even when the caller stopped waiting.
async fn bounded<T: Send + 'static>(
    lookup: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let place = LOOKUPS.acquire().await.map_err(io::Error::other)?;
    tokio::task::spawn_blocking(move || {
        let _place = place;
        lookup()
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lookups that never answer (a resolver that times out holds its thread for seconds)
    /// leave the blocking pool room for everything else: in a runtime with one thread more
    /// than the lookups may take, four times as many stuck lookups as places, their callers
    /// gone, and blocking work still runs at once.
    #[test]
    fn stuck_lookups_never_take_every_blocking_thread() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(MAX_LOOKUPS + 1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let stuck = std::sync::Arc::new(std::sync::Mutex::new(stuck));
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
        rt.block_on(async {
            let lookups: Vec<_> = (0..4 * MAX_LOOKUPS)
                .map(|_| {
                    let stuck = stuck.clone();
                    let started_tx = started_tx.clone();
                    tokio::spawn(bounded(move || {
                        let _ = started_tx.send(());
                        // Waits until the test lets every lookup go.
                        let rx = stuck.lock().map_err(|_| io::Error::other("poisoned"))?;
                        let _ = rx.recv();
                        Ok(())
                    }))
                })
                .collect();
            // Every place is taken by a lookup that runs (and will not end)...
            for _ in 0..MAX_LOOKUPS {
                started.recv().await;
            }
            // ...and their callers give up.
            for l in &lookups {
                l.abort();
            }
            let other = tokio::task::spawn_blocking(|| 42);
            let answered = tokio::time::timeout(std::time::Duration::from_secs(10), other).await;
            assert!(
                matches!(answered, Ok(Ok(42))),
                "blocking work waited behind stuck lookups"
            );
        });
        drop(release);
        rt.shutdown_background();
    }

    /// A name that did not resolve answers with its failure at once for a while, without a
    /// lookup (`.invalid` never resolves, RFC 6761 §6.4).
    #[tokio::test]
    async fn a_name_that_failed_is_not_looked_up_again_at_once() {
        let host = format!("n{}.portico-test.invalid", std::process::id());
        assert!(resolve(&host, 80).await.is_err());
        let until = failed_until(&host).unwrap_or_else(|| panic!("the failure is remembered"));
        assert!(until > Instant::now() && until <= Instant::now() + FAILED_FOR);
        let again = resolve(&host, 80).await.unwrap_err();
        assert!(again.to_string().contains("looked up again"), "{again}");
    }

    #[tokio::test]
    async fn addresses_are_taken_as_they_are() {
        let got = resolve("::1", 8080).await.unwrap_or_default();
        assert_eq!(
            got,
            vec![
                "[::1]:8080"
                    .parse::<SocketAddr>()
                    .unwrap_or_else(|e| panic!("{e}"))
            ]
        );
    }
}
