//! Who may call: the projects and their consumers (the same model the admin API keeps in the
//! store), and what each route asks of a caller (`auth`, `api_key`, `allow_cidrs`,
//! `deny_cidrs`).
//!
//! ```yaml
//! projects:
//!   - id: 0123456789abcdef0123456789abcdef   # optional: derived from the name when absent
//!     name: demo
//!     billing_state: active                  # suspended → 402, closed → 403
//!     plan: basic
//!     consumers:
//!       - name: alice
//!         roles: [member]
//!         api_keys: [${ALICE_API_KEY}]        # secrets may come from the environment
//! routes:
//!   - name: servers
//!     path: /v1/{project_id}/servers
//!     methods: [GET]
//!     upstream: compute
//!     auth: [api_key]                        # token, jwt, signature, api_key, none
//!     api_key: {header: X-Api-Key}           # or {query: api_key}
//!     allow_cidrs: [127.0.0.0/8]
//! ```
//!
//! A secret written as `${NAME}` is the environment variable `NAME` (missing → a problem);
//! API keys are kept only as their SHA-256 from the moment they are read.

use std::time::SystemTime;

use portico_http::Method;
use portico_policy::cors::CorsPolicy;
use portico_policy::jwt::{JwtSettings, JwtVerifier};
use portico_policy::rules::Rule;
use portico_policy::{Cidr, Secret, hex, sha256};

use crate::read::{Fields, Reader, join};
use crate::yaml::Node;

/// What a route asks of its callers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// The ways a caller may prove who it is, in the order they are tried; empty when the
    /// route is open to anyone (`auth: none`, or no `auth`).
    pub schemes: Vec<AuthScheme>,
    /// A caller with no credentials at all is let through (`none` listed beside others).
    pub anonymous: bool,
    /// Where an API key is read.
    pub api_key: ApiKeyPlace,
    /// When not empty, only clients inside one of these networks are served.
    pub allow_cidrs: Vec<Cidr>,
    /// Clients inside any of these networks are refused.
    pub deny_cidrs: Vec<Cidr>,
    /// Ordered `allow` / `deny` rules over the caller and the request.
    pub policy: Vec<Rule>,
    /// Which browser origins may call the route.
    pub cors: Option<CorsPolicy>,
}

impl Access {
    /// Whether the route asks for anything at all.
    pub fn is_open(&self) -> bool {
        self.schemes.is_empty()
            && self.allow_cidrs.is_empty()
            && self.deny_cidrs.is_empty()
            && self.policy.is_empty()
            && self.cors.is_none()
    }
}

/// A way of proving who one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// A token from the token service, in `X-Auth-Token`.
    Token,
    /// A JSON Web Token in `Authorization: Bearer`.
    Jwt,
    /// A request signed with an access key (`Authorization: SDK-HMAC-SHA256 …`).
    Signature,
    /// An API key, in a header or a query parameter.
    ApiKey,
}

impl AuthScheme {
    /// Its name in the file.
    pub fn name(self) -> &'static str {
        match self {
            AuthScheme::Token => "token",
            AuthScheme::Jwt => "jwt",
            AuthScheme::Signature => "signature",
            AuthScheme::ApiKey => "api_key",
        }
    }
}

/// Where a route reads an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiKeyPlace {
    /// A request header (`X-Api-Key` unless the route says otherwise).
    Header(String),
    /// A query parameter.
    Query(String),
}

impl Default for ApiKeyPlace {
    fn default() -> Self {
        ApiKeyPlace::Header("X-Api-Key".to_string())
    }
}

/// A project: a tenant, whose id is the `{project_id}` in its callers' URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// 32 lowercase hexadecimal characters.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Whether it may use the APIs.
    pub billing_state: BillingState,
    /// Its plan's name.
    pub plan: String,
    /// Its identities.
    pub consumers: Vec<Consumer>,
}

/// Whether a project may use the APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingState {
    /// It may.
    Active,
    /// Not until it pays: 402.
    Suspended,
    /// Never again: 403.
    Closed,
}

