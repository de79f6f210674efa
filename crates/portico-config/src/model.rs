//! The validated configuration, and how it is read from the node tree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use portico_http::coding::ContentCoding;
use portico_http::negotiate::MediaType;
use portico_http::{HeadLimits, Method, MethodSet};

use crate::access::{self, Access, Jwt, Project};
use crate::apis::{self, Api};
use crate::content;
use crate::read::{Reader, join};
use crate::redirect::{self, Redirect};
use crate::yaml::Node;
use portico_policy::failures::FailureRate;

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
}

/// The admin API's listener.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminListener {
    /// Address and port (never the data plane's).
    pub listen: SocketAddr,
    /// SHA-256 of the admin token given in the file, if one is (the token itself is not
    /// kept); `PORTICO_ADMIN_TOKEN` may give it instead.
    pub token_sha256: Option<[u8; 32]>,
    /// How long a deleted resource answers 410 before it is forgotten (then 404).
    pub tombstone_retention: Duration,
}

impl std::fmt::Debug for AdminListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminListener")
            .field("listen", &self.listen)
            .field("token_sha256", &self.token_sha256.map(|_| "<redacted>"))
            .field("tombstone_retention", &self.tombstone_retention)
            .finish()
    }
}

/// A TLS listener: where, and the certificate chain and key it presents (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListener {
    /// Address and port.
    pub listen: SocketAddr,
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
}

/// HTTP/2: by ALPN on the TLS listener, by prior knowledge on the plain one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2 {
    /// Whether clients may speak HTTP/2.
    pub enabled: bool,
    /// Most streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// A stream's flow-control window: request-body bytes a client may send ahead of Portico
    /// reading them.
    pub stream_window: u32,
    /// A connection's flow-control window: the most request-body bytes one connection's
    /// streams together may have sent ahead of Portico reading them.
    pub connection_window: u32,
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 {
            enabled: true,
            max_concurrent_streams: 128,
            stream_window: 256 * 1024,
            connection_window: 1024 * 1024,
        }
    }
}

/// The largest flow-control window HTTP/2 allows (RFC 9113 §6.9.1).
const MAX_WINDOW: u64 = (1 << 31) - 1;
/// The window every HTTP/2 connection starts with, which it can only grow.
const INITIAL_WINDOW: u64 = 65_535;

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

/// Server-wide limits on requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request-head limits (target, header section, header count).
    pub head: HeadLimits,
    /// The whole request head must arrive within this, from its first byte (408 otherwise).
    pub header_timeout: Duration,
    /// Longest a request body may make no progress (408 otherwise).
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection is kept before it is closed silently.
    pub idle_timeout: Duration,
    /// Default largest request body; routes may override it.
    pub max_body_bytes: u64,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Memory all requests together may hold in buffered bodies.
    pub body_buffer_bytes: u64,
    /// What the results of all jobs not expired may take in the store together.
    pub job_results_bytes: u64,
    /// Authentication failures one client address may have before it must wait (429).
    pub auth_failures: FailureRate,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head: HeadLimits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_body_bytes: 10 << 20,
            max_connections: 10_000,
            body_buffer_bytes: 64 << 20,
            job_results_bytes: 1 << 30,
            auth_failures: FailureRate {
                max: 20,
                per: Duration::from_secs(60),
            },
        }
    }
}

/// An upstream service and its targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Unique name routes refer to.
    pub name: String,
    /// Where requests go (round-robin when several).
    pub targets: Vec<Target>,
    /// Longest a new connection may take (502 otherwise).
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per target.
    pub max_idle_per_target: usize,
    /// How many requests to it may be in progress at once (`max_in_flight`).
    pub max_in_flight: Option<u64>,
    /// How the next target is chosen: `round_robin` (the default) or `least_in_flight`.
    pub least_in_flight: bool,
    /// Passive health (`passive: {failures: N, eject: DURATION}`): consecutive failures, and
    /// how long a target is left out after them.
    pub passive: Option<(u32, Duration)>,
    /// Active health checks (`health: {path, interval, timeout, healthy, unhealthy}`).
    pub health: Option<HealthCheck>,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    /// How `https://` targets are verified.
    pub tls: UpstreamTls,
}

/// TLS to an upstream's `https://` targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM file of the CA certificates trusted for the targets; the system's trust store
    /// when `None`.
    pub ca: Option<PathBuf>,
    /// The name the targets' certificates must carry; each target's host when `None`.
    pub server_name: Option<String>,
}

/// How a target is spoken to, from its URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetScheme {
    /// `http://`: HTTP/1.1.
    Http,
    /// `h2c://`: HTTP/2 over TCP with prior knowledge.
    H2c,
    /// `https://`: TLS; HTTP/2 when the target chooses `h2` with ALPN, else HTTP/1.1.
    Https,
}

/// One `http://`, `h2c://` or `https://` `host:port` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `host:port` as it is written in a URL.
    pub authority: String,
    /// How it is spoken to.
    pub scheme: TargetScheme,
}

/// A route: which requests it takes and what answers them.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Unique name, used in logs.
    pub name: String,
    /// The path template.
    pub path: PathTemplate,
    /// Methods the route takes (HEAD comes with GET; OPTIONS is always answered by Portico).
    pub methods: MethodSet,
    /// What answers the requests.
    pub action: Action,
    /// Largest request body; the server-wide limit when `None`.
    pub max_body_bytes: Option<u64>,
    /// Refuse chunked bodies with 411.
    pub require_content_length: bool,
    /// Read the whole body (within `limits.body_buffer_bytes`) before anything is sent
    /// upstream.
    pub buffer_body: bool,
    /// WebSocket upgrades are relayed to the upstream, with this idle timeout; `None` when
    /// the route does not take them (an `Upgrade` field is then ignored).
    pub websocket: Option<Duration>,
    /// Media types the route answers with, in order of preference; when not empty, a request
    /// whose `Accept` matches none of them gets 406 before anything else happens.
    pub produces: Vec<MediaType>,
    /// Media types of request bodies the route takes; when not empty, a body of another type
    /// gets 415 before it is read.
    pub consumes: Vec<MediaType>,
    /// Content codings of request bodies the route takes besides `identity`; `None` when the
    /// route does not check `Content-Encoding` (neither `consumes` nor `consumes_encodings`
    /// given).
    pub consumes_encodings: Option<Vec<ContentCoding>>,
    /// What the route asks of its callers.
    pub access: Access,
    /// Its rate limits (`rate_limit`), each checked after the access phase.
    pub rate_limits: Vec<crate::rate_limits::RateLimit>,
    /// How many of its requests may be in progress at once (`max_in_flight`).
    pub max_in_flight: Option<u64>,
    /// Its deadlines (`timeout`, `max_timeout`, `pass_timeout`).
    pub deadline: crate::jobs::Deadline,
    /// How it treats `Idempotency-Key` (`idempotency`), when it does.
    pub idempotency: Option<crate::jobs::Idempotency>,
    /// Its asynchronous jobs (`async`), when it has them.
    pub async_jobs: Option<crate::jobs::AsyncJobs>,
}

