//! `routes`: which requests each route takes (path template, methods), what answers them
//! (an upstream, a built-in handler, a redirect, 305), and the routing table that validation
//! and the gateway both build from them.

use std::time::Duration;

use portico_http::coding::ContentCoding;
use portico_http::negotiate::MediaType;
use portico_http::{Method, MethodSet};

use crate::access::{self, Access};
use crate::content::{self, StaticFiles};
use crate::limits::Limits;
use crate::openapi::{OpenApiOperation, ResponseCheck};
use crate::path_template::PathTemplate;
use crate::read::{Fields, Origin, Reader, join, read_name};
use crate::redirect::{self, Redirect};
use crate::transform::BodyTransform;
use crate::upstreams::{Transport, Upstream, read_max_in_flight};
use crate::yaml::Node;

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
    pub answer: Answer,
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
    /// The OpenAPI operation it stands for (a route of an `openapi` entry): its parameters
    /// and body are checked against it.
    pub openapi: Option<OpenApiOperation>,
    /// What happens to an upstream response the operation does not allow.
    pub validate_responses: ResponseCheck,
    /// How an upstream's JSON 200 body is transformed (answered 203).
    pub transform: Option<BodyTransform>,
    /// Its response cache (`cache`, or its API's), when it has one.
    pub cache: Option<crate::cache::RouteCache>,
    /// Its callers speak gRPC (`grpc`): Portico's own errors are sent as gRPC statuses.
    pub grpc: bool,
}

/// What answers a route's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Proxy to the upstream at this index of [`Config::upstreams`](crate::Config::upstreams).
    Upstream(usize),
    /// A built-in handler.
    BuiltIn(BuiltIn),
    /// A redirect, answered by Portico.
    Redirect(Redirect),
    /// 305 Use Proxy, with this proxy's URL in `Location` (a deprecated code, answered only
    /// by routes that ask for it).
    UseProxy(String),
}

/// Built-in handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuiltIn {
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

pub(crate) const ROUTE_KEYS: &[&str] = &[
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
    "grpc",
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
    "openapi",
    "operations",
    "validate_responses",
    "transform",
    "cache",
];

/// `routes` (with the routes of `openapi` entries and API versions): each one read, names
/// unique, and no two overlapping.
pub(crate) fn read_routes(
    r: &mut Reader,
    root: &Node,
    node: Option<&Node>,
    apis: Option<&Node>,
    upstreams: &[Upstream],
) -> Vec<(Origin, Route)> {
    let mut routes: Vec<(Origin, Route)> = Vec::new();
    let Some(n) = node else {
        r.missing(root, "", "routes");
        return routes;
    };
    let Some(list) = r.seq(n, "routes") else {
        return routes;
    };
    if list.is_empty() {
        r.problem(n, "routes", "at least one route is needed");
    }
    for entry in crate::openapi::entries(r, list, apis) {
        let at = Origin {
            loc: entry.node.loc,
            label: entry.label.clone(),
        };
        let Some(mut route) = read_route(r, &entry.node, &entry.label, upstreams) else {
            continue;
        };
        if routes.iter().any(|(_, o)| o.name == route.name) {
            r.problem_at(
                &at,
                "name",
                format!("route `{}` is defined twice", route.name),
            );
        }
        if route.validate_responses != ResponseCheck::Off && entry.operation.is_none() {
            r.problem_at(
                &at,
                "validate_responses",
                "`validate_responses` checks responses against an OpenAPI document: it is for routes with `openapi`",
            );
        }
        route.openapi = entry.operation;
        routes.push((at, route));
    }
    routes
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
    let answer = read_answer(r, node, path, &f, upstreams, template.as_ref(), methods);
    let max_body_bytes = match f.get("max_body_bytes") {
        Some(n) => Some(r.size(n, &join(path, "max_body_bytes"))?),
        None => None,
    };
    let (require_content_length, buffer_body) = read_body_rules(r, path, &f);
    if !is_static {
        content::refuse_static_keys(r, path, &f);
    }
    let websocket = read_websocket(r, node, path, &f, methods)
        .and_then(|ws| check_websocket_upstream(r, node, path, &f, ws, answer.as_ref(), upstreams));
    let grpc = read_grpc(r, path, &f);
    let content = read_content(r, path, &f);
    let max_in_flight = read_max_in_flight(r, f.get("max_in_flight"), path);
    let rate_limits = match f.get("rate_limit") {
        None => Some(Vec::new()),
        Some(n) => crate::rate_limits::read_rate_limits(r, n, &join(path, "rate_limit")),
    };
    let deadline = crate::jobs::read_deadline(r, node, path, &f);
    let idempotency = crate::jobs::read_idempotency(r, path, &f);
    let async_jobs = crate::jobs::read_async(r, path, &f, template.as_ref());
    let validate_responses = read_response_check(r, path, &f);
    let transform = crate::transform::read(r, path, &f);
    let cache = crate::cache::read(r, path, &f);
    if let (Some(n), None) = (f.get("cache"), f.get("upstream")) {
        r.problem(
            n,
            &join(path, "cache"),
            "`cache` is for routes with an `upstream`",
        );
    }
    let mut access = access::read_access(r, &f, path);
    // A CORS policy that lists no methods allows the route's own.
    if let (Some(Some(cors)), Some(methods)) = (access.as_mut().map(|a| a.cors.as_mut()), methods)
        && cors.methods.is_empty()
    {
        cors.methods = methods.allowed().map(|m| m.as_str().to_string()).collect();
    }
    let (produces, consumes, consumes_encodings) = content?;
    Some(Route {
        name: name?,
        path: template?,
        methods: methods?,
        answer: answer?,
        max_body_bytes,
        require_content_length: require_content_length?,
        buffer_body: buffer_body?,
        websocket: websocket?,
        produces,
        consumes,
        consumes_encodings,
        access: access?,
        rate_limits: rate_limits?,
        max_in_flight: max_in_flight?,
        deadline: deadline?,
        idempotency: idempotency?,
        async_jobs: async_jobs?,
        openapi: None,
        validate_responses: validate_responses?,
        transform: transform?,
        cache: cache?,
        grpc: grpc?,
    })
}

