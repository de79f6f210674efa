//! The schema of each admin resource: one definition that the API validates requests with
//! and publishes in its OpenAPI document (`openapi.rs`).
//!
//! From a kind's *input* schema (what a client sends to create one) come the schema of a
//! replacement (`PUT`: the input, plus the fields a representation shows, which a client may
//! send back and Portico keeps its own values of), of a merge patch (`PATCH`: every member
//! optional, the optional ones `null` to remove them), and of the representation (what every
//! answer shows). The validators are compiled once, on first use.

use std::collections::HashMap;
use std::sync::LazyLock;

use portico_config::schema::{NAME, timestamp};
use portico_openapi::Schema;
use serde_json::{Map, Value, json};

use crate::resource::{self, Kind};

/// A project's, a consumer's or a plan's name (at most 64).
const SHORT_NAME: &str = "^[A-Za-z0-9._-]{1,64}$";

fn string(pattern: &str) -> Value {
    json!({"type": "string", "pattern": pattern})
}

fn description() -> Value {
    json!({"type": "string", "maxLength": 1024})
}

fn project() -> Value {
    json!({
        "type": "object",
        "description": "A project: a tenant whose callers use the APIs.",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": string(SHORT_NAME),
            "billing_state": {"enum": ["active", "suspended", "closed"], "default": "active"},
            "plan": {"type": "string", "pattern": SHORT_NAME, "default": "free"},
            "description": description()
        }
    })
}

fn consumer() -> Value {
    json!({
        "type": "object",
        "description": "A consumer: an identity of a project.",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": string(SHORT_NAME),
            "description": description(),
            "enabled": {"type": "boolean", "default": true},
            "roles": {"type": "array", "maxItems": 64, "items": string(SHORT_NAME), "default": []}
        }
    })
}

/// A credential as a client creates it: a password is given for `type: password` only.
fn credential() -> Value {
    json!({
        "type": "object",
        "description": "A consumer's credential. An API key (`pk_` and 64 hexadecimal digits) or an access key (an id and a secret key) is issued by Portico and shown once, in `secret`, in the answer that creates it; a password is the client's, kept only as a PBKDF2 hash. A credential's `type` cannot change (409 `PTC.MODEL_CONFLICT`).",
        "additionalProperties": false,
        "properties": {
            "type": {"enum": ["api_key", "access_key", "password"], "default": "api_key"},
            "description": description(),
            "enabled": {"type": "boolean", "default": true},
            "expires_at": string(&timestamp()),
            "password": {"type": "string", "minLength": 8, "maxLength": 1024, "writeOnly": true}
        },
        "if": {"required": ["type"], "properties": {"type": {"const": "password"}}},
        "then": {"required": ["password"]},
        "else": {"properties": {"password": false}}
    })
}

fn plan() -> Value {
    json!({
        "type": "object",
        "description": "A plan: what a project's callers may use.",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": string(SHORT_NAME),
            "description": description(),
            "quota": {
                "type": "object",
                "required": ["requests", "period"],
                "additionalProperties": false,
                "properties": {
                    "requests": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000_000_u64},
                    "period": {"enum": ["day", "month"]}
                }
            },
            "rate_limits": {
                "type": "array",
                "maxItems": 16,
                "default": [],
                "items": {
                    "type": "object",
                    "required": ["key", "rate"],
                    "additionalProperties": false,
                    "properties": {
                        "key": string("^(?:consumer|project|route|ip|header:[A-Za-z0-9-]{1,64})$"),
                        "rate": string("^[1-9][0-9]{0,8}/[smhd]$"),
                        "burst": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000},
                        "name": string(NAME)
                    }
                }
            }
        }
    })
}

/// What a client sends to create an item of `kind`.
pub(crate) fn input(kind: &Kind) -> Value {
    match kind.name {
        "projects" => project(),
        "consumers" => consumer(),
        "credentials" => credential(),
        "plans" => plan(),
        "upstreams" => portico_config::schema::upstream(),
        "routes" => portico_config::schema::route(),
        _ => portico_config::schema::api(),
    }
}

