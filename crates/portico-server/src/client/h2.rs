//! One request to a target over its shared HTTP/2 connection.
//!
//! The request arrives as the gateway composed it (method, target, fields) and is mapped to
//! an HTTP/2 request field by field (RFC 9113 §8.3.1): `Host` becomes `:authority`, the
//! target's scheme `:scheme`; the connection-specific fields HTTP/2 forbids (§8.2.2) were
//! never among the fields. The response becomes the same [`UpstreamResponse`] an HTTP/1.1 target gives, so
//! nothing after this point knows which protocol the target spoke.

use std::sync::Arc;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use portico_http::response::is_hop_by_hop;
use portico_http::{BodyFraming, ErrorCode, Method};

use super::body::{ResponseFraming, UpstreamBody};
use super::message::{Failure, UpstreamRequest, UpstreamResponse};
use super::pool::{H2Link, TargetPool};
use crate::body::RequestBody;
use crate::error::Error;
use crate::http2::out::{Out, relayable};

/// Sends the request (with its body) on the target's HTTP/2 connection and waits for the
/// response head.
pub(super) async fn exchange(
    target: &Arc<TargetPool>,
    link: &H2Link,
    req: &UpstreamRequest,
    body: &mut RequestBody<'_>,
    head_request: bool,
) -> Result<UpstreamResponse, Failure> {
    let request = to_http2(req, body.framing(), target).map_err(Failure::Fatal)?;
    // A connection that cannot open a stream is done for: the next request opens another.
    let unsent = |e: h2::Error| {
        target.h2_failed(link);
        Failure::Unsent(Error::new(ErrorCode::UpstreamReset).with_cause(e))
    };
    // Waits while the connection is at the upstream's stream limit; fails if it has closed.
    let mut send = link.send.clone().ready().await.map_err(unsent)?;
    let bodiless = body.framing() == BodyFraming::None;
    let (response, stream) = send.send_request(request, bodiless).map_err(unsent)?;
    let mut upload = None;
    let response = if bodiless {
        response.await
    } else {
        let mut stream = stream;
        let mut response = std::pin::pin!(response);
        let length = match body.framing() {
            BodyFraming::Length(n) => Some(n),
            _ => None,
        };
        let (mut sent, mut pending) = (0u64, None);
        let mut copying = true;
        let outcome = {
            let mut copy = std::pin::pin!(copy_body(
                body,
                &mut stream,
                length,
                &mut sent,
                &mut pending
            ));
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
                    r = &mut response => break Ok(r),
                }
            }
        };
        match outcome {
            Ok(r) => {
                // An answer before the whole body went out: a client on HTTP/2 (a gRPC
                // stream both ways) goes on sending while the answer streams back, where
                // `copy` stopped; on HTTP/1.1 the sending ends there, and the stream is
                // cancelled once the response has been read.
                if copying && body.continues_after_response() {
                    upload = Some(Box::new(Upload {
                        stream,
                        length,
                        sent,
                        pending,
                    }));
                }
                r
            }
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
    let mut relayed = relayed(parts, recv, head_request, target).map_err(Failure::Fatal)?;
    if let Some(upload) = upload {
        relayed.body.set_upload(upload);
    }
    Ok(relayed)
}

/// The rest of a request body still to go to an HTTP/2 target after its response head came:
/// the stream, the body's length when announced, the bytes sent, and a piece taken from the
/// client and not yet sent whole.
pub(crate) struct Upload {
    stream: SendStream<Bytes>,
    length: Option<u64>,
    sent: u64,
    pending: Option<Bytes>,
}

impl Upload {
    /// Sends the rest of `body`, from where the exchange stopped. A client that fails
    /// mid-body has the upstream's stream cancelled, so the part it got is not taken for the
    /// whole request.
    pub(crate) async fn finish(mut self, body: &mut RequestBody<'_>) {
        let copied = copy_body(
            body,
            &mut self.stream,
            self.length,
            &mut self.sent,
            &mut self.pending,
        )
        .await;
        if let Err(CopyError::Client(_)) = copied {
            self.stream.send_reset(Reason::CANCEL);
        }
    }
}

enum CopyError {
    Client(Error),
    Upstream,
}

