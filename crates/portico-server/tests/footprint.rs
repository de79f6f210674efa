//! What an idle connection costs. Each connection is a task whose allocation is the size of
//! its future, held as long as the connection is open; what its protocol keeps besides
//! (buffers, HTTP/2's stream and HPACK state) lives beside it. Ten thousand idle connections
//! cost ten thousand of each, so both are held small here: the task by the size of its future,
//! the rest by counting what the allocator holds (the `cap` allocator wraps the system one and
//! keeps the count) with many connections idle, after each made one request.
//!
//! Client and server share one thread (a current-thread runtime): when the client has read
//! what it waits for, the server's task has run to its next wait, so the count is taken at a
//! point fixed by events, not by time. The client side holds no heap of its own beyond its
//! socket's registration with the runtime (some 256 bytes a connection, counted in).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::alloc::System;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cap::Cap;
use portico_http::HeadLimits;
use portico_server::{
    ClientIo, ConnSettings, Error, Exchange, Http2Settings, Request, RequestBody, Response,
    Service, Shutdown, serve, serve_connection,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Connections held idle while the allocator's count is taken.
const CONNECTIONS: usize = 200;

/// The target for an idle HTTP/2 connection (10,000 of them in 64 MiB, with the process's own
/// start-up memory), and for HTTP/1.1 what it cost before HTTP/2's was brought down.
const HTTP2_BUDGET: usize = 6 * 1024;
const HTTP1_BUDGET: usize = 4 * 1024;

struct Nothing(Arc<ConnSettings>);

impl Service for Nothing {
    fn settings(&self) -> Arc<ConnSettings> {
        self.0.clone()
    }

    async fn call(&self, _: &mut Request, _: &mut RequestBody<'_>) -> Result<Response, Error> {
        Ok(Response::new(200))
    }

    fn log(&self, _: &Exchange<'_>) {}
}

fn settings() -> Arc<ConnSettings> {
    Arc::new(ConnSettings {
        head: HeadLimits::default(),
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(600),
        max_body_bytes: 1 << 20,
        max_connections: CONNECTIONS + 10,
        http2: Some(Http2Settings::default()),
    })
}

#[tokio::test]
async fn an_idle_connections_task_stays_small() {
    let _alone = COUNTING.lock().await;
    let settings = settings();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (_tx, shutdown) = Shutdown::new();
    let svc = Arc::new(Nothing(settings.clone()));
    let conn = serve_connection(
        ClientIo::Plain(stream),
        "127.0.0.1:1".parse().unwrap(),
        svc,
        settings,
        shutdown,
    );
    // Each protocol's state is boxed for as long as the connection speaks it; what stays in
    // the task is the little that both share. (Unoptimised builds make futures larger.)
    let size = std::mem::size_of_val(&conn);
    assert!(size <= 512, "a connection's task holds {size} bytes");
}

/// Starts a server; its address.
async fn start() -> SocketAddr {
    let settings = settings();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = Arc::new(Nothing(settings));
    tokio::spawn(serve(
        listener,
        svc,
        Duration::from_secs(1),
        std::future::pending(),
    ));
    addr
}

/// The allocator's count is the whole process's: one count is taken at a time.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bytes the allocator holds per connection for `CONNECTIONS` idle connections, each opened
/// by `open` (which returns once the connection is idle), over what it held with one.
async fn idle_cost<F, Fut>(open: F) -> usize
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = TcpStream>,
{
    let _alone = COUNTING.lock().await;
    let addr = start().await;
    let mut held = Vec::with_capacity(CONNECTIONS + 1);
    // The first connection takes what is taken once (timers, caches, the runtime's slabs).
    held.push(open(addr).await);
    let before = ALLOCATOR.allocated();
    for _ in 0..CONNECTIONS {
        held.push(open(addr).await);
    }
    let after = ALLOCATOR.allocated();
    after.saturating_sub(before) / CONNECTIONS
}

/// The connection preface, an empty SETTINGS, the acknowledgement of the server's, and
/// `GET /` on stream 1 (HPACK literals, RFC 7541 §6.2.2).
const H2_REQUEST: &[u8] = &[
    b'P', b'R', b'I', b' ', b'*', b' ', b'H', b'T', b'T', b'P', b'/', b'2', b'.', b'0', b'\r',
    b'\n', b'\r', b'\n', b'S', b'M', b'\r', b'\n', b'\r', b'\n', // preface
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS
    0, 0, 0, 0x4, 0x1, 0, 0, 0, 0, // SETTINGS ACK
    0, 0, 16, 0x1, 0x5, 0, 0, 0, 1,    // HEADERS, END_STREAM | END_HEADERS, stream 1:
    0x82, // :method GET (indexed)
    0x86, // :scheme http (indexed)
    0x84, // :path / (indexed)
    0x01, 0x0b, b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'o', b'r',
    b'g', // :authority
];

const PING: &[u8] = &[0, 0, 8, 0x6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];

/// Reads frames into a buffer on the stack until one that `done` accepts.
async fn read_until(io: &mut TcpStream, done: impl Fn(u8, u8, u32) -> bool) {
    let mut buf = [0u8; 16 * 1024];
    let mut filled = 0;
    loop {
        let n = io.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        filled += n;
        let mut at = 0;
        while filled - at >= 9 {
            let len = usize::from(buf[at]) << 16
                | usize::from(buf[at + 1]) << 8
                | usize::from(buf[at + 2]);
            if filled - at < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[at + 5], buf[at + 6], buf[at + 7], buf[at + 8]]);
            if done(buf[at + 3], buf[at + 4], stream & 0x7fff_ffff) {
                return;
            }
            at += 9 + len;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
}

/// An HTTP/2 connection that made one request and is now idle: after its response, a PING
/// and its acknowledgement (the server flushed, found nothing more to read, and waits).
async fn open_h2(addr: SocketAddr) -> TcpStream {
    let mut io = TcpStream::connect(addr).await.unwrap();
    io.write_all(H2_REQUEST).await.unwrap();
    read_until(&mut io, |kind, flags, stream| {
        stream == 1 && (kind == 0x0 || kind == 0x1) && flags & 0x1 != 0
    })
    .await;
    io.write_all(PING).await.unwrap();
    read_until(&mut io, |kind, flags, _| kind == 0x6 && flags & 0x1 != 0).await;
    io
}

/// An HTTP/1.1 connection that made one request and is now idle.
async fn open_h1(addr: SocketAddr) -> TcpStream {
    let mut io = TcpStream::connect(addr).await.unwrap();
    io.write_all(b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut filled = 0;
    loop {
        let n = io.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        filled += n;
        // The response is bodiless (`content-length: 0`): its head is all of it.
        if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
            return io;
        }
    }
}

#[tokio::test]
async fn an_idle_http2_connection_holds_no_buffers() {
    let per = idle_cost(open_h2).await;
    assert!(
        per <= HTTP2_BUDGET,
        "an idle HTTP/2 connection holds {per} bytes (budget {HTTP2_BUDGET})"
    );
}

#[tokio::test]
async fn an_idle_http1_connection_holds_no_buffers() {
    let per = idle_cost(open_h1).await;
    assert!(
        per <= HTTP1_BUDGET,
        "an idle HTTP/1.1 connection holds {per} bytes (budget {HTTP1_BUDGET})"
    );
}
