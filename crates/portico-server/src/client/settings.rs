//! What an upstream is built from: its targets, how each is spoken to, how the next is chosen,
//! and how targets are checked. A leaf: the rest of the client reads these.

use std::sync::Arc;
use std::time::Duration;

/// The bytes of one upstream connection: plain for `http://` and `h2c://` targets, TLS for
/// `https://` ones.
pub type UpstreamIo = crate::io::MaybeTls<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

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
pub struct UpstreamTarget {
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
    pub targets: Vec<UpstreamTarget>,
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
