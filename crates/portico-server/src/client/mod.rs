//! The upstream side: pooled keep-alive HTTP/1.1 connections to targets, or one multiplexed
//! HTTP/2 connection per target for `h2c://` targets and `https://` targets that choose `h2`
//! with ALPN.
//!
//! Portico speaks HTTP/1.1 to upstreams with its own small client rather than hyper's. The
//! contract needs every upstream fault told apart (refused, timed out, reset, invalid, 306), the
//! request body streamed from the client connection as it arrives, and an early upstream answer
//! noticed while the body is still being sent; and on the benchmark's hot path, a proxied
//! request costs one write and one read on each side. Framing is owned here in one place: the
//! client adds the body's framing header and re-encodes the body, and the response's framing
//! is decided here and hidden from the caller. HTTP/2 goes through the `h2` crate: the same
//! request head is translated into an HTTP/2 request (`h2.rs`), and the response comes back as
//! the same [`UpstreamResponse`].

mod body;
mod exchange;
mod h2;
mod health;
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use body::{ResponseFraming, UpstreamBody};
pub use exchange::{Switched, UpgradeAnswer, UpstreamRequest, UpstreamResponse};
pub use pool::{TargetPool, connect_tcp};

use portico_http::ErrorCode;

use crate::body::RequestBody;
use crate::error::Error;

/// The bytes of one upstream connection: plain for `http://` and `h2c://` targets, TLS for
/// `https://` ones.
pub type UpStream = crate::io::MaybeTls<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// How a target is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `http://`: HTTP/1.1 over TCP.
    Http,
    /// `h2c://`: HTTP/2 over TCP with prior knowledge.
    H2c,
    /// `https://`: TLS, then HTTP/2 if the target chooses `h2` with ALPN, else HTTP/1.1.
    Https,
}

/// One target of an upstream.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How it is spoken to.
    pub transport: Transport,
}

/// TLS client settings for an upstream's `https://` targets.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    /// Offers `h2` and `http/1.1` with ALPN.
    pub h2: Arc<rustls::ClientConfig>,
    /// Offers `http/1.1` only (WebSocket handshakes).
    pub http1: Arc<rustls::ClientConfig>,
    /// The name the certificate must carry; the target's host when `None`.
    pub server_name: Option<String>,
}

/// How an upstream's next target is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Balance {
    /// Each target in turn.
    #[default]
    RoundRobin,
    /// The target with the fewest requests waiting for a response head (ties in turn).
    LeastInFlight,
}

/// Passive health: a target whose requests fail `failures` times in a row (it refused the
/// connection, did not answer the connect in time, reset it, or answered with invalid HTTP)
/// is left out for `eject_for`, then tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passive {
    /// Consecutive failures that eject a target.
    pub failures: u32,
    /// How long it is left out.
    pub eject_for: Duration,
}

/// Active health checks of each target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    /// The path asked for (`GET`).
    pub path: String,
    /// How often.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Passes in a row that bring a target back.
    pub healthy: u32,
    /// Failures in a row that leave a target out.
    pub unhealthy: u32,
}

/// Settings of one upstream.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    /// Name, for logs.
    pub name: String,
    /// The targets.
    pub targets: Vec<TargetSpec>,
    /// TLS client settings, needed when a target is `https://`.
    pub tls: Option<UpstreamTls>,
    /// Longest a connect may take.
    pub connect_timeout: Duration,
    /// Idle connections kept per target.
    pub max_idle_per_target: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
    /// How the next target is chosen.
    pub balance: Balance,
    /// Passive health, if targets are ejected after failures.
    pub passive: Option<Passive>,
    /// Active health checks, if targets are checked.
    pub active: Option<Active>,
}

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
                runtime.spawn(health::check_actively(Arc::downgrade(t), active.clone()));
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

    /// Sends a request to switch to WebSocket (`req.head` carries `Upgrade` and
    /// `Connection`) to the next target, on a new HTTP/1.1 connection.
    pub async fn upgrade(&self, req: UpstreamRequest) -> Result<UpgradeAnswer, Error> {
        let target = self.targets[self.pick(&[])?].clone();
        exchange::upgrade(target, req).await
    }

    /// Sends a request to the next target and returns the response head; the body streams
    /// from the returned [`UpstreamResponse`].
    ///
    /// A target that could not be connected to (refused, unreachable, timed out, TLS failed)
    /// never saw the request: the request goes to the next target, once each.
    pub async fn send(
        &self,
        mut req: UpstreamRequest,
        body: &mut RequestBody<'_>,
    ) -> Result<UpstreamResponse, Error> {
        // One target and no health to keep: nothing to choose, nothing to count.
        if self.targets.len() == 1 && self.passive.is_none() && self.check_every == 0 {
            return exchange::send(self.targets[0].clone(), req, body).await;
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
            // A copy only while another target could still be tried.
            let attempt = if tried.len() < self.targets.len() {
                UpstreamRequest {
                    head: req.head.clone(),
                    method: req.method,
                }
            } else {
                UpstreamRequest {
                    head: std::mem::take(&mut req.head),
                    method: req.method,
                }
            };
            let result = {
                let _flight = self.targets[i].health.enter();
                exchange::send(target, attempt, body).await
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
