//! The admin REST API, on its own listener: the store's resources under `/admin/v1/`, with the
//! semantics of a cloud resource API. Every request needs `Authorization: Bearer <token>`;
//! Portico keeps only the token's SHA-256 and compares digests in constant time.
//!
//! For each resource: create → 201 with `Location` and `ETag`; a taken name → 409; `GET` (item
//! and list) with `ETag`, `If-None-Match` → 304; `If-Match` that does not hold on `PUT`,
//! `PATCH` or `DELETE` → 412 (as does `If-None-Match: *` on an existing item); a body whose
//! `version` is not the current one → 409; `DELETE` → 204, then 410 while the tombstone is
//! kept, 404 for an id that never was; malformed JSON → 400; a valid document that breaks the
//! resource's rules → 422 listing every violation by JSON pointer; lists page with `limit` and
//! `marker` and give a `next` link. Preconditions are `portico_http::conditional`'s, the one
//! implementation Portico has.
//!
//! Only `projects` exists so far; the other resources of issue 5 follow the same code.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use portico_config::Config;
use portico_http::conditional::{self, Conditions, EntityTag, Precondition, Validators};
use portico_http::{ErrorCode, Method};
use portico_server::{ConnSettings, Error, Exchange, Request, RequestBody, Response, Service};
use portico_store::{Document, Lookup, NewDocument, Store, StoreError};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

mod resource;

use resource::{Fields, KINDS, Kind, ROUTES, UPSTREAMS};

/// The largest admin request body.
const MAX_BODY: u64 = 1 << 20;
/// Items in a list page when `limit` is not given, and the most a page may have.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
const PREFIX: &str = "/admin/v1/";
/// The OpenAPI 3.1 document of this API, served at `/admin/v1/openapi.json` (a test holds it
/// to the real responses).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The admin API over a store.
pub struct Admin<S> {
    store: S,
    token_sha256: [u8; 32],
    settings: Arc<ConnSettings>,
    /// The configuration file's model, which upstream and route documents join; without it
    /// those resources are not offered.
    model: Option<Arc<ArcSwap<Config>>>,
}

