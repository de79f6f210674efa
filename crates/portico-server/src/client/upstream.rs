//! One upstream: its targets, which is tried next (round-robin or least in flight, leaving out
//! the ejected), what each outcome means for a target's health, and the active checks that
//! run beside the pools.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portico_http::{BodyFraming, ErrorCode, Method};

use super::health;
use super::message::{Failure, UpgradeAnswer, UpstreamRequest, UpstreamResponse};
use super::pool::{Link, TargetPool};
use super::settings::{Active, Balance, Passive, UpstreamSettings};
use super::{h1, h2};
use crate::body::RequestBody;
use crate::error::Error;

/// How many times a request that was never delivered is tried on another connection.
const MAX_ATTEMPTS: usize = 3;

/// One upstream: its targets, each with its pool, chosen round-robin.
pub struct Upstream {
    name: String,
    targets: Vec<Arc<TargetPool>>,
    next: AtomicUsize,
    balance: Balance,
    passive: Option<Passive>,
    /// Seconds between active checks (0 without them).
    check_every: u64,
}

impl Upstream {
    /// Builds an upstream from its settings.
    pub fn new(s: &UpstreamSettings) -> Upstream {
        let targets = s
            .targets
            .iter()
            .map(|t| {
                Arc::new(TargetPool::new(
                    t.host.clone(),
                    t.port,
                    t.transport,
                    s.tls.clone(),
                    s.connect_timeout,
                    s.max_idle_per_target,
                    s.idle_timeout,
                ))
            })
            .collect();
        // Active checks run beside the pools, for as long as the pools live.
        if let (Some(active), Ok(runtime)) = (&s.active, tokio::runtime::Handle::try_current()) {
            for t in &targets {
                runtime.spawn(check_actively(Arc::downgrade(t), active.clone()));
            }
        }
        Upstream {
            name: s.name.clone(),
            targets,
            next: AtomicUsize::new(0),
            balance: s.balance,
            passive: s.passive,
            check_every: s.active.as_ref().map_or(0, |a| a.interval.as_secs().max(1)),
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first target's `host:port` (the `Host` sent when a client gave none).
    pub fn authority(&self) -> &str {
        self.targets.first().map_or("", |t| t.authority())
    }

    /// Each target's `host:port`, and whether it takes requests now (not ejected by passive
    /// or active health checks).
    pub fn health(&self) -> Vec<(Arc<str>, bool)> {
        let now = health::now_ms();
        self.targets
            .iter()
            .map(|t| (t.authority_arc(), !t.health.ejected(now)))
            .collect()
    }

    /// Idle pooled HTTP/1.1 connections across the targets.
    pub fn idle_count(&self) -> usize {
        self.targets.iter().map(|t| t.idle_count()).sum()
    }

    /// The next target to try, leaving out those in `tried` and those ejected; when every
    /// target is ejected, 503 with `Retry-After` until the first comes back.
    fn pick(&self, tried: &[usize]) -> Result<usize, Error> {
        let n = self.targets.len();
        if n == 1 && self.passive.is_none() && self.check_every == 0 {
            return Ok(0);
        }
        let now = health::now_ms();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let usable = (0..n)
            .map(|k| (start + k) % n)
            .filter(|i| !tried.contains(i) && !self.targets[*i].health.ejected(now));
        let chosen = match self.balance {
            Balance::RoundRobin => usable.into_iter().next(),
            Balance::LeastInFlight => usable.min_by_key(|i| self.targets[*i].health.in_flight()),
        };
        chosen.ok_or_else(|| {
            let back_in = self
                .targets
                .iter()
                .map(|t| t.health.ejected_for(now, self.check_every))
                .min()
                .unwrap_or(1);
            Error::new(ErrorCode::NoHealthyTarget)
                .with_header("Retry-After", back_in.max(1).to_string())
        })
    }

    /// Counts the outcome of a request to target `i` towards its passive health.
    fn record(&self, i: usize, result: &Result<UpstreamResponse, Error>) {
        let Some(passive) = self.passive else {
            return;
        };
        let health = &self.targets[i].health;
        match result {
            Err(e) if health::is_target_failure(e.code()) => {
                if health.failed(passive) {
                    tracing::warn!(
                        upstream = %self.name,
                        target = self.targets[i].authority(),
                        failures = passive.failures,
                        "target ejected after consecutive failures"
                    );
                }
            }
            _ => health.succeeded(),
        }
    }

    /// Sends a request to switch to WebSocket to the next target, on a new HTTP/1.1
    /// connection (which asks this hop for the switch with `Connection` and `Upgrade`).
    pub async fn upgrade(&self, req: UpstreamRequest) -> Result<UpgradeAnswer, Error> {
        let target = self.targets[self.pick(&[])?].clone();
        h1::upgrade(target, req).await
    }

    /// Sends a request to the next target and returns the response head; the body streams
    /// from the returned [`UpstreamResponse`].
    ///
    /// A target that could not be connected to (refused, unreachable, timed out, TLS failed)
    /// never saw the request: the request goes to the next target, once each.
    pub async fn send(
        &self,
        req: UpstreamRequest,
        body: &mut RequestBody<'_>,
    ) -> Result<UpstreamResponse, Error> {
        // One target and no health to keep: nothing to choose, nothing to count.
        if self.targets.len() == 1 && self.passive.is_none() && self.check_every == 0 {
            return send_to(self.targets[0].clone(), &req, body).await;
        }
        let mut tried = Vec::with_capacity(self.targets.len());
        loop {
            let i = match self.pick(&tried) {
                Ok(i) => i,
                // Every target is ejected: 503.
                Err(e) => return Err(e),
            };
            tried.push(i);
            let target = self.targets[i].clone();
            let result = {
                let _flight = self.targets[i].health.enter();
                send_to(target, &req, body).await
            };
            self.record(i, &result);
            match result {
                Err(e)
                    if health::never_sent(e.code())
                        && tried.len() < self.targets.len()
                        && self.pick_peek(&tried) =>
                {
                    tracing::debug!(upstream = %self.name, error = %e, "target unreachable; trying another");
                }
                other => return other,
            }
        }
    }

    /// Whether another target than those in `tried` could be picked now.
    fn pick_peek(&self, tried: &[usize]) -> bool {
        let now = health::now_ms();
        (0..self.targets.len()).any(|i| !tried.contains(&i) && !self.targets[i].health.ejected(now))
    }
}

/// Sends a request to one target, on a pooled or shared connection: again on another
/// connection when it was never delivered.
async fn send_to(
    target: Arc<TargetPool>,
    req: &UpstreamRequest,
    body: &mut RequestBody<'_>,
) -> Result<UpstreamResponse, Error> {
    let retryable = body.framing() == BodyFraming::None && req.method.is_idempotent();
    let head_request = req.method == Method::Head;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let failure = match target.acquire().await? {
            Link::Http1(conn, reused) => {
                match h1::send(&target, conn, reused, req, body, head_request).await {
                    Ok(response) => return Ok(response),
                    Err(f) => f,
                }
            }
            Link::H2(link) => match h2::exchange(&target, &link, req, body, head_request).await {
                Ok(response) => return Ok(response),
                Err(f) => f,
            },
        };
        match failure {
            Failure::Unsent(e) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(target = target.authority(), error = %e, "request not sent; retrying");
            }
            Failure::Stale(e) if retryable && attempt < MAX_ATTEMPTS => {
                tracing::debug!(target = target.authority(), error = %e, "stale upstream connection; retrying");
            }
            Failure::Unsent(e) | Failure::Stale(e) | Failure::Fatal(e) => return Err(e),
        }
    }
}

/// Active health checks of one target: a `GET` of `path` every `interval` on a connection of
/// its own (a TCP connect alone for `h2c://` and `https://` targets); any 2xx or 3xx within
/// `timeout` passes. `unhealthy` failures in a row mark the target down, `healthy` passes in a
/// row bring it back. Runs until the target is dropped (a reload builds new ones).
async fn check_actively(target: std::sync::Weak<TargetPool>, active: Active) {
    let mut tick = tokio::time::interval(active.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut passes, mut fails) = (0u32, 0u32);
    loop {
        tick.tick().await;
        let Some(t) = target.upgrade() else {
            return;
        };
        let ok = tokio::time::timeout(active.timeout, t.probe(&active.path))
            .await
            .unwrap_or(false);
        if ok {
            passes += 1;
            fails = 0;
            if passes >= active.healthy && t.health.is_down() {
                tracing::info!(
                    target = t.authority(),
                    "target passes its health checks again"
                );
                t.health.set_down(false);
            }
        } else {
            fails += 1;
            passes = 0;
            if fails >= active.unhealthy && !t.health.is_down() {
                tracing::warn!(
                    target = t.authority(),
                    "target fails its health checks; left out"
                );
                t.health.set_down(true);
            }
        }
    }
}
