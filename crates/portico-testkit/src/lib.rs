//! Test support: a Portico gateway on an ephemeral port in the test's own runtime, a client
//! that speaks raw bytes and parses responses with its own (deliberately separate) parser,
//! and upstream servers whose behaviour each test scripts.
//!
//! Nothing here sleeps: every wait is for an event (bytes on a socket, a line on a channel).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod h2;
pub mod pg;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use portico_gateway::{AccessLogSink, EgressService, Gateway};
use portico_http::ErrorCode;
use portico_http::catalog::status_row;
use portico_server::tls::Tls;
use portico_server::{Listener, Reloadable};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// A running gateway.
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it listens for TLS, when the configuration has a `tls` listener.
    pub tls_addr: Option<SocketAddr>,
    /// Where its egress proxy listens, when the configuration has `egress`.
    pub egress_addr: Option<SocketAddr>,
    tls: Option<Arc<Tls>>,
    /// Access-log lines, as the gateway writes them.
    pub log: mpsc::UnboundedReceiver<String>,
    swap: Arc<Reloadable<Gateway>>,
    log_tx: AccessLogSink,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl TestGateway {
    /// Starts a gateway for a YAML configuration (its `listen` is ignored: an ephemeral port
    /// on 127.0.0.1 is used).
    pub async fn start(yaml: &str) -> TestGateway {
        TestGateway::start_with(yaml, |g| g).await
    }

    /// Like [`TestGateway::start`], letting the test adjust the gateway (e.g. plug a handler).
    pub async fn start_with(yaml: &str, adjust: impl FnOnce(Gateway) -> Gateway) -> TestGateway {
        let config = portico_config::from_str(yaml, "test.yaml").unwrap_or_else(|p| panic!("{p}"));
        TestGateway::start_config(config, adjust).await
    }

    /// Starts a gateway for a configuration the test built or changed after reading it.
    pub async fn start_config(
        config: portico_config::Config,
        adjust: impl FnOnce(Gateway) -> Gateway,
    ) -> TestGateway {
        let (sink, log) = AccessLogSink::channel();
        let gateway = adjust(Gateway::new(&config, sink.clone()).unwrap());
        let swap = Arc::new(Reloadable::new(gateway));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listeners = vec![Listener::plain(listener)];
        let (mut tls, mut tls_addr) = (None, None);
        if let Some(files) = &config.tls {
            let t = Arc::new(Tls::load(&files.cert, &files.key, config.http2.enabled).unwrap());
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tls_addr = Some(l.local_addr().unwrap());
            listeners.push(Listener::tls(l, t.clone()));
            tls = Some(t);
        }
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let serving = swap.clone();
        let mut egress_addr = None;
        let egress = match &config.egress {
            Some(_) => {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                egress_addr = Some(l.local_addr().unwrap());
                Some((l, Arc::new(EgressService::new(swap.clone()))))
            }
            None => None,
        };
        tokio::spawn(async move {
            let (stopping, stopped) = tokio::sync::watch::channel(false);
            let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            tokio::spawn(async move {
                let _ = stop_rx.await;
                let _ = stopping.send(true);
            });
            let grace = config.shutdown_grace;
            let data = portico_server::serve_all(listeners, serving, grace, stop(stopped.clone()));
            let egress = async {
                match egress {
                    Some((l, svc)) => {
                        portico_server::serve_all(
                            vec![Listener::plain(l)],
                            svc,
                            grace,
                            stop(stopped),
                        )
                        .await
                    }
                    None => Ok(()),
                }
            };
            let (data, egress) = tokio::join!(data, egress);
            data.unwrap();
            egress.unwrap();
            let _ = done_tx.send(());
        });
        TestGateway {
            addr,
            tls_addr,
            egress_addr,
            tls,
            log,
            swap,
            log_tx: sink,
            stop: Some(stop_tx),
            done: Some(done_rx),
        }
    }

    /// Replaces the configuration while the gateway serves, as a SIGHUP does (its `listen`
    /// is ignored here too).
    pub fn reload(&self, yaml: &str) {
        let config =
            portico_config::from_str(yaml, "reload.yaml").unwrap_or_else(|p| panic!("{p}"));
        if let (Some(tls), Some(files)) = (&self.tls, &config.tls) {
            tls.reload(&files.cert, &files.key, config.http2.enabled)
                .unwrap();
        }
        self.swap
            .replace(Gateway::new(&config, self.log_tx.clone()).unwrap());
    }

    /// A new raw connection to the gateway.
    pub async fn connect(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    /// Sends one request on a new connection and reads the response.
    pub async fn request(&self, raw: &str) -> RawResponse {
        let mut c = self.connect().await;
        c.send(raw).await;
        let method = raw.split(' ').next().unwrap_or("GET").to_string();
        c.response_to(&method).await
    }

    /// The next access-log line, parsed.
    pub async fn next_log(&mut self) -> Value {
        let line = self.log.recv().await.expect("the gateway stopped");
        assert!(
            line.ends_with('\n'),
            "a log line ends with a newline: {line:?}"
        );
        serde_json::from_str(&line).unwrap()
    }

    /// Asks the gateway to stop and waits until it has.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

/// A byte stream a test client can use: plain TCP or TLS.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// A socket with a read buffer: the reading both test clients and test upstreams need.
struct Wire<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn new(stream: S) -> Wire<S> {
        Wire {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; 0 at EOF or on error.
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// Everything up to and including `needle`; `None` if the peer closes first.
    async fn until(&mut self, needle: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, needle) {
                return Some(self.buf.drain(..i + needle.len()).collect());
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// A message head as text, without the blank line that ends it.
    async fn head(&mut self) -> Option<String> {
        let mut head = self.until(b"\r\n\r\n").await?;
        head.truncate(head.len() - 4);
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    /// Exactly `n` bytes.
    async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await == 0 {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// A chunked body, de-chunked, and the lines of its trailer section.
    async fn chunked(&mut self) -> Option<(Vec<u8>, Vec<String>)> {
        let mut body = Vec::new();
        loop {
            let line = self.until(b"\r\n").await?;
            let text = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = usize::from_str_radix(text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let line = self.until(b"\r\n").await?;
                    if line.len() == 2 {
                        return Some((body, trailers));
                    }
                    trailers.push(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned());
                }
            }
            body.extend(self.exact(size).await?);
            if self.exact(2).await? != b"\r\n" {
                return None;
            }
        }
    }

    /// Everything until the peer closes.
    async fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill().await > 0 {}
        std::mem::take(&mut self.buf)
    }
}

/// A client that writes raw bytes and reads responses.
pub struct RawClient {
    wire: Wire<Box<dyn Duplex>>,
}

/// A response as read off the wire.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order.
    pub headers: Headers,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the body was chunked on the wire.
    pub chunked: bool,
    /// The trailer section of a chunked body.
    pub trailers: Headers,
}

/// Header fields as received, in order.
#[derive(Clone, Debug, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// Every field named `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// All headers named `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.all(name)
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Whether the response asks to close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

impl RawClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            wire: Wire::new(Box::new(stream)),
        }
    }

    /// A client over any stream (a TLS session, say).
    pub fn over(stream: impl Duplex + 'static) -> RawClient {
        RawClient {
            wire: Wire::new(Box::new(stream)),
        }
    }

    /// Writes bytes.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.wire.stream.write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads one response to a request that was not HEAD.
    pub async fn response(&mut self) -> RawResponse {
        self.response_to("GET").await
    }

    /// Reads one response to a request with `method` (HEAD responses have no body).
    pub async fn response_to(&mut self, method: &str) -> RawResponse {
        let head = self.wire.head().await.unwrap_or_else(|| {
            panic!(
                "connection closed before a response; got {:?}",
                String::from_utf8_lossy(&self.wire.buf)
            )
        });
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let reason = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                assert!(!n.contains(' '), "header name with space: {l:?}");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let mut resp = RawResponse {
            status,
            reason,
            headers: Headers(headers),
            body: Vec::new(),
            chunked: false,
            trailers: Headers::default(),
        };
        // A 2xx to CONNECT is a tunnel from the blank line on (RFC 9110 §9.3.6).
        if method == "HEAD"
            || status < 200
            || status == 204
            || status == 304
            || (method == "CONNECT" && status < 300)
        {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            resp.chunked = true;
            let (body, trailers) = self.wire.chunked().await.expect("a complete chunked body");
            resp.body = body;
            resp.trailers = Headers(
                trailers
                    .iter()
                    .map(|l| {
                        let (n, v) = l
                            .split_once(':')
                            .unwrap_or_else(|| panic!("bad trailer line {l:?}"));
                        (n.to_string(), v.trim().to_string())
                    })
                    .collect(),
            );
        } else if let Some(len) = resp.header("content-length") {
            resp.body = self
                .wire
                .exact(len.parse().unwrap())
                .await
                .expect("body shorter than Content-Length");
        } else {
            resp.body = self.wire.read_to_close().await;
        }
        resp
    }

    /// Whether the server has closed the connection (EOF or reset), with nothing more to read.
    pub async fn is_closed(&mut self) -> bool {
        self.wire.buf.is_empty() && self.wire.fill().await == 0
    }

    /// Everything until the server closes.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        self.wire.read_to_close().await
    }

    /// Reads until `needle` has arrived; returns everything up to and including it.
    pub async fn read_until(&mut self, needle: &[u8]) -> Vec<u8> {
        let got = self.wire.until(needle).await;
        got.unwrap_or_else(|| panic!("closed before {:?}", String::from_utf8_lossy(needle)))
    }

    /// Whether bytes are already waiting, without blocking.
    pub fn has_buffered(&self) -> bool {
        !self.wire.buf.is_empty()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Asserts that `resp` is the error `code` with the contract's envelope: the status the catalog
/// gives the code, a JSON body with every member, the table's message as title, and the same
/// request id in the body as in `X-Request-Id`.
pub fn assert_error(resp: &RawResponse, status: u16, code: &str) {
    let known = ErrorCode::ALL.iter().find(|c| c.as_str() == code);
    let known = known.unwrap_or_else(|| panic!("{code} is not in the catalog"));
    assert_eq!(
        known.status(),
        status,
        "{code} belongs to {}",
        known.status()
    );
    assert_eq!(
        resp.status,
        status,
        "expected {status} {code}, got {} {:?}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    assert_envelope(resp);
    assert_eq!(resp.json()["error_code"], code);
}

/// Asserts the envelope rules for any generated error response.
pub fn assert_envelope(resp: &RawResponse) {
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(
        ct == "application/json" || ct == "application/problem+json",
        "content-type {ct:?}"
    );
    let v = resp.json();
    let code = v["error_code"].as_str().expect("error_code");
    let catalog = ErrorCode::ALL
        .iter()
        .find(|c| c.as_str() == code)
        .unwrap_or_else(|| panic!("{code} not in catalog"));
    assert_eq!(v["status"], resp.status);
    assert_eq!(catalog.status(), resp.status);
    assert_eq!(v["error_msg"], catalog.message());
    assert_eq!(v["title"], status_row(resp.status).unwrap().message);
    assert!(v["detail"].is_string());
    let id = resp.header("x-request-id").expect("X-Request-Id");
    assert_eq!(v["request_id"], id);
    assert_eq!(id.len(), 32);
}

/// A request as an upstream received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Which accepted connection it came on (0 for the first).
    pub connection: usize,
    /// The request line.
    pub line: String,
    /// Header fields.
    pub headers: Headers,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the body came chunked.
    pub chunked: bool,
}

impl Received {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Every header named `name`.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.all(name)
    }
}

