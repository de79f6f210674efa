//! HTTP/2 clients for tests: one on the `h2` library for well-formed traffic, and one that
//! writes frames byte by byte, for what no library will send (malformed heads, floods).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA
    pub const DATA: u8 = 0x0;
    /// HEADERS
    pub const HEADERS: u8 = 0x1;
    /// RST_STREAM
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS
    pub const SETTINGS: u8 = 0x4;
    /// PING
    pub const PING: u8 = 0x6;
    /// GOAWAY
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    /// END_STREAM (DATA, HEADERS)
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING)
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, CONTINUATION)
    pub const END_HEADERS: u8 = 0x4;
}

/// Error codes (RFC 9113 §7).
pub mod reason {
    /// NO_ERROR
    pub const NO_ERROR: u32 = 0x0;
    /// PROTOCOL_ERROR
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// CANCEL
    pub const CANCEL: u32 = 0x8;
    /// ENHANCE_YOUR_CALM
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// An `h2` client over `io`; the connection runs on its own task.
pub async fn client_over(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
) -> SendRequest<Bytes> {
    let (send, conn) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// An `h2` client by prior knowledge on cleartext.
pub async fn client(addr: SocketAddr) -> SendRequest<Bytes> {
    let io = TcpStream::connect(addr).await.unwrap();
    io.set_nodelay(true).unwrap();
    client_over(io).await
}

/// A response read whole.
#[derive(Debug)]
pub struct H2Response {
    /// Status and fields.
    pub head: http::response::Parts,
    /// The body.
    pub body: Bytes,
}

impl H2Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    /// A field's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a generated error: its status, its catalog code, and the envelope.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status(), status, "{self:?}");
        let body = self.json();
        assert_eq!(body["error_code"], code, "{body}");
        assert_eq!(
            body["request_id"].as_str(),
            self.header("x-request-id"),
            "the body's request id is the header's"
        );
    }
}

/// A request with `fields`, for `client.send_request`.
pub fn request(method: &str, uri: &str, fields: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::builder().method(method).uri(uri);
    for (n, v) in fields {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

/// Reads a response's body to its end.
pub async fn read_body(mut body: h2::RecvStream) -> Result<Bytes, h2::Error> {
    let mut all = BytesMut::new();
    while let Some(piece) = body.data().await {
        let piece = piece?;
        let _ = body.flow_control().release_capacity(piece.len());
        all.extend_from_slice(&piece);
    }
    Ok(all.freeze())
}

/// Sends a request with `body` (none when `None`) and reads the whole response.
pub async fn send(
    client: &mut SendRequest<Bytes>,
    req: http::Request<()>,
    body: Option<&[u8]>,
) -> H2Response {
    let mut client = client.clone().ready().await.unwrap();
    let (response, mut stream) = client.send_request(req, body.is_none()).unwrap();
    if let Some(body) = body {
        stream
            .send_data(Bytes::copy_from_slice(body), true)
            .unwrap();
    }
    let response = response.await.unwrap();
    let (head, body) = response.into_parts();
    H2Response {
        head,
        body: read_body(body).await.unwrap(),
    }
}

/// One frame as read off the wire.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream.
    pub stream: u32,
    /// Payload.
    pub payload: Bytes,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> u32 {
        let at = if self.kind == kind::GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap())
    }
}

/// A client that writes frames itself: the preface and an empty SETTINGS on connect (and the
/// acknowledgement of the server's, so that nothing the client writes later lands inside a
/// header block the test is writing), and whatever the test says after. Field blocks are written as HPACK literals without indexing
/// or Huffman coding (RFC 7541 §6.2.2), so they say exactly what the test wrote.
pub struct RawH2 {
    io: TcpStream,
    buf: BytesMut,
    settings: Option<Frame>,
}

