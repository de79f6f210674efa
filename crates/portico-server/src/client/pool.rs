//! Connections to one target: connect (TCP, then TLS for `https://`), keep idle HTTP/1.1
//! connections, and share one multiplexed HTTP/2 connection among all requests.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use portico_http::ErrorCode;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::health::Health;
use super::settings::{Transport, UpstreamIo, UpstreamTls};
use crate::error::Error;

/// Room made in the read buffer before each read: a typical API response (head and body up to
/// ~30 KiB) arrives in one read and leaves in one write.
pub(super) const READ_BUFFER: usize = 32 * 1024;

/// Per-stream receive window of an HTTP/2 upstream connection.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// Connection receive window of an HTTP/2 upstream connection.
const H2_CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;
/// Largest response header list accepted from an HTTP/2 upstream.
const H2_MAX_HEADER_LIST: u32 = 64 * 1024;

/// An open HTTP/1.1 connection to a target.
pub(crate) struct UpConn {
    pub(crate) stream: UpstreamIo,
    pub(crate) buf: BytesMut,
}

struct Idle {
    conn: UpConn,
    since: Instant,
}

/// A target's HTTP/2 connection, as requests use it.
#[derive(Clone)]
pub(crate) struct H2Link {
    pub(crate) send: SendRequest<Bytes>,
    /// Which connection this is, so that a request that finds it broken forgets this one and
    /// not a newer one.
    generation: u64,
}

/// What a request goes out on.
pub(crate) enum Link {
    /// An HTTP/1.1 connection; `true` when it came from the idle pool (it may have been closed
    /// by the upstream in the meantime).
    Http1(UpConn, bool),
    /// The target's HTTP/2 connection.
    H2(H2Link),
}

/// What a target was last seen to speak.
const SPEAKS_HTTP1: u8 = 0;
const SPEAKS_H2: u8 = 1;
const SPEAKS_UNKNOWN: u8 = 2;

