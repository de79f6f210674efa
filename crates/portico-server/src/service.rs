//! What the connection layer asks of the request pipeline above it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portico_http::{ErrorCode, RequestHead, RequestInfo};

use crate::body::RequestBody;
use crate::conn::ConnSettings;
use crate::error::Error;
use crate::id::RequestId;
use crate::response::Response;

/// A request whose head passed the protocol rules.
pub struct Request {
    /// The parsed head.
    pub head: RequestHead,
    /// Framing, persistence and expectations.
    pub info: RequestInfo,
    /// The client's address.
    pub peer: SocketAddr,
    /// The client connected over TLS (so its scheme is `https`).
    pub tls: bool,
    /// This request's id.
    pub id: RequestId,
    /// What the pipeline noted for the access log.
    pub notes: Notes,
}

/// Facts the pipeline records about a request for its log line.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    /// The route that took the request.
    pub route: Option<Arc<str>>,
    /// The upstream target that answered (`host:port`).
    pub upstream: Option<Arc<str>>,
    /// Who called, when the route asked and the caller proved it.
    pub caller: Option<Caller>,
    /// Fields the pipeline adds to whatever answer the request gets, errors included (CORS).
    pub response_fields: Vec<(&'static str, String)>,
    /// What the request holds until its exchange is over (its response written and logged):
    /// a concurrency slot, released when the last of these is dropped.
    pub held: Held,
}

/// Things a request holds for as long as its exchange lasts; dropping them releases them.
#[derive(Clone, Default)]
pub struct Held(Vec<Arc<dyn Send + Sync>>);

impl Held {
    /// Holds `item` until the exchange is over.
    pub fn push(&mut self, item: Arc<dyn Send + Sync>) {
        self.0.push(item);
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({})", self.0.len())
    }
}

/// A caller that proved who it is.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Its project's id.
    pub project_id: Arc<str>,
    /// Its consumer's name, in that project.
    pub consumer: Arc<str>,
    /// Its consumer's roles, comma-separated.
    pub roles: Arc<str>,
    /// Where its credential was, which is not passed upstream.
    pub credential: CredentialPlace,
}

/// Where a request carried its credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialPlace {
    /// In this header field.
    Field(Arc<str>),
    /// In this query parameter.
    Query(Arc<str>),
}

/// One finished exchange, for the access log.
pub struct Exchange<'a> {
    /// When the request began.
    pub time: SystemTime,
    /// The request, when its head could be parsed.
    pub request: Option<&'a Request>,
    /// The status sent, if a response was sent.
    pub status: Option<u16>,
    /// The catalog code when the response was a generated error.
    pub error: Option<ErrorCode>,
    /// Bytes received: head and body.
    pub bytes_in: u64,
    /// Bytes sent: head and body.
    pub bytes_out: u64,
    /// From the first byte of the request to the last byte of the response.
    pub duration: Duration,
    /// The request id sent in `X-Request-Id`.
    pub request_id: RequestId,
    /// The client's address.
    pub peer: SocketAddr,
}

/// The request pipeline the connection layer calls.
pub trait Service: Send + Sync + 'static {
    /// The limits and timeouts for a connection accepted now. They stay the same for the
    /// connection's life, so a reload changes them for new connections only.
    fn settings(&self) -> Arc<ConnSettings>;

    /// Handles a request. The body is read through `body`; nothing is read (and no
    /// `100 Continue` sent) unless the handler asks.
    fn call(
        &self,
        req: &mut Request,
        body: &mut RequestBody<'_>,
    ) -> impl Future<Output = Result<Response, Error>> + Send;

    /// Records a finished exchange.
    fn log(&self, exchange: &Exchange<'_>);
}