impl<S: Store + Send + Sync + 'static> Admin<S> {
    /// An admin API that accepts the token whose SHA-256 is `token_sha256`.
    pub fn new(store: S, token_sha256: [u8; 32], settings: Arc<ConnSettings>) -> Admin<S> {
        Admin {
            store,
            token_sha256,
            settings,
            model: None,
        }
    }

    /// Offers `upstreams` and `routes`, checked against `base` (the configuration file's
    /// model, which a reload replaces) and the other documents.
    pub fn with_model(mut self, base: Arc<ArcSwap<Config>>) -> Admin<S> {
        self.model = Some(base);
        self
    }

    /// Every live document of a kind.
    async fn all(&self, kind: &Kind) -> Result<Vec<Document>, Error> {
        let mut out: Vec<Document> = Vec::new();
        loop {
            let after = out.last().map(|d| d.id.clone());
            let page = self
                .store
                .list(kind.name, "", after.as_deref(), MAX_LIMIT)
                .await
                .map_err(store_error)?;
            let full = page.len() == MAX_LIMIT;
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// Checks the data plane's model with `candidate` in place of the document `id` of `kind`
    /// (added when `id` is `None`, removed when `candidate` is `None`): 422 with its
    /// violations when the candidate is at fault, 409 when it would break other documents.
    async fn check_model(
        &self,
        kind: &Kind,
        id: Option<&str>,
        candidate: Option<&Fields>,
    ) -> Result<(), Error> {
        let Some(base) = &self.model else {
            return Ok(());
        };
        let mut lists = [Vec::new(), Vec::new()];
        let mut at = None;
        for (slot, k) in [&UPSTREAMS, &ROUTES].into_iter().enumerate() {
            for doc in self.all(k).await? {
                if k.name == kind.name && Some(doc.id.as_str()) == id {
                    if let Some(c) = candidate {
                        at = Some(lists[slot].len());
                        lists[slot].push(Value::Object(c.clone()));
                    }
                } else {
                    lists[slot].push(doc.body);
                }
            }
            if k.name == kind.name
                && id.is_none()
                && let Some(c) = candidate
            {
                at = Some(lists[slot].len());
                lists[slot].push(Value::Object(c.clone()));
            }
        }
        let [upstreams, routes] = lists;
        let Err(problems) = portico_config::with_documents(&base.load(), &upstreams, &routes)
        else {
            return Ok(());
        };
        let is_route = kind.name == ROUTES.name;
        let (mine, others): (Vec<_>, Vec<_>) = problems
            .into_iter()
            .partition(|p| Some(p.index) == at && p.route == is_route);
        if !mine.is_empty() {
            return Err(invalid(
                mine.into_iter().map(|p| (p.pointer, p.message)).collect(),
            ));
        }
        let list: Vec<Value> = others
            .into_iter()
            .map(|p| {
                let kind = if p.route { "routes" } else { "upstreams" };
                json!({"kind": kind, "pointer": p.pointer, "message": p.message})
            })
            .collect();
        Err(Error::new(ErrorCode::ResourceInUse).with_member("conflicts", Value::Array(list)))
    }

    fn authorize(&self, req: &Request) -> Result<(), Error> {
        let challenge = |e: Error, extra: &str| {
            e.with_header(
                "WWW-Authenticate",
                format!("Bearer realm=\"portico-admin\"{extra}"),
            )
        };
        let Some(value) = req.head.field("authorization") else {
            return Err(challenge(Error::new(ErrorCode::AdminTokenMissing), ""));
        };
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "));
        let Some(token) = token else {
            return Err(challenge(Error::new(ErrorCode::AdminTokenMissing), ""));
        };
        let digest: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        // Constant time: how much of the digest matches must not show in the timing.
        let diff = digest
            .iter()
            .zip(self.token_sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(challenge(
                Error::new(ErrorCode::AdminTokenInvalid),
                ", error=\"invalid_token\"",
            ));
        }
        Ok(())
    }

    async fn dispatch(&self, req: &Request, body: &mut RequestBody<'_>) -> Result<Response, Error> {
        self.authorize(req)?;
        let path = std::str::from_utf8(req.head.path()).unwrap_or("");
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Err(Error::new(ErrorCode::RouteNotFound));
        };
        let method = req.head.method();
        if rest == "openapi.json" {
            return match method {
                Method::Get | Method::Head => Ok(Response::new(200)
                    .header("Content-Type", "application/json")
                    .body(Bytes::from_static(OPENAPI.as_bytes()))),
                _ => Err(not_allowed("GET, HEAD")),
            };
        }
        let mut parts = rest.split('/');
        let kind = match parts
            .next()
            .and_then(|k| KINDS.iter().find(|kind| kind.name == k))
        {
            Some(kind) if !kind.model || self.model.is_some() => *kind,
            _ => return Err(Error::new(ErrorCode::RouteNotFound)),
        };
        match (parts.next(), parts.next()) {
            (None | Some(""), None) => match method {
                Method::Get | Method::Head => self.list(kind, req).await,
                Method::Post => self.create(kind, req, body).await,
                _ => Err(not_allowed("GET, HEAD, POST")),
            },
            (Some(id), None) if !id.is_empty() => match method {
                Method::Get | Method::Head => self.read(kind, id, req).await,
                Method::Put | Method::Patch => self.update(kind, id, req, body).await,
                Method::Delete => self.delete(kind, id, req).await,
                _ => Err(not_allowed("GET, HEAD, PUT, PATCH, DELETE")),
            },
            _ => Err(Error::new(ErrorCode::RouteNotFound)),
        }
    }

    /// Forgets the tombstones of resources deleted more than `retention` ago (they answer
    /// 404 from then on, 410 before); returns how many.
    pub async fn purge_tombstones(&self, retention: Duration) -> Result<u64, StoreError> {
        let before = SystemTime::now()
            .checked_sub(retention)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.store.purge_tombstones(before).await
    }

    async fn list(&self, kind: &Kind, req: &Request) -> Result<Response, Error> {
        let (limit, marker) = page_params(req.head.query())?;
        // The revision first: a write that lands between the two reads makes this ETag older
        // than the page, which costs a later 200, never a wrong 304.
        let revision = self.store.revision().await.map_err(store_error)?;
        let etag = format!("\"r{revision}\"");
        if let Some(resp) = not_modified(req, &etag)? {
            return Ok(resp);
        }
        let docs = self
            .store
            .list(kind.name, "", marker.as_deref(), limit)
            .await
            .map_err(store_error)?;
        let mut page = Map::new();
        let items: Vec<Value> = docs.iter().map(representation).collect();
        if docs.len() == limit
            && let Some(last) = docs.last()
        {
            page.insert(
                "next".into(),
                json!(format!(
                    "{PREFIX}{}?limit={limit}&marker={}",
                    kind.name, last.id
                )),
            );
        }
        page.insert(kind.name.into(), Value::Array(items));
        Ok(json_response(200, &Value::Object(page)).header("ETag", etag))
    }

    async fn create(
        &self,
        kind: &Kind,
        req: &Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        let doc = read_json(req, body, false).await?;
        let doc = (kind.validate)(doc, None)?;
        if kind.model {
            self.check_model(kind, None, Some(&doc)).await?;
        }
        let name = doc
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let created = self
            .store
            .create(NewDocument {
                kind: kind.name,
                scope: "",
                name: &name,
                body: &Value::Object(doc),
            })
            .await
            .map_err(store_error)?;
        Ok(json_response(201, &representation(&created))
            .header("Location", format!("{PREFIX}{}/{}", kind.name, created.id))
            .header("ETag", etag(&created)))
    }

    /// The live document under `id`, or its 404 / 410.
    async fn live(&self, kind: &Kind, id: &str) -> Result<Document, Error> {
        match self.store.get(kind.name, id).await.map_err(store_error)? {
            Lookup::Live(doc) => Ok(doc),
            Lookup::Gone { .. } => Err(Error::new(ErrorCode::ResourceGone)),
            Lookup::Missing => Err(Error::new(ErrorCode::ResourceNotFound)),
        }
    }

    async fn read(&self, kind: &Kind, id: &str, req: &Request) -> Result<Response, Error> {
        let doc = self.live(kind, id).await?;
        let tag = etag(&doc);
        match check(req, &tag) {
            Precondition::Proceed => {}
            Precondition::NotModified => return Ok(Response::new(304).header("ETag", tag)),
            Precondition::Failed => return Err(Error::new(ErrorCode::PreconditionFailed)),
        }
        Ok(json_response(200, &representation(&doc)).header("ETag", tag))
    }

    async fn update(
        &self,
        kind: &Kind,
        id: &str,
        req: &Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        let patch = req.head.method() == Method::Patch;
        let doc = self.live(kind, id).await?;
        if check(req, &etag(&doc)) != Precondition::Proceed {
            return Err(Error::new(ErrorCode::PreconditionFailed));
        }
        let mut sent = read_json(req, body, patch).await?;
        // A `version` in the body is the one the client read: a newer one means it would
        // overwrite a change it has not seen.
        if let Some(v) = sent.remove("version")
            && v.as_u64() != Some(doc.version)
        {
            return Err(Error::new(ErrorCode::VersionConflict)
                .with_member("current_version", json!(doc.version)));
        }
        let merged = if patch {
            let mut target = Value::Object(doc.body.as_object().cloned().unwrap_or_default());
            merge_patch(&mut target, Value::Object(sent));
            match target {
                Value::Object(m) => m,
                _ => Map::new(),
            }
        } else {
            sent
        };
        let merged = (kind.validate)(merged, Some(&doc))?;
        if kind.model {
            self.check_model(kind, Some(id), Some(&merged)).await?;
        }
        let name = merged
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let updated = self
            .store
            .replace(
                kind.name,
                id,
                Some(doc.version),
                &name,
                &Value::Object(merged),
            )
            .await
            .map_err(store_error)?;
        Ok(json_response(200, &representation(&updated)).header("ETag", etag(&updated)))
    }

    async fn delete(&self, kind: &Kind, id: &str, req: &Request) -> Result<Response, Error> {
        let doc = self.live(kind, id).await?;
        if check(req, &etag(&doc)) != Precondition::Proceed {
            return Err(Error::new(ErrorCode::PreconditionFailed));
        }
        if kind.model {
            self.check_model(kind, Some(id), None).await?;
        }
        self.store
            .delete(kind.name, id, Some(doc.version))
            .await
            .map_err(store_error)?;
        Ok(Response::new(204))
    }
}

