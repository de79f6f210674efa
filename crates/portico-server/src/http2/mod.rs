//! HTTP/2 connections (RFC 9113), on the `h2` library: negotiated with ALPN on TLS, or by
//! prior knowledge on cleartext (a client that opens with the connection preface).
//!
//! Each stream is one request and meets the same pipeline as an HTTP/1.1 request: its head is
//! read as the HTTP/1.1 head it stands for (`request.rs`), its body streams on demand with
//! `100 Continue` sent on the first read, and its errors become responses in the one place
//! that makes them. What differs is what "close the connection" becomes: a request Portico
//! will not read to the end ends its stream only, and the connection carries on. A response
//! complete before its request (an upstream that answered early) first reads what the client
//! still sends, a little and briefly (`drain`), so a body that breaks its length is still reset
//! as malformed and one that ends closes the stream cleanly. When the stream's handles are
//! dropped with the client still sending, `h2` queues `RST_STREAM(CANCEL)` behind the
//! response's frames, so the client gets the whole response and then stops sending. (RFC 9113
//! §8.1 suggests `NO_ERROR` for this; `h2` can send that only by discarding frames still
//! queued, which would lose the response.)
//!
//! Streams run inside the connection's task, at most `max_concurrent_streams` at once; a
//! stream the client resets stops its handler at once (so a reset costs no upstream work
//! after it), and `h2` ends a connection whose client resets streams faster than they can be
//! accepted (the "rapid reset" attack, CVE-2023-44487). Header blocks are bounded before
//! `h2` decodes them (`guard.rs`, `portico_http::h2_blocks`).

mod guard;
pub(crate) mod out;
mod request;
mod response;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::RecvStream;
use h2::server::SendResponse;
use portico_http::Method;
use tokio::time::Instant;

use crate::body::RequestBody;
use crate::error::Error;
use crate::id::RequestId;
use crate::io::ClientIo;
use crate::rescue::{error_response, settle};
use crate::service::{Exchange, Request, Service};
use crate::settings::{ConnSettings, Http2Settings, Shutdown};

use guard::Guarded;
use portico_http::h2_blocks::{BlockLimits, decoded_bound};

/// Streams reset by the client before Portico accepted them, at most, before the connection
/// is ended with `ENHANCE_YOUR_CALM`.
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams Portico may reset because of the client's errors, at most, per connection.
const MAX_LOCAL_ERROR_RESETS: usize = 256;

/// Serves an HTTP/2 connection until it closes. `replay` holds what was read from `io`
/// already (the preface, when prior knowledge told the protocol).
pub(crate) async fn serve<S: Service>(
    io: ClientIo,
    replay: Bytes,
    peer: SocketAddr,
    svc: Arc<S>,
    settings: Arc<ConnSettings>,
    mut shutdown: Shutdown,
) {
    let _open = crate::connections::Open::new(crate::connections::Protocol::Http2);
    let h2s = settings.http2.clone().unwrap_or_default();
    let tls = matches!(io, ClientIo::Tls(_));
    // Boxed: the handshake's state would otherwise be part of this future's allocation for
    // the connection's life.
    let Some(mut conn) = Box::pin(handshake(io, replay, &settings, &h2s, peer)).await else {
        return;
    };
    let max_streams = h2s.max_concurrent_streams.max(1) as usize;
    let mut streams = FuturesUnordered::new();
    let mut idle_since = Some(Instant::now());
    let mut draining = false;
    loop {
        let idle = async {
            match idle_since {
                Some(since) if !draining => {
                    tokio::time::sleep_until(since + settings.idle_timeout).await;
                }
                _ => std::future::pending().await,
            }
        };
        // One poll for the connection: it accepts streams while there is room for them, and
        // otherwise only drives the connection (its frames, the streams' sends).
        let at_capacity = streams.len() >= max_streams;
        let next = poll_fn(|cx| {
            if at_capacity {
                conn.poll_closed(cx).map(|r| r.err().map(Err))
            } else {
                conn.poll_accept(cx)
            }
        });
        tokio::select! {
            accepted = next => match accepted {
                Some(Ok((req, respond))) => {
                    idle_since = None;
                    // Each stream's future in its own allocation, for the stream's life: the
                    // set itself keeps a node of its futures' size even when empty.
                    let stream = serve_stream(&*svc, &settings, peer, tls, req, respond);
                    streams.push(Box::pin(stream));
                }
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "HTTP/2 connection failed");
                    break;
                }
                None => break,
            },
            Some(()) = streams.next(), if !streams.is_empty() => {
                // Finish every other stream that can finish now, before the connection is
                // polled again: their frames then leave in one write, not one write each.
                poll_fn(|cx| {
                    while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
                    Poll::Ready(())
                })
                .await;
                if streams.is_empty() {
                    idle_since = Some(Instant::now());
                }
            }
            () = shutdown.wait(), if !draining => {
                draining = true;
                conn.graceful_shutdown();
            }
            () = idle => {
                draining = true;
                conn.graceful_shutdown();
            }
        }
    }
}

