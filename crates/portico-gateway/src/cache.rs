//! Between the response cache and the request path: the key a request has, a stored response
//! made into the answer to a request (through the same semantics core as static files: 200,
//! 206, 304, 412, 416), and an upstream's response taken into the cache (stored, or a 304
//! that refreshes a stored one, RFC 9111 §4.3.4).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use portico_cache::{Cache, Entry, StoredFields};
use portico_config::RouteCache;
use portico_http::caching::{
    NotStored, RequestDirectives, ResponseDirectives, Storable, Timing, kept_on_update,
    push_normalised, storable, vary_fields,
};
use portico_http::conditional::{Conditions, HttpDate};
use portico_http::request::trim_ows;
use portico_http::{Method, RequestHead};
use portico_server::client::ResponseFraming;
use portico_server::{Body, Error, Response};

use crate::represent::{self, Meta, Source};

/// The cache key of a request: its authority (lowercase) and its target, dot segments
/// removed (`path`) and percent-encodings normalised.
pub(crate) fn key(head: &RequestHead, path: &str) -> String {
    let host = head
        .authority()
        .or_else(|| head.fields_named("host").next())
        .unwrap_or_default();
    let query = head.query();
    let mut key = String::with_capacity(host.len() + path.len() + query.map_or(0, <[u8]>::len) + 1);
    key.push_str(&String::from_utf8_lossy(host).to_ascii_lowercase());
    push_normalised(&mut key, path.as_bytes());
    if let Some(q) = query {
        key.push('?');
        push_normalised(&mut key, q);
    }
    key
}

/// The key of a `Location` or `Content-Location` on the same authority as `key` (RFC 9111
/// §4.4: only URIs of the same origin are invalidated).
pub(crate) fn location_key(head: &RequestHead, value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(trim_ows(value)).ok()?;
    let host = head
        .authority()
        .or_else(|| head.fields_named("host").next())
        .map(|h| String::from_utf8_lossy(h).to_ascii_lowercase())?;
    let rest = if let Some(abs) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    {
        let slash = abs.find('/').unwrap_or(abs.len());
        if !abs[..slash].eq_ignore_ascii_case(&host) {
            return None;
        }
        &abs[slash..]
    } else if value.starts_with('/') && !value.starts_with("//") {
        value
    } else {
        return None;
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let path = match portico_http::path::remove_dot_segments(path.as_bytes()) {
        Some(p) => String::from_utf8_lossy(&p).into_owned(),
        None => path.to_string(),
    };
    let mut key = host;
    push_normalised(&mut key, path.as_bytes());
    if let Some(q) = query {
        key.push('?');
        push_normalised(&mut key, q.as_bytes());
    }
    Some(key)
}

/// A request's value of a field, for matching `Vary` (RFC 9111 §4.1): its lines joined as
/// one list; absent when it has none.
pub(crate) fn field_value<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    name: &str,
) -> Option<Bytes> {
    let mut out: Option<BytesMut> = None;
    for (n, v) in fields {
        if !n.eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        let v = trim_ows(v);
        match &mut out {
            None => out = Some(BytesMut::from(v)),
            Some(o) => {
                o.extend_from_slice(b", ");
                o.extend_from_slice(v);
            }
        }
    }
    out.map(BytesMut::freeze)
}

/// Seconds since the epoch.
pub(crate) fn secs(t: SystemTime) -> u64 {
    HttpDate::from_system_time(t).0
}

/// What the request that went to the origin was, as storing its response needs it.
#[derive(Clone, Debug)]
pub(crate) struct Asked {
    /// Its method.
    pub(crate) method: Method,
    /// Its `Cache-Control`.
    pub(crate) directives: RequestDirectives,
    /// It carried `Authorization`.
    pub(crate) authorization: bool,
    /// When it was sent.
    pub(crate) sent: SystemTime,
}

/// What became of an upstream's response.
pub(crate) enum Taken {
    /// It was stored (or refreshed a stored one): answer from the entry.
    Stored(Arc<Entry>),
    /// It was not: relay it, for this reason.
    Relayed(Box<Response>, &'static str),
}

/// Where an upstream's response may go: the cache, the route and its settings, the request
/// that went upstream, the key, and the stale entry it revalidated.
pub(crate) struct Filling<'a> {
    pub(crate) cache: &'a Cache,
    pub(crate) route: &'a Arc<str>,
    pub(crate) settings: &'a RouteCache,
    pub(crate) asked: &'a Asked,
    pub(crate) key: &'a str,
    pub(crate) stale: Option<&'a Arc<Entry>>,
}

