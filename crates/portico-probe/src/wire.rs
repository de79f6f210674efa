//! One exchange over a fresh connection: raw request bytes out, a response head (and a bounded
//! part of its body) in, every wait bounded.
//!
//! Probes write bytes by hand because many rows are about framing a client library would
//! never send (a bad request line, `HTTP/2.0`, `Content-Length` with `Transfer-Encoding`). The
//! response head is read with Portico's own strict parser: a head that is not valid HTTP/1.1
//! is reported as such, never guessed at.

use std::time::Duration;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use portico_http::response_head::{ResponseHead, ResponseScanner};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Unprobeable;

/// How to speak TLS to an `https://` target: HTTP/1.1 by ALPN, its name checked against the
/// trusted roots (the same client settings Portico's upstreams use).
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// Settings trusting `ca` (the system's roots when `None`), for the server `name`;
    /// offering `h2` by ALPN when `http2`.
    pub fn new(ca: Option<&std::path::Path>, name: &str, http2: bool) -> Result<Tls, Unprobeable> {
        let config = portico_server::tls::client_config(ca, http2)
            .map_err(|e| Unprobeable(format!("TLS: {e}")))?;
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| Unprobeable(format!("TLS: `{name}` is not a server name: {e}")))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

/// What a connection is, TLS or not.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// A connection to the target, through TLS when there is one.
async fn connect(addr: &str, tls: Option<&Tls>) -> Result<Box<dyn Stream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(t) => {
            let s = t
                .connector
                .connect(t.name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            Ok(Box::new(s))
        }
    }
}

/// Whether a connection (and, for TLS, a handshake) can be made, within `timeout`.
pub async fn reach(addr: &str, tls: Option<&Tls>, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, connect(addr, tls)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

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

/// Sends `request` on a new connection to `addr` (through `tls` when given) and reads the
/// answer, all within `timeout`.
pub async fn exchange(
    addr: &str,
    tls: Option<&Tls>,
    request: &[u8],
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    match tokio::time::timeout(timeout, exchange_now(addr, tls, request)).await {
        Ok(answer) => answer,
        Err(_) => Err(NoAnswer::TimedOut),
    }
}

async fn exchange_now(addr: &str, tls: Option<&Tls>, request: &[u8]) -> Result<Answer, NoAnswer> {
    let mut stream = connect(addr, tls).await.map_err(NoAnswer::Connect)?;
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

/// A request as the rows write it for HTTP/1.1, read back for HTTP/2: `None` when the bytes
/// are about HTTP/1.1 framing (no single request line of `HTTP/1.1`, a field line without a
/// colon, an obs-fold).
#[derive(Debug)]
pub(crate) struct H2Request {
    method: String,
    target: String,
    authority: String,
    fields: Vec<(String, String)>,
    /// A body is announced (`Content-Length` above 0); none is sent.
    announced: bool,
}

/// Fields HTTP/2 does not carry (RFC 9113 §8.2.2), and `Host`, which becomes `:authority`.
const NOT_IN_H2: [&str; 7] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

impl H2Request {
    pub(crate) fn from_http1(raw: &str) -> Option<H2Request> {
        let head = raw.split("\r\n\r\n").next()?;
        if !raw.contains("\r\n\r\n") {
            return None;
        }
        let mut lines = head.split("\r\n");
        let line: Vec<&str> = lines.next()?.split(' ').collect();
        let [method, target, "HTTP/1.1"] = line[..] else {
            return None;
        };
        let mut authority = String::new();
        let mut fields = Vec::new();
        let mut announced = false;
        for l in lines {
            if l.starts_with([' ', '\t']) {
                return None;
            }
            let (n, v) = l.split_once(':')?;
            let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_string());
            if n == "host" {
                authority = v.clone();
            }
            if n == "content-length" {
                announced = v.parse::<u64>().is_ok_and(|l| l > 0);
            }
            if NOT_IN_H2.contains(&n.as_str()) || n == "expect" {
                continue;
            }
            fields.push((n, v));
        }
        Some(H2Request {
            method: method.to_string(),
            target: target.to_string(),
            authority,
            fields,
            announced,
        })
    }
}

/// Sends `req` over HTTP/2 on a new connection (prior knowledge, or `h2` by ALPN over TLS)
/// and reads the answer, all within `timeout`. An announced body is never sent: the stream
/// stays open while the answer is awaited.
pub(crate) async fn exchange_h2(
    addr: &str,
    tls: Option<&Tls>,
    scheme: &str,
    req: &H2Request,
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    match tokio::time::timeout(timeout, exchange_h2_now(addr, tls, scheme, req)).await {
        Ok(answer) => answer,
        Err(_) => Err(NoAnswer::TimedOut),
    }
}

async fn exchange_h2_now(
    addr: &str,
    tls: Option<&Tls>,
    scheme: &str,
    req: &H2Request,
) -> Result<Answer, NoAnswer> {
    let stream = connect(addr, tls).await.map_err(NoAnswer::Connect)?;
    let (client, connection) = h2::client::Builder::new()
        .max_header_list_size(MAX_HEAD as u32)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(|e| NoAnswer::Closed(format!("HTTP/2 handshake: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let uri = format!("{scheme}://{}{}", req.authority, req.target);
    let mut builder = http::Request::builder()
        .method(req.method.as_str())
        .uri(uri.as_str());
    for (n, v) in &req.fields {
        builder = builder.header(n.as_str(), v.as_str());
    }
    let request = builder
        .body(())
        .map_err(|e| NoAnswer::Closed(format!("not an HTTP/2 request: {e}")))?;
    let mut client = client
        .ready()
        .await
        .map_err(|e| NoAnswer::Closed(e.to_string()))?;
    let (response, _stream) = client
        .send_request(request, !req.announced)
        .map_err(|e| NoAnswer::Closed(e.to_string()))?;
    let response = response.await.map_err(|e| NoAnswer::Closed(e.to_string()));
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };
    let (parts, mut body) = response.into_parts();
    let mut head = format!("HTTP/2 {}", parts.status.as_u16());
    let mut fields = Vec::new();
    for (n, v) in &parts.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        head.push_str(&format!("\r\n{n}: {v}"));
        fields.push((n.as_str().to_string(), v));
    }
    let mut data = BytesMut::new();
    while data.len() < MAX_BODY {
        match body.data().await {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            _ => break,
        }
    }
    driver.abort();
    data.truncate(MAX_BODY);
    Ok(Answer {
        status: parts.status.as_u16(),
        head,
        fields,
        body: data.freeze(),
    })
}
