//! Responses as handlers return them. Framing headers (`Content-Length`,
//! `Transfer-Encoding`, `Connection`) are never set by handlers: the writer derives them from
//! the body and the connection, so they cannot disagree with what is sent.

use crate::io::ClientIo;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use portico_http::ErrorCode;

use crate::client::{ResponseFraming, UpstreamBody};

/// A response to write.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase to send; the standard one when `None`.
    pub reason: Option<Bytes>,
    /// Header fields, in order (no framing or hop-by-hop fields).
    pub headers: Vec<(Bytes, Bytes)>,
    /// The body.
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
    /// The catalog code when Portico generated this response for an error.
    pub error: Option<ErrorCode>,
}

/// A response body.
pub enum Body {
    /// No content: `Content-Length: 0` (none on 1xx, 204 and 304).
    Empty,
    /// The message has no body and its headers already say what they should (a relayed
    /// response to HEAD, or a relayed 304 with the representation's `Content-Length`).
    Bodiless,
    /// A body held in memory (for HEAD only its length is sent).
    Full(Bytes),
    /// A body streamed from an upstream.
    Upstream(UpstreamBody),
    /// A body of known length produced piece by piece (a file, read as it is sent).
    Stream(StreamBody),
    /// No body: the response is a 101, and this takes the connection over once it is sent.
    Upgrade(OnUpgrade),
}

/// What goes out after a response's head, whatever the protocol.
pub(crate) enum Payload {
    /// Nothing.
    Nothing,
    /// Bytes in memory.
    Bytes(Bytes),
    /// A body of announced length, produced piece by piece.
    Stream(StreamBody),
    /// An upstream's body, framed as [`UpstreamBody::framing`] says.
    Upstream(UpstreamBody),
}

impl Body {
    /// The length to announce (`Content-Length`), if one is, and what to send, for a response
    /// with `status` to a HEAD request or not. 1xx, 204 and 304 have neither; a HEAD response
    /// announces the length a GET would have had and sends nothing.
    pub(crate) fn plan(self, status: u16, head_request: bool) -> (Option<u64>, Payload) {
        let no_content = status < 200 || status == 204 || status == 304;
        let send = |payload: Payload| {
            if head_request {
                Payload::Nothing
            } else {
                payload
            }
        };
        match self {
            Body::Empty if no_content => (None, Payload::Nothing),
            Body::Empty => (Some(0), Payload::Nothing),
            Body::Bodiless => (None, Payload::Nothing),
            Body::Full(_) | Body::Stream(_) if no_content => (None, Payload::Nothing),
            Body::Full(b) => (Some(b.len() as u64), send(Payload::Bytes(b))),
            Body::Stream(sb) => (Some(sb.len()), send(Payload::Stream(sb))),
            // The connection changes hands after the head (conn.rs takes it over).
            Body::Upgrade(_) => (None, Payload::Nothing),
            Body::Upstream(ub) => match ub.framing() {
                ResponseFraming::None => (None, Payload::Nothing),
                ResponseFraming::Length(n) => (Some(n), Payload::Upstream(ub)),
                ResponseFraming::Chunked | ResponseFraming::Close => (None, Payload::Upstream(ub)),
            },
        }
    }
}

/// A client connection after a 101: the socket, and what the client sent past the request
/// head (a WebSocket client may send its first frames without waiting).
pub struct Upgraded {
    /// The client's socket.
    pub io: ClientIo,
    /// Bytes already read from it.
    pub buffered: Bytes,
}

/// What a connection becomes after a 101 (a WebSocket relay) or a 2xx to CONNECT (a
/// tunnel): it runs in the connection's task, which ends when it does.
pub type OnUpgrade = Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A body whose length is known before it is sent and whose bytes come from a stream. The
/// writer sends `Content-Length: len`; if the stream fails or yields a different number of
/// bytes, the connection is closed, since the framing can no longer be trusted. For HEAD the
/// stream is never polled.
pub struct StreamBody {
    len: u64,
    pieces: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
}

impl StreamBody {
    /// A body of exactly `len` bytes taken from `pieces`.
    pub fn new(len: u64, pieces: impl Stream<Item = io::Result<Bytes>> + Send + 'static) -> Self {
        StreamBody {
            len,
            pieces: Box::pin(pieces),
        }
    }

    /// The announced length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces.
    pub(crate) fn pieces(&mut self) -> Pin<&mut (dyn Stream<Item = io::Result<Bytes>> + Send)> {
        self.pieces.as_mut()
    }
}

impl fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamBody")
            .field("len", &self.len)
            .finish()
    }
}

impl Response {
    /// A response with a status and no headers or body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            reason: None,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
            error: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<Bytes>) -> Response {
        self.headers
            .push((Bytes::from_static(name.as_bytes()), value.into()));
        self
    }

    /// Sets an in-memory body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Response {
        self.body = Body::Full(body.into());
        self
    }

    /// The first header named `name` (ASCII case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}
