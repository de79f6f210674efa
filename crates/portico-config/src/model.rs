//! The validated configuration's top level, and how it is read from the node tree. Each
//! section has its own module holding its types, its key list and its reader: `listen.rs`
//! (listeners, TLS, HTTP/2, the admin listener), `limits.rs`, `upstreams.rs`, `routes.rs`,
//! `apis.rs`, `access.rs` (projects, credentials, JWT), `plans.rs`, `rate_limits.rs`
//! (`cluster`), `egress.rs`; what is left here is the document itself and the checks that
//! span sections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::access::{self, Jwt, Project};
use crate::apis::{self, Api};
use crate::limits::{Limits, read_limits};
use crate::listen::{
    AdminListener, Http2, Listeners, TlsListener, read_admin, read_http2, read_listen, read_tls,
};
use crate::read::{Origin, Reader};
use crate::route_table::check_overlaps;
use crate::routes::{Route, check_buffer_budget, check_jobs_paths, read_routes};
use crate::upstreams::{Upstream, read_upstreams};
use crate::yaml::Node;

/// Everything `portico serve` needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The data-plane listener.
    pub listen: SocketAddr,
    /// A TLS listener beside it.
    pub tls: Option<TlsListener>,
    /// HTTP/2 on the listeners.
    pub http2: Http2,
    /// Runtime worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Where the JSON access log goes.
    pub access_log: AccessLog,
    /// Server-wide request limits.
    pub limits: Limits,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Upstream services.
    pub upstreams: Vec<Upstream>,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// APIs and the lifecycle of their versions.
    pub apis: Vec<Api>,
    /// The admin API's listener, if it is on.
    pub admin: Option<AdminListener>,
    /// Where the store is: `sqlite://PATH` or `postgres://…`.
    pub storage: String,
    /// Projects and their consumers (the store may hold more).
    pub projects: Vec<Project>,
    /// Plans, which projects name (the store may hold more).
    pub plans: Vec<crate::plans::Plan>,
    /// The egress (forward) proxy, if it is on.
    pub egress: Option<crate::egress::Egress>,
    /// Where rate limits are shared by every node, if they are.
    pub cluster: Option<crate::rate_limits::Cluster>,
    /// The identity provider whose tokens `auth: jwt` takes.
    pub jwt: Option<Jwt>,
    /// Where the response cache keeps what it stores (`cache`).
    pub cache: crate::cache::CacheStorage,
    /// Prometheus metrics (`metrics`).
    pub metrics: crate::telemetry::Metrics,
    /// OpenTelemetry tracing, when it is on (`tracing`).
    pub tracing: Option<crate::telemetry::Tracing>,
}

/// Destination of the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLog {
    /// One JSON line per request on standard output.
    Stdout,
    /// On standard error.
    Stderr,
    /// Appended to a file.
    File(PathBuf),
    /// No access log.
    Off,
}

const TOP_KEYS: &[&str] = &[
    "listen",
    "tls",
    "http2",
    "workers",
    "access_log",
    "limits",
    "shutdown_grace",
    "upstreams",
    "routes",
    "apis",
    "admin",
    "storage",
    "projects",
    "plans",
    "jwt",
    "egress",
    "cluster",
    "cache",
    "metrics",
    "tracing",
];

impl Config {
    /// Reads a configuration from its node tree; `None` when there were problems (in `r`).
    pub(crate) fn read(r: &mut Reader, root: &Node) -> Option<Config> {
        let top = r.map(root, "", TOP_KEYS)?;
        let listen = match top.get("listen") {
            Some(n) => read_listen(r, n, "listen", Some("127.0.0.1:8080")),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        };
        let tls = optional(r, top.get("tls"), read_tls);
        let http2 = top
            .get("http2")
            .map_or(Some(Http2::default()), |n| read_http2(r, n));
        let workers = top.get("workers").map_or(Some(0), |n| r.uint(n, "workers"));
        let access_log = top
            .get("access_log")
            .map_or(Some(AccessLog::Stdout), |n| read_access_log(r, n));
        let limits = read_limits(r, top.get("limits"));
        let shutdown_grace = top
            .get("shutdown_grace")
            .map_or(Some(Duration::from_secs(10)), |n| {
                r.duration(n, "shutdown_grace")
            });
        let admin = optional(r, top.get("admin"), read_admin);
        let storage = top
            .get("storage")
            .map_or(Some("sqlite://portico.db".to_string()), |n| {
                read_storage(r, n)
            });
        let jwt = optional(r, top.get("jwt"), access::read_jwt);
        let projects = listed(r, top.get("projects"), access::read_projects);
        let cluster = optional(r, top.get("cluster"), crate::rate_limits::read_cluster);
        let egress = optional(r, top.get("egress"), crate::egress::read_egress);
        let plans = listed(r, top.get("plans"), crate::plans::read_plans);
        if let (Some(plans), Some(projects), Some(n)) = (&plans, &projects, top.get("projects")) {
            check_project_plans(r, n, plans, projects);
        }
        let apis = listed(r, top.get("apis"), apis::read_apis);
        let cache = crate::cache::read_storage(r, top.get("cache"));
        let metrics = crate::telemetry::read_metrics(r, top.get("metrics"));
        let tracing = optional(r, top.get("tracing"), crate::telemetry::read_tracing);
        let upstreams = top
            .get("upstreams")
            .map_or_else(Vec::new, |n| read_upstreams(r, n));
        let routes = read_routes(r, root, top.get("routes"), top.get("apis"), &upstreams);
        check_overlaps(r, &routes);
        let mut routes = routes;
        if let Some(apis) = &apis {
            api_caches(apis, &mut routes);
        }
        if matches!(jwt, Some(None)) {
            check_jwt_routes(r, &routes);
        }
        if let Some(limits) = &limits {
            check_buffer_budget(r, &routes, limits);
            check_jobs_paths(r, &routes);
        }
        if !r.problems.is_empty() {
            return None;
        }
        let listeners = Listeners {
            listen: listen?,
            tls: tls.as_ref()?.as_ref().map(|t| t.listen),
            admin: admin.as_ref()?.as_ref().map(|a| a.listen),
            egress: egress.as_ref()?.as_ref().map(|e| e.listen),
            metrics: metrics.as_ref()?.listen,
        };
        if !crate::listen::check_ports(r, &top, &listeners) {
            return None;
        }
        Some(Config {
            listen: listen?,
            tls: tls?,
            http2: http2?,
            workers: usize::try_from(workers?).ok()?,
            access_log: access_log?,
            limits: limits?,
            shutdown_grace: shutdown_grace?,
            upstreams,
            routes: routes.into_iter().map(|(_, r)| r).collect(),
            apis: apis?,
            admin: admin?,
            storage: storage?,
            projects: projects?,
            plans: plans?,
            jwt: jwt?,
            egress: egress?,
            cluster: cluster?,
            cache: cache?,
            metrics: metrics?,
            tracing: tracing?,
        })
    }
}

