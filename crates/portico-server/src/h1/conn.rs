//! One client connection: read a head, hand the request to the service, write the response,
//! repeat while the connection may persist.
//!
//! Requests on a connection are handled one after another, so pipelined requests are answered
//! in order by construction. Whenever framing can no longer be trusted (a protocol error, an
//! unread or half-read body, a panic) the response says `Connection: close` and the
//! connection ends; before closing, Portico stops writing and briefly reads what the client
//! is still sending, so the client gets the response rather than a reset (CONTRACT.md rule 5).

use crate::io::ClientIo;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use portico_http::{
    ErrorCode, HeadLimits, HeadScanner, Method, RequestHead, RequestInfo, Scan, Version,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::RequestBody;
use crate::error::Error;
use crate::http2::{self, Http2Settings, PREFACE};
use crate::id::RequestId;
use crate::rescue::{error_response, settle};
use crate::response::{Body, Upgraded};
use crate::service::{Exchange, Notes, Request, Service};
use crate::spare;
use crate::write::{WriteCtx, write_response};

/// How long a closing connection keeps reading (and discarding) what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;

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

/// Serves one connection until it closes.
pub async fn serve_connection<S: Service>(
    mut io: ClientIo,
    peer: SocketAddr,
    svc: Arc<S>,
    settings: Arc<ConnSettings>,
    mut shutdown: Shutdown,
) {
    // A protocol ALPN settled is honoured even if a reload turned HTTP/2 off meanwhile.
    let h2 = settings.http2.is_some();
    // HTTP/2's state lives in its own allocation: inline, it would make every HTTP/1.1
    // connection's future (held for as long as the connection is open) as large as its own.
    if io.alpn() == Some(b"h2") {
        return Box::pin(http2::serve(
            io,
            Bytes::new(),
            peer,
            svc,
            settings,
            shutdown,
        ))
        .await;
    }
    let mut rbuf = BytesMut::new();
    let mut out = Vec::new();
    let mut first = true;
    loop {
        if rbuf.is_empty() {
            // Nothing of a request yet: an idle connection is closed silently when its time is
            // up or the server shuts down.
            let wait = if first {
                settings.header_timeout
            } else {
                settings.idle_timeout
            };
            if !wait_for_request(&mut io, &mut rbuf, &mut out, wait, &mut shutdown).await {
                return;
            }
        }
        let time = SystemTime::now();
        let started = Instant::now();
        // HTTP/2 by prior knowledge: a client that opens with the preface (RFC 9113 §3.3).
        // Over TLS the protocol is ALPN's to choose.
        if first
            && h2
            && io.alpn().is_none()
            && opens_with_preface(&mut io, &mut rbuf, started + settings.header_timeout).await
        {
            let replay = rbuf.split().freeze();
            return Box::pin(http2::serve(io, replay, peer, svc, settings, shutdown)).await;
        }
        first = false;
        let id = RequestId::new();

        let early = Early {
            time,
            started,
            id,
            peer,
        };
        let head = match read_head(&mut io, &mut rbuf, &settings, started).await {
            Ok(head) => head,
            Err(HeadFailure::Gone) => return,
            Err(HeadFailure::Error(code, bytes_in)) => {
                return refuse(io, &mut out, &*svc, code, None, bytes_in, early).await;
            }
        };
        let head_len = head.len() as u64;
        let info = match RequestInfo::analyze(&head) {
            Ok(info) => info,
            Err(code) => {
                return refuse(io, &mut out, &*svc, code, Some(&head), head_len, early).await;
            }
        };

        let mut req = Request {
            head,
            info,
            peer,
            tls: matches!(io, ClientIo::Tls(_)),
            id,
            notes: Notes::default(),
        };
        let expect = info.expect_continue.then_some(id);
        let (outcome, body_complete, body_bytes) = {
            let mut body = RequestBody::new(
                &mut io,
                &mut rbuf,
                info.framing,
                expect,
                settings.max_body_bytes,
                settings.body_timeout,
            );
            let outcome = AssertUnwindSafe(svc.call(&mut req, &mut body))
                .catch_unwind()
                .await;
            (outcome, body.is_complete(), body.bytes_received())
        };
        let (mut resp, panicked) = settle(outcome, &id, req.head.field("accept"));
        let keep_alive = info.keep_alive && body_complete && !panicked && !shutdown.is_draining();
        // A 101, or a 2xx to CONNECT (a tunnel, RFC 9110 §9.3.6), hands the connection over
        // once its head is out (only when the request left nothing unread, so no request
        // bytes can be mistaken for the new protocol's).
        let switches = resp.status == 101
            || (req.head.method() == Method::Connect && (200..300).contains(&resp.status));
        let on_upgrade = match &resp.body {
            Body::Upgrade(_) if switches && body_complete => {
                // Bodiless: the head announces no length (RFC 9110 §9.3.6 forbids one on a
                // 2xx to CONNECT).
                match std::mem::replace(&mut resp.body, Body::Bodiless) {
                    Body::Upgrade(take_over) => Some(take_over),
                    _ => None,
                }
            }
            _ => None,
        };
        let status = resp.status;
        let error = resp.error;
        let ctx = WriteCtx {
            head_request: req.head.method() == Method::Head,
            http10: req.head.version() == Version::Http10,
            keep_alive,
            id,
        };
        let written = write_response(&mut io, &mut out, resp, &ctx).await;
        // The exchange is over: what the request held (a concurrency slot) is released
        // before it is logged, so whoever reads the log line finds it free.
        req.notes.held = crate::Held::default();
        svc.log(&Exchange {
            time,
            request: Some(&req),
            status: Some(status),
            error,
            bytes_in: head_len + body_bytes,
            bytes_out: written.bytes,
            duration: started.elapsed(),
            request_id: id,
            peer,
        });
        if let Some(take_over) = on_upgrade {
            if written.complete {
                let buffered = rbuf.split().freeze();
                take_over(Upgraded { io, buffered }).await;
            }
            return;
        }
        if !written.keep_alive {
            close(io).await;
            return;
        }
    }
}

/// What is known of a request that failed before the pipeline saw it.
struct Early {
    time: SystemTime,
    started: Instant,
    id: RequestId,
    peer: SocketAddr,
}

/// Answers a request whose head broke a protocol rule, logs it, and closes the connection.
async fn refuse<S: Service>(
    mut io: ClientIo,
    out: &mut Vec<u8>,
    svc: &S,
    code: ErrorCode,
    head: Option<&RequestHead>,
    bytes_in: u64,
    e: Early,
) {
    let resp = error_response(
        &Error::new(code),
        &e.id,
        head.and_then(|h| h.field("accept")),
    );
    let ctx = WriteCtx {
        head_request: head.is_some_and(|h| h.method() == Method::Head),
        http10: head.is_some_and(|h| h.version() == Version::Http10),
        keep_alive: false,
        id: e.id,
    };
    let written = write_response(&mut io, out, resp, &ctx).await;
    svc.log(&Exchange {
        time: e.time,
        request: None,
        status: Some(code.status()),
        error: Some(code),
        bytes_in,
        bytes_out: written.bytes,
        duration: e.started.elapsed(),
        request_id: e.id,
        peer: e.peer,
    });
    close(io).await;
}

enum HeadFailure {
    /// The client went away, or never began a request: close without a response.
    Gone,
    /// Answer with this code (after this many bytes were received) and close.
    Error(ErrorCode, u64),
}

/// Reads until a whole head is in `rbuf`, then parses it.
async fn read_head(
    io: &mut ClientIo,
    rbuf: &mut BytesMut,
    settings: &ConnSettings,
    started: Instant,
) -> Result<RequestHead, HeadFailure> {
    let deadline = started + settings.header_timeout;
    let mut scanner = HeadScanner::new();
    let (start, end) = loop {
        match scanner.scan(rbuf, &settings.head) {
            Ok(Scan::Complete { start, end }) => break (start, end),
            Ok(Scan::Partial) => {}
            Err(code) => return Err(HeadFailure::Error(code, rbuf.len() as u64)),
        }
        rbuf.reserve(4 * 1024);
        match tokio::time::timeout_at(deadline, io.read_buf(rbuf)).await {
            Err(_) if scanner.started(rbuf) => {
                return Err(HeadFailure::Error(
                    ErrorCode::HeadTimeout,
                    rbuf.len() as u64,
                ));
            }
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadFailure::Gone),
            Ok(Ok(_)) => {}
        }
    };
    rbuf.advance(start);
    let bytes = rbuf.split_to(end - start).freeze();
    RequestHead::parse(bytes, &settings.head).map_err(|code| HeadFailure::Error(code, end as u64))
}

