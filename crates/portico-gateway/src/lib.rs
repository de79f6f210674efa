//! Portico's request pipeline: which route takes a request, the checks it must pass before
//! its body is read, and what answers it.
//!
//! Phases, in order (each can end the request with its own code):
//!
//! 1. target form: `CONNECT` → 501, `OPTIONS *` → 204;
//! 2. route: the normalised path matches no route → 404;
//! 3. method: `OPTIONS` → 204 with `Allow`; a method the route does not take → 405 with `Allow`;
//! 4. body limits from the head: chunked on a `require_content_length` route → 411, a declared
//!    length over the route's limit → 413;
//! 5. content: a body whose `Content-Type` the route does not consume, or whose
//!    `Content-Encoding` it does not take → 415 (with `Accept` / `Accept-Encoding`); an
//!    `Accept` that matches nothing the route produces → 406;
//! 6. deadline (proxied routes): a client's `timeout=` or `Timeout` that is not a duration →
//!    400; the deadline then bounds the wait for the upstream's answer (504 when it passes);
//! 7. the handler (proxy, echo, static, or an embedder's), which is the first to read the
//!    body, so the first to cause `100 Continue`: every refusal above comes before it.
//!
//! Protocol errors (400, 408, 414, 417, 501, 505) are decided before this, by the server.

#![forbid(unsafe_code)]

mod access;
pub mod access_log;
mod deadline;
mod echo;
mod egress;
mod fields;
pub mod idempotency;
pub mod jobs;
mod lifecycle;
pub mod limits;
mod proxy;
pub mod quota;
mod relay;
mod represent;
mod static_files;
pub mod tokens;
mod websocket;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use lifecycle::{Lifecycle, Step};
use portico_config::{
    Answer as Declared, AuthScheme, BuiltIn, Config, Redirect, RouteGroup, RouteTable,
    Transport as Scheme, UpstreamTarget,
};
use portico_http::coding::{self, ContentCoding};
use portico_http::negotiate::{self, MediaType};
use portico_http::path::remove_dot_segments;
use portico_http::upgrade::{check_handshake, is_websocket_upgrade};
use portico_http::{BodyFraming, ErrorCode, Method, MethodSet, TargetForm};
use portico_policy::failures::FailureLimiter;
use portico_server::client::{
    Active, Balance, Passive, TargetSpec, Transport, Upstream, UpstreamSettings, UpstreamTls,
};
use portico_server::{
    BodyBudget, ConnSettings, Error, Exchange, Http2Settings, Request, RequestBody, Response,
    RouteStats, Service, StatusCounts, Swap,
};

pub use access_log::AccessLogSink;

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

enum Answer {
    Upstream(usize),
    Echo,
    /// A static route and the name of its catch-all parameter (the file's path).
    Static(Box<static_files::StaticRoute>, String),
    Redirect(Box<Redirect>),
    /// 305 with this proxy in `Location`.
    UseProxy(Arc<str>),
    /// The token service, issuing tokens valid this long.
    Tokens(std::time::Duration),
    /// A project's job at `{base}/{job_id}` (or its result, at `…/result`).
    Job {
        /// The jobs path, `{project_id}` not filled in.
        base: Arc<str>,
        /// The result rather than the job.
        result: bool,
    },
    Custom(Arc<dyn Handler>),
}

struct RouteEntry {
    name: Arc<str>,
    access: portico_config::Access,
    methods: MethodSet,
    answer: Answer,
    max_body_bytes: u64,
    require_content_length: bool,
    buffer_body: bool,
    websocket: Option<std::time::Duration>,
    produces: Vec<MediaType>,
    consumes: Vec<MediaType>,
    consumes_encodings: Option<Vec<ContentCoding>>,
    /// The route's rate limits as configured, and ready.
    rate_limits: Vec<portico_config::RateLimit>,
    limits: Option<limits::RouteLimits>,
    /// `max_in_flight`.
    in_flight: Option<limits::Concurrency>,
    /// `timeout`, `max_timeout`, `pass_timeout`.
    deadline: portico_config::Deadline,
    /// `idempotency`.
    idempotency: Option<portico_config::Idempotency>,
    /// `async`.
    async_jobs: Option<portico_config::AsyncJobs>,
}