/// What answers a route's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Proxy to the upstream at this index of [`Config::upstreams`].
    Upstream(usize),
    /// A built-in handler.
    Handler(Handler),
    /// A redirect, answered by Portico.
    Redirect(Redirect),
    /// 305 Use Proxy, with this proxy's URL in `Location` (a deprecated code, answered only
    /// by routes that ask for it).
    UseProxy(String),
}

/// Built-in handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    /// Answers with the request it saw, as JSON.
    Echo,
    /// Serves files from a directory.
    Static(StaticFiles),
    /// The token service: issues tokens for consumers' passwords (Keystone v3 password
    /// method), valid for this long.
    Tokens {
        /// How long an issued token is valid.
        ttl: Duration,
    },
}

/// A `handler: static` route's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticFiles {
    /// The directory served (absolute, or relative to the working directory when the
    /// configuration did not come from a file).
    pub root: PathBuf,
    /// `Cache-Control` sent with every file (and its 304s), when set.
    pub cache_control: Option<String>,
    /// Precompressed siblings looked for (`FILE.br`, `FILE.zst`, `FILE.gz`), in order of
    /// preference.
    pub precompressed: Vec<ContentCoding>,
}

/// A route path template: `/v1/{project_id}/items/{*rest}`.
///
/// `{name}` matches one segment; `{*name}` (last segment only) matches the rest of the path,
/// including nothing, so `/files/{*rest}` matches `/files/` as well as `/files/a/b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    /// The template as written.
    pub source: String,
    /// The patterns to register with the router (the template, and for a catch-all also its
    /// empty form).
    pub patterns: Vec<String>,
    /// The name of the `{*name}` parameter, when the template ends with one.
    pub catch_all: Option<String>,
    /// The names of all its parameters, in order.
    pub params: Vec<String>,
}

impl PathTemplate {
    /// Checks a template's syntax.
    pub fn parse(source: &str) -> Result<PathTemplate, String> {
        if !source.starts_with('/') {
            return Err("a path must start with `/`".into());
        }
        let mut names: Vec<&str> = Vec::new();
        let segments: Vec<&str> = source[1..].split('/').collect();
        let mut patterns = vec![source.to_string()];
        let mut catch_all_name = None;
        for (i, seg) in segments.iter().enumerate() {
            if *seg == "." || *seg == ".." {
                return Err(
                    "a path cannot contain `.` or `..` segments (requests are normalised)".into(),
                );
            }
            if let Some(bad) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%{}".contains(*c)))
            {
                return Err(format!("`{bad}` is not allowed in a path"));
            }
            let opens = seg.matches('{').count();
            if opens != seg.matches('}').count() || opens > 1 {
                return Err(format!(
                    "segment `{seg}`: use at most one `{{name}}` per segment"
                ));
            }
            if opens == 0 {
                continue;
            }
            let (Some(open), Some(close)) = (seg.find('{'), seg.find('}')) else {
                return Err(format!("segment `{seg}`: unbalanced braces"));
            };
            if close < open {
                return Err(format!("segment `{seg}`: `}}` before `{{`"));
            }
            let inner = &seg[open + 1..close];
            let (name, catch_all) = match inner.strip_prefix('*') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if catch_all && (i + 1 != segments.len() || open != 0 || close + 1 != seg.len()) {
                return Err("`{*name}` must be the whole last segment".into());
            }
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`{name}` is not a valid parameter name (letters, digits, _)"
                ));
            }
            if names.contains(&name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            names.push(name);
            if catch_all {
                let prefix_len = source.len() - seg.len();
                patterns.push(source[..prefix_len].to_string());
                catch_all_name = Some(name.to_string());
            }
        }
        Ok(PathTemplate {
            source: source.to_string(),
            patterns,
            catch_all: catch_all_name,
            params: names.iter().map(|n| n.to_string()).collect(),
        })
    }
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
];
const ADMIN_KEYS: &[&str] = &["listen", "token", "tombstone_retention"];
const TLS_KEYS: &[&str] = &["listen", "cert", "key"];
const HTTP2_KEYS: &[&str] = &[
    "enabled",
    "max_concurrent_streams",
    "stream_window",
    "connection_window",
];
const LIMIT_KEYS: &[&str] = &[
    "max_uri_bytes",
    "max_header_bytes",
    "max_headers",
    "header_timeout",
    "body_timeout",
    "idle_timeout",
    "max_body_bytes",
    "max_connections",
    "body_buffer_bytes",
    "job_results_bytes",
    "auth_failures",
];
const UPSTREAM_KEYS: &[&str] = &[
    "name",
    "targets",
    "connect_timeout",
    "max_idle_per_target",
    "max_in_flight",
    "balance",
    "passive",
    "health",
    "idle_timeout",
    "tls",
];
const UPSTREAM_TLS_KEYS: &[&str] = &["ca", "server_name"];
const ROUTE_KEYS: &[&str] = &[
    "name",
    "path",
    "methods",
    "upstream",
    "handler",
    "max_body_bytes",
    "require_content_length",
    "buffer_body",
    "websocket",
    "websocket_idle_timeout",
    "redirect",
    "produces",
    "consumes",
    "consumes_encodings",
    "root",
    "cache_control",
    "precompressed",
    "use_proxy",
    "token_ttl",
    "auth",
    "api_key",
    "allow_cidrs",
    "deny_cidrs",
    "policy",
    "cors",
    "rate_limit",
    "max_in_flight",
    "timeout",
    "max_timeout",
    "pass_timeout",
    "idempotency",
    "async",
];

