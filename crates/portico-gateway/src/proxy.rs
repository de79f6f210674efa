//! Forwarding a request to an upstream and relaying its response.
//!
//! What the upstream sees: the request line with the normalised path, the client's end-to-end
//! fields, and the gateway's own `X-Forwarded-For` (appended), `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `X-Request-Id` (replacing whatever the client sent, which it could
//! forge) and `Via` (appended). Hop-by-hop fields, fields named in `Connection`, `Expect`
//! (Portico answers `100 Continue` itself) and the client's framing fields are not forwarded;
//! the client module adds framing for the body it actually sends.

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use portico_http::fields::{Fields, InvalidField};
use portico_http::request::list_elements;
use portico_http::response::is_hop_by_hop;
use portico_http::syntax::same_field_loosely;
use portico_http::{ErrorCode, Method, Version};
use portico_server::client::{ResponseFraming, Upstream, UpstreamRequest, UpstreamResponse};
use portico_server::{Body, Error, Request, RequestBody, Response};
use portico_telemetry::ChildSpan;

use crate::access::without_params;
use crate::caller::{Caller, CredentialPlace};
use crate::deadline::{self, Deadline};

/// Fields the gateway writes itself (appending to the lists among them), so the client's are
/// not copied as they are.
const REPLACED: &[&str] = &[
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "via",
    "x-portico-project-id",
    "x-portico-consumer",
    "x-portico-roles",
    // Credentials for a proxy (Portico's egress proxy, or one in front of it) are the
    // proxy's: they never go on.
    "proxy-authorization",
    // The time the upstream has is Portico's to say.
    "x-portico-timeout-ms",
];

/// The trace context fields, replaced when Portico traces.
const TRACE: &[&str] = &["traceparent", "tracestate"];

/// Which of the client's fields [`copy_fields`] leaves out beyond those it always does.
#[derive(Clone, Copy)]
struct Dropped {
    /// The client's deadline (it stays at the gateway).
    timeout: bool,
    /// Conditional fields and `Range` (a cache fill).
    conditions: bool,
    /// `traceparent` and `tracestate` (Portico continues the trace).
    trace: bool,
}

