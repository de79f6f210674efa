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
//! The resources (`resource.rs`): `projects`, with `consumers` and their `credentials` nested
//! in them (a nested item's store scope is its parent's id; another parent's item is 404);
//! `plans`; and the data plane's model, `upstreams`, `routes` and `apis`, checked with the
//! configuration file's own rules. Routes also have their request counts (`…/stats`, and
//! `…/stats/reset` → 205).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use portico_config::{Config, Documents, Section};
use portico_http::conditional::{self, Conditions, EntityTag, Precondition, Validators};
use portico_http::{ErrorCode, Method};
use portico_server::{
    ConnSettings, Error, Exchange, Request, RequestBody, Response, RouteStats, Service,
};
use portico_store::{Document, Expect, Lookup, NewDocument, Store, StoreError};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

mod dashboard;
mod exposition;
mod openapi;
mod resource;
mod schema;
mod sync;

pub use exposition::MetricsEndpoint;
use resource::{Fields, KINDS, Kind, MODEL};
pub use sync::{ApplyError, Change, Verb, apply, export};

/// The largest admin request body.
const MAX_BODY: u64 = 1 << 20;
/// Items in a list page when `limit` is not given, and the most a page may have.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// How many times a write is checked again because other writes kept landing first.
const WRITE_ATTEMPTS: usize = 8;
const PREFIX: &str = "/admin/v1/";
/// The OpenAPI 3.1 document of this API, served at `/admin/v1/openapi.json`: made from the
/// schemas it validates requests with (`schema.rs`), so it says what the API enforces.
pub fn openapi() -> &'static str {
    &openapi::DOCUMENT
}

/// Told the digest of a token revoked through the admin API.
pub type OnRevoke = Arc<dyn Fn(&str) + Send + Sync>;

/// Whose rate-limit state a `…/limits/reset` clears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitReset {
    /// Every key of every limit of the route of this name.
    Route(String),
    /// The consumer's key (`project_id/consumer`), in every limit that counts by consumer.
    Consumer {
        /// Its project's id.
        project_id: String,
        /// Its name.
        consumer: String,
    },
}

/// What `GET /admin/v1/metrics` reports: the data plane's counters, as one JSON object.
pub type Metrics = Arc<dyn Fn() -> Value + Send + Sync>;

/// What the data plane serves now (`GET /admin/v1/overview`): `routes`, `apis`, `upstreams`
/// and `reloads`, as the OpenAPI document describes them.
pub type Overview = Arc<dyn Fn() -> Value + Send + Sync>;

/// Clears rate-limit state (in this process, and in the shared store when there is one).
pub type OnLimitReset = Arc<
    dyn Fn(LimitReset) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// A route's response-cache counters, by its name (`None` when it has none).
pub type RouteCacheCounts = Arc<dyn Fn(&str) -> Option<Value> + Send + Sync>;

/// Applies a purge of cached responses on this node (the store carries it to the others).
pub type OnCachePurge = Arc<dyn Fn(&portico_cache::Purge) + Send + Sync>;

/// The admin API over a store.
pub struct Admin<S> {
    store: S,
    token_sha256: [u8; 32],
    settings: Arc<ConnSettings>,
    /// The configuration file's model, which upstream, route and API documents join; without
    /// it those resources are not offered.
    model: Option<Arc<ArcSwap<Config>>>,
    /// The data plane's per-route request counts.
    stats: Arc<RouteStats>,
    /// Told the digest of each token revoked here (to drop it from a cache).
    on_revoke: Option<OnRevoke>,
    /// Clears rate-limit state on `…/limits/reset`.
    on_limit_reset: Option<OnLimitReset>,
    /// The data plane's counters.
    metrics: Option<Metrics>,
    /// Purges cached responses on this node.
    on_cache_purge: Option<OnCachePurge>,
    /// A route's response-cache counters.
    route_cache_counts: Option<RouteCacheCounts>,
    /// The process's Prometheus metrics, served at `GET /metrics`.
    prometheus: Option<Arc<portico_telemetry::Metrics>>,
    /// What the data plane serves now, for the dashboard.
    overview: Option<Overview>,
}