/// `grpc` (routes with an `upstream`): the route's callers are gRPC clients.
fn read_grpc(r: &mut Reader, path: &str, f: &Fields<'_>) -> Option<bool> {
    let Some(n) = f.get("grpc") else {
        return Some(false);
    };
    let gpath = join(path, "grpc");
    let grpc = r.boolean(n, &gpath)?;
    if grpc && f.get("upstream").is_none() {
        r.problem(n, &gpath, "`grpc` is for routes with an `upstream`");
        return None;
    }
    Some(grpc)
}

/// `validate_responses: off | report | enforce` (routes with an `upstream`).
fn read_response_check(r: &mut Reader, path: &str, f: &Fields<'_>) -> Option<ResponseCheck> {
    let Some(n) = f.get("validate_responses") else {
        return Some(ResponseCheck::Off);
    };
    let vpath = join(path, "validate_responses");
    let check = match r.string(n, &vpath)? {
        "off" => ResponseCheck::Off,
        "report" => ResponseCheck::Report,
        "enforce" => ResponseCheck::Enforce,
        other => {
            r.problem(
                n,
                &vpath,
                format!("`{other}` is not `off`, `report` or `enforce`"),
            );
            return None;
        }
    };
    if check != ResponseCheck::Off && f.get("upstream").is_none() {
        r.problem(
            n,
            &vpath,
            "`validate_responses` is for routes with an `upstream`",
        );
        return None;
    }
    Some(check)
}

/// What answers the route: exactly one of `upstream`, `handler`, `redirect` and `use_proxy`.
fn read_answer(
    r: &mut Reader,
    node: &Node,
    path: &str,
    f: &Fields<'_>,
    upstreams: &[Upstream],
    template: Option<&PathTemplate>,
    methods: Option<MethodSet>,
) -> Option<Answer> {
    let given: Vec<(&str, &Node)> = ["upstream", "handler", "redirect", "use_proxy"]
        .into_iter()
        .filter_map(|k| f.get(k).map(|n| (k, n)))
        .collect();
    let answer = match given.as_slice() {
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
            redirect::read(r, d, &join(path, "redirect"), template).map(Answer::Redirect)
        }
        [("use_proxy", n)] => {
            let ppath = join(path, "use_proxy");
            r.string(n, &ppath).and_then(|u| {
                if valid_proxy_url(u) {
                    Some(Answer::UseProxy(u.to_string()))
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
                    Some(i) => Some(Answer::Upstream(i)),
                    None => {
                        r.problem(u, &upath, format!("unknown upstream `{name}`"));
                        None
                    }
                }
            })
        }
        [(_, h)] => read_built_in(r, node, path, f, h, template, methods).map(Answer::BuiltIn),
    };
    if let Some(n) = f.get("token_ttl")
        && !matches!(answer, Some(Answer::BuiltIn(BuiltIn::Tokens { .. })))
        && given.len() == 1
    {
        r.problem(
            n,
            &join(path, "token_ttl"),
            "`token_ttl` is for `handler: tokens`",
        );
    }
    answer
}

