//! What goes to an upstream and what comes back, whatever the protocol spoken: the request
//! to forward, the response head with its body to stream, the answer to a WebSocket
//! handshake, and how an attempt failed (which decides whether it may be tried again).

use std::sync::Arc;

use bytes::Bytes;
use portico_http::Method;
use portico_http::fields::Fields;

use super::body::UpstreamBody;
use super::pool::TargetPool;
use super::settings::UpstreamIo;
use crate::error::Error;

/// A request to forward, as the gateway composed it. HTTP/1.1 targets get it written as a
/// request line and its fields (`h1.rs`); HTTP/2 targets get it mapped to an HTTP/2 request
/// field by field (`h2.rs`). Framing is the client's to add, for the body it actually sends.
#[derive(Clone, Debug)]
pub struct UpstreamRequest {
    /// The method (HEAD responses have no body; only idempotent requests are retried).
    pub method: Method,
    /// The origin-form target: the path, and the query after `?`.
    pub target: Vec<u8>,
    /// The header fields, `Host` among them; no hop-by-hop or framing fields.
    pub fields: Fields,
    /// The client said it takes trailer fields (`TE: trailers`): an HTTP/2 target is told so
    /// in the one `te` value HTTP/2 allows (RFC 9113 §8.2.2), since Portico relays its
    /// trailers. gRPC servers read it to know a proxy will not drop the status.
    pub te_trailers: bool,
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
    pub stream: UpstreamIo,
    /// Bytes the upstream sent after its 101 head.
    pub buffered: Bytes,
    /// The target that answered.
    pub target: Arc<TargetPool>,
}