/// Whether the connection opens with the HTTP/2 preface: reads until the bytes in `rbuf`
/// match all of it or stop matching it (before `deadline`; a client that goes quiet is left
/// to the HTTP/1.1 head reader and its timeout).
async fn opens_with_preface(io: &mut ClientIo, rbuf: &mut BytesMut, deadline: Instant) -> bool {
    loop {
        let n = rbuf.len().min(PREFACE.len());
        if rbuf[..n] != PREFACE[..n] {
            return false;
        }
        if n == PREFACE.len() {
            return true;
        }
        rbuf.reserve(PREFACE.len());
        match tokio::time::timeout_at(deadline, io.read_buf(rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}

/// Waits up to `wait` for the first bytes of a request; false when the connection should
/// close (its time is up, the client left, the server stops). The connection's buffers go
/// back to the thread's spares while it waits (see `spare.rs`), so an idle connection costs
/// only its task and its socket.
async fn wait_for_request(
    io: &mut ClientIo,
    rbuf: &mut BytesMut,
    out: &mut Vec<u8>,
    wait: Duration,
    shutdown: &mut Shutdown,
) -> bool {
    spare::release_write(out);
    tokio::select! {
        r = tokio::time::timeout(wait, io.read_idle(rbuf)) => matches!(r, Ok(Ok(n)) if n > 0),
        _ = shutdown.wait() => false,
    }
}

/// Ends a connection: stop writing, then read and discard for a moment so the response is not
/// lost to a reset while the client is still sending.
async fn close(mut io: ClientIo) {
    let _ = io.shutdown().await;
    let deadline = Instant::now() + LINGER;
    // On the heap, taken only now: an array here would live in every connection's future
    // state (16 KiB per connection, idle or not).
    let mut sink = vec![0u8; 16 * 1024];
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, io.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => break,
        }
    }
}