impl<S: Store + Send + Sync + 'static> Service for Admin<S> {
    fn settings(&self) -> Arc<ConnSettings> {
        self.settings.clone()
    }

    async fn call(&self, req: &mut Request, body: &mut RequestBody<'_>) -> Result<Response, Error> {
        self.dispatch(req, body).await
    }

    fn log(&self, exchange: &Exchange<'_>) {
        tracing::info!(
            target: "portico::admin",
            request_id = exchange.request_id.as_str(),
            method = exchange.request.map(|r| r.head.method().as_str()),
            status = exchange.status,
            error = exchange.error.map(ErrorCode::as_str),
            "admin request"
        );
    }
}

fn not_allowed(allow: &'static str) -> Error {
    Error::new(ErrorCode::MethodNotAllowed).with_allow(allow)
}

/// A store failure as the client sees it; a backend fault is an internal error whose cause
/// is logged, never sent.
fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NameTaken => Error::new(ErrorCode::NameTaken),
        StoreError::NotFound => Error::new(ErrorCode::ResourceNotFound),
        StoreError::Gone => Error::new(ErrorCode::ResourceGone),
        // The version was read in this request and checked; another writer came between.
        StoreError::VersionMismatch { current } => {
            Error::new(ErrorCode::VersionConflict).with_member("current_version", json!(current))
        }
        StoreError::Backend(cause) => Error::new(ErrorCode::Internal).with_cause(cause),
    }
}

