//! A gateway from a validated configuration: its upstreams and their pools, its routes with
//! their limits made ready, the routes of the jobs paths, and the connection settings.

use std::collections::HashMap;
use std::sync::Arc;

use portico_config::{
    Answer as Declared, BuiltIn, Config, RateLimit, RouteGroup, RouteTable, Transport as Scheme,
    UpstreamTarget as DeclaredTarget,
};
use portico_http::MethodSet;
use portico_server::client::{
    Active, Balance, Passive, Transport, Upstream, UpstreamSettings, UpstreamTarget, UpstreamTls,
};
use portico_server::{BodyBudget, ConnSettings, Http2Settings, RouteStats};

use crate::route::{Answer, Route};
use crate::{
    AccessLogSink, BuildError, Gateway, access, egress, idempotency, jobs, lifecycle, limits,
    quota, static_files, tokens,
};

impl Gateway {
    /// Builds the routing table and upstream pools of a validated configuration.
    pub fn new(config: &Config, log: AccessLogSink) -> Result<Gateway, BuildError> {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Ok(Arc::new(Upstream::new(&upstream_settings(u)?))))
            .collect::<Result<_, BuildError>>()?;
        let table = RouteTable::build(&config.routes).map_err(BuildError::Routes)?;
        let rate_limiters = limits::RateLimiters::new(Arc::new(limits::MonotonicClock::default()));
        let plan_rate_limits: Vec<(Arc<str>, Vec<RateLimit>)> = config
            .plans
            .iter()
            .filter(|p| !p.rate_limits.is_empty())
            .map(|p| (p.name.as_str().into(), p.rate_limits.clone()))
            .collect();
        let mut routes = config
            .routes
            .iter()
            .map(|r| route(r, config, &rate_limiters))
            .collect::<Result<Vec<_>, _>>()?;
        let all_methods = routes
            .iter()
            .fold(MethodSet::EMPTY, |all, r| all.union(r.methods));
        let mut router = table.router;
        let mut groups = table.groups;
        add_job_routes(&mut router, &mut groups, &mut routes)?;
        let directory = access::Directory::new(
            &config.projects,
            &config.plans,
            config.jwt.as_ref(),
            config.limits.auth_failures,
        )
        .map_err(BuildError::Jwks)?;
        let upstream_in_flight = config
            .upstreams
            .iter()
            .map(|u| {
                u.max_in_flight.map(|max| {
                    limits::Concurrency::new(&rate_limiters, format!("upstream:{}", u.name), max)
                })
            })
            .collect();
        let mut gateway = Gateway {
            router,
            groups,
            routes,
            upstreams,
            upstream_names: config
                .upstreams
                .iter()
                .map(|u| u.name.as_str().into())
                .collect(),
            upstream_in_flight,
            all_methods,
            log,
            budget: BodyBudget::new(config.limits.body_buffer_bytes),
            settings: Arc::new(Gateway::conn_settings(config)),
            lifecycle: lifecycle::Lifecycle::new(&config.apis),
            directory,
            tokens: Arc::new(tokens::MemoryTokens::default()),
            quotas: quota::Quotas::new(Arc::new(quota::MemoryLedger::default())),
            keys: Arc::new(idempotency::MemoryKeys::default()),
            jobs: Arc::new(jobs::Jobs::in_memory(config.limits.job_results_bytes)),
            egress: config.egress.as_ref().map(egress::EgressProxy::new),
            plan_limits: plan_limits(&rate_limiters, &plan_rate_limits),
            plan_rate_limits,
            rate_limiters,
            counts: HashMap::new(),
            body_counts: Arc::default(),
            metrics: None,
            unrouted_series: None,
            upstream_series: Vec::new(),
            tracing: None,
            apis: config.apis.clone(),
            cache: Arc::new(portico_cache::Cache::new(
                config.cache.memory,
                Arc::new(portico_cache::SystemClock),
            )),
        };
        gateway.count_cached_routes();
        Ok(gateway.with_stats(&RouteStats::new()))
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
                cleartext_only: config.http2.cleartext_only,
                max_concurrent_streams: config.http2.max_concurrent_streams,
                stream_window: config.http2.stream_window,
                connection_window: config.http2.connection_window,
            }),
        }
    }
}

/// The pools' settings of a configured upstream.
fn upstream_settings(u: &portico_config::Upstream) -> Result<UpstreamSettings, BuildError> {
    Ok(UpstreamSettings {
        name: u.name.clone(),
        targets: u.targets.iter().map(target).collect(),
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
    })
}

/// A configured route, its answer resolved and its limits counted in `registry`.
fn route(
    r: &portico_config::Route,
    config: &Config,
    registry: &Arc<limits::RateLimiters>,
) -> Result<Route, BuildError> {
    let answer = match &r.answer {
        Declared::Upstream(u) => Answer::Upstream(*u),
        Declared::Redirect(r) => Answer::Redirect(Box::new(r.clone())),
        Declared::UseProxy(u) => Answer::UseProxy(u.as_str().into()),
        Declared::BuiltIn(BuiltIn::Tokens { ttl }) => Answer::Tokens(*ttl),
        Declared::BuiltIn(BuiltIn::Echo) => Answer::Echo,
        Declared::BuiltIn(BuiltIn::Static(settings)) => {
            let catch_all = r
                .path
                .catch_all
                .clone()
                .ok_or_else(|| BuildError::StaticWithoutCatchAll(r.name.clone()))?;
            Answer::Static(
                Box::new(static_files::StaticRoute::new(settings)?),
                catch_all,
            )
        }
    };
    Ok(Route {
        name: r.name.as_str().into(),
        template: r.path.source.as_str().into(),
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
        limits: limits::RouteLimits::new(registry, &r.name, &r.rate_limits),
        in_flight: r
            .max_in_flight
            .map(|max| limits::Concurrency::new(registry, format!("route:{}", r.name), max)),
        deadline: r.deadline,
        idempotency: r.idempotency,
        async_jobs: r.async_jobs.clone(),
        openapi: r.openapi.as_ref().map(|o| o.operation.clone()),
        validate_responses: r.validate_responses,
        transform: r.transform.clone(),
        cache: r.cache,
        cache_counts: None,
        series: None,
        grpc: r.grpc,
    })
}

/// Each plan's limits, counted in `registry` as the route `plan:NAME`.
pub(crate) fn plan_limits(
    registry: &Arc<limits::RateLimiters>,
    plans: &[(Arc<str>, Vec<RateLimit>)],
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
    routes: &mut Vec<Route>,
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
            let answer = Answer::Job {
                base: base.clone(),
                result,
            };
            let entry = Route::get_only(pattern.as_str().into(), r.access.clone(), answer);
            added.push((pattern, entry));
        }
    }
    for (pattern, entry) in added {
        router
            .insert(pattern.clone(), groups.len())
            .map_err(|source| BuildError::JobsPath { pattern, source })?;
        groups.push(RouteGroup {
            routes: vec![routes.len()],
            methods: entry.methods,
        });
        routes.push(entry);
    }
    Ok(())
}

fn target(t: &DeclaredTarget) -> UpstreamTarget {
    UpstreamTarget {
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
            .map_err(|source| BuildError::UpstreamTls {
                upstream: u.name.clone(),
                source,
            })
    };
    Ok(Some(UpstreamTls {
        h2: config(true)?,
        http1: config(false)?,
        server_name: u.tls.server_name.clone(),
    }))
}
