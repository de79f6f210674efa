//! `GET /metrics`: the Prometheus exposition, on the admin listener (with the admin token)
//! and on `metrics.listen` (without it, for scrapers that cannot hold a secret).

use std::sync::Arc;

use bytes::Bytes;
use portico_http::{ErrorCode, Method};
use portico_server::{ConnSettings, Error, Exchange, Request, RequestBody, Response, Service};
use portico_telemetry::{Format, Metrics};

/// The path the exposition is served at.
pub const PATH: &str = "/metrics";

/// What `GET /metrics` answers: the exposition in the format `Accept` asks for
/// (OpenMetrics, or the Prometheus text format); `OPTIONS` lists the methods, any other
/// method is 405. Scrapes never wait on the request path: they read atomics and take each
/// histogram's lock for as long as a copy of its buckets takes.
pub(crate) fn answer(metrics: &Metrics, req: &Request) -> Result<Response, Error> {
    match req.head.method() {
        Method::Get | Method::Head => {
            let format = Format::from_accept(req.head.field("accept"));
            Ok(Response::new(200)
                .header("Content-Type", format.content_type())
                .header("Cache-Control", "no-store")
                .header("Vary", "Accept")
                .body(Bytes::from(metrics.encode(format))))
        }
        Method::Options => Ok(Response::new(204).header("Allow", "GET, HEAD, OPTIONS")),
        _ => Err(Error::new(ErrorCode::MethodNotAllowed).with_allow("GET, HEAD, OPTIONS")),
    }
}

/// The listener of `metrics.listen`: `/metrics` without a token, nothing else.
pub struct MetricsEndpoint {
    metrics: Arc<Metrics>,
    settings: Arc<ConnSettings>,
}

impl MetricsEndpoint {
    /// Serves `metrics` with `settings`' connection limits.
    pub fn new(metrics: Arc<Metrics>, settings: Arc<ConnSettings>) -> MetricsEndpoint {
        MetricsEndpoint { metrics, settings }
    }
}

impl Service for MetricsEndpoint {
    fn settings(&self) -> Arc<ConnSettings> {
        self.settings.clone()
    }

    async fn call(&self, req: &mut Request, _: &mut RequestBody<'_>) -> Result<Response, Error> {
        if req.head.path() != PATH.as_bytes() {
            return Err(Error::new(ErrorCode::RouteNotFound));
        }
        answer(&self.metrics, req)
    }

    fn log(&self, _: &Exchange<'_>) {}
}
