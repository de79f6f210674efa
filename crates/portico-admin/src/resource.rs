//! The admin resources: what each is called and what its documents must hold.

use portico_config::Section;
use portico_policy::hex;
use portico_server::Error;
use portico_store::Document;
use serde_json::{Map, Value, json};

use crate::invalid;

/// A resource document, as JSON object members.
pub(crate) type Fields = Map<String, Value>;

/// A kind of resource.
pub(crate) struct Kind {
    /// Its collection name, in URLs and in the store.
    pub(crate) name: &'static str,
    /// The kind whose items hold this kind's collection (`projects/{id}/consumers`): an
    /// item's store scope is its parent's id.
    pub(crate) parent: Option<&'static Kind>,
    /// The part of the data plane's model it is (upstreams, routes, APIs): checked with the
    /// configuration file's rules against the file and the other documents, and loaded by
    /// the data plane.
    pub(crate) section: Option<Section>,
    /// Checks a document sent by a client (after a merge patch, for PATCH) against the rules,
    /// and returns it with defaults filled in; `current` is the document it replaces.
    pub(crate) validate: fn(Fields, Option<&Document>) -> Result<Fields, Error>,
    /// At creation, makes the item's secret: adds what Portico keeps of it (a hash) to the
    /// document and returns the secret, which the response shows this once.
    pub(crate) issue: Option<fn(&mut Fields) -> Option<String>>,
    /// Members kept in the store that no response and no export shows.
    pub(crate) hidden: &'static [&'static str],
    /// The unique name of a valid document in its scope.
    pub(crate) store_name: fn(&Fields) -> String,
    /// Its items have request counts (`…/{id}/stats`, `…/{id}/stats/reset`).
    pub(crate) stats: bool,
}

impl Kind {
    const fn global(
        name: &'static str,
        validate: fn(Fields, Option<&Document>) -> Result<Fields, Error>,
    ) -> Kind {
        Kind {
            name,
            parent: None,
            section: None,
            validate,
            issue: None,
            hidden: &[],
            store_name: name_member,
            stats: false,
        }
    }

    const fn model(section: Section) -> Kind {
        Kind {
            section: Some(section),
            ..Kind::global(section.name(), named)
        }
    }
}

fn name_member(doc: &Fields) -> String {
    doc.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Projects: the tenants whose callers use the APIs.
pub(crate) const PROJECTS: Kind = Kind::global("projects", project);

/// Consumers: the identities of a project.
pub(crate) const CONSUMERS: Kind = Kind {
    parent: Some(&PROJECTS),
    ..Kind::global("consumers", consumer)
};

/// Credentials: what a consumer proves itself with. The secret is shown once, in the
/// response that creates it: of an API key Portico keeps the SHA-256; of an access key it keeps
/// the secret key itself (a signature can be checked only with it), shown to no one again.
pub(crate) const CREDENTIALS: Kind = Kind {
    parent: Some(&CONSUMERS),
    issue: Some(issue_credential),
    hidden: &["secret_sha256", "secret_key", "password_hash"],
    store_name: credential_name,
    ..Kind::global("credentials", credential)
};

/// Plans: what a project's callers may use (quota, rate limits).
pub(crate) const PLANS: Kind = Kind::global("plans", plan);

/// Upstreams, as in the configuration file's `upstreams`.
pub(crate) const UPSTREAMS: Kind = Kind::model(Section::Upstreams);

/// Routes, as in the configuration file's `routes`.
pub(crate) const ROUTES: Kind = Kind {
    stats: true,
    ..Kind::model(Section::Routes)
};

/// APIs and their versions' lifecycle, as in the configuration file's `apis`.
pub(crate) const APIS: Kind = Kind::model(Section::Apis);

/// Every kind.
pub(crate) const KINDS: [&Kind; 7] = [
    &PROJECTS,
    &CONSUMERS,
    &CREDENTIALS,
    &PLANS,
    &UPSTREAMS,
    &ROUTES,
    &APIS,
];

/// The kinds of the data plane's model.
pub(crate) const MODEL: [&Kind; 3] = [&UPSTREAMS, &ROUTES, &APIS];

/// A model document: what it must hold is the configuration's to say (checked after this);
/// here only the read-only fields go and its `name` must be a string.
fn named(mut doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    for key in READ_ONLY {
        doc.remove(*key);
    }
    if doc.get("name").and_then(Value::as_str).is_none() {
        return Err(invalid(vec![(
            "/name".to_string(),
            "`name` is required, a string".to_string(),
        )]));
    }
    Ok(doc)
}

/// Fields a client may echo back from a representation; Portico keeps its own values.
const READ_ONLY: &[&str] = &["id", "created_ms", "updated_ms"];

const BILLING_STATES: &[&str] = &["active", "suspended", "closed"];

/// Collects the violations of one document.
struct Check {
    doc: Fields,
    violations: Vec<(String, String)>,
}

impl Check {
    fn new(mut doc: Fields) -> Check {
        for key in READ_ONLY {
            doc.remove(*key);
        }
        Check {
            doc,
            violations: Vec::new(),
        }
    }

    /// A violation at `pointer` (without its leading `/`; its tokens escaped already).
    fn violation(&mut self, pointer: &str, message: impl Into<String>) {
        self.violations
            .push((format!("/{pointer}"), message.into()));
    }

    fn name(&mut self) {
        match self.doc.get("name") {
            None => self.violation("name", "`name` is required"),
            Some(v) if v.as_str().is_some_and(valid_name) => {}
            Some(_) => self.violation("name", "`name` is 1 to 64 letters, digits, `-`, `_` or `.`"),
        }
    }

    fn description(&mut self) {
        if let Some(v) = self.doc.get("description")
            && v.as_str().is_none_or(|s| s.len() > 1024)
        {
            self.violation("description", "`description` is text of at most 1024 bytes");
        }
    }

    /// A boolean member, `default` when absent.
    fn flag(&mut self, key: &str, default: bool) {
        match self.doc.get(key) {
            None => {
                self.doc.insert(key.into(), json!(default));
            }
            Some(Value::Bool(_)) => {}
            Some(_) => self.violation(key, format!("`{key}` is true or false")),
        }
    }

    /// A member that is one of `values`, `default` when absent.
    fn one_of(&mut self, key: &str, values: &[&str], default: Option<&str>) {
        match self.doc.get(key) {
            None => match default {
                Some(d) => {
                    self.doc.insert(key.into(), json!(d));
                }
                None => self.violation(key, format!("`{key}` is required")),
            },
            Some(v) if v.as_str().is_some_and(|s| values.contains(&s)) => {}
            Some(_) => self.violation(key, format!("`{key}` is one of {}", values.join(", "))),
        }
    }

    fn finish(mut self, known: &[&str]) -> Result<Fields, Error> {
        let unknown: Vec<String> = self
            .doc
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.violation(&pointer_escape(&key), format!("unknown field `{key}`"));
        }
        if self.violations.is_empty() {
            Ok(self.doc)
        } else {
            Err(invalid(self.violations))
        }
    }
}

