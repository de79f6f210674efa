//! A route as the request path uses it: the configuration's route with its limits made ready
//! and its answer resolved (an upstream's index, a static route's files, an embedder's
//! handler).

use std::sync::Arc;
use std::time::Duration;

use portico_config::{
    Access, AsyncJobs, BodyTransform, Deadline, Idempotency, RateLimit, Redirect, ResponseCheck,
};
use portico_http::MethodSet;
use portico_http::coding::ContentCoding;
use portico_http::negotiate::MediaType;

use crate::Handler;
use crate::limits::{Concurrency, RouteLimits};
use crate::static_files::StaticRoute;

/// What answers a route's requests, ready to run.
pub(crate) enum Answer {
    /// The upstream at this index of the gateway's upstreams.
    Upstream(usize),
    /// The built-in echo handler.
    Echo,
    /// A static route and the name of its catch-all parameter (the file's path).
    Static(Box<StaticRoute>, String),
    /// A redirect.
    Redirect(Box<Redirect>),
    /// 305 with this proxy in `Location`.
    UseProxy(Arc<str>),
    /// The token service, issuing tokens valid this long.
    Tokens(Duration),
    /// A project's job at `{base}/{job_id}` (or its result, at `…/result`).
    Job {
        /// The jobs path, `{project_id}` not filled in.
        base: Arc<str>,
        /// The result rather than the job.
        result: bool,
    },
    /// An embedder's handler.
    Custom(Arc<dyn Handler>),
}

/// One route.
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    /// The path template as configured (a trace's `http.route`).
    pub(crate) template: Arc<str>,
    pub(crate) access: Access,
    pub(crate) methods: MethodSet,
    pub(crate) answer: Answer,
    pub(crate) max_body_bytes: u64,
    pub(crate) require_content_length: bool,
    pub(crate) buffer_body: bool,
    /// WebSocket upgrades are relayed, with this idle timeout.
    pub(crate) websocket: Option<Duration>,
    pub(crate) produces: Vec<MediaType>,
    pub(crate) consumes: Vec<MediaType>,
    pub(crate) consumes_encodings: Option<Vec<ContentCoding>>,
    /// The route's rate limits as configured, and ready.
    pub(crate) rate_limits: Vec<RateLimit>,
    pub(crate) limits: Option<RouteLimits>,
    /// `max_in_flight`.
    pub(crate) in_flight: Option<Concurrency>,
    /// `timeout`, `max_timeout`, `pass_timeout`.
    pub(crate) deadline: Deadline,
    /// `idempotency`.
    pub(crate) idempotency: Option<Idempotency>,
    /// `async`.
    pub(crate) async_jobs: Option<AsyncJobs>,
    /// The OpenAPI operation the route stands for: parameters and bodies checked against it.
    pub(crate) openapi: Option<Arc<portico_openapi::Operation>>,
    /// `validate_responses`.
    pub(crate) validate_responses: ResponseCheck,
    /// `transform`: an upstream's JSON 200 body reshaped (203).
    pub(crate) transform: Option<BodyTransform>,
    /// `cache`: its responses stored and served (when enabled).
    pub(crate) cache: Option<portico_config::RouteCache>,
    /// Its counters in the gateway's cache (set with the cache).
    pub(crate) cache_counts: Option<Arc<portico_cache::Counts>>,
    /// Its metrics series, when requests are counted.
    pub(crate) series: Option<Arc<portico_telemetry::RouteSeries>>,
    /// `grpc`: its errors are answered as gRPC statuses.
    pub(crate) grpc: bool,
}

impl Route {
    /// A route that answers GET with `answer` and checks nothing of its own (a jobs path's
    /// routes: the access rules are those of the routes whose jobs are there).
    pub(crate) fn get_only(name: Arc<str>, access: Access, answer: Answer) -> Route {
        Route {
            template: name.clone(),
            name,
            access,
            methods: [portico_http::Method::Get].into_iter().collect(),
            answer,
            max_body_bytes: 0,
            require_content_length: false,
            buffer_body: false,
            websocket: None,
            produces: Vec::new(),
            consumes: Vec::new(),
            consumes_encodings: None,
            rate_limits: Vec::new(),
            limits: None,
            in_flight: None,
            deadline: Deadline::default(),
            idempotency: None,
            async_jobs: None,
            openapi: None,
            validate_responses: ResponseCheck::Off,
            transform: None,
            cache: None,
            cache_counts: None,
            series: None,
            grpc: false,
        }
    }

    /// Whether the route proxies to an upstream.
    pub(crate) fn upstream(&self) -> Option<usize> {
        match self.answer {
            Answer::Upstream(u) => Some(u),
            _ => None,
        }
    }
}