/// The fields a cache fill does not pass on: the cache evaluates them itself.
const CONDITIONAL: &[&str] = &[
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// The request for the upstream: the method, the normalised `path` with the client's query
/// (less a credential or a deadline that stays here), the client's end-to-end fields, then the
/// gateway's own. With a deadline, the upstream is told the time left in
/// `X-Portico-Timeout-Ms`, and the client's own `timeout=` and `Timeout` are left out unless
/// the route passes them on. `target_authority` is the `Host` of a request that had none.
///
/// A cache fill (`fill` is `Some`) leaves out the client's conditional fields and `Range`
/// (the cache answers them from the whole response) and sends the given validators instead
/// (a stale entry's `If-None-Match` / `If-Modified-Since`).
///
/// With `trace` (the span of the upstream call, when Portico traces), the trace continues
/// from that span: the client's `traceparent` and `tracestate` are replaced by the span's.
/// Without it they pass on as the client sent them.
pub(crate) fn outgoing(
    req: &Request,
    path: &[u8],
    caller: Option<&Caller>,
    target_authority: &str,
    deadline: Option<&Deadline>,
    fill: Option<&[(&'static str, Bytes)]>,
    trace: Option<&ChildSpan>,
) -> Result<UpstreamRequest, Error> {
    let drop_timeout = deadline.is_some_and(|d| !d.pass);
    // Room for what the gateway adds (forwarding, a deadline, a caller, a trace) without
    // growing.
    let added = 160 + trace.map_or(0, |_| portico_telemetry::TRACEPARENT_LEN + 16);
    let mut fields = Fields::with_capacity(req.head.header_section_len() + added);
    let drop = Dropped {
        timeout: drop_timeout,
        conditions: fill.is_some(),
        trace: trace.is_some(),
    };
    let host = copy_fields(req, caller, drop, &mut fields);
    if let Some(span) = trace {
        push(&mut fields, b"traceparent", &span.traceparent())?;
        if let Some(state) = span.tracestate() {
            push(&mut fields, b"tracestate", state.as_bytes())?;
        }
    }
    for (name, value) in fill.unwrap_or_default() {
        push(&mut fields, name.as_bytes(), value)?;
    }
    if host.is_none() {
        // An HTTP/1.0 request may lack Host; the upstream gets its own authority.
        push(&mut fields, b"Host", target_authority.as_bytes())?;
    }
    add_forwarding(req, host, &mut fields)?;
    if let Some(d) = deadline {
        fields
            .push_with(deadline::REMAINING_FIELD.as_bytes(), |out| {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{}", d.remaining_millis());
            })
            .map_err(refused_field)?;
    }
    // Who called, as Portico established it (the client's own fields of these names were
    // dropped: they could be forged).
    if let Some(c) = caller {
        push(
            &mut fields,
            b"X-Portico-Project-Id",
            c.project_id.as_bytes(),
        )?;
        push(&mut fields, b"X-Portico-Consumer", c.consumer.as_bytes())?;
        push(&mut fields, b"X-Portico-Roles", c.roles.as_bytes())?;
    }
    Ok(UpstreamRequest {
        method: req.head.method(),
        target: target(req, path, caller, drop_timeout),
        fields,
        te_trailers: takes_trailers(req),
    })
}

/// Whether the client's `TE` lists `trailers` (RFC 9110 §10.1.4).
fn takes_trailers(req: &Request) -> bool {
    req.head
        .fields_named("te")
        .flat_map(list_elements)
        .any(|t| {
            t.split(|&b| b == b';')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"trailers"))
        })
}

/// The origin-form target: `path`, and the query less a credential parameter or a deadline
/// that stays at the gateway.
fn target(req: &Request, path: &[u8], caller: Option<&Caller>, drop_timeout: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + req.head.query().map_or(0, |q| q.len() + 1));
    out.extend_from_slice(path);
    let Some(q) = req.head.query() else {
        return out;
    };
    let credential_param = match caller.map(|c| &c.credential) {
        Some(CredentialPlace::Query(name)) => Some(&**name),
        _ => None,
    };
    let dropped = [credential_param, drop_timeout.then_some(deadline::PARAM)];
    if dropped.iter().all(Option::is_none) {
        out.push(b'?');
        out.extend_from_slice(q);
    } else if let Some(rest) = without_params(q, &dropped) {
        out.push(b'?');
        out.extend_from_slice(&rest);
    }
    out
}

/// Copies the client's end-to-end fields: not hop-by-hop ones, those named in `Connection`,
/// those the gateway writes itself, the caller's credential, a deadline that stays here.
/// Returns the client's `Host`.
fn copy_fields<'r>(
    req: &'r Request,
    caller: Option<&Caller>,
    drop: Dropped,
    fields: &mut Fields,
) -> Option<&'r [u8]> {
    let head = &req.head;
    let connection: Vec<&[u8]> = head
        .fields_named("connection")
        .flat_map(list_elements)
        .collect();
    // A credential stays at the gateway: its field is not passed on.
    let credential_field = match caller.map(|c| &c.credential) {
        Some(CredentialPlace::Field(name)) => Some(&**name),
        _ => None,
    };
    let mut host = None;
    for field in head.parsed_fields() {
        let (name, value) = (field.name(), field.value());
        // Compared as CGI-style upstreams read names, so `X_Forwarded_For` cannot stand in
        // for the field Portico writes itself.
        if is_hop_by_hop(name, &connection)
            || REPLACED.iter().any(|r| same_field_loosely(name, r))
            || credential_field.is_some_and(|c| same_field_loosely(name, c))
            || (drop.timeout && same_field_loosely(name, deadline::FIELD))
            || (drop.conditions && CONDITIONAL.iter().any(|c| same_field_loosely(name, c)))
            || (drop.trace
                && TRACE
                    .iter()
                    .any(|c| name.eq_ignore_ascii_case(c.as_bytes())))
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            host = Some(value);
        }
        fields.push_parsed(field);
    }
    host
}

