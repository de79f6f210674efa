//! An HTTP/1.1 connection: read a head, hand the request to the service, write the response,
//! repeat while the connection may persist.
//!
//! Requests on a connection are handled one after another, so pipelined requests are answered
//! in order by construction. Whenever framing can no longer be trusted (a protocol error, an
//! unread or half-read body, a panic) the response says `Connection: close` and the
//! connection ends; before closing, Portico stops writing and briefly reads what the client
//! is still sending, so the client gets the response rather than a reset (the contract's rule of connection hygiene).

use crate::io::ClientIo;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use portico_http::{ErrorCode, HeadScanner, Method, RequestHead, RequestInfo, Scan, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::write::{WriteCtx, write_response};
use crate::body::RequestBody;
use crate::error::Error;
use crate::id::RequestId;
use crate::rescue::{error_response, settle};
use crate::response::{Body, OnUpgrade, Response, Upgraded};
use crate::service::{Exchange, Request, Service};
use crate::settings::{ConnSettings, Shutdown};
use crate::spare;
use portico_http::h2_blocks::PREFACE;

/// How long a closing connection keeps reading (and discarding) what the client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// A cleartext connection whose client opened with the HTTP/2 preface: what HTTP/2 takes on.
pub(crate) struct PriorKnowledge<S> {
    pub(crate) io: ClientIo,
    /// What was read already (the preface).
    pub(crate) replay: Bytes,
    pub(crate) svc: Arc<S>,
    pub(crate) settings: Arc<ConnSettings>,
    pub(crate) shutdown: Shutdown,
}

/// Serves one connection until it closes, or until its client turns out to speak HTTP/2 by
/// prior knowledge (then the connection is handed back to be served as HTTP/2).
pub(crate) async fn serve<S: Service>(
    mut io: ClientIo,
    peer: SocketAddr,
    svc: Arc<S>,
    settings: Arc<ConnSettings>,
    mut shutdown: Shutdown,
) -> Option<PriorKnowledge<S>> {
    // Counted as HTTP/1.1 while this runs (a connection handed to HTTP/2 is counted there).
    let _open = crate::connections::Open::new(crate::connections::Protocol::Http1);
    let h2 = settings.http2.is_some();
    let h2_only = settings.http2.as_ref().is_some_and(|h| h.cleartext_only);
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
                return None;
            }
        }
        let early = Early {
            time: SystemTime::now(),
            started: Instant::now(),
            id: RequestId::new(),
            peer,
        };
        // HTTP/2 by prior knowledge: a client that opens with the preface (RFC 9113 §3.3).
        // Over TLS the protocol is ALPN's to choose.
        if first && h2 && io.alpn().is_none() {
            let deadline = early.started + settings.header_timeout;
            let preface = opens_with_preface(&mut io, &mut rbuf, deadline).await;
            if preface == Preface::Whole {
                let replay = rbuf.split().freeze();
                // The read buffer goes now: what is left of it would keep its whole
                // allocation (8 KiB) alive for the HTTP/2 connection's life, after `replay`
                // has been read.
                drop(rbuf);
                return Some(PriorKnowledge {
                    io,
                    replay,
                    svc,
                    settings,
                    shutdown,
                });
            }
            // An HTTP/2 client whose preface goes wrong after its first line, or anything but
            // the preface where only HTTP/2 is spoken: a connection error (RFC 9113 §3.4), not
            // an HTTP/1.1 request.
            if preface == Preface::Broken || (h2_only && !matches!(io, ClientIo::Tls(_))) {
                let _ = io.write_all(&BROKEN_PREFACE_ANSWER).await;
                close(io).await;
                return None;
            }
        }
        first = false;
        let (head, info) = match read_request(&mut io, &mut rbuf, &settings, early.started).await {
            Ok(request) => request,
            Err(HeadFailure::Gone) => return None,
            Err(HeadFailure::Error(code, head, bytes_in)) => {
                let refusal = refuse(io, &mut out, &*svc, code, head.as_ref(), bytes_in, early);
                Box::pin(refusal).await;
                return None;
            }
        };
        let tls = matches!(io, ClientIo::Tls(_));
        let req = Request::new(head, info, peer, tls, early.id);
        let conn = Conn {
            io: &mut io,
            rbuf: &mut rbuf,
            out: &mut out,
            settings: &settings,
            shutdown: &shutdown,
        };
        // The exchange (the service's future, the response's writing) lives in its own
        // allocation, taken for the request and given back after it: inline, it would make the
        // connection's future, held while the connection idles, as large as the largest of its
        // states.
        match Box::pin(exchange(conn, &*svc, req, early)).await {
            After::KeepAlive => {}
            After::Close => {
                close(io).await;
                return None;
            }
            After::Gone => return None,
            After::Switch(take_over) => {
                let buffered = rbuf.split().freeze();
                take_over(Upgraded { io, buffered }).await;
                return None;
            }
        }
    }
}