/// What a mock upstream does with a request.
pub enum Reply {
    /// Writes these bytes and keeps the connection for the next request.
    Bytes(Vec<u8>),
    /// Writes these bytes and closes.
    BytesThenClose(Vec<u8>),
    /// Resets the connection (RST) without answering.
    Reset,
    /// Closes the connection without answering.
    Close,
}

impl Reply {
    /// `200` with a text body and Content-Length.
    pub fn ok(body: &str) -> Reply {
        Reply::Bytes(ok_bytes(body))
    }
}

/// The bytes of a `200` response with a text body and Content-Length.
pub fn ok_bytes(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An upstream server on an ephemeral port that records what it receives.
pub struct MockUpstream {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests in the order received.
    pub received: mpsc::UnboundedReceiver<Received>,
    connections: Arc<AtomicUsize>,
}

impl MockUpstream {
    /// Starts an upstream that answers each request with `reply(request)`.
    pub async fn start(reply: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(reply);
        let count = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let id = count.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut conn = UpstreamConn::new(stream);
                    while let Some(mut req) = conn.read_request().await {
                        req.connection = id;
                        let action = reply(&req);
                        let _ = tx.send(req);
                        match action {
                            Reply::Bytes(b) => {
                                if conn.write(&b).await.is_err() {
                                    return;
                                }
                            }
                            Reply::BytesThenClose(b) => {
                                let _ = conn.write(&b).await;
                                return;
                            }
                            Reply::Reset => {
                                conn.reset();
                                return;
                            }
                            Reply::Close => return,
                        }
                    }
                });
            }
        });
        MockUpstream {
            addr,
            received,
            connections,
        }
    }

    /// How many connections it has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The next request it received.
    pub async fn next(&mut self) -> Received {
        self.received.recv().await.expect("upstream stopped")
    }
}