/// An optional section: `Some(None)` when absent, `None` when present and wrong.
fn optional<T>(
    r: &mut Reader,
    node: Option<&Node>,
    read: impl FnOnce(&mut Reader, &Node) -> Option<T>,
) -> Option<Option<T>> {
    match node {
        None => Some(None),
        Some(n) => read(r, n).map(Some),
    }
}

/// A list section: empty when absent, `None` when present and wrong.
fn listed<T>(
    r: &mut Reader,
    node: Option<&Node>,
    read: impl FnOnce(&mut Reader, &Node) -> Option<Vec<T>>,
) -> Option<Vec<T>> {
    match node {
        None => Some(Vec::new()),
        Some(n) => read(r, n),
    }
}

fn read_access_log(r: &mut Reader, n: &Node) -> Option<AccessLog> {
    let s = r.string(n, "access_log")?;
    match s {
        "stdout" => Some(AccessLog::Stdout),
        "stderr" => Some(AccessLog::Stderr),
        "off" => Some(AccessLog::Off),
        p if p.contains('/') => Some(AccessLog::File(PathBuf::from(p))),
        other => {
            r.problem(
                n,
                "access_log",
                format!("`{other}` is not `stdout`, `stderr`, `off` or a file path containing `/`"),
            );
            None
        }
    }
}

fn read_storage(r: &mut Reader, n: &Node) -> Option<String> {
    let s = r.string(n, "storage")?;
    if (s.starts_with("sqlite://") && s.len() > "sqlite://".len())
        || s.starts_with("postgres://")
        || s.starts_with("postgresql://")
    {
        Some(s.to_string())
    } else {
        r.problem(n, "storage", "storage is `sqlite://PATH` or `postgres://…`");
        None
    }
}

/// `auth: jwt` needs the top-level `jwt` block; reported for every route that asks for it
/// when there is none.
fn check_jwt_routes(r: &mut Reader, routes: &[(Origin, Route)]) {
    for (at, route) in routes {
        if route.access.schemes.contains(&access::AuthScheme::Jwt) {
            r.problem_at(
                at,
                "auth",
                "`jwt` needs the top-level `jwt` block (the identity provider's keys)",
            );
        }
    }
}

/// Every project names a plan that exists (the built-in one, or one of `plans`).
fn check_project_plans(
    r: &mut Reader,
    node: &Node,
    plans: &[crate::plans::Plan],
    projects: &[Project],
) {
    for (i, p) in projects.iter().enumerate() {
        if p.plan != crate::plans::DEFAULT_PLAN && !plans.iter().any(|o| o.name == p.plan) {
            r.problem(
                node,
                &format!("projects[{i}].plan"),
                format!("plan `{}` is not among `plans`", p.plan),
            );
        }
    }
}

/// An API's `cache` for the proxied routes under its base path that have none of their own.
fn api_caches(apis: &[apis::Api], routes: &mut [(crate::read::Origin, crate::routes::Route)]) {
    for api in apis {
        let Some(cache) = api.cache else { continue };
        let base = api.base_path.trim_end_matches('/');
        for (_, route) in routes.iter_mut() {
            let path = route.path.source.as_str();
            let under = path
                .strip_prefix(base)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if under
                && route.cache.is_none()
                && matches!(route.answer, crate::routes::Answer::Upstream(_))
            {
                route.cache = Some(cache);
            }
        }
    }
}