/// Takes an upstream's response into the cache: a 304 for a stale entry refreshes it; a
/// storable response whose body fits `max_entry_bytes` is stored. `vary` gives the request's
/// value of a field.
pub(crate) async fn take(
    f: &Filling<'_>,
    mut resp: Response,
    vary: &(dyn Fn(&str) -> Option<Bytes> + Sync),
) -> Result<Taken, Error> {
    let Filling {
        cache,
        route,
        settings,
        asked,
        key,
        stale,
    } = *f;
    let arrived = cache.now();
    if resp.status == 304 {
        return Ok(match stale {
            Some(old) => Taken::Stored(freshen(f, old, &resp, arrived)),
            None => Taken::Relayed(Box::new(resp), "not-modified"),
        });
    }
    let Reckoned {
        directives,
        timing,
        lifetime,
    } = reckon(
        &resp.headers,
        &lines(&resp.headers, "age"),
        resp.status,
        settings.heuristic,
        asked.sent,
        arrived,
    );
    let vary_lines = lines(&resp.headers, "vary");
    let verdict = storable(&Storable {
        method: asked.method,
        status: resp.status,
        directives: &directives,
        request: &asked.directives,
        authorization: asked.authorization,
        expires: timing.expires.is_some(),
        vary: &vary_lines,
    });
    if let Err(why) = verdict {
        return Ok(Taken::Relayed(Box::new(resp), why.as_str()));
    }
    let names = vary_fields(&vary_lines).unwrap_or_default();
    if !settings.share_cookies && !lines(&resp.headers, "set-cookie").is_empty() {
        return Ok(Taken::Relayed(Box::new(resp), "set-cookie"));
    }
    let Some(body) = whole_body(&mut resp, settings.max_entry_bytes).await? else {
        return Ok(Taken::Relayed(Box::new(resp), "too-large"));
    };
    let validators =
        resp.header_value("etag").is_some() || resp.header_value("last-modified").is_some();
    if lifetime == 0 && !validators {
        // Stale from the start and nothing to revalidate it with: storing it saves nothing.
        resp.body = Body::Full(body);
        return Ok(Taken::Relayed(
            Box::new(resp),
            NotStored::NoFreshness.as_str(),
        ));
    }
    // Fields and body copied once into one allocation of their size: a body read piece by
    // piece sits in a buffer that grew by doubling, and the entry keeps it for its lifetime.
    let (headers, body) = StoredFields::with_body(stored_fields(&resp.headers), &body);
    let entry = Entry {
        route: route.clone(),
        status: resp.status,
        headers,
        body,
        timing,
        directives,
        lifetime,
        vary: names.iter().map(|n| vary(n)).collect(),
    };
    let entry = Arc::new(entry);
    cache.store(key, names, entry.clone());
    Ok(Taken::Stored(entry))
}

/// §4.3.4: the stored response's fields updated from the 304's (all but those that describe
/// the 304 itself), its age and freshness reckoned anew, stored again.
fn freshen(
    f: &Filling<'_>,
    old: &Arc<Entry>,
    not_modified: &Response,
    arrived: SystemTime,
) -> Arc<Entry> {
    let Filling {
        cache,
        route,
        settings,
        asked,
        key,
        ..
    } = *f;
    let update: Vec<&(Bytes, Bytes)> = not_modified
        .headers
        .iter()
        .filter(|(n, _)| !kept_on_update(n) && !n.eq_ignore_ascii_case(b"age"))
        .collect();
    let mut headers: Vec<(Bytes, Bytes)> = old
        .headers
        .to_vec()
        .into_iter()
        .filter(|(n, _)| !update.iter().any(|(u, _)| u.eq_ignore_ascii_case(n)))
        .collect();
    headers.extend(update.into_iter().cloned());
    // The merged fields say how fresh it is now; the 304's own Age says how old.
    let Reckoned {
        directives,
        timing,
        lifetime,
    } = reckon(
        &headers,
        &lines(&not_modified.headers, "age"),
        old.status,
        settings.heuristic,
        asked.sent,
        arrived,
    );
    let vary_lines = lines(&headers, "vary");
    let names = vary_fields(&vary_lines).unwrap_or_default();
    let entry = Arc::new(Entry {
        route: route.clone(),
        status: old.status,
        headers: StoredFields::new(stored_fields(&headers)),
        body: old.body.clone(),
        timing,
        directives,
        lifetime,
        vary: old.vary.clone(),
    });
    cache.store(key, names, entry.clone());
    entry
}

/// The lines of the field `name`.
fn lines<'a>(headers: &'a [(Bytes, Bytes)], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_ref())
        .collect()
}

/// What a response's fields say of its caching.
struct Reckoned {
    /// Its directives for this cache: the targeted fields' (`CDN-Cache-Control`,
    /// `Surrogate-Control`) when it has them, else `Cache-Control`'s.
    directives: ResponseDirectives,
    /// Its times (`Expires` left out when targeted fields decide, RFC 9213 §2.1).
    timing: Timing,
    /// Its freshness lifetime, seconds.
    lifetime: u64,
}

