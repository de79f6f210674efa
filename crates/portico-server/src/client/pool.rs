//! Connections to one target: connect, keep idle ones, hand them out again.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use portico_http::ErrorCode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::Error;

/// An open connection to a target.
pub(crate) struct UpConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

struct Idle {
    conn: UpConn,
    since: Instant,
}

/// The idle connections of one target.
pub struct TargetPool {
    host: String,
    port: u16,
    addr: Option<SocketAddr>,
    authority: Arc<str>,
    connect_timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

impl TargetPool {
    pub(crate) fn new(
        host: String,
        port: u16,
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
        TargetPool {
            host,
            port,
            addr,
            authority,
            connect_timeout,
            max_idle,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// `host:port`, for logs.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `host:port`, shared, for access-log notes.
    pub fn authority_arc(&self) -> Arc<str> {
        self.authority.clone()
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
            // An idle connection must have nothing to read: bytes or EOF mean the upstream
            // closed it or broke framing, and it is dropped.
            let mut probe = [0u8; 1];
            match idle.conn.stream.try_read(&mut probe) {
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

    /// Opens a new connection.
    pub(crate) async fn connect(&self) -> Result<UpConn, Error> {
        let attempt = async {
            match self.addr {
                Some(addr) => TcpStream::connect(addr).await,
                None => TcpStream::connect((self.host.as_str(), self.port)).await,
            }
        };
        let stream = match tokio::time::timeout(self.connect_timeout, attempt).await {
            Err(_) => return Err(Error::new(ErrorCode::UpstreamConnectTimeout)),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(Error::new(ErrorCode::UpstreamConnectRefused).with_cause(e));
            }
            Ok(Err(e)) => return Err(Error::new(ErrorCode::UpstreamConnectFailed).with_cause(e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(UpConn {
            stream,
            buf: BytesMut::with_capacity(super::exchange::READ_BUFFER),
        })
    }

    /// Number of idle connections (for tests and metrics).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |l| l.len())
    }
}
