//! One HTTP/1.1 exchange with a target: the request written and its body streamed while
//! watching for an early answer, then the response head read; and the WebSocket handshake,
//! on a connection of its own.

use std::io::{IoSlice, Write as _};
use std::pin::pin;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use portico_http::chunked::{LAST_CHUNK, encode_chunk_head};
use portico_http::request::list_elements;
use portico_http::response::{ResponseFraming, is_hop_by_hop, response_info};
use portico_http::response_head::{HeadSpan, InvalidHead, ResponseHead, ResponseScanner};
use portico_http::{BodyFraming, ErrorCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::body::UpstreamBody;
use super::message::{Failure, Switched, UpgradeAnswer, UpstreamRequest, UpstreamResponse};
use super::pool::{READ_BUFFER, TargetPool, UpConn};
use super::settings::UpstreamIo;
use crate::body::RequestBody;
use crate::error::Error;

/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Sends an upgrade request (no body) on a new connection, which is never pooled: after a
/// 101 it belongs to the new protocol.
pub(super) async fn upgrade(
    target: Arc<TargetPool>,
    req: UpstreamRequest,
) -> Result<UpgradeAnswer, Error> {
    let mut conn = target.connect_http1().await?;
    write_head(&mut conn.stream, &req, Framing::Upgrade, &[])
        .await
        .map_err(|e| Error::new(ErrorCode::UpstreamReset).with_cause(e))?;
    let head = match read_head(&mut conn.stream, &mut conn.buf, false, true).await {
        Ok(head) => head,
        Err(Failure::Unsent(e) | Failure::Stale(e) | Failure::Fatal(e)) => return Err(e),
    };
    if head.status == 101 {
        let buffered = conn.buf.split().freeze();
        return Ok(UpgradeAnswer::Switched(Switched {
            reason: head.reason,
            headers: head.headers,
            stream: conn.stream,
            buffered,
            target,
        }));
    }
    let body = UpstreamBody::new(conn, head.framing, false, target.clone());
    Ok(UpgradeAnswer::Refused(UpstreamResponse {
        status: head.status,
        reason: head.reason,
        headers: head.headers,
        body,
        target,
    }))
}

/// Sends the request on one of the target's HTTP/1.1 connections (`reused` when it came from
/// the pool) and reads the response head; the body streams from the answer.
pub(super) async fn send(
    target: &Arc<TargetPool>,
    mut conn: UpConn,
    reused: bool,
    req: &UpstreamRequest,
    body: &mut RequestBody<'_>,
    head_request: bool,
) -> Result<UpstreamResponse, Failure> {
    match exchange(&mut conn, req, body, head_request).await {
        Ok((head, sent)) => {
            let reusable = head.reusable && sent;
            let body = UpstreamBody::new(conn, head.framing, reusable, target.clone());
            Ok(UpstreamResponse {
                status: head.status,
                reason: head.reason,
                headers: head.headers,
                body,
                target: target.clone(),
            })
        }
        // A new connection that fails was not stale: the upstream is at fault.
        Err(Failure::Stale(e)) if !reused => Err(Failure::Fatal(e)),
        Err(f) => Err(f),
    }
}

/// What follows a request's fields.
enum Framing {
    /// The framing of the body sent.
    Body(BodyFraming),
    /// A WebSocket handshake: Portico asks this hop for the switch itself (`Upgrade` and
    /// `Connection` are hop-by-hop, so the client's never came this far).
    Upgrade,
}

/// Writes the request's head as HTTP/1.1 has it (RFC 9112 §3): the request line, the
/// fields, what `framing` adds, and the empty line, then `body` (a body read whole already;
/// empty otherwise), in one vectored write of pieces borrowed from the request (nothing is
/// copied into a buffer of its own), then flushes.
async fn write_head<W: AsyncWrite + Unpin>(
    w: &mut W,
    req: &UpstreamRequest,
    framing: Framing,
    body: &[u8],
) -> std::io::Result<()> {
    let mut length = [0u8; 48];
    let end: &[u8] = match framing {
        Framing::Body(BodyFraming::None) => b"\r\n",
        Framing::Body(BodyFraming::Length(n)) => {
            let mut at = std::io::Cursor::new(&mut length[..]);
            // 48 bytes hold the field for any u64.
            let _ = write!(at, "Content-Length: {n}\r\n\r\n");
            let written = usize::try_from(at.position()).unwrap_or(0);
            &length[..written]
        }
        Framing::Body(BodyFraming::Chunked) => b"Transfer-Encoding: chunked\r\n\r\n",
        Framing::Upgrade => b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    };
    let mut pieces = [
        IoSlice::new(req.method.as_str().as_bytes()),
        IoSlice::new(b" "),
        IoSlice::new(&req.target),
        IoSlice::new(b" HTTP/1.1\r\n"),
        IoSlice::new(req.fields.wire()),
        IoSlice::new(end),
        IoSlice::new(body),
    ];
    let mut pieces = &mut pieces[..];
    while !pieces.is_empty() {
        let n = w.write_vectored(pieces).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut pieces, n);
    }
    w.flush().await
}