impl RawH2 {
    /// Connects by prior knowledge.
    pub async fn connect(addr: SocketAddr) -> RawH2 {
        let mut io = TcpStream::connect(addr).await.unwrap();
        // Frames go out as written: with Nagle's delay a paused-clock test would see time
        // jump ahead before they arrive.
        io.set_nodelay(true).unwrap();
        io.write_all(PREFACE).await.unwrap();
        let mut h2 = RawH2 {
            io,
            buf: BytesMut::new(),
            settings: None,
        };
        h2.send(kind::SETTINGS, 0, 0, &[]).await;
        h2.settings = Some(
            h2.until(|f| f.kind == kind::SETTINGS && f.flags & flag::ACK == 0)
                .await,
        );
        h2
    }

    /// The server's SETTINGS frame.
    pub fn server_settings(&self) -> &Frame {
        self.settings.as_ref().unwrap()
    }

    /// Writes one frame.
    pub async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let _ = self
            .io
            .write_all(&frame(kind, flags, stream, payload))
            .await;
    }

    /// Writes bytes as they are (several frames at once).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await
    }

    /// Writes a HEADERS frame with `fields` (pseudo-header fields included, in order).
    pub async fn headers(&mut self, stream: u32, fields: &[(&str, &str)], flags: u8) {
        self.send(
            kind::HEADERS,
            flags | flag::END_HEADERS,
            stream,
            &literal_block(fields),
        )
        .await;
    }

    /// The next frame, or `None` when the connection ends. SETTINGS from the server are
    /// acknowledged and returned.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = (usize::from(self.buf[0]) << 16)
                    | (usize::from(self.buf[1]) << 8)
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let head = self.buf.split_to(9);
                    let payload = self.buf.split_to(len).freeze();
                    let f = Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload,
                    };
                    if f.kind == kind::SETTINGS && f.flags & flag::ACK == 0 {
                        self.send(kind::SETTINGS, flag::ACK, 0, &[]).await;
                    }
                    return Some(f);
                }
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Frames until one that `pred` accepts; panics if the connection ends first.
    pub async fn until(&mut self, pred: impl Fn(&Frame) -> bool) -> Frame {
        loop {
            let f = self.next().await.expect("the connection ended");
            if pred(&f) {
                return f;
            }
        }
    }

    /// Frames until the connection ends; returns them.
    pub async fn to_end(&mut self) -> Vec<Frame> {
        let mut all = Vec::new();
        while let Some(f) = self.next().await {
            all.push(f);
        }
        all
    }
}

/// A frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block of literal fields without indexing, new names, no Huffman coding.
pub fn literal_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_string(&mut out, name.as_bytes());
        hpack_string(&mut out, value.as_bytes());
    }
    out
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    // A 7-bit prefix integer (RFC 7541 §5.1), Huffman bit clear.
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128 + 128) as u8);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

/// A request as an HTTP/2 upstream received it.
#[derive(Clone, Debug)]
pub struct H2Received {
    /// Which accepted connection it came on (0 for the first).
    pub connection: usize,
    /// `:method`.
    pub method: http::Method,
    /// `:scheme`, `:authority` and `:path`.
    pub uri: http::Uri,
    /// Header fields.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// The trailer section after the body, if one came.
    pub trailers: Option<http::HeaderMap>,
}