/// The fields a representation of `kind` shows besides its input's: Portico's own, which a
/// client may send back and Portico keeps its own values of.
fn shown(kind: &Kind) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!({"type": "string", "readOnly": true}));
    m.insert(
        "version".into(),
        json!({"type": "integer", "minimum": 1, "description": "The version the item is at. Sent back on PUT or PATCH, it must still be the current one (409 otherwise)."}),
    );
    m.insert(
        "created_ms".into(),
        json!({"type": "integer", "readOnly": true}),
    );
    m.insert(
        "updated_ms".into(),
        json!({"type": "integer", "readOnly": true}),
    );
    if kind.name == resource::CREDENTIALS.name {
        m.insert(
            "prefix".into(),
            json!({"type": "string", "readOnly": true, "description": "An API key's first characters, to tell keys apart."}),
        );
        m.insert(
            "access_key_id".into(),
            json!({"type": "string", "readOnly": true, "description": "An access key's id."}),
        );
    }
    m
}

fn with_properties(mut schema: Value, extra: Map<String, Value>, required: &[&str]) -> Value {
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.extend(extra);
    }
    if !required.is_empty()
        && let Some(obj) = schema.as_object_mut()
    {
        let list = obj.entry("required").or_insert_with(|| json!([]));
        if let Value::Array(r) = list {
            r.extend(required.iter().map(|k| json!(k)));
        }
    }
    schema
}

/// A `PUT` body: the input, and what a representation shows (sent back as it was read).
pub(crate) fn replacement(kind: &Kind) -> Value {
    let mut s = with_properties(input(kind), shown(kind), &[]);
    if kind.name == resource::CREDENTIALS.name {
        // A password credential keeps its password when a replacement has none.
        s.as_object_mut().map(|o| o.remove("then"));
    }
    s
}

/// A `PATCH` body (RFC 7396): every member optional; `null` removes an optional one.
pub(crate) fn patch(kind: &Kind) -> Value {
    let full = input(kind);
    let required: Vec<&str> = full["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut props = Map::new();
    for (k, v) in full["properties"].as_object().into_iter().flatten() {
        let v = if required.contains(&k.as_str()) {
            v.clone()
        } else {
            json!({"anyOf": [v, {"type": "null"}]})
        };
        props.insert(k.clone(), v);
    }
    props.extend(shown(kind));
    json!({
        "type": "object",
        "description": "A JSON merge patch (RFC 7396) of the item; the result must be a valid item (409 `PTC.MODEL_CONFLICT` otherwise).",
        "additionalProperties": false,
        "properties": props
    })
}

/// What every answer shows of an item of `kind`.
pub(crate) fn representation(kind: &Kind) -> Value {
    let mut s = input(kind);
    if let Some(o) = s.as_object_mut() {
        // Hidden: a password never leaves.
        if let Some(Value::Object(p)) = o.get_mut("properties") {
            p.remove("password");
        }
        for key in ["if", "then", "else"] {
            o.remove(key);
        }
        o.remove("description");
    }
    let mut shown = shown(kind);
    for v in shown.values_mut() {
        if let Some(o) = v.as_object_mut() {
            o.remove("readOnly");
        }
    }
    if kind.name == resource::CREDENTIALS.name {
        shown.insert(
            "secret".into(),
            json!({"type": "string", "description": "The issued secret: in the answer that creates the credential, and never again."}),
        );
    }
    let mut required = vec!["id", "version", "created_ms", "updated_ms"];
    required.extend(defaults(kind));
    with_properties(s, shown, &required)
}

/// The members Portico fills in when a client leaves them out (so every representation has
/// them).
fn defaults(kind: &Kind) -> Vec<&'static str> {
    match kind.name {
        "projects" => vec!["billing_state", "plan"],
        "consumers" => vec!["enabled", "roles"],
        "credentials" => vec!["type", "enabled"],
        "plans" => vec!["rate_limits"],
        _ => vec![],
    }
}