/// An upstream that answers nothing by itself: each request it reads is handed to the test,
/// which answers it when it chooses ([`HeldRequest::answer`]) or waits to see the gateway
/// give up on it ([`HeldRequest::cancelled`]). The controllable slow upstream of deadline,
/// job and idempotency tests: their waits are on its events, never on a clock.
pub struct HeldUpstream {
    /// Its address.
    pub addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<HeldRequest>,
}

/// A request a [`HeldUpstream`] holds.
pub struct HeldRequest {
    /// What arrived.
    pub received: Received,
    reply: oneshot::Sender<Vec<u8>>,
    closed: oneshot::Receiver<()>,
}

impl HeldUpstream {
    /// Starts one on an ephemeral port.
    pub async fn start() -> HeldUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut id = 0;
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                id += 1;
                let connection = id;
                tokio::spawn(async move {
                    let mut conn = UpstreamConn::new(stream);
                    while let Some(mut received) = conn.read_request().await {
                        received.connection = connection;
                        let (reply, mut answer) = oneshot::channel::<Vec<u8>>();
                        let (gone, closed) = oneshot::channel();
                        if tx
                            .send(HeldRequest {
                                received,
                                reply,
                                closed,
                            })
                            .is_err()
                        {
                            return;
                        }
                        tokio::select! {
                            bytes = &mut answer => match bytes {
                                Ok(b) => {
                                    if conn.write(&b).await.is_err() {
                                        return;
                                    }
                                }
                                Err(_) => return,
                            },
                            // The gateway closed the connection (or sent more, which no
                            // gateway waiting for an answer does): the request is given up.
                            _ = conn.read_some() => {
                                let _ = gone.send(());
                                return;
                            }
                        }
                    }
                });
            }
        });
        HeldUpstream { addr, requests }
    }

    /// The next request to arrive.
    pub async fn next(&mut self) -> HeldRequest {
        self.requests.recv().await.expect("held upstream stopped")
    }
}