/// `handler: echo | static | tokens`.
fn read_built_in(
    r: &mut Reader,
    node: &Node,
    path: &str,
    f: &Fields<'_>,
    h: &Node,
    template: Option<&PathTemplate>,
    methods: Option<MethodSet>,
) -> Option<BuiltIn> {
    let hpath = join(path, "handler");
    match r.string(h, &hpath)? {
        "echo" => Some(BuiltIn::Echo),
        "tokens" => {
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
                ttl.map(|ttl| BuiltIn::Tokens { ttl })
            }
        }
        "static" => content::read_static(r, node, path, f, template, methods).map(BuiltIn::Static),
        other => {
            r.problem(
                h,
                &hpath,
                format!("unknown handler `{other}`; available: echo, static, tokens"),
            );
            None
        }
    }
}

/// `require_content_length` and `buffer_body`.
fn read_body_rules(r: &mut Reader, path: &str, f: &Fields<'_>) -> (Option<bool>, Option<bool>) {
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
    (require_content_length, buffer_body)
}

/// What a route's bodies and answers are: `produces`, `consumes`, `consumes_encodings`.
type Content = (Vec<MediaType>, Vec<MediaType>, Option<Vec<ContentCoding>>);

fn read_content(r: &mut Reader, path: &str, f: &Fields<'_>) -> Option<Content> {
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
    Some((produces?, consumes?, consumes_encodings?))
}

/// WebSocket is relayed over HTTP/1.1, which `h2c://` targets do not speak.
fn check_websocket_upstream(
    r: &mut Reader,
    node: &Node,
    path: &str,
    f: &Fields<'_>,
    websocket: Option<Duration>,
    answer: Option<&Answer>,
    upstreams: &[Upstream],
) -> Option<Option<Duration>> {
    if let (Some(_), Some(Answer::Upstream(i))) = (websocket, answer)
        && upstreams[*i]
            .targets
            .iter()
            .any(|t| t.transport == Transport::H2c)
    {
        r.problem(
            f.get("websocket").unwrap_or(node),
            &join(path, "websocket"),
            "WebSocket is relayed over HTTP/1.1, and this route's upstream has `h2c://` targets, which speak HTTP/2 only",
        );
        return None;
    }
    Some(websocket)
}

/// `http://host:port` or `https://host:port` (a path of `/` at most): a host name, an IPv4
/// address or a bracketed IPv6 one, and a port when it has one. It goes in a `Location`, so it
/// must be a URL any client reads.
pub(crate) fn valid_proxy_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, tail)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", tail),
            _ => return false,
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, &authority[h.len()..][..p.len() + 1]),
            None => (authority, ""),
        },
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    port_ok && host_ok
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
                Some(m) if !Method::ROUTABLE.contains(&m) => {
                    r.problem(item, &ipath, format!("{s} cannot be routed"));
                    ok = false;
                }
                Some(m) if set.contains(m) => {
                    r.problem(item, &ipath, format!("`{s}` is listed twice"));
                    ok = false;
                }
                Some(m) => set.insert(m),
                None => {
                    let known: Vec<&str> = Method::ROUTABLE.iter().map(|m| m.as_str()).collect();
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

/// `websocket` and `websocket_idle_timeout`: WebSocket is relayed to an upstream, and its
/// handshake is a GET.
fn read_websocket(
    r: &mut Reader,
    node: &Node,
    path: &str,
    f: &Fields<'_>,
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
pub(crate) fn check_buffer_budget(r: &mut Reader, routes: &[(Origin, Route)], limits: &Limits) {
    for (at, route) in routes {
        let max = route.max_body_bytes.unwrap_or(limits.max_body_bytes);
        if route.buffer_body && max > limits.body_buffer_bytes {
            r.problem_at(
                at,
                "buffer_body",
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
            r.problem_at(
                at,
                "auth",
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
pub(crate) fn check_jobs_paths(r: &mut Reader, routes: &[(Origin, Route)]) {
    for (i, (at, route)) in routes.iter().enumerate() {
        let Some(jobs) = &route.async_jobs else {
            continue;
        };
        if routes[..i].iter().any(|(_, other)| {
            other
                .async_jobs
                .as_ref()
                .is_some_and(|o| o.path == jobs.path && other.access != route.access)
        }) {
            r.problem_at(
                at,
                "async.path",
                format!(
                    "jobs at `{}` are read with the access rules of the routes that make them, and another async route with jobs there has different ones: give this route its own `path`",
                    jobs.path
                ),
            );
        }
    }
}