struct Head {
    status: u16,
    reason: Bytes,
    headers: Vec<(Bytes, Bytes)>,
    framing: ResponseFraming,
    reusable: bool,
}

enum CopyError {
    Client(Error),
    Upstream,
}

/// Writes the request, streams its body, and reads the response head. Returns the head and
/// whether the whole request was sent (an upstream may answer before reading all of it).
async fn exchange(
    conn: &mut UpConn,
    req: &UpstreamRequest,
    body: &mut RequestBody<'_>,
    head_request: bool,
) -> Result<(Head, bool), Failure> {
    // A body read whole already goes with the head: one write, not two.
    let whole = body.buffered().cloned();
    let with_head = whole.as_deref().unwrap_or_default();
    if let Err(e) = write_head(
        &mut conn.stream,
        req,
        Framing::Body(body.framing()),
        with_head,
    )
    .await
    {
        return Err(Failure::Stale(
            Error::new(ErrorCode::UpstreamReset).with_cause(e),
        ));
    }
    if whole.is_some() {
        // Handed out (no I/O: it is in memory), so the body counts as sent.
        body.chunk().await.map_err(Failure::Fatal)?;
    }
    if body.framing() == BodyFraming::None || whole.is_some() {
        return Ok((
            read_head(&mut conn.stream, &mut conn.buf, head_request, false).await?,
            true,
        ));
    }
    match &mut conn.stream {
        UpstreamIo::Plain(tcp) => {
            let (rd, wr) = tcp.split();
            send_body(rd, wr, &mut conn.buf, body, head_request).await
        }
        UpstreamIo::Tls(tls) => {
            let (rd, wr) = tokio::io::split(tls.as_mut());
            send_body(rd, wr, &mut conn.buf, body, head_request).await
        }
    }
}

/// Streams the request body while watching for the response head, which may come first.
async fn send_body<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut rd: R,
    mut wr: W,
    buf: &mut BytesMut,
    body: &mut RequestBody<'_>,
    head_request: bool,
) -> Result<(Head, bool), Failure> {
    let chunked = body.framing() == BodyFraming::Chunked;
    let mut read = pin!(read_head(&mut rd, buf, head_request, false));
    let mut copy = pin!(copy_body(body, &mut wr, chunked));
    let mut sent = false;
    let mut write_failed = false;
    loop {
        tokio::select! {
            biased;
            r = &mut copy, if !sent && !write_failed => match r {
                Ok(()) => sent = true,
                Err(CopyError::Client(e)) => return Err(Failure::Fatal(e)),
                // The upstream stopped reading; it may still have answered.
                Err(CopyError::Upstream) => write_failed = true,
            },
            h = &mut read => {
                return match h {
                    Ok(h) => Ok((h, sent)),
                    Err(Failure::Stale(e)) => Err(Failure::Fatal(e)),
                    Err(f) => Err(f),
                };
            }
        }
    }
}

async fn copy_body<W: AsyncWrite + Unpin>(
    body: &mut RequestBody<'_>,
    out: &mut W,
    chunked: bool,
) -> Result<(), CopyError> {
    let mut framing = Vec::with_capacity(16);
    while let Some(data) = body.chunk().await.map_err(CopyError::Client)? {
        if data.is_empty() {
            continue;
        }
        if chunked {
            framing.clear();
            encode_chunk_head(data.len(), &mut framing);
            out.write_all(&framing)
                .await
                .map_err(|_| CopyError::Upstream)?;
            out.write_all(&data)
                .await
                .map_err(|_| CopyError::Upstream)?;
            out.write_all(b"\r\n")
                .await
                .map_err(|_| CopyError::Upstream)?;
        } else {
            out.write_all(&data)
                .await
                .map_err(|_| CopyError::Upstream)?;
        }
        // A piece of a streamed body goes out now, not when the next one comes (TLS buffers).
        out.flush().await.map_err(|_| CopyError::Upstream)?;
    }
    if chunked {
        out.write_all(LAST_CHUNK)
            .await
            .map_err(|_| CopyError::Upstream)?;
    }
    out.flush().await.map_err(|_| CopyError::Upstream)
}

