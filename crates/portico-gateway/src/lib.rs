//! Portico's request pipeline: which route takes a request, the checks it must pass before
//! its body is read, and what answers it.
//!
//! A request goes through ordered phases (`pipeline/`): routing (the API version's
//! lifecycle, the target's form, the route, `OPTIONS`, the method), then the phases of
//! `pipeline::PHASES` in their order (CORS, access, rate limits, concurrency, body limits,
//! content, deadline, signature, the body of a job, idempotency, quota), then the route's
//! answer (an upstream, a job, a built-in handler or an embedder's), then the response
//! phases (idempotent responses kept). Each phase can end the request with its own code;
//! every refusal decidable from the head comes before the body is read, so before
//! `100 Continue` and before anything is sent upstream. docs/architecture.md charts them.
//!
//! Protocol errors (400, 408, 414, 417, 501, 505) are decided before this, by the server.

#![forbid(unsafe_code)]

mod access;
pub mod access_log;
mod build;
mod cache;
mod caller;
mod deadline;
mod echo;
mod egress;
mod fields;
pub mod idempotency;
pub mod jobs;
mod lifecycle;
pub mod limits;
mod overview;
mod pipeline;
mod proxy;
pub mod quota;
mod relay;
mod represent;
mod route;
mod static_files;
pub mod tokens;
mod websocket;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use portico_config::RouteGroup;
use portico_http::{ErrorCode, MethodSet};
use portico_policy::failures::FailureLimiter;
use portico_server::client::Upstream;
use portico_server::{
    BodyBudget, ConnSettings, Error, Exchange, Reloadable, Request, RequestBody, Response,
    RouteStats, Service, StatusCounts,
};
use portico_telemetry::{Metrics, RequestSpan, RouteSeries, Tracing, UpstreamSeries};

pub use access_log::AccessLogSink;
pub use caller::{Caller, CredentialPlace, Routing};
pub use pipeline::responses::BodyCounts;

/// A future returned by a [`Handler`].
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'a>>;

/// A handler an embedder plugs into a route in place of its configured one.
pub trait Handler: Send + Sync + 'static {
    /// Handles a request that passed the route's checks.
    fn handle<'a, 'c: 'a>(
        &'a self,
        req: &'a mut Request,
        body: &'a mut RequestBody<'c>,
    ) -> HandlerFuture<'a>;
}

/// The pipeline, built from a configuration.
pub struct Gateway {
    router: matchit::Router<usize>,
    groups: Vec<RouteGroup>,
    routes: Vec<route::Route>,
    upstreams: Vec<Arc<Upstream>>,
    /// Each upstream's name, by index (a metrics label).
    upstream_names: Vec<Arc<str>>,
    /// Each upstream's `max_in_flight`, by index.
    upstream_in_flight: Vec<Option<limits::Concurrency>>,
    all_methods: MethodSet,
    log: AccessLogSink,
    /// What all requests together may hold in buffered bodies.
    budget: Arc<BodyBudget>,
    /// Connection limits and timeouts.
    settings: Arc<ConnSettings>,
    /// The lifecycle of the APIs' versions.
    lifecycle: lifecycle::Lifecycle,
    /// The projects and their credentials.
    directory: access::Directory,
    /// Where issued tokens are kept.
    tokens: Arc<dyn tokens::TokenStore>,
    /// The projects' prepaid request quotas.
    quotas: Arc<quota::Quotas>,
    /// Where idempotency keys are kept.
    keys: Arc<dyn idempotency::KeyStore>,
    /// Where jobs are kept.
    jobs: Arc<jobs::Jobs>,
    /// The egress proxy, when the configuration has one.
    egress: Option<egress::EgressProxy>,
    /// The routes' rate limiters (from a registry that outlives this gateway).
    rate_limiters: Arc<limits::RateLimiters>,
    /// Each plan's rate limits, as configured and ready (counted as route `plan:NAME`).
    plan_rate_limits: Vec<(Arc<str>, Vec<portico_config::RateLimit>)>,
    plan_limits: HashMap<Arc<str>, limits::RouteLimits>,
    /// Each route's response counts, by route name (taken from a registry that outlives
    /// this gateway).
    counts: HashMap<Arc<str>, Arc<StatusCounts>>,
    /// What the response phases counted (checked, unchecked, transformed responses).
    body_counts: Arc<pipeline::responses::BodyCounts>,
    /// The response cache (shared by every gateway a process builds, so a reload keeps what
    /// it stored).
    cache: Arc<portico_cache::Cache>,
    /// The process's metrics, when requests are counted.
    metrics: Option<Arc<Metrics>>,
    /// With `metrics`: the series of requests no route took, and each upstream's, by index
    /// (each route holds its own).
    unrouted_series: Option<Arc<RouteSeries>>,
    upstream_series: Vec<UpstreamSeries>,
    /// The process's tracer, when requests are traced.
    tracing: Option<Tracing>,
    /// The APIs as configured (what the dashboard shows of their versions).
    apis: Vec<portico_config::Api>,
}

