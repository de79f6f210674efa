//! One request to a target over its shared HTTP/2 connection.
//!
//! The request arrives as the HTTP/1.1 head the proxy built (request line, fields, framing
//! fields); it is translated here (RFC 9113 §8.3.1): `Host` becomes `:authority`, the
//! target's scheme `:scheme`, and the connection-specific fields HTTP/2 forbids (§8.2.2) are
//! left out. The response becomes the same [`UpstreamResponse`] an HTTP/1.1 target gives, so
//! nothing after this point knows which protocol the target spoke.

use std::sync::Arc;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use portico_http::response::is_hop_by_hop;
use portico_http::{BodyFraming, ErrorCode};

use super::body::{ResponseFraming, UpstreamBody};
use super::exchange::{Failure, UpstreamResponse};
use super::pool::{H2Link, TargetPool};
use crate::body::RequestBody;
use crate::error::Error;
use crate::http2::Out;

/// Sends the request `head` (with its body) on the target's HTTP/2 connection and waits for
/// the response head.
pub(super) async fn exchange(
    target: &Arc<TargetPool>,
    link: &H2Link,
    head: &[u8],
    body: &mut RequestBody<'_>,
    head_request: bool,
) -> Result<UpstreamResponse, Failure> {
    let request = translate(head, target).map_err(Failure::Fatal)?;
    // A connection that cannot open a stream is done for: the next request opens another.
    let unsent = |e: h2::Error| {
        target.h2_failed(link);
        Failure::Unsent(Error::new(ErrorCode::UpstreamReset).with_cause(e))
    };
    // Waits while the connection is at the upstream's stream limit; fails if it has closed.
    let mut send = link.send.clone().ready().await.map_err(unsent)?;
    let bodiless = body.framing() == BodyFraming::None;
    let (response, stream) = send.send_request(request, bodiless).map_err(unsent)?;
    let response = if bodiless {
        response.await
    } else {
        let mut stream = stream;
        let mut response = std::pin::pin!(response);
        let outcome = {
            let mut copy = std::pin::pin!(copy_body(body, &mut stream));
            let mut copying = true;
            loop {
                tokio::select! {
                    biased;
                    done = &mut copy, if copying => match done {
                        Ok(()) => copying = false,
                        Err(CopyError::Client(e)) => break Err(e),
                        // The upstream reset the stream or stopped reading; its answer, if
                        // any, comes through `response`.
                        Err(CopyError::Upstream) => copying = false,
                    },
                    // An answer before the whole body went out ends the sending (as on
                    // HTTP/1.1); the stream is cancelled once the response has been read.
                    r = &mut response => break Ok(r),
                }
            }
        };
        match outcome {
            Ok(r) => r,
            Err(e) => {
                // Whatever the upstream made of the part it got, it must not take it for the
                // whole request.
                stream.send_reset(Reason::CANCEL);
                return Err(Failure::Fatal(e));
            }
        }
    };
    let response = response.map_err(|e| {
        if e.is_go_away() {
            target.h2_failed(link);
        }
        response_failure(&e)
    })?;
    let (parts, recv) = response.into_parts();
    relayed(parts, recv, head_request, target).map_err(Failure::Fatal)
}

enum CopyError {
    Client(Error),
    Upstream,
}

async fn copy_body(
    body: &mut RequestBody<'_>,
    stream: &mut SendStream<Bytes>,
) -> Result<(), CopyError> {
    let length = match body.framing() {
        BodyFraming::Length(n) => Some(n),
        _ => None,
    };
    let mut sent = 0u64;
    let mut out = Out::new(stream, length, &mut sent);
    while let Some(data) = body.chunk().await.map_err(CopyError::Client)? {
        if !data.is_empty() {
            out.send(data).await.map_err(|_| CopyError::Upstream)?;
        }
    }
    out.finish().map_err(|_| CopyError::Upstream)
}

/// What a failed response means: a stream the upstream refused or never processed (GOAWAY
/// below its id) may be retried; a malformed response is invalid; anything else is a reset.
fn response_failure(e: &h2::Error) -> Failure {
    let code = |code| Error::new(code).with_cause(e.to_string());
    if e.reason() == Some(Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote()) {
        Failure::Stale(code(ErrorCode::UpstreamReset))
    } else if e.reason() == Some(Reason::PROTOCOL_ERROR) && !e.is_remote() {
        Failure::Fatal(code(ErrorCode::UpstreamInvalidResponse))
    } else {
        Failure::Fatal(code(ErrorCode::UpstreamReset))
    }
}