/// Reads a response head; `upgrade` when the request asked to switch protocols, so that a
/// 101 is the final answer.
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
    upgrade: bool,
) -> Result<Head, Failure> {
    let mut received_any = !buf.is_empty();
    let mut scanner = ResponseScanner::new();
    loop {
        if let Some(span) = scanner.scan(buf).map_err(invalid)? {
            match take_head(buf, span, head_request, upgrade)? {
                Parsed::Final(head) => return Ok(head),
                // 100, 102, 103: interim responses are not relayed; the final one follows.
                Parsed::Interim => {
                    scanner = ResponseScanner::new();
                    continue;
                }
            }
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(Error::new(ErrorCode::UpstreamInvalidResponse)
                .with_cause("response head too large")
                .into());
        }
        buf.reserve(READ_BUFFER);
        let reset = |cause: Box<dyn std::error::Error + Send + Sync>, any: bool| {
            let e = Error::new(ErrorCode::UpstreamReset).with_cause(cause);
            if any {
                Failure::Fatal(e)
            } else {
                Failure::Stale(e)
            }
        };
        match rd.read_buf(buf).await {
            Ok(0) => {
                return Err(reset(
                    "connection closed before a response".into(),
                    received_any,
                ));
            }
            Err(e) => return Err(reset(e.into(), received_any)),
            Ok(_) => received_any = true,
        }
    }
}

enum Parsed {
    Final(Head),
    Interim,
}

fn invalid(why: InvalidHead) -> Error {
    Error::new(ErrorCode::UpstreamInvalidResponse).with_cause(why)
}

/// Takes the head the scanner found off the front of `buf` and reads it: the status, the
/// fields to relay (end-to-end ones; a `Content-Length` only where it describes the
/// representation rather than the body, RFC 9112 §6.3), the body's framing and whether the
/// connection can be reused.
fn take_head(
    buf: &mut BytesMut,
    span: HeadSpan,
    head_request: bool,
    upgrade: bool,
) -> Result<Parsed, Error> {
    buf.advance(span.start);
    let head =
        ResponseHead::parse(buf.split_to(span.end - span.start).freeze()).map_err(invalid)?;
    let status = head.status();
    if status == 306 {
        return Err(Error::new(ErrorCode::UpstreamStatus306));
    }
    if status == 101 {
        if !upgrade {
            return Err(invalid_cause("101 without an upgrade request"));
        }
        // Portico asks only for WebSocket; a switch to anything else cannot be relayed.
        let websocket = head.fields().any(|(n, v)| {
            n.eq_ignore_ascii_case(b"upgrade")
                && list_elements(v).any(|p| p.eq_ignore_ascii_case(b"websocket"))
        });
        if !websocket {
            return Err(invalid_cause("101 to a protocol other than WebSocket"));
        }
    } else if status < 200 {
        return Ok(Parsed::Interim);
    }
    let info = response_info(status, head.is_http10(), head_request, head.fields())
        .map_err(|_| invalid_cause("invalid Content-Length"))?;
    let tokens: Vec<&[u8]> = head
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, v)| list_elements(v))
        .collect();
    // With both Content-Length and Transfer-Encoding the length is dropped (§6.3 (3)): the
    // body is relayed with the framing Portico writes.
    let keep_length = info.framing == ResponseFraming::None && status != 204;
    // One more slot: the gateway adds its `Via`.
    let mut headers = Vec::with_capacity(head.field_count() + 1);
    for (name, value) in head.shared_fields() {
        if !is_hop_by_hop(&name, &tokens)
            && (keep_length || !name.eq_ignore_ascii_case(b"content-length"))
        {
            headers.push((name, value));
        }
    }
    Ok(Parsed::Final(Head {
        status,
        reason: head.reason(),
        headers,
        framing: info.framing,
        reusable: info.reusable,
    }))
}

