//! Who called, as the access phase established it, and what the pipeline attaches to a
//! request for its log line (in the request's extensions, which the connection layer carries
//! without looking inside).

use std::sync::Arc;

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

/// Which route took the request and which upstream target answered it: one value, so a
/// proxied request attaches one thing rather than two.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    /// The name of the route that took the request.
    pub route: Option<Arc<str>>,
    /// The upstream target that answered (`host:port`).
    pub upstream: Option<Arc<str>>,
    /// The route's metrics series, when requests are counted.
    pub series: Option<Arc<portico_telemetry::RouteSeries>>,
}