impl BillingState {
    /// Reads `active`, `suspended` or `closed`.
    pub fn parse(s: &str) -> Option<BillingState> {
        match s {
            "active" => Some(BillingState::Active),
            "suspended" => Some(BillingState::Suspended),
            "closed" => Some(BillingState::Closed),
            _ => None,
        }
    }
}

/// An identity of a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// Unique in its project.
    pub name: String,
    /// What it may do (policies name roles).
    pub roles: Vec<String>,
    /// A disabled consumer's credentials are all refused.
    pub enabled: bool,
    /// Its API keys.
    pub api_keys: Vec<ApiKey>,
    /// Its access keys, for signed requests.
    pub access_keys: Vec<AccessKey>,
    /// Its password, for the token service (from the file).
    pub password: Option<Secret>,
    /// Its password as the admin API keeps it (`pbkdf2-sha256$…`), for the token service.
    pub password_hash: Option<String>,
}

/// An access key: a public id and the secret key requests are signed with (which Portico must
/// hold to check a signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    /// The public id (`AK…`), in `Authorization: SDK-HMAC-SHA256 Access=…`.
    pub id: String,
    /// The secret key.
    pub secret: Secret,
    /// A revoked (disabled) key is refused.
    pub enabled: bool,
}

/// An API key, as Portico keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// A revoked (disabled) key is refused.
    pub enabled: bool,
    /// After this, the key is refused.
    pub expires: Option<SystemTime>,
}

const API_KEY_PLACE_KEYS: &[&str] = &["header", "query"];
const RULE_KEYS: &[&str] = &["allow", "deny"];
const CORS_KEYS: &[&str] = &[
    "origins",
    "methods",
    "headers",
    "credentials",
    "max_age",
    "expose_headers",
];
const CONDITION_KEYS: &[&str] = &["consumers", "roles", "methods", "paths"];
const PROJECT_KEYS: &[&str] = &["id", "name", "billing_state", "plan", "consumers"];
const CONSUMER_KEYS: &[&str] = &[
    "name",
    "roles",
    "enabled",
    "api_keys",
    "access_keys",
    "password",
];
const ACCESS_KEY_KEYS: &[&str] = &["id", "secret"];