impl Config {
    /// Reads a configuration from its node tree; `None` when there were problems (in `r`).
    pub(crate) fn read(r: &mut Reader, root: &Node) -> Option<Config> {
        let top = r.map(root, "", TOP_KEYS)?;
        let listen = match top.get("listen") {
            Some(n) => r
                .string(n, "listen")
                .and_then(|s| match s.parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        r.problem(
                            n,
                            "listen",
                            format!("`{s}` is not an IP address and port, e.g. 127.0.0.1:8080"),
                        );
                        None
                    }
                }),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        };
        let tls = match top.get("tls") {
            None => Some(None),
            Some(n) => read_tls(r, n).map(Some),
        };
        let http2 = top
            .get("http2")
            .map_or(Some(Http2::default()), |n| read_http2(r, n));
        let workers = top.get("workers").map_or(Some(0), |n| r.uint(n, "workers"));
        let access_log = top.get("access_log").map_or(Some(AccessLog::Stdout), |n| {
            let s = r.string(n, "access_log")?;
            match s {
                "stdout" => Some(AccessLog::Stdout),
                "stderr" => Some(AccessLog::Stderr),
                "off" => Some(AccessLog::Off),
                p if p.contains('/') => Some(AccessLog::File(PathBuf::from(p))),
                other => {
                    r.problem(n, "access_log", format!("`{other}` is not `stdout`, `stderr`, `off` or a file path containing `/`"));
                    None
                }
            }
        });
        let limits = read_limits(r, top.get("limits"));
        let shutdown_grace = top
            .get("shutdown_grace")
            .map_or(Some(Duration::from_secs(10)), |n| {
                r.duration(n, "shutdown_grace")
            });

        let admin = match top.get("admin") {
            None => Some(None),
            Some(n) => read_admin(r, n).map(Some),
        };
        let storage = match top.get("storage") {
            None => Some("sqlite://portico.db".to_string()),
            Some(n) => r.string(n, "storage").and_then(|s| {
                if (s.starts_with("sqlite://") && s.len() > "sqlite://".len())
                    || s.starts_with("postgres://")
                    || s.starts_with("postgresql://")
                {
                    Some(s.to_string())
                } else {
                    r.problem(n, "storage", "storage is `sqlite://PATH` or `postgres://…`");
                    None
                }
            }),
        };
        let jwt = match top.get("jwt") {
            None => Some(None),
            Some(n) => access::read_jwt(r, n).map(Some),
        };
        let projects = match top.get("projects") {
            None => Some(Vec::new()),
            Some(n) => access::read_projects(r, n),
        };
        let cluster = match top.get("cluster") {
            None => Some(None),
            Some(n) => crate::rate_limits::read_cluster(r, n).map(Some),
        };
        let egress = match top.get("egress") {
            None => Some(None),
            Some(n) => crate::egress::read_egress(r, n).map(Some),
        };
        let plans = match top.get("plans") {
            None => Some(Vec::new()),
            Some(n) => crate::plans::read_plans(r, n),
        };
        if let (Some(plans), Some(projects), Some(n)) = (&plans, &projects, top.get("projects")) {
            for (i, p) in projects.iter().enumerate() {
                if p.plan != crate::plans::DEFAULT_PLAN && !plans.iter().any(|o| o.name == p.plan) {
                    r.problem(
                        n,
                        &format!("projects[{i}].plan"),
                        format!("plan `{}` is not among `plans`", p.plan),
                    );
                }
            }
        }
        let apis = match top.get("apis") {
            None => Some(Vec::new()),
            Some(n) => apis::read_apis(r, n),
        };
        let mut upstreams = Vec::new();
        if let Some(list) = top.get("upstreams").and_then(|n| r.seq(n, "upstreams")) {
            for (i, node) in list.iter().enumerate() {
                let path = format!("upstreams[{i}]");
                if let Some(u) = read_upstream(r, node, &path) {
                    if upstreams.iter().any(|o: &Upstream| o.name == u.name) {
                        r.problem(
                            node,
                            &join(&path, "name"),
                            format!("upstream `{}` is defined twice", u.name),
                        );
                    }
                    upstreams.push(u);
                }
            }
        }

        let mut routes: Vec<(&Node, Route)> = Vec::new();
        match top.get("routes") {
            None => r.missing(root, "", "routes"),
            Some(n) => {
                if let Some(list) = r.seq(n, "routes") {
                    if list.is_empty() {
                        r.problem(n, "routes", "at least one route is needed");
                    }
                    for (i, node) in list.iter().enumerate() {
                        let path = format!("routes[{i}]");
                        if let Some(route) = read_route(r, node, &path, &upstreams) {
                            if routes
                                .iter()
                                .any(|(_, o): &(&Node, Route)| o.name == route.name)
                            {
                                r.problem(
                                    node,
                                    &join(&path, "name"),
                                    format!("route `{}` is defined twice", route.name),
                                );
                            }
                            routes.push((node, route));
                        }
                    }
                }
            }
        }
        check_overlaps(r, &routes);
        if matches!(jwt, Some(None)) {
            for (i, (node, route)) in routes.iter().enumerate() {
                if route.access.schemes.contains(&access::AuthScheme::Jwt) {
                    r.problem(
                        node,
                        &format!("routes[{i}].auth"),
                        "`jwt` needs the top-level `jwt` block (the identity provider's keys)",
                    );
                }
            }
        }
        if let Some(limits) = &limits {
            check_buffer_budget(r, &routes, limits);
            check_jobs_paths(r, &routes);
        }

        if !r.problems.is_empty() {
            return None;
        }
        if let (Some(plain), Some(Some(admin)), Some(n)) = (listen, &admin, top.get("admin"))
            && (plain == admin.listen
                || tls
                    .as_ref()
                    .is_some_and(|t| t.as_ref().is_some_and(|t| t.listen == admin.listen)))
            && admin.listen.port() != 0
        {
            r.problem(
                n,
                "admin.listen",
                format!(
                    "{} is a data-plane listener: the admin API needs its own port",
                    admin.listen
                ),
            );
            return None;
        }
        if let (Some(plain), Some(Some(tls)), Some(n)) = (listen, &tls, top.get("tls"))
            && plain == tls.listen
            && plain.port() != 0
        {
            r.problem(
                n,
                "tls.listen",
                format!("{plain} is also `listen`: give TLS its own port"),
            );
            return None;
        }
        if let (Some(Some(egress)), Some(n)) = (&egress, top.get("egress"))
            && egress.listen.port() != 0
            && (listen == Some(egress.listen)
                || tls
                    .as_ref()
                    .is_some_and(|t| t.as_ref().is_some_and(|t| t.listen == egress.listen))
                || admin
                    .as_ref()
                    .is_some_and(|a| a.as_ref().is_some_and(|a| a.listen == egress.listen)))
        {
            r.problem(
                n,
                "egress.listen",
                format!(
                    "{} is another listener's: the egress proxy needs its own port",
                    egress.listen
                ),
            );
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
        })
    }
}

