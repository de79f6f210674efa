//! One request/response exchange with a target.

use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use portico_http::chunked::{LAST_CHUNK, encode_chunk_head};
use portico_http::request::list_elements;
use portico_http::response::{ResponseFraming, is_hop_by_hop, response_info};
use portico_http::{BodyFraming, ErrorCode, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::UpStream;
use super::body::UpstreamBody;
use super::pool::{Link, TargetPool, UpConn};
use crate::body::RequestBody;
use crate::error::Error;

/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most response header fields accepted from an upstream.
const MAX_RESPONSE_FIELDS: usize = 128;
/// Room made in the read buffer before each read: a typical API response (head and body up to
/// ~30 KiB) arrives in one read and leaves in one write.
pub(super) const READ_BUFFER: usize = 32 * 1024;
/// How many times a request that was never delivered is tried on another connection.
const MAX_ATTEMPTS: usize = 3;

/// A request to forward.
pub struct UpstreamRequest {
    /// The request line and header fields, each line ending in CRLF, without framing fields
    /// and without the blank line; the client adds those.
    pub head: Vec<u8>,
    /// The method (HEAD responses have no body; only idempotent requests are retried).
    pub method: Method,
}

/// An upstream's response, head parsed, body to stream.
pub struct UpstreamResponse {
    /// Status code (never 1xx or 306).
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: Bytes,
    /// End-to-end header fields (hop-by-hop and framing fields removed, except a
    /// `Content-Length` on a bodiless response to HEAD or a 304, which describes the
    /// representation).
    pub headers: Vec<(Bytes, Bytes)>,
    /// The body.
    pub body: UpstreamBody,
    /// The target that answered.
    pub target: Arc<TargetPool>,
}

pub(super) enum Failure {
    /// The request never left: it may be tried again, whatever its method and body.
    Unsent(Error),
    /// The connection was closed or reset before any response byte: a reused connection the
    /// upstream had closed (or, on HTTP/2, a stream the upstream refused unprocessed). The
    /// request may be retried if it was never delivered.
    Stale(Error),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

/// An upstream's answer to a request to switch to WebSocket.
pub enum UpgradeAnswer {
    /// 101: the upstream switched; its connection now carries WebSocket frames.
    Switched(Switched),
    /// Any other answer, relayed as an ordinary response (its connection is not reused).
    Refused(UpstreamResponse),
}

/// An upstream connection after its 101.
pub struct Switched {
    /// Reason phrase as sent.
    pub reason: Bytes,
    /// End-to-end header fields of the 101 (`Sec-WebSocket-Accept` and the like; `Upgrade`
    /// and `Connection` are the gateway's to write).
    pub headers: Vec<(Bytes, Bytes)>,
    /// The connection.
    pub stream: UpStream,
    /// Bytes the upstream sent after its 101 head.
    pub buffered: Bytes,
    /// The target that answered.
    pub target: Arc<TargetPool>,
}

/// Sends an upgrade request (no body) on a new connection, which is never pooled: after a
/// 101 it belongs to the new protocol.
pub(super) async fn upgrade(
    target: Arc<TargetPool>,
    mut req: UpstreamRequest,
) -> Result<UpgradeAnswer, Error> {
    req.head.extend_from_slice(b"\r\n");
    let mut conn = target.connect_http1().await?;
    let sent = conn.stream.write_all(&req.head).await;
    sent.and(conn.stream.flush().await)
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

pub(super) async fn send(
    target: Arc<TargetPool>,
    mut req: UpstreamRequest,
    body: &mut RequestBody<'_>,
) -> Result<UpstreamResponse, Error> {
    match body.framing() {
        BodyFraming::None => {}
        BodyFraming::Length(n) => req
            .head
            .extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes()),
        BodyFraming::Chunked => req
            .head
            .extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    req.head.extend_from_slice(b"\r\n");
    let retryable = body.framing() == BodyFraming::None && req.method.is_idempotent();
    let head_request = req.method == Method::Head;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let failure = match target.acquire().await? {
            Link::Http1(mut conn, reused) => {
                match exchange(&mut conn, &req.head, body, head_request).await {
                    Ok((head, sent)) => {
                        let reusable = head.reusable && sent;
                        let body = UpstreamBody::new(conn, head.framing, reusable, target.clone());
                        return Ok(UpstreamResponse {
                            status: head.status,
                            reason: head.reason,
                            headers: head.headers,
                            body,
                            target,
                        });
                    }
                    // A new connection that fails was not stale: the upstream is at fault.
                    Err(Failure::Stale(e)) if !reused => Failure::Fatal(e),
                    Err(f) => f,
                }
            }
            Link::H2(link) => {
                match super::h2::exchange(&target, &link, &req.head, body, head_request).await {
                    Ok(response) => return Ok(response),
                    Err(f) => f,
                }
            }
        };
        match failure {
            Failure::Unsent(e) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(target = target.authority(), error = %e, "request not sent; retrying");
            }
            Failure::Stale(e) if retryable && attempt < MAX_ATTEMPTS => {
                tracing::debug!(target = target.authority(), error = %e, "stale upstream connection; retrying");
            }
            Failure::Unsent(e) | Failure::Stale(e) | Failure::Fatal(e) => return Err(e),
        }
    }
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
    head: &[u8],
    body: &mut RequestBody<'_>,
    head_request: bool,
) -> Result<(Head, bool), Failure> {
    let written = conn.stream.write_all(head).await;
    if let Err(e) = written.and(conn.stream.flush().await) {
        return Err(Failure::Stale(
            Error::new(ErrorCode::UpstreamReset).with_cause(e),
        ));
    }
    if body.framing() == BodyFraming::None {
        return Ok((
            read_head(&mut conn.stream, &mut conn.buf, head_request, false).await?,
            true,
        ));
    }
    match &mut conn.stream {
        UpStream::Plain(tcp) => {
            let (rd, wr) = tcp.split();
            send_body(rd, wr, &mut conn.buf, body, head_request).await
        }
        UpStream::Tls(tls) => {
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
    loop {
        if !buf.is_empty() {
            match parse_head(buf, head_request, upgrade)? {
                Parsed::Final(head) => return Ok(head),
                Parsed::Interim => continue,
                Parsed::Partial => {}
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
    Partial,
}

fn invalid(cause: &'static str) -> Error {
    Error::new(ErrorCode::UpstreamInvalidResponse).with_cause(cause)
}

/// Parses a response head at the start of `buf`, consuming it when complete.
fn parse_head(buf: &mut BytesMut, head_request: bool, upgrade: bool) -> Result<Parsed, Error> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err(invalid("malformed response head")),
    };
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    if !(100..=599).contains(&status) {
        return Err(invalid("status code out of range"));
    }
    if status == 306 {
        return Err(Error::new(ErrorCode::UpstreamStatus306));
    }
    if status == 101 {
        if !upgrade {
            return Err(invalid("101 without an upgrade request"));
        }
        // Portico asks only for WebSocket; a switch to anything else cannot be relayed.
        let websocket = resp.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("upgrade")
                && list_elements(h.value).any(|p| p.eq_ignore_ascii_case(b"websocket"))
        });
        if !websocket {
            return Err(invalid("101 to a protocol other than WebSocket"));
        }
    } else if status < 200 {
        // 100, 102, 103: interim responses are not relayed; the final one follows.
        let _ = buf.split_to(len);
        return Ok(Parsed::Interim);
    }
    // Where each field lies in the buffer, so the fields can become slices of the frozen head
    // (no copies). On the stack: this runs for every proxied response.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;
    let reason_at = resp
        .reason
        .map_or((0, 0), |r| (offset(r.as_bytes()), r.len()));
    let mut spans = [(0usize, 0usize, 0usize, 0usize); MAX_RESPONSE_FIELDS];
    let count = resp.headers.len();
    for (slot, h) in spans.iter_mut().zip(resp.headers.iter()) {
        *slot = (
            offset(h.name.as_bytes()),
            h.name.len(),
            offset(h.value),
            h.value.len(),
        );
    }
    let spans = &spans[..count];
    let info = response_info(
        status,
        http10,
        head_request,
        resp.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
    )
    .map_err(|_| invalid("invalid Content-Length"))?;
    let raw = buf.split_to(len).freeze();
    let slice = |at: usize, n: usize| raw.slice(at..at + n);
    let tokens: Vec<&[u8]> = spans
        .iter()
        .filter(|(n, nl, _, _)| raw[*n..n + nl].eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, _, v, vl)| list_elements(&raw[*v..v + vl]))
        .collect();
    let keep_length = info.framing == ResponseFraming::None && status != 204;
    // One more slot: the gateway adds its `Via`.
    let mut headers = Vec::with_capacity(count + 1);
    for &(n, nl, v, vl) in spans {
        let name = &raw[n..n + nl];
        if !is_hop_by_hop(name, &tokens)
            && (keep_length || !name.eq_ignore_ascii_case(b"content-length"))
        {
            headers.push((slice(n, nl), slice(v, vl)));
        }
    }
    Ok(Parsed::Final(Head {
        status,
        reason: slice(reason_at.0, reason_at.1),
        headers,
        framing: info.framing,
        reusable: info.reusable,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head: bool) -> Result<Parsed, Error> {
        parse_head(&mut BytesMut::from(raw), head, false)
    }

    #[test]
    fn relays_end_to_end_fields_only() {
        let raw = b"HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok";
        let Ok(Parsed::Final(h)) = parse(raw, false) else {
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
        let Ok(Parsed::Final(h)) = parse(raw, true) else {
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
            Ok(Parsed::Interim)
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\n", false),
            Ok(Parsed::Partial)
        ));
    }
}
