//! The route's response cache, as two phases.
//!
//! `cache` (the last request phase, so every refusal comes first and a stored response is
//! never served to a caller the route would refuse) looks the request up: a stored response
//! it may use answers at once; a stale one with `stale-while-revalidate` answers and is
//! refreshed in the background; otherwise the request goes on to the upstream, as the one
//! request that fills the key (the others that miss meanwhile wait for it, bounded by the
//! route's `wait` and their deadline) and with the stale entry's validators.
//!
//! `cache_store` (a response phase) takes the upstream's answer in: a 304 refreshes the
//! stale entry, a storable response is stored, and either is answered from the entry (so
//! the client's own conditions and ranges are answered as for a fresh hit); an upstream
//! failure answers a stale entry where `stale-if-error` allows. An unsafe method that
//! succeeded invalidates its target and its `Location` / `Content-Location` (RFC 9111 §4.4).
//! Every response of a cached route says what happened in `Cache-Status` (RFC 9211).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use portico_cache::{Cache, Counts, Entry, Fill, FillGuard, Found};
use portico_config::RouteCache;
use portico_http::caching::{
    CacheStatus, Forward, RequestDirectives, Use, invalidates, stale_if_error, usable,
};
use portico_http::conditional::Conditions;
use portico_http::upgrade::is_websocket_upgrade;
use portico_http::{ErrorCode, Method};
use portico_server::{Error, RequestBody, Response};

use super::{Answered, Ctx, Flow, Next};
use crate::Gateway;
use crate::cache::{Asked, Filling, Taken, field_value, key, location_key, serve, take};