/// Reads a route's access keys from its mapping entries.
pub(crate) fn read_access(r: &mut Reader, f: &Fields<'_>, path: &str) -> Option<Access> {
    let mut access = Access::default();
    let mut ok = true;
    if let Some(n) = f.get("auth") {
        let apath = join(path, "auth");
        let items: &[Node] = match &n.kind {
            crate::yaml::Kind::Seq(items) => items,
            _ => std::slice::from_ref(n),
        };
        if items.is_empty() {
            r.problem(n, &apath, "list at least one scheme, or `none`");
            ok = false;
        }
        let mut none = false;
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{apath}[{i}]");
            let scheme = match r.string(item, &ipath) {
                Some("none") => {
                    none = true;
                    continue;
                }
                Some("token") => AuthScheme::Token,
                Some("jwt") => AuthScheme::Jwt,
                Some("signature") => AuthScheme::Signature,
                Some("api_key") => AuthScheme::ApiKey,
                Some(other) => {
                    r.problem(
                        item,
                        &ipath,
                        format!(
                            "unknown scheme `{other}`; schemes: token, jwt, signature, api_key, none"
                        ),
                    );
                    ok = false;
                    continue;
                }
                None => {
                    ok = false;
                    continue;
                }
            };
            if access.schemes.contains(&scheme) {
                r.problem(item, &ipath, format!("`{}` is listed twice", scheme.name()));
                ok = false;
            } else {
                access.schemes.push(scheme);
            }
        }
        access.anonymous = none && !access.schemes.is_empty();
    }
    if let Some(n) = f.get("api_key") {
        let kpath = join(path, "api_key");
        match r.map(n, &kpath, API_KEY_PLACE_KEYS) {
            Some(place) => match (place.get("header"), place.get("query")) {
                (Some(h), None) => match r.string(h, &join(&kpath, "header")) {
                    Some(name) if valid_token(name) => {
                        access.api_key = ApiKeyPlace::Header(name.to_string());
                    }
                    Some(name) => {
                        r.problem(
                            h,
                            &join(&kpath, "header"),
                            format!("`{name}` is not a field name"),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                (None, Some(q)) => match r.string(q, &join(&kpath, "query")) {
                    Some(name) if !name.is_empty() && !name.contains(['&', '=', '#']) => {
                        access.api_key = ApiKeyPlace::Query(name.to_string());
                    }
                    Some(name) => {
                        r.problem(
                            q,
                            &join(&kpath, "query"),
                            format!("`{name}` is not a query parameter name"),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                _ => {
                    r.problem(n, &kpath, "give one of `header` or `query`");
                    ok = false;
                }
            },
            None => ok = false,
        }
        if !access.schemes.contains(&AuthScheme::ApiKey) {
            r.problem(
                n,
                &kpath,
                "`api_key` is for routes whose `auth` lists `api_key`",
            );
            ok = false;
        }
    }
    for (key, slot) in [
        ("allow_cidrs", &mut access.allow_cidrs),
        ("deny_cidrs", &mut access.deny_cidrs),
    ] {
        let Some(n) = f.get(key) else { continue };
        let cpath = join(path, key);
        let Some(items) = r.seq(n, &cpath) else {
            ok = false;
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{cpath}[{i}]");
            match r.string(item, &ipath).map(Cidr::parse) {
                Some(Ok(c)) => slot.push(c),
                Some(Err(msg)) => {
                    r.problem(item, &ipath, msg);
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    if let Some(n) = f.get("cors") {
        match read_cors(r, n, &join(path, "cors")) {
            Some(c) => access.cors = Some(c),
            None => ok = false,
        }
    }
    if let Some(n) = f.get("policy") {
        match read_policy(r, n, &join(path, "policy")) {
            Some(rules) => access.policy = rules,
            None => ok = false,
        }
    }
    ok.then_some(access)
}

/// Reads `cors: {origins, methods, headers, credentials, max_age, expose_headers}`.
fn read_cors(r: &mut Reader, node: &Node, path: &str) -> Option<CorsPolicy> {
    let f = r.map(node, path, CORS_KEYS)?;
    let mut ok = true;
    let mut list = |r: &mut Reader, key: &str, check: &dyn Fn(&str) -> Option<String>| {
        let mut out = Vec::new();
        let Some(n) = f.get(key) else { return out };
        let kpath = join(path, key);
        for (i, item) in r.seq(n, &kpath).unwrap_or_default().iter().enumerate() {
            let ipath = format!("{kpath}[{i}]");
            match r.string(item, &ipath) {
                Some(v) => match check(v) {
                    Some(v) => out.push(v),
                    None => {
                        r.problem(item, &ipath, format!("`{v}` is not valid here"));
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
        out
    };
    let origins = list(r, "origins", &|o| {
        let valid = o == "*"
            || ((o.starts_with("http://") || o.starts_with("https://"))
                && !o.trim_end_matches('/').contains(['?', '#'])
                && o.matches('/').count() == 2);
        valid.then(|| o.to_string())
    });
    let methods = list(r, "methods", &|m| {
        Method::routable(m.as_bytes()).map(|_| m.to_string())
    });
    let headers = list(r, "headers", &|h| {
        valid_token(h).then(|| h.to_ascii_lowercase())
    });
    let expose = list(r, "expose_headers", &|h| {
        valid_token(h).then(|| h.to_string())
    });
    let credentials = f
        .get("credentials")
        .map_or(Some(false), |n| r.boolean(n, &join(path, "credentials")));
    let max_age = match f.get("max_age") {
        None => Some(None),
        Some(n) => r
            .duration(n, &join(path, "max_age"))
            .map(|d| Some(d.as_secs())),
    };
    if origins.is_empty() && ok {
        r.problem(
            node,
            &join(path, "origins"),
            "list at least one origin (`https://app.example`, or `*`)",
        );
        ok = false;
    }
    if credentials == Some(true) && origins.iter().any(|o| o == "*") {
        r.problem(
            node,
            &join(path, "credentials"),
            "browsers refuse credentials with any origin (`*`): list the origins",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(CorsPolicy {
        origins,
        methods,
        headers,
        credentials: credentials?,
        max_age: max_age?,
        expose,
    })
}

/// Reads `policy: [{allow: {...}} | {deny: {...}}, ...]`.
fn read_policy(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<Rule>> {
    let items = r.seq(node, path)?;
    let mut rules = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let Some(f) = r.map(item, &ipath, RULE_KEYS) else {
            ok = false;
            continue;
        };
        let (allow, cond) = match (f.get("allow"), f.get("deny")) {
            (Some(c), None) => (true, c),
            (None, Some(c)) => (false, c),
            _ => {
                r.problem(item, &ipath, "a rule is `allow: {…}` or `deny: {…}`");
                ok = false;
                continue;
            }
        };
        let cpath = join(&ipath, if allow { "allow" } else { "deny" });
        let Some(c) = r.map(cond, &cpath, CONDITION_KEYS) else {
            ok = false;
            continue;
        };
        let mut lists: [Vec<String>; 4] = Default::default();
        for (slot, key) in CONDITION_KEYS.iter().enumerate() {
            let Some(n) = c.get(key) else { continue };
            let kpath = join(&cpath, key);
            for (j, v) in r.seq(n, &kpath).unwrap_or_default().iter().enumerate() {
                let vpath = format!("{kpath}[{j}]");
                let Some(text) = r.string(v, &vpath) else {
                    ok = false;
                    continue;
                };
                let fine = match *key {
                    "methods" => Method::routable(text.as_bytes()).is_some(),
                    "paths" => text.starts_with('/'),
                    _ => valid_name(text),
                };
                if fine {
                    lists[slot].push(text.to_string());
                } else {
                    let what = match *key {
                        "methods" => "an upper-case method",
                        "paths" => "a path, `/…`, ending in `*` for a prefix",
                        _ => "a name",
                    };
                    r.problem(v, &vpath, format!("`{text}` is not {what}"));
                    ok = false;
                }
            }
        }
        let [consumers, roles, methods, paths] = lists;
        rules.push(Rule {
            allow,
            consumers,
            roles,
            methods,
            paths,
        });
    }
    ok.then_some(rules)
}

/// An access key id: letters and digits.
fn valid_access_key_id(s: &str) -> bool {
    (4..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An RFC 9110 token (a field name).
fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reads `projects`.
pub(crate) fn read_projects(r: &mut Reader, node: &Node) -> Option<Vec<Project>> {
    let items = r.seq(node, "projects")?;
    let mut out: Vec<Project> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("projects[{i}]");
        match read_project(r, item, &path) {
            Some(p) => {
                let taken = p.consumers.iter().flat_map(|c| &c.access_keys).find(|k| {
                    out.iter()
                        .flat_map(|o| &o.consumers)
                        .flat_map(|c| &c.access_keys)
                        .any(|o| o.id == k.id)
                });
                if let Some(k) = taken {
                    r.problem(
                        item,
                        &path,
                        format!("access key id `{}` is used twice", k.id),
                    );
                    ok = false;
                } else if out.iter().any(|o| o.name == p.name) {
                    r.problem(
                        item,
                        &join(&path, "name"),
                        format!("project `{}` is defined twice", p.name),
                    );
                    ok = false;
                } else if out.iter().any(|o| o.id == p.id) {
                    r.problem(
                        item,
                        &join(&path, "id"),
                        format!("project id `{}` is used twice", p.id),
                    );
                    ok = false;
                } else {
                    out.push(p);
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The id of a project declared without one: derived from its name, so that it is the same
/// on every node and after every restart.
pub fn project_id_for(name: &str) -> String {
    hex(&sha256(format!("portico project {name}").as_bytes())[..16])
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

pub(crate) fn name_at(r: &mut Reader, node: &Node, f: &Fields<'_>, path: &str) -> Option<String> {
    match f.get("name") {
        None => {
            r.missing(node, path, "name");
            None
        }
        Some(n) => {
            let s = r.string(n, &join(path, "name"))?;
            if valid_name(s) {
                Some(s.to_string())
            } else {
                r.problem(
                    n,
                    &join(path, "name"),
                    "a name is 1 to 64 letters, digits, `-`, `_` or `.`",
                );
                None
            }
        }
    }
}

fn read_project(r: &mut Reader, node: &Node, path: &str) -> Option<Project> {
    let f = r.map(node, path, PROJECT_KEYS)?;
    let name = name_at(r, node, &f, path);
    let id = match f.get("id") {
        None => name.as_deref().map(project_id_for),
        Some(n) => r.string(n, &join(path, "id")).and_then(|s| {
            if s.len() == 32
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                Some(s.to_string())
            } else {
                r.problem(
                    n,
                    &join(path, "id"),
                    "a project id is 32 lowercase hexadecimal characters",
                );
                None
            }
        }),
    };
    let billing_state = match f.get("billing_state") {
        None => Some(BillingState::Active),
        Some(n) => r.string(n, &join(path, "billing_state")).and_then(|s| {
            let state = BillingState::parse(s);
            if state.is_none() {
                r.problem(
                    n,
                    &join(path, "billing_state"),
                    "`billing_state` is active, suspended or closed",
                );
            }
            state
        }),
    };
    let plan = match f.get("plan") {
        None => Some(crate::plans::DEFAULT_PLAN.to_string()),
        Some(n) => r.string(n, &join(path, "plan")).map(str::to_string),
    };
    let mut consumers: Vec<Consumer> = Vec::new();
    let mut ok = true;
    if let Some(n) = f.get("consumers") {
        let cpath = join(path, "consumers");
        match r.seq(n, &cpath) {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{cpath}[{i}]");
                    match read_consumer(r, item, &ipath) {
                        Some(c) if consumers.iter().any(|o| o.name == c.name) => {
                            r.problem(
                                item,
                                &join(&ipath, "name"),
                                format!("consumer `{}` is defined twice", c.name),
                            );
                            ok = false;
                        }
                        Some(c) => consumers.push(c),
                        None => ok = false,
                    }
                }
            }
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(Project {
        id: id?,
        name: name?,
        billing_state: billing_state?,
        plan: plan?,
        consumers,
    })
}

fn read_consumer(r: &mut Reader, node: &Node, path: &str) -> Option<Consumer> {
    let f = r.map(node, path, CONSUMER_KEYS)?;
    let name = name_at(r, node, &f, path);
    let enabled = f
        .get("enabled")
        .map_or(Some(true), |n| r.boolean(n, &join(path, "enabled")));
    let mut ok = true;
    let mut roles = Vec::new();
    if let Some(n) = f.get("roles") {
        let rpath = join(path, "roles");
        for (i, item) in r.seq(n, &rpath).unwrap_or_default().iter().enumerate() {
            match r.string(item, &format!("{rpath}[{i}]")) {
                Some(s) if valid_name(s) => roles.push(s.to_string()),
                Some(_) => {
                    r.problem(item, &format!("{rpath}[{i}]"), "a role is a name");
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    let mut api_keys = Vec::new();
    if let Some(n) = f.get("api_keys") {
        let kpath = join(path, "api_keys");
        for (i, item) in r.seq(n, &kpath).unwrap_or_default().iter().enumerate() {
            match secret(r, item, &format!("{kpath}[{i}]")) {
                Some(key) if key.expose().len() >= 16 => api_keys.push(ApiKey {
                    sha256: sha256(key.expose().as_bytes()),
                    enabled: true,
                    expires: None,
                }),
                Some(_) => {
                    r.problem(
                        item,
                        &format!("{kpath}[{i}]"),
                        "an API key has at least 16 characters",
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    let mut access_keys: Vec<AccessKey> = Vec::new();
    if let Some(n) = f.get("access_keys") {
        let kpath = join(path, "access_keys");
        for (i, item) in r.seq(n, &kpath).unwrap_or_default().iter().enumerate() {
            let ipath = format!("{kpath}[{i}]");
            let Some(k) = r.map(item, &ipath, ACCESS_KEY_KEYS) else {
                ok = false;
                continue;
            };
            let id = match k.get("id") {
                None => {
                    r.missing(item, &ipath, "id");
                    None
                }
                Some(idn) => match r.string(idn, &join(&ipath, "id")) {
                    Some(s) if valid_access_key_id(s) => Some(s.to_string()),
                    Some(_) => {
                        r.problem(
                            idn,
                            &join(&ipath, "id"),
                            "an access key id is 4 to 128 letters and digits",
                        );
                        None
                    }
                    None => None,
                },
            };
            let secret = match k.get("secret") {
                None => {
                    r.missing(item, &ipath, "secret");
                    None
                }
                Some(sn) => match secret(r, sn, &join(&ipath, "secret")) {
                    Some(s) if s.expose().len() >= 16 => Some(s),
                    Some(_) => {
                        r.problem(
                            sn,
                            &join(&ipath, "secret"),
                            "a secret key has at least 16 characters",
                        );
                        None
                    }
                    None => None,
                },
            };
            match (id, secret) {
                (Some(id), Some(secret)) => access_keys.push(AccessKey {
                    id,
                    secret,
                    enabled: true,
                }),
                _ => ok = false,
            }
        }
    }
    let password = match f.get("password") {
        None => None,
        Some(n) => match secret(r, n, &join(path, "password")) {
            Some(p) if p.expose().len() >= 8 => Some(p),
            Some(_) => {
                r.problem(
                    n,
                    &join(path, "password"),
                    "a password has at least 8 characters",
                );
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
        },
    };
    if !ok {
        return None;
    }
    Some(Consumer {
        name: name?,
        roles,
        enabled: enabled?,
        api_keys,
        access_keys,
        password,
        password_hash: None,
    })
}

/// A secret: the text, or the environment variable it names as `${NAME}`. The text of a
/// problem never includes the secret.
fn secret(r: &mut Reader, node: &Node, path: &str) -> Option<Secret> {
    let text = r.string(node, path)?;
    let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
        return Some(Secret::new(text));
    };
    match r.env(name) {
        Some(v) if !v.is_empty() => Some(Secret::new(v)),
        _ => {
            r.problem(
                node,
                path,
                format!("the environment variable `{name}` is not set"),
            );
            None
        }
    }
}

/// The identity provider whose JSON Web Tokens routes with `auth: jwt` take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwt {
    /// The key set (JWKS), as read from its file.
    pub jwks: String,
    /// What the tokens must say, and where the identity is in them.
    pub settings: JwtSettings,
}

const JWT_KEYS: &[&str] = &[
    "jwks",
    "issuer",
    "audience",
    "leeway",
    "project_claim",
    "consumer_claim",
    "roles_claim",
];

/// Reads `jwt`, and its key set from the file it names.
pub(crate) fn read_jwt(r: &mut Reader, node: &Node) -> Option<Jwt> {
    let path = "jwt";
    let f = r.map(node, path, JWT_KEYS)?;
    let text = |r: &mut Reader, key: &str, default: Option<&str>| -> Option<String> {
        match f.get(key) {
            None => match default {
                Some(d) => Some(d.to_string()),
                None => {
                    r.missing(node, path, key);
                    None
                }
            },
            Some(n) => r.string(n, &join(path, key)).map(str::to_string),
        }
    };
    let issuer = text(r, "issuer", None);
    let audience = text(r, "audience", None);
    let project_claim = text(r, "project_claim", Some("project_id"));
    let consumer_claim = text(r, "consumer_claim", Some("sub"));
    let roles_claim = text(r, "roles_claim", Some("roles"));
    let leeway = match f.get("leeway") {
        None => Some(std::time::Duration::from_secs(30)),
        Some(n) => r.duration(n, "jwt.leeway"),
    };
    let jwks = match f.get("jwks") {
        None => {
            r.missing(node, path, "jwks");
            None
        }
        Some(n) => r.string(n, "jwt.jwks").and_then(|file| {
            let full = r.resolve_path(file);
            match std::fs::read_to_string(&full) {
                Ok(t) => Some((n, t)),
                Err(e) => {
                    r.problem(
                        n,
                        "jwt.jwks",
                        format!("cannot read {}: {e}", full.display()),
                    );
                    None
                }
            }
        }),
    };
    let settings = JwtSettings {
        issuer: issuer?,
        audience: audience?,
        leeway: leeway?,
        project_claim: project_claim?,
        consumer_claim: consumer_claim?,
        roles_claim: roles_claim?,
    };
    let (n, jwks) = jwks?;
    if let Err(e) = JwtVerifier::from_jwks(&jwks, settings.clone()) {
        r.problem(n, "jwt.jwks", e);
        return None;
    }
    Some(Jwt { jwks, settings })
}