/// Copies the client's body to the stream. Cancelled at any await, nothing is lost: `sent`
/// counts what went out, and a piece taken from the client and not yet sent whole is in
/// `pending`, so [`Upload::finish`] can go on where this stopped.
async fn copy_body(
    body: &mut RequestBody<'_>,
    stream: &mut SendStream<Bytes>,
    length: Option<u64>,
    sent: &mut u64,
    pending: &mut Option<Bytes>,
) -> Result<(), CopyError> {
    let mut out = Out::new(stream, length, sent);
    if body.may_have_trailers() {
        out = out.hold_end();
    }
    loop {
        if let Some(data) = pending {
            out.send_from(data).await.map_err(|_| CopyError::Upstream)?;
            *pending = None;
        }
        match body.chunk().await.map_err(CopyError::Client)? {
            Some(data) => *pending = Some(data),
            None => break,
        }
    }
    out.finish_with(body.take_trailers().and_then(relayable))
        .map_err(|_| CopyError::Upstream)
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

/// The HTTP/2 request for a request to forward (RFC 9113 §8.3.1): `Host` becomes
/// `:authority` (the target's own when the request has none), the target's scheme
/// `:scheme`, the fields go as they are (the request's fields are ones HTTP/2 can carry, see
/// `portico_http::fields`), and a body of known length says so in `content-length`.
fn to_http2(
    req: &UpstreamRequest,
    framing: BodyFraming,
    target: &TargetPool,
) -> Result<Request<()>, Error> {
    let authority = req
        .fields
        .get("host")
        .unwrap_or(target.authority().as_bytes());
    let authority = Authority::try_from(authority)
        .map_err(|e| Error::new(ErrorCode::HostInvalid).with_cause(e))?;
    let uri = Uri::builder()
        .scheme(target.scheme())
        .authority(authority)
        .path_and_query(path_and_query(&req.target)?)
        .build()
        .map_err(|e| Error::new(ErrorCode::TargetCharInvalid).with_cause(e))?;
    let mut map = HeaderMap::with_capacity(req.fields.len() + 1);
    for (name, value) in req.fields.iter() {
        if name.eq_ignore_ascii_case(b"host") || is_hop_by_hop(name, &[]) {
            continue;
        }
        // `Fields` admits only tokens and field values, which both of these take.
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    if let BodyFraming::Length(n) = framing {
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if req.te_trailers {
        map.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    let mut request = Request::new(());
    *request.method_mut() = http_method(req.method)?;
    *request.uri_mut() = uri;
    *request.headers_mut() = map;
    Ok(request)
}

/// The `http` crate's name for a method Portico knows.
fn http_method(m: Method) -> Result<http::Method, Error> {
    Ok(match m {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Patch => http::Method::PATCH,
        Method::Delete => http::Method::DELETE,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Connect => http::Method::CONNECT,
        // Routes never take the other registered methods; `http` takes each (a valid token)
        // as an extension method.
        other => {
            return http::Method::from_bytes(other.as_str().as_bytes())
                .map_err(|_| Error::new(ErrorCode::Internal));
        }
    })
}

/// `:path` for a target. Portico's request parser admits some visible ASCII that RFC 3986
/// does not allow unencoded (`<`, `>`, `` ` ``, `|`, ...), which HTTP/2's `:path` cannot
/// carry as it is; such a target goes with those bytes percent-encoded, which means the same
/// resource (RFC 3986 §2.1). A target that still cannot be carried is the client's 400.
fn path_and_query(target: &[u8]) -> Result<PathAndQuery, Error> {
    if let Ok(p) = PathAndQuery::try_from(target) {
        return Ok(p);
    }
    let mut encoded = Vec::with_capacity(target.len() + 16);
    for &b in target {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            encoded.push(b);
        } else {
            encoded.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    PathAndQuery::try_from(encoded)
        .map_err(|e| Error::new(ErrorCode::TargetCharInvalid).with_cause(e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::settings::Transport;
    use portico_http::fields::Fields;
    use std::time::Duration;

    fn target() -> TargetPool {
        TargetPool::new(
            "up.internal".into(),
            8443,
            Transport::H2c,
            None,
            Duration::from_secs(1),
            0,
            Duration::from_secs(1),
        )
    }

    fn request(target: &[u8], fields: &[(&str, &str)]) -> UpstreamRequest {
        let mut f = Fields::default();
        for (n, v) in fields {
            f.push(n.as_bytes(), v.as_bytes()).unwrap();
        }
        UpstreamRequest {
            method: Method::Post,
            target: target.to_vec(),
            fields: f,
            te_trailers: false,
        }
    }

    #[test]
    fn every_registered_method_is_an_http_method() {
        for m in Method::ALL {
            assert_eq!(http_method(m).unwrap().as_str(), m.as_str());
        }
    }

    #[test]
    fn host_becomes_the_authority_and_the_fields_go_as_they_are() {
        let req = request(
            b"/v1/a?x=1",
            &[("Host", "api.example"), ("X-A", "1"), ("X-A", "2")],
        );
        let r = to_http2(&req, BodyFraming::Length(3), &target()).unwrap();
        assert_eq!(r.uri().to_string(), "http://api.example/v1/a?x=1");
        assert_eq!(r.method(), http::Method::POST);
        assert!(r.headers().get("host").is_none());
        let a: Vec<_> = r.headers().get_all("x-a").iter().collect();
        assert_eq!(a, ["1", "2"]);
        assert_eq!(r.headers()["content-length"], "3");
        // Without a Host, the target's own authority.
        let r = to_http2(&request(b"/", &[]), BodyFraming::None, &target()).unwrap();
        assert_eq!(
            r.uri().authority().map(|a| a.as_str()),
            Some("up.internal:8443")
        );
        assert!(r.headers().get("content-length").is_none());
    }

    #[test]
    fn a_target_http2_cannot_carry_raw_goes_percent_encoded() {
        let req = request(b"/a<b>`c|d?q=\"x\"", &[]);
        let r = to_http2(&req, BodyFraming::None, &target()).unwrap();
        let pq = r.uri().path_and_query().map(|p| p.as_str().to_string());
        assert_eq!(pq.as_deref(), Some("/a%3Cb%3E%60c%7Cd?q=%22x%22"));
    }

    #[test]
    fn a_host_http2_cannot_carry_is_the_clients_400() {
        let req = request(b"/", &[("Host", "a%zz")]);
        let e = to_http2(&req, BodyFraming::None, &target()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::HostInvalid);
    }
}