impl HeldRequest {
    /// Answers with these raw bytes (a whole response).
    pub fn answer(self, raw: impl Into<Vec<u8>>) {
        let _ = self.reply.send(raw.into());
    }

    /// Answers 200 with this body.
    pub fn ok(self, body: &str) {
        self.answer(ok_bytes(body));
    }

    /// Waits until the gateway closes the connection without waiting for the answer.
    pub async fn cancelled(self) {
        let HeldRequest { closed, reply, .. } = self;
        // Kept open so that the connection is not closed from this side.
        let _reply = reply;
        closed
            .await
            .expect("the held upstream's connection task ended");
    }
}

/// The server side of one upstream connection, for tests that script an upstream by hand.
pub struct UpstreamConn {
    wire: Wire,
}

impl UpstreamConn {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream) -> UpstreamConn {
        UpstreamConn {
            wire: Wire::new(stream),
        }
    }

    /// Writes bytes to the gateway.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.wire.stream.write_all(bytes).await
    }

    /// Reads a request head; `None` at EOF.
    pub async fn read_head(&mut self) -> Option<Received> {
        let head = self.wire.head().await?;
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            })
            .collect();
        Some(Received {
            connection: 0,
            line,
            headers: Headers(headers),
            body: Vec::new(),
            chunked: false,
        })
    }

    /// The body bytes that are available (waiting for at least one), raw.
    pub async fn read_some(&mut self) -> Vec<u8> {
        if self.wire.buf.is_empty() {
            self.wire.fill().await;
        }
        std::mem::take(&mut self.wire.buf)
    }

    /// Reads a whole request, body included; `None` at EOF.
    pub async fn read_request(&mut self) -> Option<Received> {
        let mut req = self.read_head().await?;
        if req.header("transfer-encoding").is_some() {
            req.chunked = true;
            req.body = self.wire.chunked().await?.0;
        } else if let Some(len) = req.header("content-length") {
            req.body = self.wire.exact(len.parse().ok()?).await?;
        }
        Some(req)
    }

    fn reset(&self) {
        let _ = socket2::SockRef::from(&self.wire.stream).set_linger(Some(Duration::ZERO));
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A configuration with one upstream route `/api/{*rest}` (all usual methods) to `upstream`,
/// and an echo route `/echo`.
pub fn proxy_config(upstream: SocketAddr) -> String {
    format!(
        "upstreams:\n  - name: up\n    targets: [\"http://{upstream}\"]\nroutes:\n  - name: api\n    path: /api/{{*rest}}\n    methods: [GET, POST, PUT, PATCH, DELETE]\n    upstream: up\n  - name: echo\n    path: /echo\n    methods: [GET, POST, PUT]\n    handler: echo\n"
    )
}

/// One part of a `multipart/byteranges` body.
#[derive(Clone, Debug)]
pub struct Part {
    /// The part's header fields.
    pub headers: Headers,
    /// Its data.
    pub data: Vec<u8>,
}

/// Parses a `multipart/byteranges` body (RFC 9110 §14.6, RFC 2046 §5.1) independently of
/// Portico's own code: the boundary from `content_type`, then each part's fields and data.
/// Panics when the body is not well formed.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"));
    let delimiter = format!("--{boundary}");
    let close = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.ends_with(close.as_bytes()),
        "the body does not end with the close delimiter"
    );
    let body = &body[..body.len() - close.len()];
    let first = format!("{delimiter}\r\n");
    assert!(
        body.starts_with(first.as_bytes()),
        "the body does not start with a delimiter"
    );
    let separator = format!("\r\n{delimiter}\r\n");
    let mut parts = Vec::new();
    let mut rest = &body[first.len()..];
    loop {
        let end = find(rest, separator.as_bytes()).unwrap_or(rest.len());
        let part = &rest[..end];
        let head_end = find(part, b"\r\n\r\n").expect("a part has a header section");
        let headers = String::from_utf8(part[..head_end].to_vec())
            .unwrap()
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        parts.push(Part {
            headers: Headers(headers),
            data: part[head_end + 4..].to_vec(),
        });
        if end == rest.len() {
            return parts;
        }
        rest = &rest[end + separator.len()..];
    }
}

/// A TLS server on an ephemeral port that terminates TLS with its configuration (whose ALPN
/// list decides what clients are told it speaks) and relays the bytes to another address: put
/// in front of a [`MockUpstream`] or an [`h2::H2Upstream`], it makes an `https://` upstream.
pub struct TlsFront {
    /// Its address.
    pub addr: SocketAddr,
    alpn: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
}

impl TlsFront {
    /// Starts one relaying to `behind`.
    pub async fn start(config: Arc<rustls::ServerConfig>, behind: SocketAddr) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, alpn) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    // A failed handshake (an untrusting client) just ends this connection.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = tx.send(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                    let Ok(mut plain) = TcpStream::connect(behind).await else {
                        return;
                    };
                    let _ = plain.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront { addr, alpn }
    }

    /// The protocol ALPN chose on the next connection that completed its handshake.
    pub async fn next_alpn(&mut self) -> Option<String> {
        let alpn = self.alpn.recv().await.expect("front stopped");
        alpn.map(|p| String::from_utf8_lossy(&p).into_owned())
    }
}

/// A server configuration for a certificate and key (PEM text) offering `alpn`.
pub fn tls_server_config(
    cert_pem: &str,
    key_pem: &str,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    let chain =
        vec![rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}