/// The connections of one target.
pub struct TargetPool {
    host: String,
    port: u16,
    addr: Option<SocketAddr>,
    authority: Arc<str>,
    transport: Transport,
    tls: Option<(UpstreamTls, Option<ServerName<'static>>)>,
    connect_timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    /// `SPEAKS_*`: fixed for `http://` and `h2c://`, learned from ALPN for `https://`.
    speaks: AtomicU8,
    /// The shared HTTP/2 connection, if one is open.
    h2: Arc<Mutex<Option<H2Link>>>,
    generation: AtomicU64,
    /// Held while an HTTP/2 connection is being opened, so that concurrent first requests
    /// share one connection instead of each opening their own.
    dialing: tokio::sync::Mutex<()>,
    /// Dials made under `dialing`, and how the last one failed: requests that waited for a
    /// dial that failed fail with it rather than each waiting out a timeout of its own.
    dials: AtomicU64,
    dial_error: Mutex<Option<ErrorCode>>,
    /// What its requests say of it (passive health), and how many wait on it.
    pub(super) health: Health,
}

/// Opens a TCP connection to `addr` (each of its addresses in turn) by `deadline`, with
/// `TCP_NODELAY`; a failure is the upstream error that says what happened.
pub async fn connect_tcp(
    addr: impl tokio::net::ToSocketAddrs,
    deadline: Instant,
) -> Result<TcpStream, Error> {
    let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return Err(Error::new(ErrorCode::UpstreamConnectTimeout)),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(Error::new(ErrorCode::UpstreamConnectRefused).with_cause(e));
        }
        Ok(Err(e)) => return Err(Error::new(ErrorCode::UpstreamConnectFailed).with_cause(e)),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Opens a TCP connection to `host` at `port` by `deadline`: the name resolved (within the
/// bounded lookups of `resolve.rs`), then each address in turn.
pub async fn connect_host(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, Error> {
    let addrs = match tokio::time::timeout_at(deadline, super::resolve::resolve(host, port)).await {
        Err(_) => return Err(Error::new(ErrorCode::UpstreamConnectTimeout)),
        Ok(Err(e)) => return Err(Error::new(ErrorCode::UpstreamConnectFailed).with_cause(e)),
        Ok(Ok(a)) => a,
    };
    connect_tcp(&addrs[..], deadline).await
}

impl TargetPool {
    pub(crate) fn new(
        host: String,
        port: u16,
        transport: Transport,
        tls: Option<UpstreamTls>,
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> TargetPool {
        let addr = host.parse().ok().map(|ip| SocketAddr::new(ip, port));
        let authority: Arc<str> = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
        .into();
        let tls = tls.filter(|_| transport == Transport::Https).map(|t| {
            let name = t.server_name.as_deref().unwrap_or(&host).to_string();
            (t, ServerName::try_from(name).ok())
        });
        let speaks = match transport {
            Transport::Http => SPEAKS_HTTP1,
            Transport::H2c => SPEAKS_H2,
            Transport::Https => SPEAKS_UNKNOWN,
        };
        TargetPool {
            host,
            port,
            addr,
            authority,
            transport,
            tls,
            connect_timeout,
            max_idle,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            speaks: AtomicU8::new(speaks),
            h2: Arc::new(Mutex::new(None)),
            generation: AtomicU64::new(0),
            dialing: tokio::sync::Mutex::new(()),
            dials: AtomicU64::new(0),
            dial_error: Mutex::new(None),
            health: Health::default(),
        }
    }

    /// One active health check: `GET path` on a connection of its own, passing on a 2xx or
    /// 3xx; for `h2c://` and `https://` targets, the TCP connect alone.
    pub(super) async fn probe(&self, path: &str) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = Instant::now() + self.connect_timeout;
        let tcp = match self.addr {
            Some(addr) => connect_tcp(addr, deadline).await,
            None => connect_host(&self.host, self.port, deadline).await,
        };
        let Ok(mut tcp) = tcp else {
            return false;
        };
        if self.transport != Transport::Http {
            return true;
        }
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n",
            self.authority
        );
        if tcp.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        // The status line is all a check reads.
        let mut head = [0u8; 12];
        let mut got = 0;
        while got < head.len() {
            match tcp.read(&mut head[got..]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got += n,
            }
        }
        head.starts_with(b"HTTP/1.") && matches!(head[9], b'2' | b'3')
    }

    /// `host:port`, for logs.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `host:port`, shared, for access-log notes.
    pub fn authority_arc(&self) -> Arc<str> {
        self.authority.clone()
    }

    /// The `:scheme` of requests to this target.
    pub(crate) fn scheme(&self) -> http::uri::Scheme {
        match self.transport {
            Transport::Https => http::uri::Scheme::HTTPS,
            Transport::Http | Transport::H2c => http::uri::Scheme::HTTP,
        }
    }

    /// A connection for one request: the shared HTTP/2 connection when the target speaks
    /// HTTP/2, else an idle HTTP/1.1 connection, else a new connection of either kind.
    pub(crate) async fn acquire(&self) -> Result<Link, Error> {
        match self.speaks.load(Ordering::Relaxed) {
            SPEAKS_H2 => {
                if let Some(link) = self.shared() {
                    return Ok(Link::H2(link));
                }
            }
            SPEAKS_HTTP1 => return self.http1().await,
            _ => {}
        }
        // Possibly HTTP/2: one dial at a time, and whoever waited uses what the first opened.
        let seen = self.dials.load(Ordering::Acquire);
        let dialing = self.dialing.lock().await;
        match self.speaks.load(Ordering::Relaxed) {
            SPEAKS_H2 => {
                if let Some(link) = self.shared() {
                    return Ok(Link::H2(link));
                }
            }
            SPEAKS_HTTP1 => {
                drop(dialing);
                return self.http1().await;
            }
            _ => {}
        }
        if self.dials.load(Ordering::Acquire) != seen
            && let Some(code) = *self.dial_error.lock().unwrap_or_else(|e| e.into_inner())
        {
            return Err(
                Error::new(code).with_cause("the connection opened for waiting requests failed")
            );
        }
        let dialed = self.dial().await;
        *self.dial_error.lock().unwrap_or_else(|e| e.into_inner()) =
            dialed.as_ref().err().map(Error::code);
        self.dials.fetch_add(1, Ordering::Release);
        dialed
    }

    /// An idle HTTP/1.1 connection, or a new connection.
    async fn http1(&self) -> Result<Link, Error> {
        match self.checkout() {
            Some(conn) => Ok(Link::Http1(conn, true)),
            None => self.dial().await,
        }
    }

    /// A new HTTP/1.1 connection, never HTTP/2 (for WebSocket handshakes, which take the
    /// connection over).
    pub(crate) async fn connect_http1(&self) -> Result<UpConn, Error> {
        let stream = self.open(false).await?;
        Ok(UpConn::new(stream))
    }

    /// Forgets the HTTP/2 connection a request found broken (unless it was replaced already).
    pub(crate) fn h2_failed(&self, link: &H2Link) {
        let mut slot = self.h2.lock().unwrap_or_else(|e| e.into_inner());
        if slot
            .as_ref()
            .is_some_and(|l| l.generation == link.generation)
        {
            *slot = None;
        }
    }

    fn shared(&self) -> Option<H2Link> {
        self.h2.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Opens a new connection and, if it speaks HTTP/2, makes it the shared one.
    async fn dial(&self) -> Result<Link, Error> {
        let stream = self.open(true).await?;
        let h2 = match self.transport {
            Transport::Http => false,
            Transport::H2c => true,
            Transport::Https => {
                let h2 = stream.alpn() == Some(b"h2");
                let speaks = if h2 { SPEAKS_H2 } else { SPEAKS_HTTP1 };
                self.speaks.store(speaks, Ordering::Relaxed);
                h2
            }
        };
        if !h2 {
            return Ok(Link::Http1(UpConn::new(stream), false));
        }
        let (send, connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_header_list_size(H2_MAX_HEADER_LIST)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| Error::new(ErrorCode::UpstreamReset).with_cause(e))?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let link = H2Link { send, generation };
        *self.h2.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.clone());
        // The connection runs on its own task; when it ends (the upstream closed it, or
        // every handle is gone and its streams are done), the target forgets it.
        let slot = Arc::downgrade(&self.h2);
        let target = self.authority.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target = %target, error = %e, "HTTP/2 upstream connection ended");
            }
            if let Some(slot) = slot.upgrade() {
                let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                if slot.as_ref().is_some_and(|l| l.generation == generation) {
                    *slot = None;
                }
            }
        });
        Ok(Link::H2(link))
    }

    /// Connects, and for `https://` completes the TLS handshake, offering `h2` with ALPN when
    /// `h2` says so.
    async fn open(&self, h2: bool) -> Result<UpstreamIo, Error> {
        let deadline = Instant::now() + self.connect_timeout;
        let tcp = match self.addr {
            Some(addr) => connect_tcp(addr, deadline).await?,
            None => connect_host(&self.host, self.port, deadline).await?,
        };
        if self.transport != Transport::Https {
            return Ok(UpstreamIo::Plain(tcp));
        }
        let tls_failed = || Error::new(ErrorCode::UpstreamTlsFailed);
        let Some((tls, name)) = &self.tls else {
            return Err(tls_failed().with_cause("no TLS client configuration"));
        };
        let Some(name) = name.clone() else {
            return Err(tls_failed().with_cause("the target's host is not a valid TLS server name"));
        };
        let config = if h2 { &tls.h2 } else { &tls.http1 };
        let handshake = TlsConnector::from(config.clone()).connect(name, tcp);
        match tokio::time::timeout_at(deadline, handshake).await {
            Err(_) => Err(Error::new(ErrorCode::UpstreamConnectTimeout)),
            Ok(Err(e)) => Err(tls_failed().with_cause(e)),
            Ok(Ok(s)) => Ok(UpstreamIo::Tls(Box::new(s))),
        }
    }

    /// An idle connection that still looks alive, if any.
    pub(crate) fn checkout(&self) -> Option<UpConn> {
        loop {
            let idle = {
                let mut list = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                list.pop()?
            };
            if idle.since.elapsed() >= self.idle_timeout {
                continue;
            }
            // An idle connection must have nothing to read: bytes (on a TLS connection, most
            // likely a close_notify) or EOF mean the upstream closed it or broke framing, and
            // it is dropped.
            let mut probe = [0u8; 1];
            match idle.conn.stream.tcp().try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(idle.conn),
                _ => continue,
            }
        }
    }

    /// Returns a connection whose last exchange ended cleanly.
    pub(crate) fn checkin(&self, conn: UpConn) {
        if !conn.buf.is_empty() {
            return;
        }
        let mut list = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < self.max_idle {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Number of idle HTTP/1.1 connections (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |l| l.len())
    }
}

impl UpConn {
    fn new(stream: UpstreamIo) -> UpConn {
        UpConn {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER),
        }
    }
}
