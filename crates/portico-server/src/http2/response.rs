//! Writing a response on an HTTP/2 stream: the head as a HEADERS frame, the body as DATA
//! frames sent as the client's flow-control window allows.

use std::io;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::StreamExt;
use h2::SendStream;
use h2::server::SendResponse;
use http::{HeaderName, HeaderValue, StatusCode};
use portico_http::response::is_hop_by_hop;

use crate::body::RequestBody;
use crate::client::UpstreamBody;
use crate::date::with_http_date;
use crate::id::RequestId;
use crate::response::{Payload, Response};

use super::out::{Out, relayable};

/// Sends `resp` on the stream (`head_request` when the request was HEAD); returns the body
/// bytes sent, or `None` when the client reset the stream before the body was out. A
/// response that cannot be sent whole for any other reason ends with
/// `RST_STREAM(INTERNAL_ERROR)`.
///
/// The body waits for the client's flow-control window as long as the client keeps the
/// stream open: a window of one byte, or one opened only later by `WINDOW_UPDATE` or a new
/// `SETTINGS_INITIAL_WINDOW_SIZE`, is a slow client, not a gone one.
///
/// `body` is the request's body when it may still be arriving: an upstream's response that
/// came before it ended has the rest sent on while the response streams back.
pub(crate) async fn send(
    respond: &Mutex<SendResponse<Bytes>>,
    resp: Response,
    head_request: bool,
    id: &RequestId,
    body: Option<&mut RequestBody<'_>>,
) -> Option<u64> {
    let status = resp.status;
    let (length, payload) = resp.body.plan(status, head_request);
    let head = head(status, &resp.headers, length, id);
    let end = matches!(payload, Payload::Nothing);
    let stream = respond
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send_response(head, end);
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(request_id = %id, error = %e, "response head not sent");
            return Some(0);
        }
    };
    let mut sent = 0u64;
    match send_payload(&mut stream, payload, length, &mut sent, body).await {
        Ok(()) => Some(sent),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => None,
        Err(e) => {
            tracing::debug!(request_id = %id, error = %e, "response cut short");
            // The client must not take what it got for the whole body.
            stream.send_reset(h2::Reason::INTERNAL_ERROR);
            Some(sent)
        }
    }
}

/// The response head: status, end-to-end fields, `X-Request-Id`, `Date`, and the length when
/// it is known. HTTP/2 has no reason phrase and no connection-specific fields (RFC 9113
/// §8.2.2), so those are left out.
fn head(
    status: u16,
    headers: &[(Bytes, Bytes)],
    length: Option<u64>,
    id: &RequestId,
) -> http::Response<()> {
    let mut head = http::Response::new(());
    *head.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let map = head.headers_mut();
    map.reserve(headers.len() + 3);
    let mut has_date = false;
    for (name, value) in headers {
        if is_hop_by_hop(name, &[]) || name.eq_ignore_ascii_case(b"x-request-id") {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_maybe_shared(value.clone()),
        ) else {
            // A field HTTP/2 cannot carry (a relayed name or value outside its syntax).
            tracing::debug!(request_id = %id, "a response field was left out on HTTP/2");
            continue;
        };
        has_date |= name == http::header::DATE;
        map.append(name, value);
    }
    if let Ok(mut v) = HeaderValue::from_str(id.as_str()) {
        // Never indexed (RFC 7541 §6.2.3): a value no later response repeats would only push
        // useful entries out of the client's HPACK table, at the cost of an insertion and an
        // eviction on every response.
        v.set_sensitive(true);
        map.insert(HeaderName::from_static("x-request-id"), v);
    }
    if !has_date && let Ok(v) = with_http_date(HeaderValue::from_str) {
        map.insert(http::header::DATE, v);
    }
    if let Some(n) = length {
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    head
}

async fn send_payload(
    stream: &mut SendStream<Bytes>,
    payload: Payload,
    length: Option<u64>,
    sent: &mut u64,
    body: Option<&mut RequestBody<'_>>,
) -> io::Result<()> {
    match payload {
        Payload::Nothing => Ok(()),
        // Already in memory: `h2` holds it until the window opens, at no further cost.
        Payload::Bytes(b) => {
            *sent += b.len() as u64;
            stream.send_data(b, true).map_err(io::Error::other)
        }
        // Each wait for the next piece also watches for the client's reset, so a client that
        // gives up stops the body's source at once.
        Payload::Stream(mut sb) => {
            let mut out = Out::new(stream, length, sent);
            let mut pieces = sb.pieces();
            loop {
                let piece = tokio::select! {
                    piece = pieces.next() => piece,
                    e = out.reset() => return Err(e),
                };
                let Some(piece) = piece else { break };
                out.send(piece?).await?;
            }
            out.finish()
        }
        Payload::Upstream(mut ub) => {
            let upload = ub.take_upload().zip(body);
            let relay = relay_upstream(stream, ub, length, sent);
            let Some((upload, body)) = upload else {
                return relay.await;
            };
            // Both directions at once; the request's rest is given up when the response is
            // complete (what the client still sends is then drained, as for any request).
            let mut relay = std::pin::pin!(relay);
            let mut upload = std::pin::pin!(upload.finish(body));
            let mut uploading = true;
            loop {
                tokio::select! {
                    done = &mut relay => return done,
                    () = &mut upload, if uploading => uploading = false,
                }
            }
        }
    }
}

/// Relays an upstream's body, then its trailers.
async fn relay_upstream(
    stream: &mut SendStream<Bytes>,
    mut ub: UpstreamBody,
    length: Option<u64>,
    sent: &mut u64,
) -> io::Result<()> {
    let mut out = Out::new(stream, length, sent);
    if ub.may_have_trailers() {
        out = out.hold_end();
    }
    if let Some(first) = ub.buffered().map_err(upstream_failed)? {
        out.send(first).await?;
    }
    loop {
        let piece = tokio::select! {
            piece = ub.chunk() => piece.map_err(upstream_failed)?,
            e = out.reset() => return Err(e),
        };
        let Some(piece) = piece else { break };
        out.send(piece).await?;
    }
    out.finish_with(ub.take_trailers().and_then(relayable))
}

fn upstream_failed(e: crate::error::Error) -> io::Error {
    io::Error::other(e.code().as_str())
}