/// What one exchange works with of its connection.
struct Conn<'c> {
    io: &'c mut ClientIo,
    rbuf: &'c mut BytesMut,
    out: &'c mut Vec<u8>,
    settings: &'c ConnSettings,
    /// Once the server is shutting down, an exchange is its connection's last.
    shutdown: &'c Shutdown,
}

/// What becomes of a connection after an exchange.
enum After {
    /// It waits for the next request.
    KeepAlive,
    /// It closes (with `Connection: close` sent).
    Close,
    /// It is gone: the response could not be written whole.
    Gone,
    /// It now speaks another protocol (after a 101 or a 2xx to CONNECT).
    Switch(OnUpgrade),
}

/// One request: the service's answer, written; then the exchange logged.
async fn exchange<S: Service>(c: Conn<'_>, svc: &S, mut req: Request, early: Early) -> After {
    let info = req.info;
    let id = early.id;
    let expect = info.expect_continue.then_some(id);
    let (outcome, body_complete, body_bytes) = {
        let mut body = RequestBody::new(
            c.io,
            c.rbuf,
            info.framing,
            expect,
            c.settings.max_body_bytes,
            c.settings.body_timeout,
        );
        let outcome = AssertUnwindSafe(svc.call(&mut req, &mut body))
            .catch_unwind()
            .await;
        (outcome, body.is_complete(), body.bytes_received())
    };
    let (mut resp, panicked) = settle(outcome, &id, req.head.field("accept"));
    let keep_alive = info.keep_alive && body_complete && !panicked && !c.shutdown.is_draining();
    let on_upgrade = take_over(&req, &mut resp, body_complete);
    let (status, error) = (resp.status, resp.error);
    let ctx = WriteCtx {
        head_request: req.head.method() == Method::Head,
        http10: req.head.version() == Version::Http10,
        keep_alive,
        id,
    };
    let written = write_response(c.io, c.out, resp, &ctx).await;
    // The exchange is over: what the request held (a concurrency slot) is released before it
    // is logged, so whoever reads the log line finds it free.
    req.permits.release();
    svc.log(&Exchange {
        time: early.time,
        request: Some(&req),
        status: Some(status),
        error,
        bytes_in: req.head.len() as u64 + body_bytes,
        bytes_out: written.bytes,
        duration: early.started.elapsed(),
        request_id: id,
        peer: early.peer,
    });
    match on_upgrade {
        Some(take_over) if written.complete => After::Switch(take_over),
        Some(_) => After::Gone,
        None if written.keep_alive => After::KeepAlive,
        None => After::Close,
    }
}