impl H2Received {
    /// A field's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What an HTTP/2 upstream does with a request.
pub enum H2Reply {
    /// Answers: status, fields, body (in DATA frames of at most 16 KiB), with
    /// `content-length` when `length`.
    Answer {
        /// Status.
        status: u16,
        /// Fields.
        headers: Vec<(&'static str, String)>,
        /// Body.
        body: Vec<u8>,
        /// Whether `content-length` is sent.
        length: bool,
    },
    /// Resets the stream with this reason, without answering.
    Reset(h2::Reason),
}

impl H2Reply {
    /// `200` with a text body and its length.
    pub fn ok(body: &str) -> H2Reply {
        H2Reply::Answer {
            status: 200,
            headers: vec![("content-type", "text/plain".to_string())],
            body: body.as_bytes().to_vec(),
            length: true,
        }
    }
}

type H2Handler = dyn Fn(&H2Received) -> H2Reply + Send + Sync;

/// An HTTP/2 (prior knowledge) upstream on an ephemeral port that records what it receives.
pub struct H2Upstream {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests in the order they were answered.
    pub received: tokio::sync::mpsc::UnboundedReceiver<H2Received>,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    close: tokio::sync::watch::Sender<u64>,
    open: tokio::sync::watch::Receiver<usize>,
}

impl H2Upstream {
    /// Starts an upstream that answers each request with `reply(request)`.
    pub async fn start(
        reply: impl Fn(&H2Received) -> H2Reply + Send + Sync + 'static,
    ) -> H2Upstream {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = tokio::sync::mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let (close, _) = tokio::sync::watch::channel(0u64);
        let (open_tx, open) = tokio::sync::watch::channel(0usize);
        let open_tx = Arc::new(open_tx);
        let reply: Arc<H2Handler> = Arc::new(reply);
        let count = connections.clone();
        let closing = close.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let id = count.fetch_add(1, Ordering::SeqCst);
                let (tx, reply, open_tx) = (tx.clone(), reply.clone(), open_tx.clone());
                let mut close = closing.subscribe();
                open_tx.send_modify(|n| *n += 1);
                tokio::spawn(async move {
                    if let Ok(mut conn) = h2::server::handshake(tcp).await {
                        let mut closing = false;
                        loop {
                            tokio::select! {
                                next = conn.accept() => match next {
                                    Some(Ok((req, respond))) => {
                                        let (tx, reply) = (tx.clone(), reply.clone());
                                        tokio::spawn(answer(id, req, respond, reply, tx));
                                    }
                                    _ => break,
                                },
                                changed = close.changed(), if !closing => {
                                    closing = true;
                                    if changed.is_ok() {
                                        conn.graceful_shutdown();
                                    }
                                }
                            }
                        }
                    }
                    open_tx.send_modify(|n| *n -= 1);
                });
            }
        });
        H2Upstream {
            addr,
            received,
            connections,
            close,
            open,
        }
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The next request it answered.
    pub async fn next(&mut self) -> H2Received {
        self.received.recv().await.expect("upstream stopped")
    }

    /// Closes every open connection gracefully (GOAWAY, then the end of the connection once
    /// its streams are done) and waits until they are gone.
    pub async fn close_connections(&mut self) {
        self.close.send_modify(|n| *n += 1);
        self.open.wait_for(|n| *n == 0).await.unwrap();
    }
}

async fn answer(
    connection: usize,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    reply: std::sync::Arc<H2Handler>,
    tx: tokio::sync::mpsc::UnboundedSender<H2Received>,
) {
    let (head, mut recv) = req.into_parts();
    let mut body = Vec::new();
    while let Some(piece) = recv.data().await {
        let Ok(piece) = piece else { return };
        let _ = recv.flow_control().release_capacity(piece.len());
        body.extend_from_slice(&piece);
    }
    let Ok(trailers) = recv.trailers().await else {
        return;
    };
    let received = H2Received {
        connection,
        method: head.method,
        uri: head.uri,
        headers: head.headers,
        body,
        trailers,
    };
    let action = reply(&received);
    let _ = tx.send(received);
    match action {
        H2Reply::Reset(reason) => respond.send_reset(reason),
        H2Reply::Answer {
            status,
            headers,
            body,
            length,
        } => {
            let mut b = http::Response::builder().status(status);
            for (n, v) in headers {
                b = b.header(n, v);
            }
            if length {
                b = b.header("content-length", body.len());
            }
            let Ok(mut stream) = respond.send_response(b.body(()).unwrap(), body.is_empty()) else {
                return;
            };
            let mut body = Bytes::from(body);
            while !body.is_empty() {
                let piece = body.split_to(body.len().min(16 * 1024));
                stream.reserve_capacity(piece.len());
                loop {
                    match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                        Some(Ok(n)) if n >= piece.len() => break,
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                }
                if stream.send_data(piece, body.is_empty()).is_err() {
                    return;
                }
            }
        }
    }
}