/// What a request body is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Body {
    /// `POST` on a collection.
    Create,
    /// `PUT` on an item.
    Replace,
    /// `PATCH` on an item.
    Patch,
}

/// Every kind's request schemas, compiled.
static COMPILED: LazyLock<HashMap<(&'static str, Body), Schema>> = LazyLock::new(|| {
    let mut out = HashMap::new();
    for kind in resource::KINDS {
        for (body, schema) in [
            (Body::Create, input(kind)),
            (Body::Replace, replacement(kind)),
            (Body::Patch, patch(kind)),
        ] {
            let location = format!("{}-{body:?}", kind.name);
            // The schemas are Portico's own; a test compiles every one of them.
            if let Ok(s) = portico_openapi::compile_value(&schema, &location) {
                out.insert((kind.name, body), s);
            }
        }
    }
    out
});

/// The body of `POST /admin/v1/cache/purge`: exactly one of `url` (one target), `prefix`
/// (every target under it) and `route` (everything a route stored). A URL is absolute
/// (`http(s)://authority/path?query`, that authority only) or a path (`/path?query`, every
/// authority).
pub(crate) fn purge() -> Value {
    let url = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 8192,
        "pattern": "^(?:https?://[^/?#\\s]+)?/[^\\s#]*$"
    });
    json!({
        "type": "object",
        "additionalProperties": false,
        "minProperties": 1,
        "maxProperties": 1,
        "properties": {
            "url": url,
            "prefix": url,
            "route": {"type": "string", "minLength": 1, "maxLength": 128}
        }
    })
}

static PURGE: LazyLock<Option<Schema>> =
    LazyLock::new(|| portico_openapi::compile_value(&purge(), "purge").ok());

/// The violations of a purge's body.
pub(crate) fn purge_violations(doc: &Value) -> Vec<(String, String)> {
    match PURGE.as_ref() {
        Some(schema) => schema
            .violations(doc)
            .into_iter()
            .map(|v| (v.pointer, v.detail))
            .collect(),
        None => vec![(String::new(), "a purge cannot be checked".to_string())],
    }
}

/// The violations of `doc` as a `body` of `kind`: `(pointer, message)` each.
pub(crate) fn violations(kind: &Kind, body: Body, doc: &Value) -> Vec<(String, String)> {
    match COMPILED.get(&(kind.name, body)) {
        Some(schema) => schema
            .violations(doc)
            .into_iter()
            .map(|v| (v.pointer, v.detail))
            .collect(),
        None => vec![(String::new(), "this resource cannot be checked".to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_purge_schema_admits_is_a_purge() {
        assert!(PURGE.is_some());
        for ok in [
            json!({"url": "/a?b=1"}),
            json!({"url": "https://h.example:8443/a"}),
            json!({"prefix": "/"}),
            json!({"route": "items"}),
        ] {
            assert!(purge_violations(&ok).is_empty(), "{ok}");
            assert!(portico_cache::Purge::from_json(&ok).is_some(), "{ok}");
        }
        for bad in [
            json!({}),
            json!({"url": "/a", "route": "r"}),
            json!({"url": "a"}),
            json!({"url": "http:///a"}),
            json!({"url": "http://h"}),
            json!({"url": "/a b"}),
            json!({"other": "/"}),
        ] {
            assert!(!purge_violations(&bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn every_schema_compiles() {
        for kind in resource::KINDS {
            for body in [Body::Create, Body::Replace, Body::Patch] {
                assert!(
                    COMPILED.contains_key(&(kind.name, body)),
                    "{} {body:?}",
                    kind.name
                );
            }
            portico_openapi::compile_value(&representation(kind), "r").unwrap();
        }
    }
}