/// A 101, or a 2xx to CONNECT (a tunnel, RFC 9110 §9.3.6), hands the connection over once its
/// head is out: only when the request left nothing unread, so no request bytes can be taken
/// for the new protocol's. The response is then bodiless: its head announces no length (RFC
/// 9110 §9.3.6 forbids one on a 2xx to CONNECT).
fn take_over(req: &Request, resp: &mut Response, body_complete: bool) -> Option<OnUpgrade> {
    let switches = resp.status == 101
        || (req.head.method() == Method::Connect && (200..300).contains(&resp.status));
    if !(switches && body_complete && matches!(resp.body, Body::Upgrade(_))) {
        return None;
    }
    match std::mem::replace(&mut resp.body, Body::Bodiless) {
        Body::Upgrade(take_over) => Some(take_over),
        _ => None,
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
    /// Answer with this code (after this many bytes were received) and close; the head, when
    /// it parsed (its `Accept` chooses the error's media type).
    Error(ErrorCode, Option<RequestHead>, u64),
}

/// Reads a request head and the framing and persistence it asks for.
async fn read_request(
    io: &mut ClientIo,
    rbuf: &mut BytesMut,
    settings: &ConnSettings,
    started: Instant,
) -> Result<(RequestHead, RequestInfo), HeadFailure> {
    let head = read_head(io, rbuf, settings, started).await?;
    match RequestInfo::analyze(&head) {
        Ok(info) => Ok((head, info)),
        Err(code) => {
            let len = head.len() as u64;
            Err(HeadFailure::Error(code, Some(head), len))
        }
    }
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
            Err(code) => return Err(HeadFailure::Error(code, None, rbuf.len() as u64)),
        }
        rbuf.reserve(4 * 1024);
        match tokio::time::timeout_at(deadline, io.read_buf(rbuf)).await {
            Err(_) if scanner.started(rbuf) => {
                return Err(HeadFailure::Error(
                    ErrorCode::HeadTimeout,
                    None,
                    rbuf.len() as u64,
                ));
            }
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadFailure::Gone),
            Ok(Ok(_)) => {}
        }
    };
    rbuf.advance(start);
    let bytes = rbuf.split_to(end - start).freeze();
    RequestHead::parse(bytes, &settings.head)
        .map_err(|code| HeadFailure::Error(code, None, end as u64))
}

/// How a connection opens, as far as the HTTP/2 preface goes.
#[derive(Debug, PartialEq)]
enum Preface {
    /// With the whole preface: HTTP/2 by prior knowledge.
    Whole,
    /// With the preface's first line (`PRI * HTTP/2.0`), then something else: an HTTP/2
    /// client's invalid preface.
    Broken,
    /// Otherwise: HTTP/1.1.
    No,
}

/// The preface's first line: no HTTP/1.1 request starts so (the method `PRI` is reserved for
/// it, RFC 9113 §11.6).
const PREFACE_LINE: usize = b"PRI * HTTP/2.0\r\n".len();

/// What a broken preface gets: the server's preface (an empty SETTINGS) and a GOAWAY with
/// `PROTOCOL_ERROR` for no stream, before the connection closes.
const BROKEN_PREFACE_ANSWER: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, empty
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0:
    0, 0, 0, 0, // the last stream processed: none
    0, 0, 0, 0x1, // PROTOCOL_ERROR
];

/// How the connection opens: reads until the bytes in `rbuf` match all of the HTTP/2 preface
/// or stop matching it (before `deadline`; a client that goes quiet is left to the HTTP/1.1
/// head reader and its timeout).
async fn opens_with_preface(io: &mut ClientIo, rbuf: &mut BytesMut, deadline: Instant) -> Preface {
    loop {
        let n = rbuf.len().min(PREFACE.len());
        if rbuf[..n] != PREFACE[..n] {
            let matched = rbuf.iter().zip(PREFACE).take_while(|(a, b)| a == b).count();
            return if matched >= PREFACE_LINE {
                Preface::Broken
            } else {
                Preface::No
            };
        }
        if n == PREFACE.len() {
            return Preface::Whole;
        }
        rbuf.reserve(PREFACE.len());
        match tokio::time::timeout_at(deadline, io.read_buf(rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Preface::No,
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