fn read_http2(r: &mut Reader, node: &Node) -> Option<Http2> {
    let f = r.map(node, "http2", HTTP2_KEYS)?;
    let mut h2 = Http2::default();
    let mut ok = true;
    if let Some(n) = f.get("enabled") {
        match r.boolean(n, "http2.enabled") {
            Some(v) => h2.enabled = v,
            None => ok = false,
        }
    }
    if let Some(n) = f.get("max_concurrent_streams") {
        match r.uint(n, "http2.max_concurrent_streams") {
            Some(v @ 1..=10_000) => h2.max_concurrent_streams = v as u32,
            Some(_) => {
                r.problem(n, "http2.max_concurrent_streams", "must be from 1 to 10000");
                ok = false;
            }
            None => ok = false,
        }
    }
    for (key, min, slot) in [
        ("stream_window", 1024, &mut h2.stream_window),
        (
            "connection_window",
            INITIAL_WINDOW,
            &mut h2.connection_window,
        ),
    ] {
        let Some(n) = f.get(key) else { continue };
        let path = join("http2", key);
        match r.size(n, &path) {
            Some(v) if (min..=MAX_WINDOW).contains(&v) => *slot = v as u32,
            Some(_) => {
                r.problem(
                    n,
                    &path,
                    format!("must be from {min} to {MAX_WINDOW} bytes"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(h2)
}

fn read_tls(r: &mut Reader, node: &Node) -> Option<TlsListener> {
    let f = r.map(node, "tls", TLS_KEYS)?;
    let listen = match f.get("listen") {
        None => {
            r.missing(node, "tls", "listen");
            None
        }
        Some(n) => r
            .string(n, "tls.listen")
            .and_then(|s| match s.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    r.problem(
                        n,
                        "tls.listen",
                        format!("`{s}` is not an IP address and port, e.g. 127.0.0.1:8443"),
                    );
                    None
                }
            }),
    };
    let mut file = |key: &str| -> Option<PathBuf> {
        let Some(n) = f.get(key) else {
            r.missing(node, "tls", key);
            return None;
        };
        read_file(r, n, &join("tls", key))
    };
    let cert = file("cert");
    let key = file("key");
    Some(TlsListener {
        listen: listen?,
        cert: cert?,
        key: key?,
    })
}

/// A path to an existing regular file (relative paths are taken from the config file's
/// directory).
fn read_file(r: &mut Reader, n: &Node, path: &str) -> Option<PathBuf> {
    let s = r.string(n, path)?;
    let file = r.resolve_path(s);
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => Some(file),
        Ok(_) => {
            r.problem(n, path, format!("`{}` is not a file", file.display()));
            None
        }
        Err(e) => {
            r.problem(n, path, format!("cannot use `{}`: {e}", file.display()));
            None
        }
    }
}

/// `upstreams[].tls`: `ca` and `server_name`.
fn read_upstream_tls(r: &mut Reader, node: Option<&Node>, path: &str) -> Option<UpstreamTls> {
    let Some(node) = node else {
        return Some(UpstreamTls::default());
    };
    let f = r.map(node, path, UPSTREAM_TLS_KEYS)?;
    let mut ok = true;
    let ca = match f.get("ca") {
        None => None,
        Some(n) => {
            let file = read_file(r, n, &join(path, "ca"));
            ok &= file.is_some();
            file
        }
    };
    let server_name = match f.get("server_name") {
        None => None,
        Some(n) => {
            let npath = join(path, "server_name");
            let name = r.string(n, &npath);
            match name {
                Some(s)
                    if portico_http::head::valid_authority(s.as_bytes()) && !s.contains(':') =>
                {
                    Some(s.to_string())
                }
                Some(s) => {
                    r.problem(n, &npath, format!("`{s}` is not a host name"));
                    ok = false;
                    None
                }
                None => {
                    ok = false;
                    None
                }
            }
        }
    };
    ok.then_some(UpstreamTls { ca, server_name })
}

/// `admin: {listen, token}`; the token is hashed at once and not kept.
fn read_admin(r: &mut Reader, node: &Node) -> Option<AdminListener> {
    use sha2::Digest;
    let f = r.map(node, "admin", ADMIN_KEYS)?;
    let listen = match f.get("listen") {
        None => {
            r.missing(node, "admin", "listen");
            None
        }
        Some(n) => r
            .string(n, "admin.listen")
            .and_then(|s| match s.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    r.problem(
                        n,
                        "admin.listen",
                        format!("`{s}` is not an IP address and port"),
                    );
                    None
                }
            }),
    };
    let token = match f.get("token") {
        None => Some(None),
        Some(n) => r.string(n, "admin.token").and_then(|t| {
            if t.len() < 16 {
                // The message never repeats the token.
                r.problem(
                    n,
                    "admin.token",
                    "the admin token must be at least 16 characters",
                );
                None
            } else {
                Some(Some(sha2::Sha256::digest(t.as_bytes()).into()))
            }
        }),
    };
    let retention = f
        .get("tombstone_retention")
        .map_or(Some(Duration::from_secs(7 * 24 * 3600)), |n| {
            r.duration(n, "admin.tombstone_retention")
        });
    Some(AdminListener {
        listen: listen?,
        token_sha256: token?,
        tombstone_retention: retention?,
    })
}

/// `auth_failures: {max: 20, per: 1m}`.
fn read_failure_rate(r: &mut Reader, node: &Node) -> Option<FailureRate> {
    let path = "limits.auth_failures";
    let f = r.map(node, path, &["max", "per"])?;
    let max = match f.get("max") {
        None => {
            r.missing(node, path, "max");
            None
        }
        Some(n) => match r.uint(n, &join(path, "max")) {
            Some(v @ 1..=1_000_000) => u32::try_from(v).ok(),
            Some(_) => {
                r.problem(n, &join(path, "max"), "must be from 1 to 1000000");
                None
            }
            None => None,
        },
    };
    let per = match f.get("per") {
        None => {
            r.missing(node, path, "per");
            None
        }
        Some(n) => r.duration(n, &join(path, "per")),
    };
    Some(FailureRate {
        max: max?,
        per: per?,
    })
}