/// A document's strong entity tag: its version (the id is in the URL).
fn etag(doc: &Document) -> String {
    format!("\"v{}\"", doc.version)
}

/// The preconditions of `req` against a current representation tagged `tag`.
fn check(req: &Request, tag: &str) -> Precondition {
    let conditions = Conditions::from_fields(req.head.fields());
    let current = Validators {
        etag: EntityTag::parse(tag.as_bytes()),
        last_modified: None,
    };
    conditional::evaluate(req.head.method(), &conditions, Some(&current))
}

fn not_modified(req: &Request, tag: &str) -> Result<Option<Response>, Error> {
    match check(req, tag) {
        Precondition::Proceed => Ok(None),
        Precondition::NotModified => Ok(Some(Response::new(304).header("ETag", tag.to_string()))),
        Precondition::Failed => Err(Error::new(ErrorCode::PreconditionFailed)),
    }
}

/// A resource as the API shows it: its fields, then `id` and `version` (which a client may
/// send back on PUT or PATCH to say what it read).
fn representation(doc: &Document) -> Value {
    let mut out = doc.body.as_object().cloned().unwrap_or_default();
    out.insert("id".into(), json!(doc.id));
    out.insert("version".into(), json!(doc.version));
    out.insert("created_ms".into(), json!(doc.created_ms));
    out.insert("updated_ms".into(), json!(doc.updated_ms));
    Value::Object(out)
}

fn json_response(status: u16, value: &Value) -> Response {
    Response::new(status)
        .header("Content-Type", "application/json")
        .body(Bytes::from(value.to_string()))
}

/// `limit` and `marker` from a list's query.
fn page_params(query: Option<&[u8]>) -> Result<(usize, Option<String>), Error> {
    let mut limit = DEFAULT_LIMIT;
    let mut marker = None;
    let query = query
        .and_then(|q| std::str::from_utf8(q).ok())
        .unwrap_or("");
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid(vec![(
                            "/limit".into(),
                            format!("`limit` is a number from 1 to {MAX_LIMIT}"),
                        )])
                    })?;
            }
            "marker" => marker = Some(value.to_string()),
            _ => {}
        }
    }
    Ok((limit, marker))
}

/// A 422 listing `(JSON pointer, message)` violations.
pub(crate) fn invalid(violations: Vec<(String, String)>) -> Error {
    let list: Vec<Value> = violations
        .into_iter()
        .map(|(pointer, message)| json!({"pointer": pointer, "message": message}))
        .collect();
    Error::new(ErrorCode::ValidationFailed).with_member("violations", Value::Array(list))
}

/// Reads a JSON object body: `application/json` (or, for PATCH, also
/// `application/merge-patch+json`), else 415; not JSON or not an object → 400.
async fn read_json(
    req: &Request,
    body: &mut RequestBody<'_>,
    patch: bool,
) -> Result<Map<String, Value>, Error> {
    let media = req
        .head
        .field("content-type")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let accepted = match media.as_deref() {
        Some("application/json") => true,
        Some("application/merge-patch+json") => patch,
        _ => false,
    };
    if !accepted {
        let list = if patch {
            "application/json, application/merge-patch+json"
        } else {
            "application/json"
        };
        return Err(Error::new(ErrorCode::UnsupportedMediaType).with_header("Accept", list));
    }
    body.set_limit(MAX_BODY);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.chunk().await? {
        bytes.extend_from_slice(&chunk);
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::new(ErrorCode::JsonMalformed)),
    }
}

/// RFC 7396: applies a JSON merge patch to `target`.
fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(&key);
            } else {
                merge_patch(map.entry(key).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396_appendix_a() {
        // A selection of the RFC's examples.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            let mut t = target.clone();
            merge_patch(&mut t, patch.clone());
            assert_eq!(t, expected, "{target} + {patch}");
        }
    }
}
