//! One exchange over a fresh connection: raw request bytes out, a response head (and a bounded
//! part of its body) in, every wait bounded.
//!
//! Probes write bytes by hand because many rows are about framing a client library would
//! never send (a bad request line, `HTTP/2.0`, `Content-Length` with `Transfer-Encoding`). The
//! response head is read with Portico's own strict parser: a head that is not valid HTTP/1.1
//! is reported as such, never guessed at.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portico_http::response_head::{ResponseHead, ResponseScanner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest response head read (a server that sends more is reported, not followed).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most of a body read, for the error envelope.
pub const MAX_BODY: usize = 64 * 1024;

/// What came back.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The head as received (for the evidence).
    pub head: String,
    /// Its fields.
    pub fields: Vec<(String, String)>,
    /// Its body, up to [`MAX_BODY`], when it has a `Content-Length`.
    pub body: Bytes,
}

impl Answer {
    /// The first field named `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exchange gave no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// No connection could be made.
    Connect(String),
    /// Nothing (or not all of a head) came within the timeout.
    TimedOut,
    /// The server closed or reset the connection before a whole head.
    Closed(String),
    /// What came was not a valid HTTP/1.1 response head.
    Invalid(&'static str),
    /// The head was longer than [`MAX_HEAD`].
    TooLong,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Connect(e) => write!(f, "cannot connect: {e}"),
            NoAnswer::TimedOut => f.write_str("no response head within the timeout"),
            NoAnswer::Closed(e) => write!(f, "the connection ended before a response head: {e}"),
            NoAnswer::Invalid(why) => write!(f, "the response head is not valid HTTP/1.1: {why}"),
            NoAnswer::TooLong => write!(f, "the response head is over {MAX_HEAD} bytes"),
        }
    }
}

/// Sends `request` on a new connection to `addr` and reads the answer, all within `timeout`.
pub async fn exchange(addr: &str, request: &[u8], timeout: Duration) -> Result<Answer, NoAnswer> {
    match tokio::time::timeout(timeout, exchange_now(addr, request)).await {
        Ok(answer) => answer,
        Err(_) => Err(NoAnswer::TimedOut),
    }
}

async fn exchange_now(addr: &str, request: &[u8]) -> Result<Answer, NoAnswer> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| NoAnswer::Connect(e.to_string()))?;
    // A server may answer (and close) before it has read everything: what it said counts.
    let _ = stream.write_all(request).await;
    let mut buf = BytesMut::with_capacity(8192);
    let mut scanner = ResponseScanner::new();
    let span = loop {
        match scanner.scan(&buf) {
            Ok(Some(span)) => break span,
            Ok(None) => {}
            Err(e) => return Err(NoAnswer::Invalid(e.describe())),
        }
        if buf.len() > MAX_HEAD {
            return Err(NoAnswer::TooLong);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => return Err(NoAnswer::Closed("closed".into())),
            Ok(_) => {}
            Err(e) => return Err(NoAnswer::Closed(e.to_string())),
        }
    };
    let raw = buf.split_to(span.end).freeze();
    let head = ResponseHead::parse(raw.slice(span.start..))
        .map_err(|e| NoAnswer::Invalid(e.describe()))?;
    let fields: Vec<(String, String)> = head
        .fields()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let length = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let status = head.status();
    // 1xx, 204 and 304 have no body; HEAD answers are not asked for here.
    let wants_body = !(status < 200 || status == 204 || status == 304);
    while wants_body && buf.len() < length {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let body = buf.split_to(buf.len().min(length)).freeze();
    Ok(Answer {
        status,
        head: String::from_utf8_lossy(&raw[span.start..])
            .trim_end()
            .to_string(),
        fields,
        body,
    })
}