fn read_limits(r: &mut Reader, node: Option<&Node>) -> Option<Limits> {
    let mut limits = Limits::default();
    let Some(node) = node else {
        return Some(limits);
    };
    let f = r.map(node, "limits", LIMIT_KEYS)?;
    let mut ok = true;
    let mut size = |r: &mut Reader, key: &str, min: u64| -> Option<u64> {
        let n = f.get(key)?;
        let path = join("limits", key);
        let v = r.size(n, &path);
        match v {
            Some(v) if v < min => {
                r.problem(n, &path, format!("must be at least {min}"));
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
            v => v,
        }
    };
    if let Some(v) = size(r, "max_uri_bytes", 16) {
        limits.head.max_uri_bytes = v as usize;
    }
    if let Some(v) = size(r, "max_header_bytes", 256) {
        limits.head.max_header_bytes = v as usize;
    }
    if let Some(v) = size(r, "max_body_bytes", 0) {
        limits.max_body_bytes = v;
    }
    if let Some(v) = size(r, "body_buffer_bytes", 0) {
        limits.body_buffer_bytes = v;
    }
    if let Some(v) = size(r, "job_results_bytes", 0) {
        limits.job_results_bytes = v;
    }
    if let Some(n) = f.get("auth_failures") {
        match read_failure_rate(r, n) {
            Some(rate) => limits.auth_failures = rate,
            None => ok = false,
        }
    }
    if let Some(n) = f.get("max_connections") {
        match r.uint(n, "limits.max_connections") {
            Some(v) if v >= 1 => limits.max_connections = usize::try_from(v).unwrap_or(usize::MAX),
            Some(_) => {
                r.problem(n, "limits.max_connections", "must be at least 1");
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = f.get("max_headers") {
        match r.uint(n, "limits.max_headers") {
            Some(v) if v >= 1 => limits.head.max_headers = v as usize,
            Some(_) => {
                r.problem(n, "limits.max_headers", "must be at least 1");
                ok = false;
            }
            None => ok = false,
        }
    }
    for (key, slot) in [
        ("header_timeout", &mut limits.header_timeout),
        ("body_timeout", &mut limits.body_timeout),
        ("idle_timeout", &mut limits.idle_timeout),
    ] {
        if let Some(n) = f.get(key) {
            match r.duration(n, &join("limits", key)) {
                Some(d) => *slot = d,
                None => ok = false,
            }
        }
    }
    ok.then_some(limits)
}

fn read_upstream(r: &mut Reader, node: &Node, path: &str) -> Option<Upstream> {
    let f = r.map(node, path, UPSTREAM_KEYS)?;
    let name = read_name(r, node, path, f.get("name"));
    let mut targets = Vec::new();
    match f.get("targets") {
        None => r.missing(node, path, "targets"),
        Some(n) => {
            let tpath = join(path, "targets");
            if let Some(items) = r.seq(n, &tpath) {
                if items.is_empty() {
                    r.problem(n, &tpath, "at least one target is needed");
                }
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{tpath}[{i}]");
                    if let Some(s) = r.string(item, &ipath) {
                        match parse_target(s) {
                            Ok(t) => targets.push(t),
                            Err(msg) => r.problem(item, &ipath, msg),
                        }
                    }
                }
            }
        }
    }
    let connect_timeout = f
        .get("connect_timeout")
        .map_or(Some(Duration::from_secs(5)), |n| {
            r.duration(n, &join(path, "connect_timeout"))
        });
    let max_idle = f
        .get("max_idle_per_target")
        .map_or(Some(128), |n| r.uint(n, &join(path, "max_idle_per_target")));
    let idle_timeout = f
        .get("idle_timeout")
        .map_or(Some(Duration::from_secs(30)), |n| {
            r.duration(n, &join(path, "idle_timeout"))
        });
    let max_in_flight = read_max_in_flight(r, f.get("max_in_flight"), path);
    let least_in_flight = match f.get("balance") {
        None => Some(false),
        Some(n) => r.string(n, &join(path, "balance")).and_then(|b| match b {
            "round_robin" => Some(false),
            "least_in_flight" => Some(true),
            _ => {
                r.problem(
                    n,
                    &join(path, "balance"),
                    "`balance` is round_robin or least_in_flight",
                );
                None
            }
        }),
    };
    let passive = match f.get("passive") {
        None => Some(None),
        Some(n) => read_passive(r, n, &join(path, "passive")).map(Some),
    };
    let health = match f.get("health") {
        None => Some(None),
        Some(n) => read_health(r, n, &join(path, "health")).map(Some),
    };
    let tls = read_upstream_tls(r, f.get("tls"), &join(path, "tls"));
    if let Some(n) = f.get("tls")
        && !targets.is_empty()
        && !targets.iter().any(|t| t.scheme == TargetScheme::Https)
    {
        r.problem(
            n,
            &join(path, "tls"),
            "`tls` applies to `https://` targets and this upstream has none",
        );
    }
    Some(Upstream {
        name: name?,
        targets,
        connect_timeout: connect_timeout?,
        max_idle_per_target: usize::try_from(max_idle?).ok()?,
        idle_timeout: idle_timeout?,
        tls: tls?,
        max_in_flight: max_in_flight?,
        least_in_flight: least_in_flight?,
        passive: passive?,
        health: health?,
    })
}

/// `http://`, `h2c://` or `https://` and `host[:port]`, with nothing after the authority.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let schemes = [
        ("http://", TargetScheme::Http, "80"),
        ("h2c://", TargetScheme::H2c, "80"),
        ("https://", TargetScheme::Https, "443"),
    ];
    let Some((rest, scheme, default_port)) = schemes
        .iter()
        .find_map(|(prefix, scheme, port)| Some((s.strip_prefix(prefix)?, *scheme, *port)))
    else {
        return Err(format!(
            "`{s}`: a target is `http://host:port`, `h2c://host:port` or `https://host:port`"
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "`{s}`: a target is a scheme and `host:port`, without path, query or user"
        ));
    }
    if !portico_http::head::valid_authority(authority.as_bytes()) {
        return Err(format!("`{s}`: `{authority}` is not a valid host and port"));
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority.ends_with(']') => (&authority[..i], &authority[i + 1..]),
        _ => (authority, default_port),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{s}`: invalid port `{port}`"))?;
    if port == 0 {
        return Err(format!("`{s}`: port 0 is not a target"));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        host,
        port,
        authority: authority.to_string(),
        scheme,
    })
}

fn read_name(r: &mut Reader, node: &Node, path: &str, n: Option<&Node>) -> Option<String> {
    let Some(n) = n else {
        r.missing(node, path, "name");
        return None;
    };
    let npath = join(path, "name");
    let s = r.string(n, &npath)?;
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        r.problem(
            n,
            &npath,
            format!("`{s}`: names use letters, digits, `-`, `_` and `.`"),
        );
        return None;
    }
    Some(s.to_string())
}

fn read_route(r: &mut Reader, node: &Node, path: &str, upstreams: &[Upstream]) -> Option<Route> {
    let f = r.map(node, path, ROUTE_KEYS)?;
    let name = read_name(r, node, path, f.get("name"));
    let template = match f.get("path") {
        None => {
            r.missing(node, path, "path");
            None
        }
        Some(n) => r
            .string(n, &join(path, "path"))
            .and_then(|s| match PathTemplate::parse(s) {
                Ok(t) => Some(t),
                Err(msg) => {
                    r.problem(n, &join(path, "path"), msg);
                    None
                }
            }),
    };
    let is_static = f.get("handler").is_some_and(
        |h| matches!(&h.kind, crate::yaml::Kind::Scalar { value, .. } if value == "static"),
    );
    let methods = match f.get("methods") {
        // A static route serves GET (and so HEAD) unless it says otherwise.
        None if is_static => Some([Method::Get].into_iter().collect()),
        None => {
            r.missing(node, path, "methods");
            None
        }
        Some(n) => read_methods(r, n, &join(path, "methods")),
    };
    let given: Vec<(&str, &Node)> = ["upstream", "handler", "redirect", "use_proxy"]
        .into_iter()
        .filter_map(|k| f.get(k).map(|n| (k, n)))
        .collect();
    let action = match given.as_slice() {
        [] => {
            r.problem(
                node,
                path,
                "a route needs `upstream`, `handler`, `redirect` or `use_proxy`",
            );
            None
        }
        [_, (key, n), ..] => {
            r.problem(
                n,
                &join(path, key),
                "a route has one of `upstream`, `handler`, `redirect` or `use_proxy`, not several",
            );
            None
        }
        [("redirect", d)] => {
            redirect::read(r, d, &join(path, "redirect"), template.as_ref()).map(Action::Redirect)
        }
        [("use_proxy", n)] => {
            let ppath = join(path, "use_proxy");
            r.string(n, &ppath).and_then(|u| {
                if valid_proxy_url(u) {
                    Some(Action::UseProxy(u.to_string()))
                } else {
                    r.problem(
                        n,
                        &ppath,
                        format!("`{u}`: a proxy is `http://host:port` or `https://host:port`"),
                    );
                    None
                }
            })
        }
        [("upstream", u)] => {
            let upath = join(path, "upstream");
            r.string(u, &upath).and_then(|name| {
                match upstreams.iter().position(|x| x.name == name) {
                    Some(i) => Some(Action::Upstream(i)),
                    None => {
                        r.problem(u, &upath, format!("unknown upstream `{name}`"));
                        None
                    }
                }
            })
        }
        [(_, h)] => {
            let hpath = join(path, "handler");
            match r.string(h, &hpath) {
                Some("echo") => Some(Action::Handler(Handler::Echo)),
                Some("tokens") => {
                    let ttl = match f.get("token_ttl") {
                        None => Some(Duration::from_secs(3600)),
                        Some(n) => r.duration(n, &join(path, "token_ttl")).and_then(|d| {
                            if d > Duration::from_secs(7 * 86_400) {
                                r.problem(n, &join(path, "token_ttl"), "at most 7d");
                                None
                            } else {
                                Some(d)
                            }
                        }),
                    };
                    if methods.is_some_and(|m| m != [Method::Post].into_iter().collect()) {
                        r.problem(
                            node,
                            &join(path, "methods"),
                            "the token service takes POST only",
                        );
                        None
                    } else {
                        ttl.map(|ttl| Action::Handler(Handler::Tokens { ttl }))
                    }
                }
                Some("static") => {
                    content::read_static(r, node, path, &f, template.as_ref(), methods)
                        .map(|s| Action::Handler(Handler::Static(s)))
                }
                Some(other) => {
                    r.problem(
                        h,
                        &hpath,
                        format!("unknown handler `{other}`; available: echo, static, tokens"),
                    );
                    None
                }
                None => None,
            }
        }
    };
    if let Some(n) = f.get("token_ttl")
        && !matches!(action, Some(Action::Handler(Handler::Tokens { .. })))
        && given.len() == 1
    {
        r.problem(
            n,
            &join(path, "token_ttl"),
            "`token_ttl` is for `handler: tokens`",
        );
    }
    let max_body_bytes = match f.get("max_body_bytes") {
        Some(n) => Some(Some(r.size(n, &join(path, "max_body_bytes"))?)),
        None => Some(None),
    };
    let require_content_length = f.get("require_content_length").map_or(Some(false), |n| {
        r.boolean(n, &join(path, "require_content_length"))
    });
    let buffer_body = match f.get("buffer_body") {
        None => Some(false),
        Some(n) => {
            let bpath = join(path, "buffer_body");
            let v = r.boolean(n, &bpath);
            if v == Some(true) && f.get("upstream").is_none() {
                r.problem(n, &bpath, "`buffer_body` is for routes with an `upstream`");
                None
            } else {
                v
            }
        }
    };
    if !is_static {
        content::refuse_static_keys(r, path, &f);
    }
    let mut websocket = read_websocket(r, node, path, &f, methods);
    if let (Some(Some(_)), Some(Action::Upstream(i))) = (&websocket, &action)
        && upstreams[*i]
            .targets
            .iter()
            .any(|t| t.scheme == TargetScheme::H2c)
    {
        r.problem(
            f.get("websocket").unwrap_or(node),
            &join(path, "websocket"),
            "WebSocket is relayed over HTTP/1.1, and this route's upstream has `h2c://` targets, which speak HTTP/2 only",
        );
        websocket = None;
    }
    let produces = content::read_media_types(r, f.get("produces"), &join(path, "produces"), false);
    let consumes = content::read_media_types(r, f.get("consumes"), &join(path, "consumes"), true);
    let encodings = content::read_codings(
        r,
        f.get("consumes_encodings"),
        &join(path, "consumes_encodings"),
    );
    let consumes_encodings = match (&consumes, encodings) {
        (_, Some(Some(list))) => Some(Some(list)),
        // Declaring `consumes` alone takes identity bodies only.
        (Some(c), Some(None)) if !c.is_empty() => Some(Some(Vec::new())),
        (_, e) => e,
    };
    let max_in_flight = read_max_in_flight(r, f.get("max_in_flight"), path);
    let rate_limits = match f.get("rate_limit") {
        None => Some(Vec::new()),
        Some(n) => crate::rate_limits::read_rate_limits(r, n, &join(path, "rate_limit")),
    };
    let deadline = crate::jobs::read_deadline(r, node, path, &f);
    let idempotency = crate::jobs::read_idempotency(r, path, &f);
    let async_jobs = crate::jobs::read_async(r, path, &f, template.as_ref());
    let mut access = access::read_access(r, &f, path);
    // A CORS policy that lists no methods allows the route's own.
    if let (Some(Some(cors)), Some(methods)) = (access.as_mut().map(|a| a.cors.as_mut()), methods)
        && cors.methods.is_empty()
    {
        cors.methods = methods.allowed().map(|m| m.as_str().to_string()).collect();
    }
    Some(Route {
        name: name?,
        path: template?,
        methods: methods?,
        action: action?,
        max_body_bytes: max_body_bytes?,
        require_content_length: require_content_length?,
        buffer_body: buffer_body?,
        websocket: websocket?,
        produces: produces?,
        consumes: consumes?,
        consumes_encodings: consumes_encodings?,
        access: access?,
        rate_limits: rate_limits?,
        max_in_flight: max_in_flight?,
        deadline: deadline?,
        idempotency: idempotency?,
        async_jobs: async_jobs?,
    })
}