/// What a request's path names: a collection, or an item in it, or an action on an item.
struct Target<'a> {
    kind: &'static Kind,
    /// The store scope of the collection: the parent item's id, or empty.
    scope: String,
    /// The collection's path after the prefix (`projects/{id}/consumers`).
    collection: &'a str,
    /// The item's id.
    id: Option<&'a str>,
    /// What follows the item's id (`stats`, `stats/reset`).
    action: Option<&'a str>,
}

impl<S: Store + Send + Sync + 'static> Admin<S> {
    /// An admin API that accepts the token whose SHA-256 is `token_sha256`.
    pub fn new(store: S, token_sha256: [u8; 32], settings: Arc<ConnSettings>) -> Admin<S> {
        Admin {
            store,
            token_sha256,
            settings,
            model: None,
            stats: RouteStats::new(),
            on_revoke: None,
            on_limit_reset: None,
            metrics: None,
            on_cache_purge: None,
            route_cache_counts: None,
            prometheus: None,
            overview: None,
        }
    }

    /// Reports what `f` gives at `GET /admin/v1/metrics`.
    pub fn with_metrics(mut self, f: Metrics) -> Admin<S> {
        self.metrics = Some(f);
        self
    }

    /// Answers `GET /admin/v1/overview` with what `f` gives.
    pub fn with_overview(mut self, f: Overview) -> Admin<S> {
        self.overview = Some(f);
        self
    }

    /// Serves `metrics` at `GET /metrics` (with the admin token, like everything here).
    pub fn with_prometheus(mut self, metrics: Arc<portico_telemetry::Metrics>) -> Admin<S> {
        self.prometheus = Some(metrics);
        self
    }

    /// Calls `f` for each `POST …/limits/reset` on a route or a consumer (then 205).
    pub fn with_limit_reset(mut self, f: OnLimitReset) -> Admin<S> {
        self.on_limit_reset = Some(f);
        self
    }

    /// Adds what `f` says of a route's response cache to its stats (`cache`).
    pub fn with_route_cache_counts(mut self, f: RouteCacheCounts) -> Admin<S> {
        self.route_cache_counts = Some(f);
        self
    }

    /// Calls `f` for each purge of cached responses made through this API (`POST
    /// /admin/v1/cache/purge`, `POST /admin/v1/routes/{id}/cache/reset`), once it is in the
    /// store.
    pub fn with_cache_purge(mut self, f: OnCachePurge) -> Admin<S> {
        self.on_cache_purge = Some(f);
        self
    }

    /// Records a purge in the store (every node following it applies it within a second)
    /// and applies it here: 205.
    async fn purge(&self, purge: portico_cache::Purge) -> Result<Response, Error> {
        self.store
            .add_purge(&purge.to_json())
            .await
            .map_err(store_error)?;
        if let Some(f) = &self.on_cache_purge {
            f(&purge);
        }
        Ok(Response::new(205))
    }

    /// `POST /admin/v1/cache/purge` with `{"url": …}`, `{"prefix": …}` or `{"route": …}`.
    async fn cache_purge(
        &self,
        req: &Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        let doc = Value::Object(read_json(req, body, false).await?);
        let found = schema::purge_violations(&doc);
        if !found.is_empty() {
            return Err(invalid(found));
        }
        // The schema admits only what a purge can be read from.
        let purge = portico_cache::Purge::from_json(&doc)
            .ok_or_else(|| invalid(vec![(String::new(), "not a purge".to_string())]))?;
        self.purge(purge).await
    }

    /// Calls `f` with the digest of each token revoked through this API.
    pub fn with_token_revocation(mut self, f: OnRevoke) -> Admin<S> {
        self.on_revoke = Some(f);
        self
    }

    /// `DELETE /admin/v1/tokens` with `X-Subject-Token`: revokes that token (204), or 404 when
    /// no token that is not revoked yet has it.
    async fn revoke_token(&self, req: &Request) -> Result<Response, Error> {
        let Some(token) = req.head.field("x-subject-token").map(<[u8]>::trim_ascii) else {
            return Err(Error::new(ErrorCode::SubjectTokenMissing));
        };
        let digest = portico_policy::sha256_hex(token);
        if !self
            .store
            .revoke_token(&digest)
            .await
            .map_err(store_error)?
        {
            return Err(Error::new(ErrorCode::ResourceNotFound));
        }
        if let Some(f) = &self.on_revoke {
            f(&digest);
        }
        Ok(Response::new(204))
    }

    /// Offers `upstreams`, `routes` and `apis`, checked against `base` (the configuration
    /// file's model, which a reload replaces) and the other documents.
    pub fn with_model(mut self, base: Arc<ArcSwap<Config>>) -> Admin<S> {
        self.model = Some(base);
        self
    }

    /// Reads and resets the data plane's per-route counts in `stats` (the registry the
    /// gateways count in).
    pub fn with_stats(mut self, stats: Arc<RouteStats>) -> Admin<S> {
        self.stats = stats;
        self
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
        let (Some(base), Some(section)) = (&self.model, kind.section) else {
            return Ok(());
        };
        let mut docs = Documents::default();
        let mut at = None;
        for k in MODEL {
            let Some(s) = k.section else { continue };
            let list = docs.of_mut(s);
            for doc in all(&self.store, k.name, "").await.map_err(store_error)? {
                if s == section && Some(doc.id.as_str()) == id {
                    if let Some(c) = candidate {
                        at = Some(list.len());
                        list.push(Value::Object(c.clone()));
                    }
                } else {
                    list.push(doc.body);
                }
            }
            if s == section
                && id.is_none()
                && let Some(c) = candidate
            {
                at = Some(list.len());
                list.push(Value::Object(c.clone()));
            }
        }
        let Err(problems) = portico_config::with_documents(&base.load(), &docs) else {
            return Ok(());
        };
        let (mine, others): (Vec<_>, Vec<_>) = problems
            .into_iter()
            .partition(|p| Some(p.index) == at && p.section == section);
        if !mine.is_empty() {
            // The document passed its schema: what is left is what the model cannot take.
            let list: Vec<Value> = mine
                .into_iter()
                .map(|p| json!({"kind": p.section.name(), "pointer": p.pointer, "message": p.message}))
                .collect();
            return Err(
                Error::new(ErrorCode::ModelConflict).with_member("conflicts", Value::Array(list))
            );
        }
        let list: Vec<Value> = others
            .into_iter()
            .map(|p| json!({"kind": p.section.name(), "pointer": p.pointer, "message": p.message}))
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

    /// Finds what `rest` (the path after the prefix) names; every parent item on the way must
    /// be live and hold the next (404 or 410 otherwise).
    async fn resolve<'a>(&self, rest: &'a str) -> Result<Target<'a>, Error> {
        let not_found = || Error::new(ErrorCode::RouteNotFound);
        let mut parent: Option<&'static Kind> = None;
        let mut scope = String::new();
        let mut start = 0;
        loop {
            let tail = &rest[start..];
            let (name, after) = tail.split_once('/').unwrap_or((tail, ""));
            let kind = KINDS
                .into_iter()
                .find(|k| k.name == name && k.parent.map(|p| p.name) == parent.map(|p| p.name))
                .filter(|k| k.section.is_none() || self.model.is_some())
                .ok_or_else(not_found)?;
            let collection = &rest[..start + name.len()];
            let (id, more) = after.split_once('/').unwrap_or((after, ""));
            let target = |id: Option<&'a str>, action: Option<&'a str>| Target {
                kind,
                scope: scope.clone(),
                collection,
                id,
                action,
            };
            if id.is_empty() {
                return if tail.len() == name.len() || after.is_empty() {
                    Ok(target(None, None))
                } else {
                    Err(not_found())
                };
            }
            if !after.contains('/') {
                return Ok(target(Some(id), None));
            }
            if kind.stats && (more == "stats" || more == "stats/reset") {
                return Ok(target(Some(id), Some(more)));
            }
            if kind.stats && more == "cache/reset" {
                return Ok(target(Some(id), Some(more)));
            }
            if more == "limits/reset" && (kind.stats || kind.name == resource::CONSUMERS.name) {
                return Ok(target(Some(id), Some(more)));
            }
            let doc = self.live(kind, &scope, id).await?;
            parent = Some(kind);
            scope = doc.id;
            start += name.len() + 1 + id.len() + 1;
        }
    }

    async fn dispatch(&self, req: &Request, body: &mut RequestBody<'_>) -> Result<Response, Error> {
        let path = std::str::from_utf8(req.head.path()).unwrap_or("");
        // The dashboard's page and files: the page asks for the token itself.
        if let Some(answer) = dashboard::serve(path, req.head.method()) {
            return answer;
        }
        self.authorize(req)?;
        if path == exposition::PATH
            && let Some(metrics) = &self.prometheus
        {
            return exposition::answer(metrics, req);
        }
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Err(Error::new(ErrorCode::RouteNotFound));
        };
        let method = req.head.method();
        if rest == "openapi.json" {
            return match method {
                Method::Get | Method::Head => Ok(Response::new(200)
                    .header("Content-Type", "application/json")
                    .body(Bytes::from_static(openapi().as_bytes()))),
                m => other_method(m, READ),
            };
        }
        if rest == "metrics" {
            return match method {
                Method::Get | Method::Head => {
                    let counters = self.metrics.as_ref().map_or_else(|| json!({}), |f| f());
                    Ok(json_response(200, &counters))
                }
                m => other_method(m, READ),
            };
        }
        if rest == "overview" {
            return match method {
                Method::Get | Method::Head => {
                    let overview = self.overview.as_ref().map_or_else(
                        || json!({"routes": [], "apis": [], "upstreams": [], "reloads": []}),
                        |f| f(),
                    );
                    Ok(json_response(200, &overview).header("Cache-Control", "no-store"))
                }
                m => other_method(m, READ),
            };
        }
        if rest == "cache/purge" {
            return match method {
                Method::Post => self.cache_purge(req, body).await,
                m => other_method(m, ACTION),
            };
        }
        if rest == "tokens" {
            return match method {
                Method::Delete => self.revoke_token(req).await,
                m => other_method(m, "DELETE, OPTIONS"),
            };
        }
        let target = self.resolve(rest).await?;
        match (target.id, target.action) {
            (None, _) => match method {
                Method::Get | Method::Head => self.list(&target, req).await,
                Method::Post => self.create(&target, req, body).await,
                m => other_method(m, "GET, HEAD, POST, OPTIONS"),
            },
            (Some(id), None) => match method {
                Method::Get | Method::Head => self.read(&target, id, req).await,
                Method::Put | Method::Patch => self.update(&target, id, req, body).await,
                Method::Delete => self.delete(&target, id, req).await,
                m => other_method(m, "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"),
            },
            (Some(id), Some("limits/reset")) => {
                if method != Method::Post {
                    return other_method(method, ACTION);
                }
                let doc = self.live(target.kind, &target.scope, id).await?;
                let reset = if target.kind.stats {
                    LimitReset::Route(doc.name)
                } else {
                    LimitReset::Consumer {
                        project_id: target.scope.clone(),
                        consumer: doc.name,
                    }
                };
                if let Some(f) = &self.on_limit_reset {
                    f(reset).await;
                }
                Ok(Response::new(205))
            }
            (Some(id), Some("cache/reset")) => {
                if method != Method::Post {
                    return other_method(method, ACTION);
                }
                let doc = self.live(target.kind, &target.scope, id).await?;
                self.purge(portico_cache::Purge::Route(doc.name)).await
            }
            (Some(id), Some(action)) => {
                let doc = self.live(target.kind, &target.scope, id).await?;
                let counts = self.stats.route(&doc.name);
                match (action, method) {
                    ("stats", Method::Get | Method::Head) => {
                        let statuses: Map<String, Value> = counts
                            .snapshot()
                            .into_iter()
                            .map(|(status, n)| (status.to_string(), json!(n)))
                            .collect();
                        let mut body = json!({"route": doc.name, "statuses": statuses});
                        if let Some(cache) =
                            self.route_cache_counts.as_ref().and_then(|f| f(&doc.name))
                        {
                            body["cache"] = cache;
                        }
                        Ok(json_response(200, &body))
                    }
                    ("stats/reset", Method::Post) => {
                        counts.reset();
                        Ok(Response::new(205))
                    }
                    ("stats", m) => other_method(m, READ),
                    (_, m) => other_method(m, ACTION),
                }
            }
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

    async fn list(&self, target: &Target<'_>, req: &Request) -> Result<Response, Error> {
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
            .list(target.kind.name, &target.scope, marker.as_deref(), limit)
            .await
            .map_err(store_error)?;
        let mut page = Map::new();
        let items: Vec<Value> = docs
            .iter()
            .map(|d| representation(target.kind, d))
            .collect();
        if docs.len() == limit
            && let Some(last) = docs.last()
        {
            page.insert(
                "next".into(),
                json!(format!(
                    "{PREFIX}{}?limit={limit}&marker={}",
                    target.collection, last.id
                )),
            );
        }
        page.insert(target.kind.name.into(), Value::Array(items));
        Ok(json_response(200, &Value::Object(page)).header("ETag", etag))
    }

    async fn create(
        &self,
        target: &Target<'_>,
        req: &Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        let kind = target.kind;
        let doc = read_json(req, body, false).await?;
        let doc = Value::Object(doc);
        let found = schema::violations(kind, schema::Body::Create, &doc);
        if !found.is_empty() {
            return Err(invalid(found));
        }
        let Value::Object(doc) = doc else {
            return Err(Error::new(ErrorCode::JsonMalformed));
        };
        let doc = &(kind.validate)(doc, None)?;
        self.guarded(|since| async move {
            // The parent was found live on the way here; it must still be, as of `since`.
            if let Some(parent) = kind.parent
                && !matches!(
                    self.store
                        .get(parent.name, &target.scope)
                        .await
                        .map_err(store_error)?,
                    Lookup::Live(_)
                )
            {
                return Err(Error::new(ErrorCode::ResourceGone));
            }
            self.check_model(kind, None, Some(doc)).await?;
            let mut doc = doc.clone();
            let secret = kind.issue.and_then(|issue| issue(&mut doc));
            let name = (kind.store_name)(&doc);
            let created = self
                .store
                .create(NewDocument {
                    kind: kind.name,
                    scope: &target.scope,
                    name: &name,
                    body: &Value::Object(doc),
                    unchanged_since: Some(since),
                })
                .await
                .map_err(store_error)?;
            let mut shown = representation(kind, &created);
            if let (Some(secret), Value::Object(m)) = (secret, &mut shown) {
                m.insert("secret".into(), json!(secret));
            }
            Ok(json_response(201, &shown)
                .header(
                    "Location",
                    format!("{PREFIX}{}/{}", target.collection, created.id),
                )
                .header("Cache-Control", "no-store")
                .header("ETag", etag(&created)))
        })
        .await
    }

    /// Runs a write's checks and the write itself, as of the store's revision when the
    /// attempt began: should another write land in between (on this node or another), the
    /// store refuses the write and the attempt starts again, checks included. So no two
    /// writes that are fine alone can together leave the store with routes that overlap, a
    /// route naming a deleted upstream, or an item whose parent is gone.
    async fn guarded<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        for _ in 0..WRITE_ATTEMPTS {
            let since = self.store.revision().await.map_err(store_error)?;
            match attempt(since).await {
                Err(e) if e.code() == ErrorCode::ConcurrentChange => {}
                other => return other,
            }
        }
        Err(Error::new(ErrorCode::ConcurrentChange))
    }

    /// The live document of `kind` in `scope` under `id`, or its 404 / 410.
    async fn live(&self, kind: &Kind, scope: &str, id: &str) -> Result<Document, Error> {
        match self.store.get(kind.name, id).await.map_err(store_error)? {
            Lookup::Live(doc) if doc.scope == scope => Ok(doc),
            // Another project's item is not there at all, as far as this URL goes.
            Lookup::Live(_) | Lookup::Missing => Err(Error::new(ErrorCode::ResourceNotFound)),
            Lookup::Gone { .. } => Err(Error::new(ErrorCode::ResourceGone)),
        }
    }

    async fn read(&self, target: &Target<'_>, id: &str, req: &Request) -> Result<Response, Error> {
        let doc = self.live(target.kind, &target.scope, id).await?;
        let tag = etag(&doc);
        match check(req, &tag) {
            Precondition::Proceed => {}
            Precondition::NotModified => return Ok(Response::new(304).header("ETag", tag)),
            Precondition::Failed => return Err(Error::new(ErrorCode::PreconditionFailed)),
        }
        Ok(json_response(200, &representation(target.kind, &doc)).header("ETag", tag))
    }

    async fn update(
        &self,
        target: &Target<'_>,
        id: &str,
        req: &Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        let kind = target.kind;
        let patch = req.head.method() == Method::Patch;
        // 404, 410 and 412 before the body is read; and again, as of each attempt, below.
        let doc = self.live(kind, &target.scope, id).await?;
        if check(req, &etag(&doc)) != Precondition::Proceed {
            return Err(Error::new(ErrorCode::PreconditionFailed));
        }
        let sent = Value::Object(read_json(req, body, patch).await?);
        let as_sent = if patch {
            schema::Body::Patch
        } else {
            schema::Body::Replace
        };
        let found = schema::violations(kind, as_sent, &sent);
        if !found.is_empty() {
            return Err(invalid(found));
        }
        let Value::Object(mut sent) = sent else {
            return Err(Error::new(ErrorCode::JsonMalformed));
        };
        // A `version` in the body is the one the client read: a newer one means it would
        // overwrite a change it has not seen.
        let read_version = sent.remove("version");
        let sent = &sent;
        self.guarded(|since| {
            let read_version = read_version.clone();
            async move {
                let doc = self.live(kind, &target.scope, id).await?;
                if check(req, &etag(&doc)) != Precondition::Proceed {
                    return Err(Error::new(ErrorCode::PreconditionFailed));
                }
                if let Some(v) = read_version
                    && v.as_u64() != Some(doc.version)
                {
                    return Err(Error::new(ErrorCode::VersionConflict)
                        .with_member("current_version", json!(doc.version)));
                }
                let merged = if patch {
                    // The item as its representation shows it, patched.
                    let mut target = doc.body.clone();
                    if let Value::Object(m) = &mut target {
                        for key in kind.hidden {
                            m.remove(*key);
                        }
                    }
                    merge_patch(&mut target, Value::Object(sent.clone()));
                    // The patch was a valid patch; what it makes of this item must be a
                    // valid item, or the patch does not fit the item as it is now.
                    let found = schema::violations(kind, schema::Body::Replace, &target);
                    if !found.is_empty() {
                        let list: Vec<Value> = found
                            .into_iter()
                            .map(|(pointer, message)| json!({"pointer": pointer, "message": message}))
                            .collect();
                        return Err(Error::new(ErrorCode::ModelConflict)
                            .with_member("conflicts", Value::Array(list)));
                    }
                    match target {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    }
                } else {
                    sent.clone()
                };
                let merged = (kind.validate)(merged, Some(&doc))?;
                self.check_model(kind, Some(id), Some(&merged)).await?;
                let name = (kind.store_name)(&merged);
                let updated = self
                    .store
                    .replace(
                        kind.name,
                        id,
                        Expect {
                            version: Some(doc.version),
                            unchanged_since: Some(since),
                        },
                        &name,
                        &Value::Object(merged),
                    )
                    .await
                    .map_err(store_error)?;
                Ok(json_response(200, &representation(kind, &updated))
                    .header("ETag", etag(&updated)))
            }
        })
        .await
    }

    async fn delete(
        &self,
        target: &Target<'_>,
        id: &str,
        req: &Request,
    ) -> Result<Response, Error> {
        let kind = target.kind;
        self.guarded(|since| async move {
            let doc = self.live(kind, &target.scope, id).await?;
            if check(req, &etag(&doc)) != Precondition::Proceed {
                return Err(Error::new(ErrorCode::PreconditionFailed));
            }
            // An item that holds others goes after them: nothing is left without its parent.
            for child in KINDS
                .into_iter()
                .filter(|k| k.parent.is_some_and(|p| p.name == kind.name))
            {
                let held = self
                    .store
                    .list(child.name, id, None, 1)
                    .await
                    .map_err(store_error)?;
                if !held.is_empty() {
                    return Err(Error::new(ErrorCode::ResourceInUse).with_member(
                        "conflicts",
                        json!([{"kind": child.name, "message": format!("it still holds {}", child.name)}]),
                    ));
                }
            }
            self.check_model(kind, Some(id), None).await?;
            self.store
                .delete(
                    kind.name,
                    id,
                    Expect {
                        version: Some(doc.version),
                        unchanged_since: Some(since),
                    },
                )
                .await
                .map_err(store_error)?;
            Ok(Response::new(204))
        })
        .await
    }
}