/// The gateway's own hop: `X-Forwarded-For` and `Via` appended to what earlier hops said,
/// `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Request-Id` written anew.
fn add_forwarding(req: &Request, host: Option<&[u8]>, fields: &mut Fields) -> Result<(), Error> {
    let head = &req.head;
    // Written in place, without collecting the earlier values first: this runs on every
    // proxied request.
    fields
        .push_with(b"X-Forwarded-For", |out| {
            for earlier in head.fields_named("x-forwarded-for") {
                out.extend_from_slice(earlier);
                out.extend_from_slice(b", ");
            }
            write_ip(out, req.peer.ip());
        })
        .map_err(refused_field)?;
    let proto: &[u8] = if req.tls { b"https" } else { b"http" };
    push(fields, b"X-Forwarded-Proto", proto)?;
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        push(fields, b"X-Forwarded-Host", h)?;
    }
    fields
        .push_with(b"Via", |out| {
            for earlier in head.fields_named("via") {
                out.extend_from_slice(earlier);
                out.extend_from_slice(b", ");
            }
            // RFC 9110 §7.6.3: the protocol the request was received with, name omitted for
            // HTTP.
            out.extend_from_slice(match head.version() {
                Version::Http10 => b"1.0 portico",
                Version::Http11 => b"1.1 portico",
                Version::Http2 => b"2 portico",
            });
        })
        .map_err(refused_field)?;
    push(fields, b"X-Request-Id", req.id.as_str().as_bytes())
}

/// Writes `ip` as text. An IPv4 address is written digit by digit: through `Display` it took
/// some 900 instructions, 4% of a proxied HTTP/1.1 request (callgrind), for seven to fifteen
/// bytes. IPv6 keeps `Display` (its compression of zeros is RFC 5952's, not worth redoing).
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        // Writing to a Vec cannot fail.
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn push(fields: &mut Fields, name: &[u8], value: &[u8]) -> Result<(), Error> {
    fields.push(name, value).map_err(refused_field)
}

/// A field the gateway composes that no protocol could carry: every value it composes comes
/// from a parsed head or a validated configuration or token, so this is a fault of Portico's.
fn refused_field(e: InvalidField) -> Error {
    Error::new(ErrorCode::Internal).with_cause(e)
}

/// Sends `outgoing` to `upstream` and turns its answer into the response to relay; also
/// returns the target that answered. With a deadline, an answer whose head has not arrived
/// when it passes is 504, and the request to the upstream is dropped.
pub(crate) async fn forward(
    upstream: &Upstream,
    outgoing: UpstreamRequest,
    body: &mut RequestBody<'_>,
    deadline: Option<&Deadline>,
) -> Result<(Response, Arc<str>), Error> {
    let method = outgoing.method;
    let send = upstream.send(outgoing, body);
    let answer = match deadline {
        None => send.await?,
        Some(d) => tokio::time::timeout_at(d.at, send)
            .await
            .map_err(|_| deadline::exceeded())??,
    };
    let target = answer.target.authority_arc();
    Ok((relayed(answer, method), target))
}

/// The response to relay for an upstream's answer: its status, reason and end-to-end fields,
/// Portico's `Via`, and its body (none for HEAD or a bodiless status).
pub(crate) fn relayed(answer: UpstreamResponse, method: Method) -> Response {
    let mut headers = answer.headers;
    headers.push(via());
    let body = match answer.body.framing() {
        ResponseFraming::None => Body::Bodiless,
        _ if method == Method::Head => Body::Bodiless,
        _ => Body::Upstream(answer.body),
    };
    Response {
        status: answer.status,
        reason: Some(answer.reason),
        headers,
        body,
        close: false,
        error: None,
    }
}

/// The `Via` Portico adds to what it relays.
pub(crate) fn via() -> (Bytes, Bytes) {
    (
        Bytes::from_static(b"Via"),
        Bytes::from_static(b"1.1 portico"),
    )
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::write_ip;

    fn written(ip: IpAddr) -> String {
        let mut out = Vec::new();
        write_ip(&mut out, ip);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn an_address_is_written_as_display_writes_it() {
        // Every octet value, in every position.
        for octet in 0..=255u8 {
            for at in 0..4 {
                let mut octets = [1, 22, 133, 4];
                octets[at] = octet;
                let ip = IpAddr::V4(Ipv4Addr::from(octets));
                assert_eq!(written(ip), ip.to_string());
            }
        }
        for ip in [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "2001:db8::8a2e:370:7334"
                .parse()
                .unwrap_or(Ipv6Addr::LOCALHOST),
        ] {
            assert_eq!(written(IpAddr::V6(ip)), ip.to_string());
        }
    }
}