const PASSIVE_KEYS: &[&str] = &["failures", "eject"];
const HEALTH_KEYS: &[&str] = &["path", "interval", "timeout", "healthy", "unhealthy"];

/// An upstream's active health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path each target is asked for with `GET` (default `/`).
    pub path: String,
    /// How often (default 5s).
    pub interval: Duration,
    /// How long a check may take (default 2s).
    pub timeout: Duration,
    /// Passes in a row that bring a target back (default 2).
    pub healthy: u32,
    /// Failures in a row that leave it out (default 3).
    pub unhealthy: u32,
}

fn read_health(r: &mut Reader, node: &Node, path: &str) -> Option<HealthCheck> {
    let f = r.map(node, path, HEALTH_KEYS)?;
    let check_path = match f.get("path") {
        None => Some("/".to_string()),
        Some(n) => r.string(n, &join(path, "path")).and_then(|p| {
            let ok = p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                r.problem(
                    n,
                    &join(path, "path"),
                    "`path` is an absolute path such as /healthz",
                );
            }
            ok.then(|| p.to_string())
        }),
    };
    let mut duration = |key: &str, default: u64| match f.get(key) {
        None => Some(Duration::from_secs(default)),
        Some(n) => r.duration(n, &join(path, key)).and_then(|d| {
            if d.is_zero() {
                r.problem(
                    n,
                    &join(path, key),
                    format!("`{key}` is a duration above 0"),
                );
                None
            } else {
                Some(d)
            }
        }),
    };
    let interval = duration("interval", 5);
    let timeout = duration("timeout", 2);
    let mut count = |key: &str, default: u32| match f.get(key) {
        None => Some(default),
        Some(n) => match r.uint(n, &join(path, key)) {
            Some(v @ 1..=100) => u32::try_from(v).ok(),
            Some(_) => {
                r.problem(n, &join(path, key), format!("`{key}` is 1 to 100"));
                None
            }
            None => None,
        },
    };
    let healthy = count("healthy", 2);
    let unhealthy = count("unhealthy", 3);
    Some(HealthCheck {
        path: check_path?,
        interval: interval?,
        timeout: timeout?,
        healthy: healthy?,
        unhealthy: unhealthy?,
    })
}