/// A configuration the gateway could not be built from.
#[derive(Debug)]
pub enum BuildError {
    /// Routes that overlap (validation reports these first; a configuration that reached
    /// the gateway without it can still have them).
    Routes(Vec<portico_config::Overlap>),
    /// A static route without a `{*name}` parameter to take the file's path from.
    StaticWithoutCatchAll(String),
    /// A static route's root that cannot be served.
    StaticRoot {
        /// The root as configured.
        root: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A jobs path of an async route that the router cannot take beside the routes.
    JobsPath {
        /// The jobs route's pattern.
        pattern: String,
        /// Why.
        source: matchit::InsertError,
    },
    /// An upstream's TLS client settings (its CA file) that cannot be used.
    UpstreamTls {
        /// The upstream's name.
        upstream: String,
        /// Why.
        source: portico_server::tls::TlsError,
    },
    /// The identity provider's keys (`jwt.jwks`) that cannot be used.
    Jwks(String),
    /// [`Gateway::with_handler`] named a route the configuration does not have.
    NoSuchRoute(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Routes(overlaps) => {
                let text: Vec<&str> = overlaps.iter().map(|o| o.message.as_str()).collect();
                f.write_str(&text.join("; "))
            }
            BuildError::StaticWithoutCatchAll(route) => {
                write!(f, "static route `{route}` has no {{*name}} parameter")
            }
            BuildError::StaticRoot { root, source } => {
                write!(
                    f,
                    "static root `{}` cannot be used: {source}",
                    root.display()
                )
            }
            BuildError::JobsPath { pattern, source } => write!(
                f,
                "the jobs path `{pattern}` of an async route conflicts with a route: {source}"
            ),
            BuildError::UpstreamTls { upstream, source } => {
                write!(f, "upstream `{upstream}`: {source}")
            }
            BuildError::Jwks(why) => f.write_str(why),
            BuildError::NoSuchRoute(route) => write!(f, "no route named `{route}`"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::StaticRoot { source, .. } => Some(source),
            BuildError::JobsPath { source, .. } => Some(source),
            BuildError::UpstreamTls { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Gateway {
    /// Counts each route's responses in `stats`, which the admin API reads and resets and
    /// which keeps counting across the gateways that reloads build.
    pub fn with_stats(mut self, stats: &RouteStats) -> Gateway {
        self.counts = self
            .routes
            .iter()
            .map(|r| (r.name.clone(), stats.route(&r.name)))
            .collect();
        self
    }

    /// Counts authentication failures in `failures`, which outlives this gateway (so that a
    /// reload or a change in the store forgives nobody).
    pub fn with_failure_limiter(mut self, failures: Arc<FailureLimiter>) -> Gateway {
        self.directory.failures = failures;
        self
    }

    /// Keeps issued tokens in `store` (the store every node shares, or one that outlives this
    /// gateway), instead of this gateway's own memory.
    pub fn with_tokens(mut self, store: Arc<dyn tokens::TokenStore>) -> Gateway {
        self.tokens = store;
        self
    }

    /// Keeps the routes' rate-limit state in `registry` (which outlives this gateway, so a
    /// reload forgives nobody, and whose clock the limits read).
    pub fn with_rate_limiters(mut self, registry: Arc<limits::RateLimiters>) -> Gateway {
        for r in &mut self.routes {
            r.limits = limits::RouteLimits::new(&registry, &r.name, &r.rate_limits);
            r.in_flight = r.in_flight.as_ref().map(|c| c.moved_to(&registry));
        }
        for c in self.upstream_in_flight.iter_mut().flatten() {
            *c = c.moved_to(&registry);
        }
        self.plan_limits = build::plan_limits(&registry, &self.plan_rate_limits);
        self.rate_limiters = registry;
        self
    }

    /// The routes' rate limiters, for resets.
    pub fn rate_limiters(&self) -> &Arc<limits::RateLimiters> {
        &self.rate_limiters
    }

    /// Counts the projects' prepaid requests in `quotas` (kept in the store every node shares,
    /// or in memory that outlives this gateway), instead of this gateway's own memory.
    pub fn with_quotas(mut self, quotas: Arc<quota::Quotas>) -> Gateway {
        self.quotas = quotas;
        self
    }

    /// Keeps jobs in `jobs` (the store every node shares), instead of this gateway's own
    /// memory.
    pub fn with_jobs(mut self, jobs: Arc<jobs::Jobs>) -> Gateway {
        self.jobs = jobs;
        self
    }

    /// Keeps idempotency keys in `store` (the store every node shares), instead of this
    /// gateway's own memory.
    pub fn with_idempotency_keys(mut self, store: Arc<dyn idempotency::KeyStore>) -> Gateway {
        self.keys = store;
        self
    }

    /// Answers the named route with `handler` instead of what the configuration says.
    pub fn with_handler(
        mut self,
        route: &str,
        handler: Arc<dyn Handler>,
    ) -> Result<Gateway, BuildError> {
        let entry = self
            .routes
            .iter_mut()
            .find(|r| &*r.name == route)
            .ok_or_else(|| BuildError::NoSuchRoute(route.to_string()))?;
        entry.answer = route::Answer::Custom(handler);
        Ok(self)
    }

    /// Counts responses checked and transformed in `counts` (shared by the gateways a
    /// process builds, so a reload does not reset them).
    pub fn with_body_counts(mut self, counts: Arc<BodyCounts>) -> Gateway {
        self.body_counts = counts;
        self
    }

    /// Counts requests, upstream calls and refusals in `metrics` (the process's registry,
    /// which outlives reloads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Gateway {
        self.rate_limiters.set_metrics(&metrics);
        self.jobs.set_metrics(&metrics);
        for r in &mut self.routes {
            r.series = Some(Arc::new(metrics.route(&r.name)));
        }
        self.unrouted_series = Some(Arc::new(metrics.route(&EMPTY)));
        self.upstream_series = self
            .upstream_names
            .iter()
            .map(|name| metrics.upstream_series(name))
            .collect();
        self.metrics = Some(metrics);
        self
    }

    /// Traces requests with `tracing` (the process's tracer).
    pub fn with_tracing(mut self, tracing: Tracing) -> Gateway {
        self.tracing = Some(tracing);
        self
    }

    /// The metrics this gateway counts in, if any.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Shares `cache` (a process's one response cache) with this gateway.
    pub fn with_cache(mut self, cache: Arc<portico_cache::Cache>) -> Gateway {
        self.cache = cache;
        self.count_cached_routes();
        self
    }

    /// Gives each route with `cache` its counters in the gateway's cache.
    pub(crate) fn count_cached_routes(&mut self) {
        for r in &mut self.routes {
            r.cache_counts = r.cache.map(|_| self.cache.counts(&r.name));
        }
    }

    /// The response cache.
    pub fn cache(&self) -> &Arc<portico_cache::Cache> {
        &self.cache
    }

    /// What the response phases counted.
    pub fn body_counts(&self) -> &Arc<BodyCounts> {
        &self.body_counts
    }

    /// Bytes held now in buffered request bodies, for tests and metrics.
    pub fn buffered_body_bytes(&self) -> u64 {
        self.budget.used()
    }

    /// Where the access log goes.
    pub fn access_log(&self) -> &AccessLogSink {
        &self.log
    }

    /// Each upstream target, by upstream name, and whether it takes requests now.
    pub fn upstream_health(&self) -> Vec<(Arc<str>, Arc<str>, bool)> {
        self.upstreams
            .iter()
            .zip(&self.upstream_names)
            .flat_map(|(u, name)| {
                u.health()
                    .into_iter()
                    .map(move |(target, up)| (name.clone(), target, up))
            })
            .collect()
    }

    /// Idle pooled connections per upstream target, for tests and metrics.
    pub fn idle_upstream_connections(&self, upstream: &str) -> usize {
        self.upstreams
            .iter()
            .filter(|u| u.name() == upstream)
            .map(|u| u.idle_count())
            .sum()
    }
}

impl Service for Gateway {
    fn settings(&self) -> Arc<ConnSettings> {
        self.settings.clone()
    }

    async fn call(&self, req: &mut Request, body: &mut RequestBody<'_>) -> Result<Response, Error> {
        if let Some(t) = &self.tracing {
            let traceparent = req.head.field("traceparent");
            // `tracestate` means nothing without a `traceparent`: not looked for then.
            let tracestate = traceparent.and_then(|_| req.head.field("tracestate"));
            let span = t.begin(traceparent, tracestate);
            req.extensions.insert(span);
        }
        let mut out = pipeline::Outcome::default();
        let result = self.answer(req, body, &mut out).await;
        out.attach(req);
        out.finish(result)
    }

    fn log(&self, exchange: &Exchange<'_>) {
        let route = exchange
            .request
            .and_then(|r| r.extensions.get::<Routing>())
            .and_then(|r| r.route.as_ref());
        if let (Some(route), Some(status)) = (route, exchange.status)
            && let Some(counts) = self.counts.get(route)
        {
            counts.record(status);
        }
        if let (Some(metrics), Some(status)) = (&self.metrics, exchange.status) {
            let series = exchange
                .request
                .and_then(|r| r.extensions.get::<Routing>())
                .and_then(|r| r.series.as_ref())
                .or(self.unrouted_series.as_ref());
            if let Some(series) = series {
                count_exchange(metrics, series, status, exchange);
            }
        }
        if let Some(span) = exchange
            .request
            .and_then(|r| r.extensions.get::<RequestSpan>())
        {
            self.finish_span(span, route, exchange);
        }
        self.log.record(exchange);
    }
}

impl Gateway {
    /// Ends a request's server span with its route, status and error code.
    fn finish_span(&self, span: &RequestSpan, route: Option<&Arc<str>>, e: &Exchange<'_>) {
        if !span.sampled() {
            return;
        }
        let template = route.and_then(|name| {
            self.routes
                .iter()
                .find(|r| &r.name == name)
                .map(|r| (&**name, &*r.template))
        });
        span.finish(portico_telemetry::Finished {
            method: e.request.map_or("_OTHER", |r| r.head.method().as_str()),
            route: template,
            status: e.status,
            error_code: e.error.map(ErrorCode::as_str),
            end: e.time + e.duration,
        });
    }
}

/// An empty label value: the route of a request no route took, the target of a request no
/// target answered.
pub(crate) static EMPTY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));

/// Awaits a store call, recording how long it took and whether it failed as `operation`
/// when the gateway counts.
pub(crate) async fn timed<T, E>(
    metrics: Option<&Metrics>,
    operation: &'static str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let Some(m) = metrics else {
        return call.await;
    };
    let start = std::time::Instant::now();
    let result = call.await;
    m.store(operation, start.elapsed(), result.is_err());
    result
}

/// Counts a finished exchange in the metrics: the request, and a refusal for quota or
/// billing (whose codes only those refusals send).
fn count_exchange(metrics: &Metrics, series: &RouteSeries, status: u16, e: &Exchange<'_>) {
    let method = e.request.map_or("_OTHER", |r| r.head.method().as_str());
    let code = e.error.map_or("", ErrorCode::as_str);
    series.request(method, status, code, e.duration);
    match e.error {
        Some(ErrorCode::QuotaSpent) => metrics.refused("quota_spent"),
        Some(ErrorCode::BillingSuspended) => metrics.refused("billing_suspended"),
        Some(ErrorCode::ProjectClosed) => metrics.refused("project_closed"),
        Some(ErrorCode::IdempotencyKeyInFlight) => metrics.idempotency("in_flight"),
        Some(ErrorCode::IdempotencyKeyReused) => metrics.idempotency("key_reused"),
        _ => {}
    }
}

/// The egress proxy's listener: each request is answered by the gateway current when it
/// begins (so a reload changes `allow_hosts` and the credentials it takes), by its egress proxy.
pub struct EgressService {
    gateway: Arc<Reloadable<Gateway>>,
}

impl EgressService {
    /// The egress proxy of whatever gateway `gateway` holds.
    pub fn new(gateway: Arc<Reloadable<Gateway>>) -> EgressService {
        EgressService { gateway }
    }
}

impl Service for EgressService {
    fn settings(&self) -> Arc<ConnSettings> {
        self.gateway.current().settings()
    }

    async fn call(&self, req: &mut Request, body: &mut RequestBody<'_>) -> Result<Response, Error> {
        let gateway = self.gateway.current();
        match &gateway.egress {
            Some(egress) => {
                egress
                    .handle(&gateway.directory, &*gateway.tokens, req, body)
                    .await
            }
            // The configuration lost its egress block in a reload (which needs a restart to
            // close this listener): nothing goes out.
            None => Err(Error::new(ErrorCode::EgressHostDenied)),
        }
    }

    fn log(&self, exchange: &Exchange<'_>) {
        self.gateway.current().log.record(exchange);
    }
}