/// The server side of the HTTP/2 handshake (the client's preface and SETTINGS, Portico's
/// SETTINGS), within the header timeout, on a connection whose header blocks are bounded by
/// the guard.
async fn handshake(
    io: ClientIo,
    replay: Bytes,
    settings: &ConnSettings,
    h2s: &Http2Settings,
    peer: SocketAddr,
) -> Option<h2::server::Connection<Guarded, Bytes>> {
    let head_bytes = settings.head.max_request_line() + settings.head.max_header_bytes;
    let blocks = BlockLimits::for_heads(head_bytes);
    let io = Guarded::new(io, replay, blocks, settings.header_timeout);
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(h2s.max_concurrent_streams)
        .initial_window_size(h2s.stream_window)
        .initial_connection_window_size(h2s.connection_window)
        .max_header_list_size(decoded_bound(&blocks))
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS));
    match tokio::time::timeout(settings.header_timeout, builder.handshake::<_, Bytes>(io)).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "HTTP/2 handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// Serves one stream: the request through the service, the response back, the exchange logged.
async fn serve_stream<S: Service>(
    svc: &S,
    settings: &ConnSettings,
    peer: SocketAddr,
    tls: bool,
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let time = SystemTime::now();
    let started = Instant::now();
    let id = RequestId::new();
    let (parts, mut recv) = req.into_parts();
    let respond = Mutex::new(respond);
    let translated = request::translate(&parts, recv.is_end_stream(), &settings.head);
    let (head, info) = match translated {
        Ok(t) => t,
        Err(code) => {
            let sent = refuse(&parts, code, &respond, &id).await;
            svc.log(&Exchange {
                time,
                request: None,
                status: Some(code.status()),
                error: Some(code),
                bytes_in: 0,
                bytes_out: sent,
                duration: started.elapsed(),
                request_id: id,
                peer,
            });
            return;
        }
    };
    drop(parts);
    let mut req = Request::new(head, info, peer, tls, id);
    let expect = info.expect_continue.then_some(id);
    let mut body = RequestBody::http2(
        &mut recv,
        &respond,
        info.framing,
        expect,
        settings.max_body_bytes,
        settings.body_timeout,
    );
    let call = AssertUnwindSafe(svc.call(&mut req, &mut body)).catch_unwind();
    let outcome = tokio::select! {
        outcome = call => Some(outcome),
        () = client_reset(&respond) => None,
    };
    let Some(outcome) = outcome else {
        // The client gave up on the request: nobody is left to answer.
        let bytes_in = req.head.len() as u64 + body.bytes_received();
        log_gone(svc, time, &req, bytes_in, started, peer);
        return;
    };
    let (resp, _panicked) = settle(outcome, &id, req.head.field("accept"));
    let (status, error) = (resp.status, resp.error);
    let head_request = req.head.method() == Method::Head;
    // Not raced against `client_reset`: once the head is sent, `SendResponse` no longer
    // reports resets (it errs at once, which read as one and cancelled every response that
    // had to wait for window); `send` watches the stream itself.
    let sent = response::send(&respond, resp, head_request, &id, Some(&mut body)).await;
    let bytes_in = req.head.len() as u64 + body.bytes_received();
    drop(body);
    if sent.is_some() && !recv.is_end_stream() {
        drain(&mut recv).await;
    }
    // The exchange is over: what the request held is released before it is logged.
    req.permits.release();
    let Some(sent) = sent else {
        log_gone(svc, time, &req, bytes_in, started, peer);
        return;
    };
    svc.log(&Exchange {
        time,
        request: Some(&req),
        status: Some(status),
        error,
        bytes_in,
        bytes_out: sent,
        duration: started.elapsed(),
        request_id: id,
        peer,
    });
}

/// What is read of a request body still arriving after its response is complete, at most.
const DRAIN_BYTES: usize = 64 * 1024;
/// How long the rest of such a body is waited for, at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads, and throws away, what the client still sends of a request whose response is
/// complete (an upstream that answered before reading the whole body), a little and briefly.
/// A body that then breaks its `content-length` is a malformed request, reset by `h2` with
/// `PROTOCOL_ERROR` (RFC 9113 §8.1.1) rather than cancelled; one that ends in time closes
/// the stream cleanly. Past the bounds the stream's handles go and `h2` cancels the rest.
async fn drain(recv: &mut RecvStream) {
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(data)) = recv.data().await {
            let _ = recv.flow_control().release_capacity(data.len());
            left = left.saturating_sub(data.len());
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// Answers a stream whose head broke a rule with the error for `code`; the bytes sent.
async fn refuse(
    parts: &http::request::Parts,
    code: portico_http::ErrorCode,
    respond: &Mutex<SendResponse<Bytes>>,
    id: &RequestId,
) -> u64 {
    let accept = parts
        .headers
        .get(http::header::ACCEPT)
        .map(|v| v.as_bytes());
    let resp = error_response(&Error::new(code), id, accept);
    let head_request = parts.method == http::Method::HEAD;
    response::send(respond, resp, head_request, id, None)
        .await
        .unwrap_or(0)
}

/// Resolves when the client resets the stream.
async fn client_reset(respond: &Mutex<SendResponse<Bytes>>) {
    // Either way (a reset, or the connection failing) nobody is left to answer.
    let _ = poll_fn(|cx| {
        respond
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .poll_reset(cx)
    })
    .await;
}

fn log_gone<S: Service>(
    svc: &S,
    time: SystemTime,
    req: &Request,
    bytes_in: u64,
    started: Instant,
    peer: SocketAddr,
) {
    svc.log(&Exchange {
        time,
        request: Some(req),
        status: None,
        error: None,
        bytes_in,
        bytes_out: 0,
        duration: started.elapsed(),
        request_id: req.id,
        peer,
    });
}