/// `passive: {failures: N, eject: DURATION}` (defaults 5 and 30s).
fn read_passive(r: &mut Reader, node: &Node, path: &str) -> Option<(u32, Duration)> {
    let f = r.map(node, path, PASSIVE_KEYS)?;
    let failures = match f.get("failures") {
        None => Some(5),
        Some(n) => match r.uint(n, &join(path, "failures")) {
            Some(v @ 1..=1000) => u32::try_from(v).ok(),
            Some(_) => {
                r.problem(n, &join(path, "failures"), "`failures` is 1 to 1000");
                None
            }
            None => None,
        },
    };
    let eject = match f.get("eject") {
        None => Some(Duration::from_secs(30)),
        Some(n) => r.duration(n, &join(path, "eject")).and_then(|d| {
            if d.is_zero() {
                r.problem(n, &join(path, "eject"), "`eject` is a duration above 0");
                None
            } else {
                Some(d)
            }
        }),
    };
    Some((failures?, eject?))
}

/// `max_in_flight`: a whole number above 0, when given.
fn read_max_in_flight(r: &mut Reader, node: Option<&Node>, path: &str) -> Option<Option<u64>> {
    match node {
        None => Some(None),
        Some(n) => match r.uint(n, &join(path, "max_in_flight"))? {
            0 => {
                r.problem(
                    n,
                    &join(path, "max_in_flight"),
                    "`max_in_flight` is a whole number above 0",
                );
                None
            }
            v => Some(Some(v)),
        },
    }
}

