//! The admin resources: what each is called and what its documents must hold.

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
    /// Part of the data plane's model (upstreams, routes): checked with the configuration
    /// file's rules against the file and the other documents, and loaded by the data plane.
    pub(crate) model: bool,
    /// Checks a document sent by a client (after a merge patch, for PATCH) against the rules,
    /// and returns it with defaults filled in; `current` is the document it replaces.
    pub(crate) validate: fn(Fields, Option<&Document>) -> Result<Fields, Error>,
}

/// Projects: the tenants whose callers use the APIs.
pub(crate) const PROJECTS: Kind = Kind {
    name: "projects",
    model: false,
    validate: project,
};

/// Upstreams, as in the configuration file's `upstreams`.
pub(crate) const UPSTREAMS: Kind = Kind {
    name: "upstreams",
    model: true,
    validate: named,
};

/// Routes, as in the configuration file's `routes`.
pub(crate) const ROUTES: Kind = Kind {
    name: "routes",
    model: true,
    validate: named,
};

/// Every kind, by collection name.
pub(crate) const KINDS: [&Kind; 3] = [&PROJECTS, &UPSTREAMS, &ROUTES];

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

fn project(mut doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    for key in READ_ONLY {
        doc.remove(*key);
    }
    let mut violations = Vec::new();
    match doc.get("name") {
        None => violations.push(("/name".to_string(), "`name` is required".to_string())),
        Some(v) => {
            if !v.as_str().is_some_and(valid_name) {
                violations.push((
                    "/name".to_string(),
                    "`name` is 1 to 64 letters, digits, `-`, `_` or `.`".to_string(),
                ));
            }
        }
    }
    match doc.get("billing_state") {
        None => {
            doc.insert("billing_state".into(), json!("active"));
        }
        Some(v) if v.as_str().is_some_and(|s| BILLING_STATES.contains(&s)) => {}
        Some(_) => violations.push((
            "/billing_state".to_string(),
            "`billing_state` is `active`, `suspended` or `closed`".to_string(),
        )),
    }
    match doc.get("plan") {
        None => {
            doc.insert("plan".into(), json!("free"));
        }
        Some(v) if v.as_str().is_some_and(valid_name) => {}
        Some(_) => violations.push((
            "/plan".to_string(),
            "`plan` is the name of a plan".to_string(),
        )),
    }
    if let Some(v) = doc.get("description")
        && v.as_str().is_none_or(|s| s.len() > 1024)
    {
        violations.push((
            "/description".to_string(),
            "`description` is text of at most 1024 bytes".to_string(),
        ));
    }
    let known = ["name", "billing_state", "plan", "description"];
    for key in doc.keys().filter(|k| !known.contains(&k.as_str())) {
        violations.push((
            format!("/{}", pointer_escape(key)),
            format!("unknown field `{key}`"),
        ));
    }
    if violations.is_empty() {
        Ok(doc)
    } else {
        Err(invalid(violations))
    }
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