/// Reckons a response with fields `headers` and `Age` lines `ages`, sent at `sent` and
/// arrived at `arrived`.
fn reckon(
    headers: &[(Bytes, Bytes)],
    ages: &[&[u8]],
    status: u16,
    heuristic: bool,
    sent: SystemTime,
    arrived: SystemTime,
) -> Reckoned {
    let first = |name: &str| lines(headers, name).first().copied();
    let targeted = ResponseDirectives::targeted(
        lines(headers, "cdn-cache-control"),
        lines(headers, "surrogate-control"),
    );
    let directives =
        targeted.unwrap_or_else(|| ResponseDirectives::parse(lines(headers, "cache-control")));
    let expires = if targeted.is_some() {
        None
    } else {
        first("expires")
    };
    let timing = Timing::from_fields(
        sent,
        arrived,
        first("date"),
        ages,
        expires,
        first("last-modified"),
    );
    let lifetime = timing.freshness_lifetime(&directives, status, heuristic);
    Reckoned {
        directives,
        timing,
        lifetime,
    }
}

/// The fields a stored response keeps: not `Age` (computed when it is served), not the
/// framing the writer derives. They are copied when stored: a field as the upstream client
/// parsed it is a view into the connection's read buffer, which an entry would otherwise keep
/// alive whole for as long as it is stored.
fn stored_fields(headers: &[(Bytes, Bytes)]) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .iter()
        .filter(|(n, _)| {
            !(n.eq_ignore_ascii_case(b"age")
                || n.eq_ignore_ascii_case(b"content-length")
                || n.eq_ignore_ascii_case(b"transfer-encoding"))
        })
        .map(|(n, v)| (&n[..], &v[..]))
}

/// The whole body when it is at most `max` bytes (read now and kept in memory); `None` when
/// it is larger, or cannot be had whole (the response is then relayed as it is, streaming).
async fn whole_body(resp: &mut Response, max: u64) -> Result<Option<Bytes>, Error> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    match &mut resp.body {
        Body::Empty | Body::Bodiless => Ok(Some(Bytes::new())),
        Body::Full(b) if b.len() <= max => Ok(Some(b.clone())),
        Body::Upstream(up) => {
            if let ResponseFraming::Length(n) = up.framing()
                && n > max as u64
            {
                return Ok(None);
            }
            match up.read_up_to(max).await? {
                Some(all) => {
                    resp.body = Body::Full(all.clone());
                    Ok(Some(all))
                }
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// The answer to a GET or HEAD from a stored response at `now`: through the semantics core
/// for a 200 (conditions and ranges), as stored for any other status; with its `Age`.
pub(crate) fn serve(
    entry: &Entry,
    method: Method,
    conditions: &Conditions<'_>,
    now: SystemTime,
) -> Result<Response, Error> {
    let age = entry.timing.current_age(secs(now)).to_string();
    // Any status but 200, or a request with no condition and no range (the common hit): the
    // stored response as it is, without the semantics core's bookkeeping.
    if entry.status != 200 || conditions.is_empty() {
        let mut resp = Response::new(entry.status);
        // Room for what is added on the way out: Age, Accept-Ranges, Cache-Status and the
        // fields every answer gets.
        resp.headers = entry.headers.to_vec_with(4);
        if entry.status == 200
            && !resp
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(b"accept-ranges"))
        {
            resp.headers.push((
                Bytes::from_static(b"Accept-Ranges"),
                Bytes::from_static(b"bytes"),
            ));
        }
        resp.body = Body::Full(entry.body.clone());
        return Ok(resp.header("Age", age));
    }
    let text = |name: &str| {
        entry
            .header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
    };
    const OWN: &[&str] = &["content-type", "etag", "last-modified", "accept-ranges"];
    let meta = Meta {
        content_type: entry.header("content-type").map(Bytes::copy_from_slice),
        etag: text("etag"),
        last_modified: entry.header("last-modified").and_then(HttpDate::parse),
        length: entry.body.len() as u64,
        cache_control: None,
        vary: None,
        content_encoding: None,
        fields: entry
            .headers
            .to_vec()
            .into_iter()
            .filter(|(n, _)| !OWN.iter().any(|o| n.eq_ignore_ascii_case(o.as_bytes())))
            .collect(),
    };
    match represent::respond(
        method,
        conditions,
        &meta,
        Source::Memory(entry.body.clone()),
    ) {
        Ok(resp) => Ok(resp.header("Age", age)),
        Err(e) => Err(e.with_header("Age", age)),
    }
}
