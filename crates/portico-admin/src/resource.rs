//! The admin resources: what each is called and what its documents must hold.

use portico_config::Section;
use portico_policy::hex;
use portico_server::Error;
use portico_store::Document;
use serde_json::{Map, Value, json};

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

/// A model document: what it holds was checked against its schema; what the configuration
/// says of it is checked with the model. Only Portico's own fields go.
fn named(doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    Ok(without_read_only(doc, &MODEL_READ_ONLY))
}

/// Fields a client may echo back from a representation; Portico keeps its own values.
const MODEL_READ_ONLY: [&str; 3] = ["id", "created_ms", "updated_ms"];

/// `doc` without the fields Portico keeps (sent back from a representation they are ignored).
fn without_read_only(mut doc: Fields, keys: &[&str]) -> Fields {
    for key in keys {
        doc.remove(*key);
    }
    doc
}

/// `key` set to `default` when the document leaves it out.
fn default(doc: &mut Fields, key: &str, value: Value) {
    doc.entry(key.to_string()).or_insert(value);
}

// Each document below was checked against its kind's schema (`schema.rs`) before it gets
// here: these functions fill in defaults and do what Portico does with a document (a
// password hashed, what a credential keeps), and check what relates it to the item it
// replaces.

fn project(doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    let mut doc = without_read_only(doc, &MODEL_READ_ONLY);
    default(&mut doc, "billing_state", json!("active"));
    default(&mut doc, "plan", json!("free"));
    Ok(doc)
}

fn consumer(doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    let mut doc = without_read_only(doc, &MODEL_READ_ONLY);
    default(&mut doc, "enabled", json!(true));
    default(&mut doc, "roles", json!([]));
    Ok(doc)
}

/// What Portico keeps of a credential's secret: a client can neither set nor change it.
const KEPT: [&str; 5] = [
    "secret_sha256",
    "prefix",
    "secret_key",
    "access_key_id",
    "password_hash",
];

fn credential(doc: Fields, current: Option<&Document>) -> Result<Fields, Error> {
    let mut doc = without_read_only(doc, &MODEL_READ_ONLY);
    for key in KEPT {
        doc.remove(key);
    }
    let password = doc.remove("password");
    default(&mut doc, "type", json!("api_key"));
    default(&mut doc, "enabled", json!(true));
    if let Some(current) = current {
        if doc.get("type") != current.body.get("type") {
            return Err(conflict("/type", "a credential's `type` cannot change"));
        }
        for key in KEPT {
            if let Some(v) = current.body.get(key) {
                doc.insert(key.into(), v.clone());
            }
        }
    }
    // A password is sent by the client (at creation, or to change it) and kept only hashed.
    if let Some(Value::String(p)) = password {
        let kept = portico_policy::password::hash_password(
            &p,
            &random::<16>(),
            portico_policy::password::ITERATIONS,
        );
        doc.insert("password_hash".into(), json!(kept));
    }
    Ok(doc)
}

/// A 409 `PTC.MODEL_CONFLICT` naming what, in the document, the model cannot take.
pub(crate) fn conflict(pointer: &str, message: &str) -> Error {
    Error::new(portico_http::ErrorCode::ModelConflict).with_member(
        "conflicts",
        json!([{"pointer": pointer, "message": message}]),
    )
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

fn plan(doc: Fields, _current: Option<&Document>) -> Result<Fields, Error> {
    let mut doc = without_read_only(doc, &MODEL_READ_ONLY);
    default(&mut doc, "rate_limits", json!([]));
    Ok(doc)
}