/// What the `cache` phase found, for `cache_store` and the upstream request.
pub(crate) struct Lookup {
    key: String,
    settings: RouteCache,
    counts: Arc<Counts>,
    asked: Asked,
    status: CacheStatus,
    /// The stored response the request goes to revalidate (or falls back on).
    stale: Option<Arc<Entry>>,
    /// Held while this request fills the key.
    guard: Option<FillGuard>,
    /// The request was answered from the cache.
    hit: bool,
    /// The request goes upstream as a cache fill (a GET): the client's conditions and
    /// `Range` stay here, and these validators go instead.
    pub(crate) fill: Option<Vec<(&'static str, Bytes)>>,
}

impl Lookup {
    /// The request was answered from the cache.
    pub(crate) fn is_hit(&self) -> bool {
        self.hit
    }
}

/// Whether the route's responses are cached.
fn caches(cx: &Ctx<'_>) -> bool {
    cx.route.cache.is_some_and(|c| c.enabled) && cx.route.upstream().is_some()
}

/// Whether the route caches, and this request is one the cache sees.
pub(super) fn applies(cx: &Ctx<'_>) -> bool {
    caches(cx) && !(cx.route.websocket.is_some() && is_websocket_upgrade(&cx.req.head))
}

/// `Cache-Status` of a request on a cached route that the cache never saw: refused by an
/// earlier phase, or a WebSocket handshake (RFC 9211 §2.2: `fwd=bypass`).
const BYPASS: &str = "Portico; fwd=bypass";

/// The phase `cache`.
pub(super) async fn lookup(gw: &Gateway, cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let Some(settings) = cx.route.cache else {
        return Ok(Flow::Next);
    };
    let head = &cx.req.head;
    let method = head.method();
    let key = key(head, cx.path);
    let mut look = Lookup {
        status: CacheStatus {
            key: settings.show_key.then(|| key.clone()),
            ..CacheStatus::default()
        },
        key,
        settings,
        counts: match &cx.route.cache_counts {
            Some(c) => c.clone(),
            None => gw.cache.counts(&cx.route.name),
        },
        asked: Asked {
            method,
            directives: RequestDirectives::parse(
                head.fields_named("cache-control"),
                head.fields_named("pragma"),
            ),
            authorization: head.fields_named("authorization").next().is_some(),
            sent: gw.cache.now(),
        },
        stale: None,
        guard: None,
        hit: false,
        fill: None,
    };
    if !matches!(method, Method::Get | Method::Head) {
        look.status.fwd = Some(Forward::Method);
        cx.cache = Some(Box::new(look));
        return Ok(Flow::Next);
    }
    let found = gw
        .cache
        .find(&look.key, |n| field_value(head.fields(), n))
        .await;
    if let Some(resp) = decide(gw, cx, &mut look, found)? {
        cx.cache = Some(Box::new(look));
        return Ok(Flow::Answer(Box::new(resp)));
    }
    if method == Method::Get && look.stale.is_none() {
        match gw.cache.fill(&look.key) {
            Fill::Lead(guard) => look.guard = Some(guard),
            Fill::Follow(waiter) => {
                let wait = match &cx.deadline {
                    Some(d) => settings.wait.min(d.remaining()),
                    None => settings.wait,
                };
                let waited = tokio::time::timeout(wait, waiter.done()).await;
                if waited.is_err()
                    && cx
                        .deadline
                        .as_ref()
                        .is_some_and(|d| d.remaining().is_zero())
                {
                    return Err(crate::deadline::exceeded()
                        .with_header("Cache-Status", look.status.value()));
                }
                let again = gw
                    .cache
                    .find(&look.key, |n| field_value(head.fields(), n))
                    .await;
                look.status.collapsed = true;
                if let Some(resp) = decide(gw, cx, &mut look, again)? {
                    cx.cache = Some(Box::new(look));
                    return Ok(Flow::Answer(Box::new(resp)));
                }
                look.status.collapsed = false;
            }
        }
    }
    if look.asked.directives.only_if_cached {
        return Err(
            Error::new(ErrorCode::NotCached).with_header("Cache-Status", look.status.value())
        );
    }
    if method == Method::Get {
        look.fill = Some(validators(look.stale.as_deref()));
    }
    Counts::bump(if look.stale.is_some() {
        &look.counts.stale
    } else {
        &look.counts.misses
    });
    cx.cache = Some(Box::new(look));
    Ok(Flow::Next)
}

/// What a lookup's find means for the request: an answer from the cache, or (`None`) the
/// upstream, with what the lookup learnt recorded in `look`.
fn decide(
    gw: &Gateway,
    cx: &mut Ctx<'_>,
    look: &mut Lookup,
    found: Found,
) -> Result<Option<Response>, Error> {
    let entry = match found {
        Found::UriMiss => {
            look.status.fwd = Some(Forward::UriMiss);
            return Ok(None);
        }
        Found::VaryMiss => {
            look.status.fwd = Some(Forward::VaryMiss);
            return Ok(None);
        }
        Found::Entry(e) => e,
    };
    let now = gw.cache.now();
    let staleness = entry.staleness(now);
    match usable(&look.asked.directives, &entry.directives, staleness) {
        Use::Serve => {}
        Use::ServeStaleAndRevalidate => refresh(gw, cx, look, &entry),
        Use::Revalidate => {
            look.status.fwd = Some(if !staleness.is_fresh() {
                Forward::Stale
            } else if entry.directives.no_cache {
                Forward::Miss
            } else {
                Forward::Request
            });
            look.stale = Some(entry);
            return Ok(None);
        }
    }
    look.hit = true;
    look.status.hit = true;
    look.status.fwd = None;
    look.status.ttl = Some(staleness.ttl());
    Counts::bump(&look.counts.hits);
    look.counts
        .bytes_served
        .fetch_add(entry.body.len() as u64, Ordering::Relaxed);
    let conditions = Conditions::from_fields(cx.req.head.fields());
    let status = look.status.value();
    match serve(&entry, look.asked.method, &conditions, now) {
        Ok(resp) => Ok(Some(resp.header("Cache-Status", status))),
        Err(e) => Err(e.with_header("Cache-Status", status)),
    }
}

/// The validators of a stale entry, for a conditional request upstream.
fn validators(stale: Option<&Entry>) -> Vec<(&'static str, Bytes)> {
    let Some(e) = stale else {
        return Vec::new();
    };
    let mut v = Vec::new();
    if let Some(etag) = e.header("etag") {
        v.push(("If-None-Match", Bytes::copy_from_slice(etag)));
    }
    if let Some(lm) = e.header("last-modified") {
        v.push(("If-Modified-Since", Bytes::copy_from_slice(lm)));
    }
    v
}

/// Refreshes a stale entry in the background (`stale-while-revalidate`), unless another
/// request is already filling its key.
fn refresh(gw: &Gateway, cx: &Ctx<'_>, look: &Lookup, entry: &Arc<Entry>) {
    let Fill::Lead(guard) = gw.cache.fill(&look.key) else {
        return;
    };
    let Some(index) = cx.route.upstream() else {
        return;
    };
    let upstream = gw.upstreams[index].clone();
    let fill = validators(Some(entry));
    let Ok(mut outgoing) = crate::proxy::outgoing(
        cx.req,
        cx.path.as_bytes(),
        cx.caller.as_ref(),
        upstream.authority(),
        None,
        Some(&fill),
        None,
    ) else {
        return;
    };
    outgoing.method = Method::Get;
    let cache = gw.cache.clone();
    let route = cx.route.name.clone();
    let settings = look.settings;
    let asked = Asked {
        method: Method::Get,
        sent: cache.now(),
        ..look.asked.clone()
    };
    let key = look.key.clone();
    let entry = entry.clone();
    let fields: Vec<(Bytes, Bytes)> = cx
        .req
        .head
        .fields()
        .map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
        .collect();
    tokio::spawn(async move {
        let _guard = guard;
        let mut body = RequestBody::detached(Bytes::new());
        let Ok((resp, _)) = crate::proxy::forward(&upstream, outgoing, &mut body, None).await
        else {
            return;
        };
        let vary = |n: &str| field_value(fields.iter().map(|(n, v)| (&n[..], &v[..])), n);
        let filling = Filling {
            cache: &cache,
            route: &route,
            settings: &settings,
            asked: &asked,
            key: &key,
            stale: Some(&entry),
        };
        let taken = take(&filling, resp, &vary).await;
        if let Err(e) = taken {
            tracing::debug!(route = %route, code = %e.code(), "a background refresh failed");
        }
    });
}

/// Whether the response phase `cache_store` has anything to do: the route caches, or the
/// request's method may invalidate stored responses.
pub(super) fn store_applies(cx: &Ctx<'_>) -> bool {
    cx.cache.is_some()
        || caches(cx)
        || (!cx.req.head.method().is_safe() && cx.route.upstream().is_some())
}

/// The phase `cache_store`.
pub(super) async fn store(gw: &Gateway, cx: &mut Ctx<'_>, answer: Answered) -> Answered {
    let method = cx.req.head.method();
    if !method.is_safe()
        && let Ok(Next::Respond(resp)) = &answer
        && resp.error.is_none()
        && invalidates(method, resp.status)
    {
        invalidate(&gw.cache, cx, resp);
    }
    let Some(mut look) = cx.cache.take() else {
        if !caches(cx) {
            return answer;
        }
        return match answer {
            Ok(Next::Respond(resp)) => Ok(Next::Respond(resp.header("Cache-Status", BYPASS))),
            Err(e) => Err(e.with_header("Cache-Status", BYPASS)),
            other => other,
        };
    };
    if look.hit {
        return answer;
    }
    let answer = stored(gw, cx, &mut look, answer).await;
    // Whatever became of it, the requests waiting on this one's fill may look again.
    drop(look.guard.take());
    let value = look.status.value();
    match answer {
        Ok(Next::Respond(resp)) => Ok(Next::Respond(resp.header("Cache-Status", value))),
        Err(e) => Err(e.with_header("Cache-Status", value)),
        other => other,
    }
}

/// The answer once the upstream's response was taken in (or a stale entry stood in for a
/// failure).
async fn stored(gw: &Gateway, cx: &Ctx<'_>, look: &mut Lookup, answer: Answered) -> Answered {
    let failed = match &answer {
        Err(e) => Some(e.code().status()),
        Ok(Next::Respond(r)) if r.error.is_none() && (500..=504).contains(&r.status) => {
            Some(r.status)
        }
        _ => None,
    };
    if let (Some(status), Some(stale)) = (failed, &look.stale) {
        look.status.fwd_status = Some(status);
        let staleness = stale.staleness(gw.cache.now());
        if matches!(status, 500 | 502 | 503 | 504)
            && stale_if_error(&look.asked.directives, &stale.directives, staleness)
        {
            look.status.ttl = Some(staleness.ttl());
            look.status.detail = Some("stale-if-error");
            Counts::bump(&look.counts.stale_if_error);
            let conditions = Conditions::from_fields(cx.req.head.fields());
            return serve(stale, look.asked.method, &conditions, gw.cache.now()).map(Next::Respond);
        }
    }
    let resp = match answer {
        Ok(Next::Respond(resp)) if resp.error.is_none() => resp,
        other => return other,
    };
    look.status.fwd_status = Some(resp.status);
    if look.fill.is_none() {
        return Ok(Next::Respond(resp));
    }
    let head = &cx.req.head;
    let vary = |n: &str| field_value(head.fields(), n);
    let filling = Filling {
        cache: &gw.cache,
        route: &cx.route.name,
        settings: &look.settings,
        asked: &look.asked,
        key: &look.key,
        stale: look.stale.as_ref(),
    };
    let taken = take(&filling, resp, &vary).await?;
    match taken {
        Taken::Stored(entry) => {
            let now = gw.cache.now();
            look.status.stored = true;
            look.status.ttl = Some(entry.staleness(now).ttl());
            Counts::bump(&look.counts.stored);
            let conditions = Conditions::from_fields(head.fields());
            serve(&entry, look.asked.method, &conditions, now).map(Next::Respond)
        }
        Taken::Relayed(resp, why) => {
            look.status.detail = Some(why);
            Ok(Next::Respond(*resp))
        }
    }
}

/// RFC 9111 §4.4: the target's stored responses, and those of its `Location` and
/// `Content-Location` on the same authority, are invalidated.
fn invalidate(cache: &Cache, cx: &Ctx<'_>, resp: &Response) {
    let head = &cx.req.head;
    cache.invalidate(&key(head, cx.path));
    for name in ["location", "content-location"] {
        for (_, v) in resp
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        {
            if let Some(k) = location_key(head, v) {
                cache.invalidate(&k);
            }
        }
    }
}
