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
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use body::{ResponseFraming, UpstreamBody};
pub use exchange::{Switched, UpgradeAnswer, UpstreamRequest, UpstreamResponse};
pub use pool::{TargetPool, connect_tcp};

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
}

/// One upstream: its targets, each with its pool, chosen round-robin.
pub struct Upstream {
    name: String,
    targets: Vec<Arc<TargetPool>>,
    next: AtomicUsize,
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
        Upstream {
            name: s.name.clone(),
            targets,
            next: AtomicUsize::new(0),
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

    fn pick(&self) -> &Arc<TargetPool> {
        let i = if self.targets.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len()
        };
        &self.targets[i]
    }

    /// Sends a request to switch to WebSocket (`req.head` carries `Upgrade` and
    /// `Connection`) to the next target, on a new HTTP/1.1 connection.
    pub async fn upgrade(&self, req: UpstreamRequest) -> Result<UpgradeAnswer, Error> {
        let target = self.pick().clone();
        exchange::upgrade(target, req).await
    }

    /// Sends a request to the next target and returns the response head; the body streams
    /// from the returned [`UpstreamResponse`].
    pub async fn send(
        &self,
        req: UpstreamRequest,
        body: &mut RequestBody<'_>,
    ) -> Result<UpstreamResponse, Error> {
        let target = self.pick().clone();
        exchange::send(target, req, body).await
    }
}