/// Every live document of a kind in a scope, in id order.
async fn all<S: Store>(store: &S, kind: &str, scope: &str) -> Result<Vec<Document>, StoreError> {
    let mut out: Vec<Document> = Vec::new();
    loop {
        let after = out.last().map(|d| d.id.clone());
        let page = store.list(kind, scope, after.as_deref(), MAX_LIMIT).await?;
        let full = page.len() == MAX_LIMIT;
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// Adds the store's projects, with their consumers and API keys, to `projects` (the file's),
/// for the data plane's access phase. Documents that do not read as the admin API wrote them
/// are skipped (and logged), never guessed at.
pub async fn add_directory<S: Store>(
    store: &S,
    projects: &mut Vec<portico_config::Project>,
) -> Result<(), StoreError> {
    use portico_config::{AccessKey, ApiKey, BillingState, Consumer, Project};
    use resource::{CONSUMERS, CREDENTIALS, PROJECTS};
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    for p in all(store, PROJECTS.name, "").await? {
        let mut consumers = Vec::new();
        for c in all(store, CONSUMERS.name, &p.id).await? {
            let mut api_keys = Vec::new();
            let mut access_keys = Vec::new();
            let mut password_hash = None;
            for k in all(store, CREDENTIALS.name, &c.id).await? {
                let enabled = k.body.get("enabled") != Some(&Value::Bool(false));
                if text(&k.body, "type").as_deref() == Some("password") {
                    if enabled {
                        password_hash = text(&k.body, "password_hash");
                    }
                    continue;
                }
                if text(&k.body, "type").as_deref() == Some("access_key") {
                    match (text(&k.body, "access_key_id"), text(&k.body, "secret_key")) {
                        (Some(id), Some(secret)) => access_keys.push(AccessKey {
                            id,
                            secret: portico_policy::Secret::new(secret),
                            enabled,
                        }),
                        _ => {
                            tracing::warn!(credential = %k.id, "a stored credential does not read as one; skipped")
                        }
                    }
                    continue;
                }
                let digest =
                    text(&k.body, "secret_sha256").and_then(|h| portico_policy::from_hex(&h));
                let expires = match text(&k.body, "expires_at") {
                    None => Some(None),
                    Some(t) => portico_config::parse_timestamp(&t).map(Some),
                };
                match (text(&k.body, "type").as_deref(), digest, expires) {
                    (Some("api_key"), Some(sha256), Some(expires)) => api_keys.push(ApiKey {
                        sha256,
                        enabled,
                        expires,
                    }),
                    _ => {
                        tracing::warn!(credential = %k.id, "a stored credential does not read as one; skipped")
                    }
                }
            }
            consumers.push(Consumer {
                name: c.name.clone(),
                roles: c.body["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect(),
                enabled: c.body.get("enabled") != Some(&Value::Bool(false)),
                api_keys,
                access_keys,
                password: None,
                password_hash,
            });
        }
        let billing_state = text(&p.body, "billing_state")
            .as_deref()
            .and_then(BillingState::parse)
            .unwrap_or(BillingState::Active);
        projects.push(Project {
            id: p.id.clone(),
            name: p.name.clone(),
            billing_state,
            plan: text(&p.body, "plan").unwrap_or_else(|| "free".to_string()),
            consumers,
        });
    }
    Ok(())
}

/// Adds the store's plans to `plans` (the file's; a name the file has is the file's), for the
/// data plane's quotas. A quota that does not read as the admin API wrote it is skipped (and
/// logged).
pub async fn add_plans<S: Store>(
    store: &S,
    plans: &mut Vec<portico_config::Plan>,
) -> Result<(), StoreError> {
    use portico_config::{Plan, Quota, QuotaPeriod};
    for p in all(store, resource::PLANS.name, "").await? {
        if plans.iter().any(|o| o.name == p.name) {
            continue;
        }
        let quota = match p.body.get("quota") {
            None | Some(Value::Null) => None,
            Some(q) => {
                let requests = q.get("requests").and_then(Value::as_u64);
                let period = q
                    .get("period")
                    .and_then(Value::as_str)
                    .and_then(QuotaPeriod::parse);
                match (requests, period) {
                    (Some(requests), Some(period)) => Some(Quota { requests, period }),
                    _ => {
                        tracing::warn!(plan = %p.id, "a stored plan's quota does not read as one; skipped");
                        continue;
                    }
                }
            }
        };
        let mut rate_limits = Vec::new();
        for l in p.body["rate_limits"].as_array().into_iter().flatten() {
            let text = |k: &str| l.get(k).and_then(Value::as_str);
            match portico_config::RateLimit::from_parts(
                text("key").unwrap_or_default(),
                text("rate").unwrap_or_default(),
                l.get("burst").and_then(Value::as_u64),
                text("name"),
            ) {
                Some(limit) => rate_limits.push(limit),
                None => {
                    tracing::warn!(plan = %p.id, "a stored plan's rate limit does not read as one; skipped")
                }
            }
        }
        plans.push(Plan {
            name: p.name.clone(),
            quota,
            rate_limits,
        });
    }
    Ok(())
}

/// The data plane's model as the store holds it: every upstream, route and API document, in
/// id order.
pub async fn model_documents<S: Store>(store: &S) -> Result<Documents, StoreError> {
    let mut docs = Documents::default();
    for section in Section::ALL {
        *docs.of_mut(section) = all(store, section.name(), "")
            .await?
            .into_iter()
            .map(|d| d.body)
            .collect();
    }
    Ok(docs)
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

/// What a read-only path takes.
const READ: &str = "GET, HEAD, OPTIONS";
/// What an action takes.
const ACTION: &str = "POST, OPTIONS";

/// A method the path does not serve: `OPTIONS` is 204 with `Allow`, any other 405 with it.
fn other_method(method: Method, allow: &'static str) -> Result<Response, Error> {
    if method == Method::Options {
        return Ok(Response::new(204).header("Allow", allow));
    }
    Err(Error::new(ErrorCode::MethodNotAllowed).with_allow(allow))
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
        // Another write landed after this request's checks; `guarded` checks again.
        StoreError::RevisionMoved => Error::new(ErrorCode::ConcurrentChange),
        // The store did not answer: nothing was changed, and the client may try again.
        StoreError::Backend(cause) => Error::new(ErrorCode::StoreUnavailable)
            .with_header("Retry-After", "1")
            .with_cause(cause),
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

/// A resource as the API shows it: its fields (less the hidden ones), then `id` and `version`
/// (which a client may send back on PUT or PATCH to say what it read).
fn representation(kind: &Kind, doc: &Document) -> Value {
    let mut out = doc.body.as_object().cloned().unwrap_or_default();
    for key in kind.hidden {
        out.remove(*key);
    }
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