fn invalid_cause(cause: &'static str) -> Error {
    Error::new(ErrorCode::UpstreamInvalidResponse).with_cause(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head: bool) -> Result<Option<Parsed>, Error> {
        let mut buf = BytesMut::from(raw);
        match ResponseScanner::new().scan(&buf).map_err(invalid)? {
            Some(span) => take_head(&mut buf, span, head, false).map(Some),
            None => Ok(None),
        }
    }

    #[test]
    fn relays_end_to_end_fields_only() {
        let raw = b"HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok";
        let Ok(Some(Parsed::Final(h))) = parse(raw, false) else {
            panic!()
        };
        assert_eq!(h.status, 200);
        assert_eq!(&h.reason[..], b"Fine");
        let names: Vec<&[u8]> = h.headers.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, vec![&b"Content-Type"[..]]);
        assert_eq!(h.framing, ResponseFraming::Length(2));
        assert!(h.reusable);
    }

    #[test]
    fn head_response_keeps_its_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let Ok(Some(Parsed::Final(h))) = parse(raw, true) else {
            panic!()
        };
        assert_eq!(h.framing, ResponseFraming::None);
        assert_eq!(h.headers.len(), 1);
    }

    #[test]
    fn faults_map_to_their_codes() {
        let code = |raw: &[u8]| match parse(raw, false) {
            Err(e) => e.code(),
            _ => panic!("{raw:?} parsed"),
        };
        assert_eq!(
            code(b"HTTP/1.1 306 Unused\r\n\r\n"),
            ErrorCode::UpstreamStatus306
        );
        assert_eq!(code(b"garbage\r\n\r\n"), ErrorCode::UpstreamInvalidResponse);
        assert_eq!(
            code(b"HTTP/1.1 099 X\r\n\r\n"),
            ErrorCode::UpstreamInvalidResponse
        );
        assert_eq!(
            code(b"HTTP/1.1 101 Switching\r\n\r\n"),
            ErrorCode::UpstreamInvalidResponse
        );
        assert_eq!(
            code(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            ErrorCode::UpstreamInvalidResponse
        );
        assert!(matches!(
            parse(b"HTTP/1.1 100 Continue\r\n\r\n", false),
            Ok(Some(Parsed::Interim))
        ));
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\n", false), Ok(None)));
    }

    #[test]
    fn a_bare_lf_head_is_relayed_as_fields() {
        // RFC 9112 §2.2: a recipient may take LF alone as a line end; what Portico relays is
        // name and value, which its writer sends with CRLF.
        let Ok(Some(Parsed::Final(h))) =
            parse(b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 0\n\n", false)
        else {
            panic!()
        };
        assert_eq!(h.headers, vec![(Bytes::from("X-A"), Bytes::from("1"))]);
        assert_eq!(h.framing, ResponseFraming::Length(0));
    }

    #[test]
    fn with_both_lengths_the_content_length_is_dropped() {
        // RFC 9112 §6.3 (3): Transfer-Encoding wins; the length is not relayed, and the
        // connection, whose framing was ambiguous, is not reused.
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let Ok(Some(Parsed::Final(h))) = parse(raw, false) else {
            panic!()
        };
        assert!(h.headers.is_empty(), "{:?}", h.headers);
        assert_eq!(h.framing, ResponseFraming::Chunked);
        assert!(!h.reusable);
    }

    #[test]
    fn obs_fold_and_a_bad_status_line_are_invalid() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n"[..],
            b"HTTP/1.1 2OO OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw, false), Err(e) if e.code() == ErrorCode::UpstreamInvalidResponse),
                "{raw:?}"
            );
        }
    }

    fn encode(req: &UpstreamRequest, framing: Framing) -> Vec<u8> {
        let mut out = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime
            .block_on(write_head(&mut out, req, framing, &[]))
            .expect("a Vec takes every write");
        out
    }

    #[test]
    fn requests_are_written_with_the_framing_of_their_body() {
        let mut fields = portico_http::fields::Fields::default();
        fields.push(b"Host", b"up").unwrap();
        let req = UpstreamRequest {
            method: portico_http::Method::Post,
            target: b"/a?b=1".to_vec(),
            fields,
            te_trailers: false,
        };
        assert_eq!(
            encode(&req, Framing::Body(BodyFraming::Length(5))),
            b"POST /a?b=1 HTTP/1.1\r\nHost: up\r\nContent-Length: 5\r\n\r\n"
        );
        assert_eq!(
            encode(&req, Framing::Body(BodyFraming::Chunked)),
            b"POST /a?b=1 HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            encode(&req, Framing::Upgrade),
            b"POST /a?b=1 HTTP/1.1\r\nHost: up\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        );
    }
}