/// The HTTP/2 request for an HTTP/1.1 request head.
fn translate(head: &[u8], target: &TargetPool) -> Result<Request<()>, Error> {
    // The head was built by the proxy from a request Portico parsed and checked, so it
    // always parses; a failure here is a fault in Portico, not in the client or upstream.
    let internal = |cause: &'static str| Error::new(ErrorCode::Internal).with_cause(cause);
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    let mut fields = vec![httparse::EMPTY_HEADER; lines];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(internal("the upstream request head does not parse")),
    }
    let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
        return Err(internal("the upstream request head has no request line"));
    };
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| internal("a method HTTP/2 cannot carry"))?;
    let mut authority = None;
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            authority.get_or_insert(field.value);
            continue;
        }
        if is_hop_by_hop(name, &[]) {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(field.value),
        ) else {
            return Err(internal("a field HTTP/2 cannot carry"));
        };
        map.append(name, value);
    }
    let authority = authority.unwrap_or(target.authority().as_bytes());
    let uri = Uri::builder()
        .scheme(target.scheme())
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| internal("a request target HTTP/2 cannot carry"))?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = map;
    Ok(request)
}

/// The response to relay: status, end-to-end fields, and the body with its length.
fn relayed(
    parts: http::response::Parts,
    recv: RecvStream,
    head_request: bool,
    target: &Arc<TargetPool>,
) -> Result<UpstreamResponse, Error> {
    let status = parts.status.as_u16();
    if status == 306 {
        return Err(Error::new(ErrorCode::UpstreamStatus306));
    }
    if status < 200 {
        // Interim responses are not final; a 101 has no meaning on HTTP/2.
        return Err(Error::new(ErrorCode::UpstreamInvalidResponse)
            .with_cause("an informational status as the final response"));
    }
    let mut length = None;
    for value in parts.headers.get_all(http::header::CONTENT_LENGTH) {
        // The `h2` crate has checked it is one valid number.
        length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
    }
    let bodiless = head_request || status == 204 || status == 304;
    let framing = if bodiless {
        ResponseFraming::None
    } else if let Some(n) = length {
        ResponseFraming::Length(n)
    } else if recv.is_end_stream() {
        ResponseFraming::Length(0)
    } else {
        ResponseFraming::Close
    };
    // As on HTTP/1.1: the length of a bodiless response to HEAD or a 304 describes the
    // representation and is relayed; otherwise the body's length is the gateway's to write.
    let keep_length = framing == ResponseFraming::None && status != 204;
    let mut headers = Vec::with_capacity(parts.headers.len() + 1);
    for (name, value) in &parts.headers {
        let name = name.as_str().as_bytes();
        if is_hop_by_hop(name, &[]) || (!keep_length && name == b"content-length") {
            continue;
        }
        headers.push((
            Bytes::copy_from_slice(name),
            Bytes::copy_from_slice(value.as_bytes()),
        ));
    }
    let reason = Bytes::from_static(parts.status.canonical_reason().unwrap_or("").as_bytes());
    Ok(UpstreamResponse {
        status,
        reason,
        headers,
        body: UpstreamBody::frames(recv, framing, target.clone()),
        target: target.clone(),
    })
}

/// The next DATA of a response body, or `None` at its end. The flow-control window is given
/// back as each piece is handed on, so the upstream can send at most a window ahead of what
/// the client has taken.
pub(super) async fn next_data(recv: &mut RecvStream) -> Result<Option<Bytes>, Error> {
    loop {
        match recv.data().await {
            None => return Ok(None),
            Some(Ok(data)) => {
                let _ = recv.flow_control().release_capacity(data.len());
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
            Some(Err(e)) => {
                let code = match e.reason() {
                    Some(Reason::PROTOCOL_ERROR) if !e.is_remote() => {
                        ErrorCode::UpstreamInvalidResponse
                    }
                    _ => ErrorCode::UpstreamReset,
                };
                return Err(Error::new(code).with_cause(e));
            }
        }
    }
}
