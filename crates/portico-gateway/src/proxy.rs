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
use portico_http::request::list_elements;
use portico_http::response::is_hop_by_hop;
use portico_http::syntax::same_field_loosely;
use portico_http::{Method, Version};
use portico_server::client::{ResponseFraming, Upstream, UpstreamRequest, UpstreamResponse};
use portico_server::{Body, CredentialPlace, Error, Request, RequestBody, Response};

use crate::access::without_params;
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

/// Builds the request head for the upstream (framing fields and the final CRLF are added by
/// the client). With a deadline, the upstream is told the time left in
/// `X-Portico-Timeout-Ms`, and the client's own `timeout=` and `Timeout` are left out unless
/// the route passes them on.
pub(crate) fn upstream_head(
    req: &Request,
    path: &[u8],
    target_authority: &str,
    deadline: Option<&Deadline>,
) -> Vec<u8> {
    let head = &req.head;
    let drop_timeout = deadline.is_some_and(|d| !d.pass);
    let mut out = Vec::with_capacity(head.len() + 160);
    out.extend_from_slice(head.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path);
    let caller = req.notes.caller.as_ref();
    // A credential stays at the gateway: its field or query parameter is not passed on.
    let credential_field = match caller.map(|c| &c.credential) {
        Some(CredentialPlace::Field(name)) => Some(&**name),
        _ => None,
    };
    let credential_param = match caller.map(|c| &c.credential) {
        Some(CredentialPlace::Query(name)) => Some(&**name),
        _ => None,
    };
    if let Some(q) = head.query() {
        let dropped = [credential_param, drop_timeout.then_some(deadline::PARAM)];
        if dropped.iter().all(Option::is_none) {
            out.push(b'?');
            out.extend_from_slice(q);
        } else if let Some(rest) = without_params(q, &dropped) {
            out.push(b'?');
            out.extend_from_slice(&rest);
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let connection: Vec<&[u8]> = head
        .fields_named("connection")
        .flat_map(list_elements)
        .collect();
    let mut host: Option<&[u8]> = None;
    for (name, value) in head.fields() {
        // Compared as CGI-style upstreams read names, so `X_Forwarded_For` cannot stand in
        // for the field Portico writes itself.
        if is_hop_by_hop(name, &connection)
            || REPLACED.iter().any(|r| same_field_loosely(name, r))
            || credential_field.is_some_and(|c| same_field_loosely(name, c))
            || (drop_timeout && same_field_loosely(name, deadline::FIELD))
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            host = Some(value);
        }
        push_field(&mut out, name, value);
    }
    if host.is_none() {
        // An HTTP/1.0 request may lack Host; the upstream gets its own authority.
        push_field(&mut out, b"Host", target_authority.as_bytes());
    }
    // Appended lists: what earlier hops said, then this hop. Written in place, without
    // collecting the earlier values first, since this runs on every proxied request.
    out.extend_from_slice(b"X-Forwarded-For: ");
    for earlier in head.fields_named("x-forwarded-for") {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}\r\n", req.peer.ip());
    let proto: &[u8] = if req.tls { b"https" } else { b"http" };
    push_field(&mut out, b"X-Forwarded-Proto", proto);
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        push_field(&mut out, b"X-Forwarded-Host", h);
    }
    out.extend_from_slice(b"Via: ");
    for earlier in head.fields_named("via") {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    // RFC 9110 §7.6.3: the protocol the request was received with, name omitted for HTTP.
    out.extend_from_slice(match head.version() {
        Version::Http10 => b"1.0 portico\r\n",
        Version::Http11 => b"1.1 portico\r\n",
        Version::Http2 => b"2 portico\r\n",
    });
    push_field(&mut out, b"X-Request-Id", req.id.as_str().as_bytes());
    if let Some(d) = deadline {
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "{}: {}\r\n",
            deadline::REMAINING_FIELD,
            d.remaining_millis()
        );
    }
    // Who called, as Portico established it (the client's own fields of these names were
    // dropped above: they could be forged).
    if let Some(c) = caller {
        push_field(&mut out, b"X-Portico-Project-Id", c.project_id.as_bytes());
        push_field(&mut out, b"X-Portico-Consumer", c.consumer.as_bytes());
        push_field(&mut out, b"X-Portico-Roles", c.roles.as_bytes());
    }
    out
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Sends the request to `upstream` and turns its answer into the response to relay; also
/// returns the target that answered. With a deadline, an answer whose head has not arrived
/// when it passes is 504, and the request to the upstream is dropped.
pub(crate) async fn forward(
    upstream: &Upstream,
    req: &Request,
    path: &[u8],
    body: &mut RequestBody<'_>,
    deadline: Option<&Deadline>,
) -> Result<(Response, Arc<str>), Error> {
    let method = req.head.method();
    let head = upstream_head(req, path, upstream.authority(), deadline);
    let send = upstream.send(UpstreamRequest { head, method }, body);
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
