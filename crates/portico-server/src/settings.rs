//! What a connection is served with: its limits and timeouts, fixed when it is accepted, and
//! the signal that the server is shutting down. A leaf: every protocol's connection code
//! reads these, and they read nothing of it.

use std::time::Duration;

use portico_http::HeadLimits;
use tokio::sync::watch;

/// Connection-level limits and timeouts.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// Request-head limits.
    pub head: HeadLimits,
    /// The head must arrive within this from its first byte; a new connection that sends
    /// nothing for this long is closed silently.
    pub header_timeout: Duration,
    /// Longest a body read may wait for bytes.
    pub body_timeout: Duration,
    /// Longest an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Default body limit (routes may lower or raise it).
    pub max_body_bytes: u64,
    /// Most client connections open at once; at the limit, new ones wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
    /// HTTP/2 (ALPN `h2` on TLS, prior knowledge on cleartext), when enabled.
    pub http2: Option<Http2Settings>,
}

/// Tells connections that the server is shutting down.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A handle and the sender that triggers it.
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown begins.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

/// HTTP/2 settings (`http2` in the configuration).
#[derive(Clone, Debug)]
pub struct Http2Settings {
    /// Whether the plain listener speaks HTTP/2 only: a connection that does not open with
    /// the preface gets HTTP/2's connection error rather than an HTTP/1.1 answer.
    pub cleartext_only: bool,
    /// Most streams a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Bytes a client may send on one stream before Portico reads them (the stream's
    /// flow-control window).
    pub stream_window: u32,
    /// Bytes a client may send on all streams of a connection before Portico reads them: the
    /// most request-body memory one connection can hold.
    pub connection_window: u32,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Http2Settings {
            cleartext_only: false,
            max_concurrent_streams: 128,
            stream_window: 256 * 1024,
            connection_window: 1024 * 1024,
        }
    }
}