/// `http://host:port` or `https://host:port` (a path of `/` at most).
fn valid_proxy_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn read_methods(r: &mut Reader, node: &Node, path: &str) -> Option<MethodSet> {
    let items = r.seq(node, path)?;
    if items.is_empty() {
        r.problem(node, path, "at least one method is needed");
        return None;
    }
    let mut set = MethodSet::EMPTY;
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        match r.string(item, &ipath) {
            Some(s) => match Method::from_bytes(s.as_bytes()) {
                Some(Method::Connect) => {
                    r.problem(item, &ipath, "CONNECT cannot be routed");
                    ok = false;
                }
                Some(m) if set.contains(m) => {
                    r.problem(item, &ipath, format!("`{s}` is listed twice"));
                    ok = false;
                }
                Some(m) => set.insert(m),
                None => {
                    let known: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
                    r.problem(
                        item,
                        &ipath,
                        format!(
                            "unknown method `{s}`; methods are upper case: {}",
                            known.join(", ")
                        ),
                    );
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    ok.then_some(set)
}

/// The routing table: routes grouped by path template (routes sharing one pool their methods
/// for 405 and OPTIONS), and a router from a path to its group. Built once by validation,
/// which reports every overlap, and again by the gateway, which serves from it.
#[derive(Clone, Debug)]
pub struct RouteTable {
    /// Path → index into `groups`.
    pub router: matchit::Router<usize>,
    /// Routes sharing one template.
    pub groups: Vec<RouteGroup>,
}

/// Routes that share one path template.
#[derive(Clone, Debug)]
pub struct RouteGroup {
    /// Indices into the route list, in file order.
    pub routes: Vec<usize>,
    /// The union of their methods.
    pub methods: MethodSet,
}

/// Why a route cannot join the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// Index of the route that overlaps an earlier one.
    pub route: usize,
    /// What is wrong.
    pub message: String,
}

impl RouteTable {
    /// Groups `routes`. Two routes may share a template only with disjoint methods; templates
    /// that differ must not be ambiguous to the router. Every overlap is returned.
    pub fn build(routes: &[Route]) -> Result<RouteTable, Vec<Overlap>> {
        let mut router = matchit::Router::new();
        let mut groups: Vec<RouteGroup> = Vec::new();
        let mut sources: Vec<&str> = Vec::new();
        let mut overlaps = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            if let Some(g) = sources.iter().position(|s| *s == route.path.source) {
                let earlier = groups[g].routes.iter().find_map(|&j| {
                    let shared: Vec<&str> = route
                        .methods
                        .allowed()
                        .filter(|m| *m != Method::Options && routes[j].methods.allows(*m))
                        .map(Method::as_str)
                        .collect();
                    (!shared.is_empty()).then_some((j, shared))
                });
                if let Some((j, shared)) = earlier {
                    overlaps.push(Overlap {
                        route: i,
                        message: format!(
                            "overlaps route `{}` (routes[{j}]): both take {} on `{}`",
                            routes[j].name,
                            shared.join(", "),
                            route.path.source
                        ),
                    });
                    continue;
                }
                groups[g].routes.push(i);
                groups[g].methods = groups[g].methods.union(route.methods);
                continue;
            }
            let g = groups.len();
            let inserted = route
                .path
                .patterns
                .iter()
                .try_for_each(|p| router.insert(p.clone(), g));
            if let Err(e) = inserted {
                overlaps.push(Overlap {
                    route: i,
                    message: format!("`{}` conflicts with another route: {e}", route.path.source),
                });
                continue;
            }
            groups.push(RouteGroup {
                routes: vec![i],
                methods: route.methods,
            });
            sources.push(&route.path.source);
        }
        if overlaps.is_empty() {
            Ok(RouteTable { router, groups })
        } else {
            Err(overlaps)
        }
    }
}

/// `websocket` and `websocket_idle_timeout`: WebSocket is relayed to an upstream, and its
/// handshake is a GET.
fn read_websocket(
    r: &mut Reader,
    node: &Node,
    path: &str,
    f: &crate::read::Fields<'_>,
    methods: Option<MethodSet>,
) -> Option<Option<Duration>> {
    let wpath = join(path, "websocket");
    let enabled = match f.get("websocket") {
        None => false,
        Some(n) => r.boolean(n, &wpath)?,
    };
    let idle = match f.get("websocket_idle_timeout") {
        Some(n) if !enabled => {
            r.problem(
                n,
                &join(path, "websocket_idle_timeout"),
                "`websocket_idle_timeout` needs `websocket: true`",
            );
            return None;
        }
        Some(n) => r.duration(n, &join(path, "websocket_idle_timeout"))?,
        None => Duration::from_secs(300),
    };
    if !enabled {
        return Some(None);
    }
    let at = f.get("websocket").unwrap_or(node);
    if f.get("upstream").is_none() {
        r.problem(at, &wpath, "`websocket` is for routes with an `upstream`");
        return None;
    }
    if methods.is_some_and(|m| !m.allows(Method::Get)) {
        r.problem(
            at,
            &wpath,
            "a WebSocket handshake is a GET: add GET to `methods`",
        );
        return None;
    }
    Some(Some(idle))
}

/// A route that buffers bodies larger than the whole budget could never take one.
fn check_buffer_budget(r: &mut Reader, routes: &[(&Node, Route)], limits: &Limits) {
    for (i, (node, route)) in routes.iter().enumerate() {
        let max = route.max_body_bytes.unwrap_or(limits.max_body_bytes);
        if route.buffer_body && max > limits.body_buffer_bytes {
            r.problem(
                node,
                &format!("routes[{i}].buffer_body"),
                format!(
                    "this route takes bodies up to {max} bytes but limits.body_buffer_bytes is {}: such a body could never be buffered; lower max_body_bytes or raise body_buffer_bytes",
                    limits.body_buffer_bytes
                ),
            );
        }
        if route
            .access
            .schemes
            .contains(&access::AuthScheme::Signature)
            && max > limits.body_buffer_bytes
        {
            r.problem(
                node,
                &format!("routes[{i}].auth"),
                format!(
                    "a signed body is read whole before it is checked, and this route takes bodies up to {max} bytes but limits.body_buffer_bytes is {}; lower max_body_bytes or raise body_buffer_bytes",
                    limits.body_buffer_bytes
                ),
            );
        }
    }
}

/// Async routes that share a jobs path share its access rules: the jobs there are read with
/// them, so they must be the same for every route whose jobs are there.
fn check_jobs_paths(r: &mut Reader, routes: &[(&Node, Route)]) {
    for (i, (node, route)) in routes.iter().enumerate() {
        let Some(jobs) = &route.async_jobs else {
            continue;
        };
        if routes[..i].iter().any(|(_, other)| {
            other
                .async_jobs
                .as_ref()
                .is_some_and(|o| o.path == jobs.path && other.access != route.access)
        }) {
            r.problem(
                node,
                &format!("routes[{i}].async.path"),
                format!(
                    "jobs at `{}` are read with the access rules of the routes that make them, and another async route with jobs there has different ones: give this route its own `path`",
                    jobs.path
                ),
            );
        }
    }
}

fn check_overlaps(r: &mut Reader, routes: &[(&Node, Route)]) {
    let list: Vec<Route> = routes.iter().map(|(_, route)| route.clone()).collect();
    if let Err(overlaps) = RouteTable::build(&list) {
        for o in overlaps {
            r.problem(
                routes[o.route].0,
                &format!("routes[{}].path", o.route),
                o.message,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = PathTemplate::parse("/v1/{project_id}/items/{*rest}").unwrap();
        assert_eq!(
            t.patterns,
            vec!["/v1/{project_id}/items/{*rest}", "/v1/{project_id}/items/"]
        );
        assert_eq!(
            PathTemplate::parse("/{*path}").unwrap().patterns,
            vec!["/{*path}", "/"]
        );
        assert_eq!(
            PathTemplate::parse("/a/{id}").unwrap().patterns,
            vec!["/a/{id}"]
        );
        for bad in [
            "a",
            "/a/{*rest}/b",
            "/a/{x}/{x}",
            "/a/{1x}",
            "/a/{x",
            "/a/../b",
            "/a b",
            "/a?x",
            "/a/x{*r}",
            "/{a}{b}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets() {
        let t = parse_target("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("127.0.0.1", 9000, "127.0.0.1:9000")
        );
        let t = parse_target("http://[::1]:9000/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert_eq!(parse_target("http://example.com").unwrap().port, 80);
        assert_eq!(
            parse_target("http://a:1").unwrap().scheme,
            TargetScheme::Http
        );
        let t = parse_target("h2c://a:81").unwrap();
        assert_eq!((t.scheme, t.port), (TargetScheme::H2c, 81));
        let t = parse_target("https://api.example.com").unwrap();
        assert_eq!((t.scheme, t.port), (TargetScheme::Https, 443));
        assert_eq!(t.authority, "api.example.com");
        for bad in [
            "ftp://a:1",
            "h2://a:1",
            "HTTPS://a:1",
            "https://a:1/x",
            "a:1",
            "http://a:1/x",
            "http://u@a:1",
            "http://a:0",
            "http://a:99999",
            "http://",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
