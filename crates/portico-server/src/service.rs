//! What the connection layer asks of the request pipeline above it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portico_http::{ErrorCode, RequestHead, RequestInfo};

use crate::body::RequestBody;
use crate::error::Error;
use crate::id::RequestId;
use crate::response::Response;
use crate::settings::ConnSettings;

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
    /// What the service attaches to the request for its own later use (the gateway: the
    /// route that took it, who called, the target that answered, which its log line reads).
    /// The connection layer never looks inside.
    pub extensions: http::Extensions,
    /// What the request holds until its exchange is over: released when the response has
    /// been written, before the exchange is logged.
    pub permits: Permits,
}

impl Request {
    /// A request as the connection layer hands it over: nothing attached, nothing held.
    pub fn new(
        head: RequestHead,
        info: RequestInfo,
        peer: SocketAddr,
        tls: bool,
        id: RequestId,
    ) -> Request {
        Request {
            head,
            info,
            peer,
            tls,
            id,
            extensions: http::Extensions::new(),
            permits: Permits::default(),
        }
    }
}

/// Things a request holds for as long as its exchange lasts (a place under a concurrency
/// limit); dropping them releases them. Cloning shares them: the last clone dropped releases.
#[derive(Clone, Default)]
pub struct Permits(Vec<Arc<dyn Send + Sync>>);

impl Permits {
    /// Holds `permit` until the exchange is over.
    pub fn push(&mut self, permit: Arc<dyn Send + Sync>) {
        self.0.push(permit);
    }

    /// Lets go of everything held (what other clones share stays held by them).
    pub fn release(&mut self) {
        self.0.clear();
    }
}

impl std::fmt::Debug for Permits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permits({})", self.0.len())
    }
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