fn project(doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    let mut c = Check::new(doc);
    c.name();
    c.one_of("billing_state", BILLING_STATES, Some("active"));
    match c.doc.get("plan") {
        None => {
            c.doc.insert("plan".into(), json!("free"));
        }
        Some(v) if v.as_str().is_some_and(valid_name) => {}
        Some(_) => c.violation("plan", "`plan` is the name of a plan"),
    }
    c.description();
    c.finish(&["name", "billing_state", "plan", "description"])
}

fn consumer(doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    let mut c = Check::new(doc);
    c.name();
    c.description();
    c.flag("enabled", true);
    match c.doc.get("roles") {
        None => {
            c.doc.insert("roles".into(), json!([]));
        }
        Some(Value::Array(roles))
            if roles.len() <= 64 && roles.iter().all(|r| r.as_str().is_some_and(valid_name)) => {}
        Some(_) => c.violation("roles", "`roles` is a list of at most 64 names"),
    }
    c.finish(&["name", "description", "enabled", "roles"])
}

const CREDENTIAL_TYPES: &[&str] = &["api_key", "access_key", "password"];

fn credential(doc: Fields, current: Option<&Document>) -> Result<Fields, Error> {
    let mut c = Check::new(doc);
    // What Portico keeps of the secret is its own: a client can neither set nor change it.
    for key in [
        "secret_sha256",
        "prefix",
        "secret",
        "secret_key",
        "access_key_id",
        "password_hash",
    ] {
        c.doc.remove(key);
    }
    let password = c.doc.remove("password");
    c.one_of("type", CREDENTIAL_TYPES, Some("api_key"));
    c.description();
    c.flag("enabled", true);
    if let Some(v) = c.doc.get("expires_at")
        && v.as_str()
            .and_then(portico_config::parse_timestamp)
            .is_none()
    {
        c.violation(
            "expires_at",
            "`expires_at` is an RFC 3339 time such as 2027-01-01T00:00:00Z",
        );
    }
    if let Some(current) = current {
        if c.doc.get("type") != current.body.get("type") {
            c.violation("type", "a credential's `type` cannot change");
        }
        for key in [
            "secret_sha256",
            "prefix",
            "secret_key",
            "access_key_id",
            "password_hash",
        ] {
            if let Some(v) = current.body.get(key) {
                c.doc.insert(key.into(), v.clone());
            }
        }
    }
    // A password is sent by the client (at creation, or to change it) and kept only hashed.
    let is_password = c.doc.get("type").and_then(Value::as_str) == Some("password");
    match (password, is_password) {
        (Some(Value::String(p)), true) if p.len() >= 8 && p.len() <= 1024 => {
            let kept = portico_policy::password::hash_password(
                &p,
                &random::<16>(),
                portico_policy::password::ITERATIONS,
            );
            c.doc.insert("password_hash".into(), json!(kept));
        }
        (Some(_), true) => c.violation("password", "`password` is text of 8 to 1024 bytes"),
        (Some(_), false) => c.violation(
            "password",
            "`password` is for credentials of type `password`",
        ),
        (None, true) if !c.doc.contains_key("password_hash") => {
            c.violation("password", "`password` is required (8 to 1024 bytes)");
        }
        (None, _) => {}
    }
    c.finish(&[
        "type",
        "description",
        "enabled",
        "expires_at",
        "secret_sha256",
        "prefix",
        "secret_key",
        "access_key_id",
        "password_hash",
    ])
}