/// The pipeline, built from a configuration.
pub struct Gateway {
    router: matchit::Router<usize>,
    groups: Vec<RouteGroup>,
    routes: Vec<RouteEntry>,
    upstreams: Vec<Arc<Upstream>>,
    /// Each upstream's `max_in_flight`, by index.
    upstream_in_flight: Vec<Option<limits::Concurrency>>,
    all_methods: MethodSet,
    log: AccessLogSink,
    /// What all requests together may hold in buffered bodies.
    budget: Arc<BodyBudget>,
    /// Connection limits and timeouts.
    settings: Arc<ConnSettings>,
    /// The lifecycle of the APIs' versions.
    lifecycle: Lifecycle,
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
}

/// A configuration the gateway could not be built from.
#[derive(Debug)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

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
        self.plan_limits = plan_limits(&registry, &self.plan_rate_limits);
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

    /// Builds the routing table and upstream pools of a validated configuration.
    pub fn new(config: &Config, log: AccessLogSink) -> Result<Gateway, BuildError> {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                Ok(Arc::new(Upstream::new(&UpstreamSettings {
                    name: u.name.clone(),
                    targets: u.targets.iter().map(target_spec).collect(),
                    tls: upstream_tls(u)?,
                    connect_timeout: u.connect_timeout,
                    max_idle_per_target: u.max_idle_per_target,
                    idle_timeout: u.idle_timeout,
                    balance: if u.least_in_flight {
                        Balance::LeastInFlight
                    } else {
                        Balance::RoundRobin
                    },
                    passive: u.passive.map(|(failures, eject_for)| Passive {
                        failures,
                        eject_for,
                    }),
                    active: u.health.as_ref().map(|h| Active {
                        path: h.path.clone(),
                        interval: h.interval,
                        timeout: h.timeout,
                        healthy: h.healthy,
                        unhealthy: h.unhealthy,
                    }),
                })))
            })
            .collect::<Result<_, BuildError>>()?;
        let table = RouteTable::build(&config.routes).map_err(|overlaps| {
            let text: Vec<String> = overlaps.into_iter().map(|o| o.message).collect();
            BuildError(text.join("; "))
        })?;
        let rate_limiters = limits::RateLimiters::new(Arc::new(limits::MonotonicClock::default()));
        let plan_rate_limits: Vec<(Arc<str>, Vec<portico_config::RateLimit>)> = config
            .plans
            .iter()
            .filter(|p| !p.rate_limits.is_empty())
            .map(|p| (p.name.as_str().into(), p.rate_limits.clone()))
            .collect();
        let mut all_methods = MethodSet::EMPTY;
        let mut routes = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            all_methods = all_methods.union(r.methods);
            let answer = match &r.answer {
                Declared::Upstream(u) => Answer::Upstream(*u),
                Declared::Redirect(r) => Answer::Redirect(Box::new(r.clone())),
                Declared::UseProxy(u) => Answer::UseProxy(u.as_str().into()),
                Declared::BuiltIn(BuiltIn::Tokens { ttl }) => Answer::Tokens(*ttl),
                Declared::BuiltIn(BuiltIn::Echo) => Answer::Echo,
                Declared::BuiltIn(BuiltIn::Static(settings)) => {
                    let catch_all = r.path.catch_all.clone().ok_or_else(|| {
                        BuildError(format!(
                            "static route `{}` has no {{*name}} parameter",
                            r.name
                        ))
                    })?;
                    Answer::Static(
                        Box::new(static_files::StaticRoute::new(settings)?),
                        catch_all,
                    )
                }
            };
            routes.push(RouteEntry {
                name: r.name.as_str().into(),
                access: r.access.clone(),
                methods: r.methods,
                answer,
                max_body_bytes: r.max_body_bytes.unwrap_or(config.limits.max_body_bytes),
                require_content_length: r.require_content_length,
                buffer_body: r.buffer_body,
                websocket: r.websocket,
                produces: r.produces.clone(),
                consumes: r.consumes.clone(),
                consumes_encodings: r.consumes_encodings.clone(),
                rate_limits: r.rate_limits.clone(),
                limits: limits::RouteLimits::new(&rate_limiters, &r.name, &r.rate_limits),
                in_flight: r.max_in_flight.map(|max| {
                    limits::Concurrency::new(&rate_limiters, format!("route:{}", r.name), max)
                }),
                deadline: r.deadline,
                idempotency: r.idempotency,
                async_jobs: r.async_jobs.clone(),
            });
        }
        let mut router = table.router;
        let mut groups = table.groups;
        add_job_routes(&mut router, &mut groups, &mut routes)?;
        Ok(Gateway {
            router,
            groups,
            routes,
            upstreams,
            upstream_in_flight: config
                .upstreams
                .iter()
                .map(|u| {
                    u.max_in_flight.map(|max| {
                        limits::Concurrency::new(
                            &rate_limiters,
                            format!("upstream:{}", u.name),
                            max,
                        )
                    })
                })
                .collect(),
            all_methods,
            log,
            budget: BodyBudget::new(config.limits.body_buffer_bytes),
            settings: Arc::new(Gateway::conn_settings(config)),
            lifecycle: Lifecycle::new(&config.apis),
            directory: access::Directory::new(
                &config.projects,
                &config.plans,
                config.jwt.as_ref(),
                config.limits.auth_failures,
            )
            .map_err(BuildError)?,
            tokens: Arc::new(tokens::MemoryTokens::default()),
            quotas: quota::Quotas::new(Arc::new(quota::MemoryLedger::default())),
            keys: Arc::new(idempotency::MemoryKeys::default()),
            jobs: Arc::new(jobs::Jobs::in_memory(config.limits.job_results_bytes)),
            egress: config.egress.as_ref().map(egress::EgressProxy::new),
            plan_limits: plan_limits(&rate_limiters, &plan_rate_limits),
            plan_rate_limits,
            rate_limiters,
            counts: HashMap::new(),
        }
        .with_stats(&RouteStats::new()))
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
            .ok_or_else(|| BuildError(format!("no route named `{route}`")))?;
        entry.answer = Answer::Custom(handler);
        Ok(self)
    }

    /// The connection settings a configuration asks for.
    pub fn conn_settings(config: &Config) -> ConnSettings {
        ConnSettings {
            head: config.limits.head,
            header_timeout: config.limits.header_timeout,
            body_timeout: config.limits.body_timeout,
            idle_timeout: config.limits.idle_timeout,
            max_body_bytes: config.limits.max_body_bytes,
            max_connections: config.limits.max_connections,
            http2: config.http2.enabled.then_some(Http2Settings {
                max_concurrent_streams: config.http2.max_concurrent_streams,
                stream_window: config.http2.stream_window,
                connection_window: config.http2.connection_window,
            }),
        }
    }

    /// Bytes held now in buffered request bodies, for tests and metrics.
    pub fn buffered_body_bytes(&self) -> u64 {
        self.budget.used()
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

/// The 400 for a WebSocket handshake that breaks RFC 6455 §4.2.1; the answer names the version
/// Portico speaks (§4.4).
/// Each plan's limits, counted in `registry` as the route `plan:NAME`.
fn plan_limits(
    registry: &Arc<limits::RateLimiters>,
    plans: &[(Arc<str>, Vec<portico_config::RateLimit>)],
) -> HashMap<Arc<str>, limits::RouteLimits> {
    plans
        .iter()
        .filter_map(|(name, l)| {
            limits::RouteLimits::new(registry, &format!("plan:{name}"), l)
                .map(|r| (name.clone(), r))
        })
        .collect()
}

/// The routes of each jobs path of the async routes: `GET {path}/{job_id}` and
/// `GET {path}/{job_id}/result`, with the access rules of the routes whose jobs are there.
fn add_job_routes(
    router: &mut matchit::Router<usize>,
    groups: &mut Vec<RouteGroup>,
    routes: &mut Vec<RouteEntry>,
) -> Result<(), BuildError> {
    let mut seen: Vec<String> = Vec::new();
    let mut added = Vec::new();
    for r in routes.iter() {
        let Some(jobs) = &r.async_jobs else {
            continue;
        };
        if seen.contains(&jobs.path) {
            continue;
        }
        seen.push(jobs.path.clone());
        let base: Arc<str> = jobs.path.as_str().into();
        for result in [false, true] {
            let pattern = format!(
                "{}/{{job_id}}{}",
                jobs.path,
                if result { "/result" } else { "" }
            );
            added.push((
                pattern.clone(),
                RouteEntry {
                    name: pattern.into(),
                    access: r.access.clone(),
                    methods: [Method::Get].into_iter().collect(),
                    answer: Answer::Job {
                        base: base.clone(),
                        result,
                    },
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
                    deadline: portico_config::Deadline::default(),
                    idempotency: None,
                    async_jobs: None,
                },
            ));
        }
    }
    for (pattern, entry) in added {
        router.insert(pattern.clone(), groups.len()).map_err(|e| {
            BuildError(format!(
                "the jobs path `{pattern}` of an async route conflicts with a route: {e}"
            ))
        })?;
        groups.push(RouteGroup {
            routes: vec![routes.len()],
            methods: entry.methods,
        });
        routes.push(entry);
    }
    Ok(())
}

fn target_spec(t: &UpstreamTarget) -> TargetSpec {
    TargetSpec {
        host: t.host.clone(),
        port: t.port,
        transport: match t.transport {
            Scheme::Http => Transport::Http,
            Scheme::H2c => Transport::H2c,
            Scheme::Https => Transport::Https,
        },
    }
}

/// The TLS client settings of an upstream with `https://` targets (its CA file read now, so
/// that a bad one fails the load or reload rather than the first request).
fn upstream_tls(u: &portico_config::Upstream) -> Result<Option<UpstreamTls>, BuildError> {
    if !u.targets.iter().any(|t| t.transport == Scheme::Https) {
        return Ok(None);
    }
    let ca = u.tls.ca.as_deref();
    let config = |http2| {
        portico_server::tls::client_config(ca, http2)
            .map(Arc::new)
            .map_err(|e| BuildError(format!("upstream `{}`: {e}", u.name)))
    };
    Ok(Some(UpstreamTls {
        h2: config(true)?,
        http1: config(false)?,
        server_name: u.tls.server_name.clone(),
    }))
}

fn websocket_refused(detail: &str) -> Error {
    Error::new(ErrorCode::WebSocketHandshakeInvalid)
        .with_detail(detail)
        .with_header("Sec-WebSocket-Version", "13")
}

/// Phase 5: what the route consumes and produces, decided from the head alone (so before any
/// `100 Continue` and before anything is sent upstream).
fn check_content(route: &RouteEntry, req: &Request) -> Result<(), Error> {
    if req.info.framing != BodyFraming::None {
        if !route.consumes.is_empty()
            && !negotiate::consumes(&fields::lines(&req.head, "content-type"), &route.consumes)
        {
            return Err(Error::new(ErrorCode::UnsupportedMediaType)
                .with_detail(format!(
                    "This route takes request bodies of type: {}.",
                    negotiate::list(&route.consumes)
                ))
                .with_header("Accept", negotiate::list(&route.consumes)));
        }
        if let Some(supported) = &route.consumes_encodings
            && coding::unsupported_coding(&fields::lines(&req.head, "content-encoding"), supported)
                .is_some()
        {
            let list = coding::list(supported);
            return Err(Error::new(ErrorCode::UnsupportedContentEncoding)
                .with_detail(format!(
                    "This route takes request bodies with content coding: {list}."
                ))
                .with_header("Accept-Encoding", list));
        }
    }
    if !route.produces.is_empty()
        && negotiate::choose(
            fields::combined(&req.head, "accept").as_deref(),
            &route.produces,
        )
        .is_none()
    {
        let available: Vec<String> = route.produces.iter().map(ToString::to_string).collect();
        return Err(Error::new(ErrorCode::NotAcceptable)
            .with_detail(format!("Available media types: {}.", available.join(", ")))
            .with_member("available", serde_json::json!(available)));
    }
    Ok(())
}

fn allow_response(methods: MethodSet) -> Response {
    Response::new(204).header("Allow", methods.allow_header())
}

impl Service for Gateway {
    fn settings(&self) -> Arc<ConnSettings> {
        self.settings.clone()
    }

    async fn call(&self, req: &mut Request, body: &mut RequestBody<'_>) -> Result<Response, Error> {
        let result = self.answer(req, body).await;
        let fields = std::mem::take(&mut req.notes.response_fields);
        if fields.is_empty() {
            return result;
        }
        // What the pipeline owes every answer (a deprecated version's headers, CORS), errors
        // included.
        match result {
            Ok(resp) => Ok(fields.into_iter().fold(resp, |r, (n, v)| r.header(n, v))),
            Err(e) => Err(fields.into_iter().fold(e, |e, (n, v)| e.with_header(n, v))),
        }
    }

    fn log(&self, exchange: &Exchange<'_>) {
        if let (Some(route), Some(status)) = (
            exchange.request.and_then(|r| r.notes.route.as_ref()),
            exchange.status,
        ) && let Some(counts) = self.counts.get(route)
        {
            counts.record(status);
        }
        self.log.record(exchange);
    }
}

/// The egress proxy's listener: each request is answered by the gateway current when it
/// begins (so a reload changes `allow_hosts` and the credentials it takes), by its egress proxy.
pub struct EgressService {
    gateway: Arc<Swap<Gateway>>,
}

impl EgressService {
    /// The egress proxy of whatever gateway `gateway` holds.
    pub fn new(gateway: Arc<Swap<Gateway>>) -> EgressService {
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

impl Gateway {
    /// The lifecycle of the API version asked for, then the route.
    async fn answer(
        &self,
        req: &mut Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        if !self.lifecycle.is_empty() {
            let normalized = remove_dot_segments(req.head.path());
            let path = normalized.as_deref().unwrap_or(req.head.path());
            match self
                .lifecycle
                .check(path, req.head.method(), SystemTime::now())?
            {
                Step::Answer(resp) => return Ok(*resp),
                Step::Proceed(fields) => req.notes.response_fields.extend(fields),
            }
        }
        self.route(req, body).await
    }

    /// `OPTIONS` on a route's path: a CORS preflight when it is one and the route that would
    /// take the method asked has `cors` (204 with the CORS fields, or 403); else 204 with
    /// `Allow`.
    fn options(&self, req: &Request, group: &RouteGroup) -> Result<Response, Error> {
        let head = &req.head;
        let (Some(origin), Some(asked)) = (
            head.field("origin"),
            head.field("access-control-request-method"),
        ) else {
            return Ok(allow_response(group.methods));
        };
        // The policy of the route that would take the method asked; when none would, of any
        // route here that has one (which then refuses the method).
        let routes = || group.routes.iter().map(|&i| &self.routes[i]);
        let cors = Method::from_bytes(asked)
            .and_then(|m| routes().find(|r| r.methods.allows(m)))
            .and_then(|r| r.access.cors.as_ref())
            .or_else(|| routes().find_map(|r| r.access.cors.as_ref()));
        let Some(cors) = cors else {
            return Ok(allow_response(group.methods));
        };
        let text = |v: &[u8]| std::str::from_utf8(v).ok().map(str::to_string);
        let headers = head
            .field("access-control-request-headers")
            .and_then(text)
            .unwrap_or_default();
        match (text(origin), text(asked)) {
            (Some(origin), Some(asked)) => match cors.preflight(&origin, &asked, &headers) {
                Some(fields) => Ok(fields
                    .into_iter()
                    .fold(Response::new(204), |r, (n, v)| r.header(n, v))),
                None => Err(Error::new(ErrorCode::CorsPreflightDenied)),
            },
            _ => Err(Error::new(ErrorCode::CorsPreflightDenied)),
        }
    }

    /// What the token store holds for the request's `X-Auth-Token`, if it has one.
    async fn lookup_token(
        &self,
        req: &Request,
    ) -> Option<Result<Option<tokens::StoredGrant>, Error>> {
        let mut values = req.head.fields_named("x-auth-token");
        let first = values.next()?;
        let token = first.trim_ascii();
        if values.next().is_some() || token.is_empty() || token.len() > 512 {
            return Some(Err(Error::new(ErrorCode::CredentialsMalformed)));
        }
        let digest = tokens::token_digest(token);
        Some(
            self.tokens
                .get(&digest)
                .await
                .map_err(|e| Error::new(ErrorCode::Internal).with_cause(e)),
        )
    }

    /// Routes a request and answers it.
    async fn route(
        &self,
        req: &mut Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        let method = req.head.method();
        match req.head.form() {
            TargetForm::Authority => return Err(Error::new(ErrorCode::ConnectNotSupported)),
            TargetForm::Asterisk => return Ok(allow_response(self.all_methods)),
            TargetForm::Origin | TargetForm::Absolute => {}
        }
        let normalized = remove_dot_segments(req.head.path());
        let path = normalized.as_deref().unwrap_or(req.head.path());
        // The parser admits only visible ASCII in a target, so this cannot fail.
        let path_str =
            std::str::from_utf8(path).map_err(|_| Error::new(ErrorCode::TargetCharInvalid))?;
        let matched = self
            .router
            .at(path_str)
            .map_err(|_| Error::new(ErrorCode::RouteNotFound))?;
        let group = &self.groups[*matched.value];
        if method == Method::Options {
            return self.options(req, group);
        }
        let Some(&index) = group
            .routes
            .iter()
            .find(|&&i| self.routes[i].methods.allows(method))
        else {
            return Err(
                Error::new(ErrorCode::MethodNotAllowed).with_allow(group.methods.allow_header())
            );
        };
        let route = &self.routes[index];
        let params: Vec<(String, String)> = match &route.answer {
            Answer::Echo => matched
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Answer::Static(_, catch_all) => matched
                .params
                .get(catch_all)
                .map(|v| vec![(String::new(), v.to_string())])
                .unwrap_or_default(),
            Answer::Job { .. } => matched
                .params
                .get("job_id")
                .map(|v| vec![(String::new(), v.to_string())])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        req.notes.route = Some(route.name.clone());
        // A browser's cross-origin request: an origin the route does not allow is refused;
        // an allowed one is told so on whatever the answer is, errors included.
        if let Some(cors) = &route.access.cors
            && let Some(origin) = req.head.field("origin")
        {
            let origin = std::str::from_utf8(origin)
                .ok()
                .filter(|o| cors.allows_origin(o))
                .ok_or_else(|| Error::new(ErrorCode::CorsOriginDenied))?;
            let fields = cors.response_fields(origin);
            req.notes.response_fields.extend(fields);
        }
        // Who calls, and whether it may: before anything is read or sent on.
        let project = matched.params.get("project_id");
        let mut body_check = None;
        let mut quota = None;
        let mut plan = None;
        if !route.access.is_open() || project.is_some() {
            let token = if route.access.schemes.contains(&AuthScheme::Token) {
                self.lookup_token(req).await
            } else {
                None
            };
            let verdict = self.directory.check(
                &route.access,
                req,
                project,
                path_str,
                token,
                SystemTime::now(),
            )?;
            req.notes.caller = verdict.caller;
            body_check = verdict.body;
            quota = verdict.quota;
            plan = verdict.plan;
        }
        // Rate limits, once the caller is known and before anything is read or sent on.
        if let Some(limits) = &route.limits {
            let (fields, verdict) = limits.check(req, project).await;
            req.notes.response_fields.extend(fields);
            verdict?;
        }
        // The plan's limits, on every route, for the request's project.
        if let Some((project, plan)) = &plan
            && let Some(limits) = self.plan_limits.get(plan)
        {
            let (fields, verdict) = limits.check(req, Some(project)).await;
            req.notes.response_fields.extend(fields);
            verdict?;
        }
        if let Some(c) = &route.in_flight {
            c.enter(&mut req.notes.held)?;
        }
        if let Answer::Upstream(u) = &route.answer
            && let Some(c) = &self.upstream_in_flight[*u]
        {
            c.enter(&mut req.notes.held)?;
        }

        match req.info.framing {
            BodyFraming::Chunked if route.require_content_length => {
                return Err(Error::new(ErrorCode::LengthRequired));
            }
            BodyFraming::Length(n) if n > route.max_body_bytes => {
                return Err(
                    Error::new(ErrorCode::BodyTooLargeDeclared).with_detail(format!(
                        "The request body is larger than this route's limit of {} bytes.",
                        route.max_body_bytes
                    )),
                );
            }
            _ => {}
        }
        check_content(route, req)?;
        // The client's deadline is read (and refused when it is not one) from the head, so
        // before anything is read or sent on.
        let deadline = match route.answer {
            Answer::Upstream(_) => deadline::of(req, &route.deadline, route.async_jobs.is_none())?,
            _ => None,
        };
        body.set_limit(route.max_body_bytes);
        // A signature that covers the body: the body is read (within the buffer budget) and
        // checked before any of it goes anywhere. Held until it has been sent on.
        let mut reservation = None;
        if let Some(check) = body_check {
            reservation = Some(body.buffer(&self.budget).await?);
            check
                .check(req, body.buffered().map(|b| &b[..]), SystemTime::now())
                .map_err(|e| self.directory.failed(&route.access, req.peer.ip(), e))?;
        }
        // A request that may become a job is read whole first: its client may be answered
        // before the upstream has read it.
        let as_job = route.async_jobs.as_ref().filter(|_| deadline.is_none());
        if as_job.is_some() && reservation.is_none() {
            reservation = Some(body.buffer(&self.budget).await?);
        }
        // A POST or PATCH with an `Idempotency-Key`: its body is read, then the key claimed
        // (or the kept response replayed, or 409/422).
        let mut claim = None;
        if let (Some(settings), Answer::Upstream(_)) = (&route.idempotency, &route.answer)
            && !method.is_idempotent()
            && let Some(key) = idempotency::key_of(req, settings)?
        {
            if reservation.is_none() {
                reservation = Some(body.buffer(&self.budget).await?);
            }
            match idempotency::claim(
                &*self.keys,
                &route.name,
                settings,
                req,
                &key,
                body.buffered(),
                deadline.as_ref(),
            )
            .await?
            {
                idempotency::Outcome::Go(c) => claim = Some(c),
                idempotency::Outcome::Answer(resp) => return Ok(resp),
            }
        }
        // Every check has passed: the request is the project's to pay for (a job's state and
        // result were paid for by the request that made it).
        if let Some((project, q)) = &quota
            && !matches!(route.answer, Answer::Job { .. })
            && let Err(e) = self.quotas.take(project, *q, SystemTime::now()).await
        {
            if let Some(c) = &claim {
                idempotency::give_up(&*self.keys, c).await;
            }
            return Err(e);
        }

        match &route.answer {
            Answer::Upstream(u) if route.websocket.is_some() && is_websocket_upgrade(&req.head) => {
                // Every check above has passed: now the handshake itself, then the upstream.
                if let Err(problem) = check_handshake(&req.head) {
                    return Err(websocket_refused(problem.describe()));
                }
                if req.info.framing != BodyFraming::None {
                    return Err(websocket_refused("A WebSocket handshake has no body."));
                }
                let idle = route.websocket.unwrap_or_default();
                let (resp, target) =
                    websocket::upgrade(&self.upstreams[*u], req, path, idle).await?;
                req.notes.upstream = Some(target);
                Ok(resp)
            }
            Answer::Upstream(u) => {
                let result = match as_job {
                    // Sent from a task of its own, which outlives the client if it must.
                    Some(settings) => {
                        let upstream = self.upstreams[*u].clone();
                        let out = jobs::Outgoing {
                            head: proxy::upstream_head(req, path, upstream.authority(), None),
                            upstream,
                            method,
                            body: body.buffered().cloned().unwrap_or_default(),
                            reservation: reservation.take(),
                            route: route.name.clone(),
                            project: project.map(str::to_string).unwrap_or_default(),
                            held: req.notes.held.clone(),
                        };
                        let prefer = portico_http::deadline::prefers_respond_async(
                            req.head.fields_named("prefer"),
                        );
                        jobs::run(&self.jobs, settings, out, prefer).await
                    }
                    None => {
                        // Held until the buffered body has been sent on.
                        let _held = match reservation.take() {
                            Some(r) => Some(r),
                            None if route.buffer_body => Some(body.buffer(&self.budget).await?),
                            None => None,
                        };
                        proxy::forward(&self.upstreams[*u], req, path, body, deadline.as_ref())
                            .await
                            .map(|(resp, target)| {
                                req.notes.upstream = Some(target);
                                resp
                            })
                    }
                };
                match claim {
                    Some(c) => idempotency::settle(&*self.keys, c, result).await,
                    None => result,
                }
            }
            Answer::Echo => echo::echo(req, &route.name, path, params, body).await,
            Answer::Static(files, _) => {
                let file = params.first().map_or("", |(_, v)| v.as_str());
                files.serve(req, file).await
            }
            Answer::Redirect(r) => {
                let query = req.head.query().and_then(|q| std::str::from_utf8(q).ok());
                let location = r.location(|name| matched.params.get(name), query);
                Ok(Response::new(r.status).header("Location", location))
            }
            Answer::Tokens(ttl) => {
                tokens::issue(&self.directory, &*self.tokens, *ttl, req, body).await
            }
            Answer::UseProxy(proxy) => Ok(Response::new(305).header("Location", proxy.to_string())),
            Answer::Job { base, result } => {
                let id = params.first().map_or("", |(_, v)| v.as_str());
                jobs::answer(
                    &self.jobs,
                    base,
                    project.unwrap_or_default(),
                    id,
                    *result,
                    req,
                )
                .await
            }
            Answer::Custom(h) => h.handle(req, body).await,
        }
    }
}