/// `n` bytes from the operating system's random source.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The operating system's generator does not fail on the systems Portico runs on; if it
    // ever did, a secret must not be issued from a predictable source.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}

/// An API key (`pk_` and 64 hexadecimal digits), or an access key (an id `AK` and 20
/// upper-case hexadecimal digits, and a secret key of 40 hexadecimal digits), all from the
/// operating system's random source.
/// A password is the client's own: nothing is issued for it.
fn issue_credential(doc: &mut Fields) -> Option<String> {
    match doc.get("type").and_then(Value::as_str) {
        Some("password") => None,
        Some("access_key") => {
            let id = format!("AK{}", hex(&random::<10>()).to_ascii_uppercase());
            let secret = hex(&random::<20>());
            doc.insert("access_key_id".into(), json!(id));
            doc.insert("secret_key".into(), json!(secret));
            Some(secret)
        }
        _ => {
            let key = format!("pk_{}", hex(&random::<32>()));
            doc.insert(
                "secret_sha256".into(),
                json!(portico_policy::sha256_hex(key.as_bytes())),
            );
            doc.insert("prefix".into(), json!(key[..11].to_string()));
            Some(key)
        }
    }
}

/// A credential's unique name: its digest (API keys), its id (access keys), or `password`
/// (one per consumer).
fn credential_name(doc: &Fields) -> String {
    if doc.get("type").and_then(Value::as_str) == Some("password") {
        return "password".to_string();
    }
    ["secret_sha256", "access_key_id"]
        .iter()
        .find_map(|k| doc.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

const LIMIT_KEYS: &[&str] = &["consumer", "project", "route", "ip"];

fn plan(doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    let mut c = Check::new(doc);
    c.name();
    c.description();
    if let Some(q) = c.doc.get("quota").cloned() {
        let requests_ok = q
            .get("requests")
            .and_then(Value::as_u64)
            .is_some_and(|n| n > 0);
        let period_ok = q
            .get("period")
            .and_then(Value::as_str)
            .is_some_and(|p| ["day", "month"].contains(&p));
        let only_known = q
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k == "requests" || k == "period"));
        if !requests_ok {
            c.violation(
                "quota/requests",
                "`quota.requests` is a whole number above 0",
            );
        }
        if !period_ok {
            c.violation("quota/period", "`quota.period` is `day` or `month`");
        }
        if !only_known && q.is_object() {
            c.violation("quota", "`quota` has only `requests` and `period`");
        }
    }
    match c.doc.get("rate_limits").cloned() {
        None => {
            c.doc.insert("rate_limits".into(), json!([]));
        }
        Some(Value::Array(limits)) => {
            for (i, l) in limits.iter().enumerate() {
                let key_ok = l.get("key").and_then(Value::as_str).is_some_and(|k| {
                    LIMIT_KEYS.contains(&k)
                        || k.strip_prefix("header:").is_some_and(|h| {
                            !h.is_empty()
                                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        })
                });
                if !key_ok {
                    c.violation(
                        &format!("rate_limits/{i}/key"),
                        "`key` is consumer, project, route, ip or header:NAME",
                    );
                }
                if !l
                    .get("rate")
                    .and_then(Value::as_str)
                    .is_some_and(valid_rate)
                {
                    c.violation(
                        &format!("rate_limits/{i}/rate"),
                        "`rate` is N/s, N/m, N/h or N/d with N above 0",
                    );
                }
                if let Some(b) = l.get("burst")
                    && b.as_u64().is_none_or(|n| n == 0)
                {
                    c.violation(
                        &format!("rate_limits/{i}/burst"),
                        "`burst` is a whole number above 0",
                    );
                }
            }
        }
        Some(_) => c.violation("rate_limits", "`rate_limits` is a list"),
    }
    c.finish(&["name", "description", "quota", "rate_limits"])
}

fn valid_rate(s: &str) -> bool {
    s.split_once('/').is_some_and(|(n, unit)| {
        n.parse::<u64>().is_ok_and(|n| n > 0) && ["s", "m", "h", "d"].contains(&unit)
    })
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// RFC 6901: `~` is `~0` and `/` is `~1` in a pointer's reference token.
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
