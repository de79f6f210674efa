//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header) on routes with
//! `idempotency`: the first POST or PATCH with a key goes to the upstream and its response is
//! kept; a retry with the key and the same payload gets that response again (with
//! `Idempotent-Replayed: true`), without reaching the upstream; the key with another payload
//! is 422; a retry while the first is in flight is 409 with `Retry-After: 1`.
//!
//! Keys are scoped to the route and the caller (its project and consumer; an anonymous
//! caller's address), so one caller can neither see nor block another's. The store keeps a
//! digest of the scoped key, never the client's text, and decides each claim atomically, so
//! nodes sharing a PostgreSQL store share keys. A request whose answer is Portico's own error
//! (502, 503, 504: no upstream response to keep) gives its key up, so a retry may go on.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::Idempotency;
use portico_http::ErrorCode;
use portico_policy::secret::push_hex;
use portico_server::{Body, Error, Request, Response};
use portico_store::StoreError;
use portico_store::{KeptResponse, KeyClaim, KeyState, Store, new_id};
use sha2::{Digest, Sha256};

use crate::caller::Caller;
use crate::deadline::Deadline;

/// What a key store's operations return; the error text is for logs.
pub type KeyFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where idempotency keys are kept.
pub trait KeyStore: Send + Sync + 'static {
    /// Claims a key (see [`portico_store::Store::claim_key`]).
    fn claim<'a>(&'a self, ask: KeyClaim<'a>) -> KeyFuture<'a, KeyState>;
    /// Keeps the response of the claim that holds `key`.
    fn finish<'a>(
        &'a self,
        key: &'a str,
        claim: &'a str,
        response: &'a KeptResponse,
        expires_ms: i64,
    ) -> KeyFuture<'a, ()>;
    /// Gives a claim up.
    fn release<'a>(&'a self, key: &'a str, claim: &'a str) -> KeyFuture<'a, ()>;
}

/// Every store keeps keys (in its `idempotency_keys` table).
impl<S: Store + Send + Sync + 'static> KeyStore for S {
    fn claim<'a>(&'a self, ask: KeyClaim<'a>) -> KeyFuture<'a, KeyState> {
        Box::pin(async move { self.claim_key(ask).await })
    }

    fn finish<'a>(
        &'a self,
        key: &'a str,
        claim: &'a str,
        response: &'a KeptResponse,
        expires_ms: i64,
    ) -> KeyFuture<'a, ()> {
        Box::pin(async move { self.finish_key(key, claim, response, expires_ms).await })
    }

    fn release<'a>(&'a self, key: &'a str, claim: &'a str) -> KeyFuture<'a, ()> {
        Box::pin(async move { self.release_key(key, claim).await })
    }
}

/// Keys kept in this process (a gateway built without a store: tests, embedders). Expired
/// keys are swept as new ones come.
#[derive(Default)]
pub struct MemoryKeys {
    map: Mutex<HashMap<String, Held>>,
}

struct Held {
    fingerprint: String,
    claim: String,
    lease_until_ms: i64,
    expires_ms: i64,
    response: Option<KeptResponse>,
}

impl MemoryKeys {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KeyStore for MemoryKeys {
    fn claim<'a>(&'a self, ask: KeyClaim<'a>) -> KeyFuture<'a, KeyState> {
        let mut map = self.map();
        if map.len() >= 4096 {
            map.retain(|_, h| h.expires_ms > ask.now_ms);
        }
        let fresh = Held {
            fingerprint: ask.fingerprint.to_string(),
            claim: ask.claim.to_string(),
            lease_until_ms: ask.lease_until_ms,
            expires_ms: ask.expires_ms,
            response: None,
        };
        // The same rules as the stores' one statement.
        let state = match map.get_mut(ask.key) {
            None => {
                map.insert(ask.key.to_string(), fresh);
                KeyState::Claimed
            }
            Some(h) if h.expires_ms <= ask.now_ms => {
                *h = fresh;
                KeyState::Claimed
            }
            Some(h) if h.fingerprint != ask.fingerprint => KeyState::OtherPayload,
            Some(h) => match &h.response {
                Some(r) => KeyState::Done(r.clone()),
                None if h.lease_until_ms <= ask.now_ms => {
                    h.claim = ask.claim.to_string();
                    h.lease_until_ms = ask.lease_until_ms;
                    KeyState::Claimed
                }
                None => KeyState::InFlight,
            },
        };
        Box::pin(std::future::ready(Ok(state)))
    }

    fn finish<'a>(
        &'a self,
        key: &'a str,
        claim: &'a str,
        response: &'a KeptResponse,
        expires_ms: i64,
    ) -> KeyFuture<'a, ()> {
        if let Some(h) = self.map().get_mut(key)
            && h.claim == claim
            && h.response.is_none()
        {
            h.response = Some(response.clone());
            h.expires_ms = expires_ms;
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, key: &'a str, claim: &'a str) -> KeyFuture<'a, ()> {
        let mut map = self.map();
        if map
            .get(key)
            .is_some_and(|h| h.claim == claim && h.response.is_none())
        {
            map.remove(key);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Longest key accepted.
const MAX_KEY: usize = 255;

/// The request's `Idempotency-Key`: `None` without one (400 when the route requires one),
/// 400 when it is malformed or given twice. The draft makes it a structured-field string
/// (`"…"`, RFC 8941 §3.3.3); a bare token is taken as well.
pub(crate) fn key_of(req: &Request, settings: &Idempotency) -> Result<Option<Vec<u8>>, Error> {
    let mut values = req.head.fields_named("idempotency-key");
    let (first, second) = (values.next(), values.next());
    let value = match (first, second) {
        (None, _) if settings.required => {
            return Err(Error::new(ErrorCode::IdempotencyKeyMissing));
        }
        (None, _) => return Ok(None),
        (Some(v), None) => v.trim_ascii(),
        (Some(_), Some(_)) => return Err(Error::new(ErrorCode::IdempotencyKeyInvalid)),
    };
    parse_key(value)
        .map(Some)
        .ok_or_else(|| Error::new(ErrorCode::IdempotencyKeyInvalid))
}

fn parse_key(value: &[u8]) -> Option<Vec<u8>> {
    let key = match value.strip_prefix(b"\"") {
        Some(rest) => {
            let inner = rest.strip_suffix(b"\"")?;
            let mut out = Vec::with_capacity(inner.len());
            let mut bytes = inner.iter();
            while let Some(&b) = bytes.next() {
                match b {
                    b'\\' => match bytes.next() {
                        Some(&e @ (b'"' | b'\\')) => out.push(e),
                        _ => return None,
                    },
                    b'"' => return None,
                    0x20..=0x7e => out.push(b),
                    _ => return None,
                }
            }
            out
        }
        None if value
            .iter()
            .all(|b| (0x21..=0x7e).contains(b) && *b != b'"') =>
        {
            value.to_vec()
        }
        None => return None,
    };
    (!key.is_empty() && key.len() <= MAX_KEY).then_some(key)
}

/// A request that would claim its key: the key's scope (route and caller), the payload it
/// stands for, and how long it may run.
pub(crate) struct Attempt<'a> {
    pub(crate) route: &'a str,
    pub(crate) settings: &'a Idempotency,
    pub(crate) req: &'a Request,
    pub(crate) caller: Option<&'a Caller>,
    pub(crate) key: &'a [u8],
    /// The body, read whole.
    pub(crate) body: Option<&'a Bytes>,
    pub(crate) deadline: Option<&'a Deadline>,
}

/// A claim this request holds on its key.
pub(crate) struct Claim {
    key: String,
    id: String,
    ttl: Duration,
    max_response_bytes: usize,
}

/// How a claim attempt ended.
pub(crate) enum Outcome {
    /// The request goes on, holding the key.
    Go(Claim),
    /// The answer is this (a replay).
    Answer(Response),
}

/// Milliseconds since the Unix epoch.
pub(crate) fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A duration in whole milliseconds, as the stores count time.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Claims the request's key (its body already read): the request goes on, or gets the kept
/// response, or 409, 422, 503.
pub(crate) async fn claim(store: &dyn KeyStore, a: Attempt<'_>) -> Result<Outcome, Error> {
    let Attempt {
        route,
        settings,
        req,
        caller,
        key,
        body,
        deadline,
    } = a;
    let scoped = scoped_key(route, req, caller, key);
    let fingerprint = fingerprint(req, body);
    let id = new_id();
    let now = epoch_ms(SystemTime::now());
    // In flight for the lease, or for as long as the request's deadline lets it run.
    let lease = deadline.map_or(settings.lease, |d| settings.lease.max(d.remaining()));
    let ask = KeyClaim {
        key: &scoped,
        fingerprint: &fingerprint,
        claim: &id,
        now_ms: now,
        lease_until_ms: now.saturating_add(ms(lease)),
        expires_ms: now.saturating_add(ms(settings.ttl)),
    };
    let state = store.claim(ask).await.map_err(|e| {
        Error::new(ErrorCode::IdempotencyStoreUnavailable)
            .with_header("Retry-After", "1")
            .with_cause(e)
    })?;
    match state {
        KeyState::Claimed => Ok(Outcome::Go(Claim {
            key: scoped,
            id,
            ttl: settings.ttl,
            max_response_bytes: usize::try_from(settings.max_response_bytes).unwrap_or(usize::MAX),
        })),
        KeyState::InFlight => {
            Err(Error::new(ErrorCode::IdempotencyKeyInFlight).with_header("Retry-After", "1"))
        }
        KeyState::OtherPayload => Err(Error::new(ErrorCode::IdempotencyKeyReused)),
        KeyState::Done(kept) => replay(kept).map(Outcome::Answer),
    }
}

/// Ends a claim with the request's result: an upstream's response is kept (its body read
/// whole when it fits `max_response_bytes`, and then sent from memory) and answered; an
/// error gives the key up.
pub(crate) async fn settle(
    store: &dyn KeyStore,
    claim: Claim,
    result: Result<Response, Error>,
) -> Result<Response, Error> {
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            give_up(store, &claim).await;
            return Err(e);
        }
    };
    let body = match &mut resp.body {
        Body::Upstream(ub) => match ub.read_up_to(claim.max_response_bytes).await {
            Ok(Some(all)) => {
                resp.body = Body::Full(all.clone());
                Some(all.to_vec())
            }
            Ok(None) => None,
            Err(e) => {
                give_up(store, &claim).await;
                return Err(e);
            }
        },
        Body::Full(b) => Some(b.to_vec()),
        _ => Some(Vec::new()),
    };
    let kept = KeptResponse {
        status: resp.status,
        head: head_lines(&resp.headers),
        body,
    };
    let expires = epoch_ms(SystemTime::now()).saturating_add(ms(claim.ttl));
    if let Err(e) = store.finish(&claim.key, &claim.id, &kept, expires).await {
        // The answer still goes out; the key stays in flight until its lease ends.
        tracing::warn!(error = %e, "an idempotent response could not be kept");
    }
    Ok(resp)
}

/// Gives a claim up (the request is refused before it went anywhere, or failed without an
/// upstream response).
pub(crate) async fn give_up(store: &dyn KeyStore, claim: &Claim) {
    if let Err(e) = store.release(&claim.key, &claim.id).await {
        tracing::warn!(error = %e, "an idempotency key could not be released");
    }
}

/// The kept response, replayed.
fn replay(kept: KeptResponse) -> Result<Response, Error> {
    let Some(body) = kept.body else {
        return Err(Error::new(ErrorCode::IdempotencyResponseNotKept)
            .with_detail(format!("It was answered with status {}.", kept.status)));
    };
    let mut headers = parse_lines(&kept.head);
    headers.push((
        Bytes::from_static(b"Idempotent-Replayed"),
        Bytes::from_static(b"true"),
    ));
    Ok(Response {
        status: kept.status,
        reason: None,
        headers,
        body: Body::Full(body.into()),
        close: false,
        error: None,
    })
}

/// `name: value\r\n` for each field.
pub(crate) fn head_lines(headers: &[(Bytes, Bytes)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub(crate) fn parse_lines(head: &[u8]) -> Vec<(Bytes, Bytes)> {
    head.split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            Some((
                Bytes::copy_from_slice(&line[..colon]),
                Bytes::copy_from_slice(line[colon + 1..].trim_ascii()),
            ))
        })
        .collect()
}

/// The key as the store holds it: the digest of the route, the caller and the key.
fn scoped_key(route: &str, req: &Request, caller: Option<&Caller>, key: &[u8]) -> String {
    let mut h = Sha256::new();
    part(&mut h, route.as_bytes());
    match caller {
        Some(c) => {
            part(&mut h, b"caller");
            part(&mut h, c.project_id.as_bytes());
            part(&mut h, c.consumer.as_bytes());
        }
        None => {
            part(&mut h, b"address");
            part(&mut h, req.peer.ip().to_string().as_bytes());
        }
    }
    part(&mut h, key);
    hex(h)
}

/// What makes two requests "the same payload": method, target, content type and body.
fn fingerprint(req: &Request, body: Option<&Bytes>) -> String {
    let mut h = Sha256::new();
    part(&mut h, req.head.method().as_str().as_bytes());
    part(&mut h, req.head.path());
    part(&mut h, req.head.query().unwrap_or_default());
    for v in req.head.fields_named("content-type") {
        part(&mut h, v);
    }
    part(&mut h, b"body");
    part(&mut h, body.map_or(&b""[..], |b| &b[..]));
    hex(h)
}

/// A length-prefixed part, so that no two different sequences hash alike.
fn part(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn hex(h: Sha256) -> String {
    let mut out = String::with_capacity(64);
    push_hex(&mut out, &h.finalize());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_structured_field_strings_or_bare_tokens() {
        assert_eq!(
            parse_key(b"\"8e03978e\"").as_deref(),
            Some(&b"8e03978e"[..])
        );
        assert_eq!(
            parse_key(b"\"a \\\"b\\\\\"").as_deref(),
            Some(&b"a \"b\\"[..])
        );
        assert_eq!(
            parse_key(b"bare-key_1").as_deref(),
            Some(&b"bare-key_1"[..])
        );
        let long = vec![b'k'; MAX_KEY];
        assert_eq!(parse_key(&long).as_deref(), Some(&long[..]));
        for bad in [
            &b""[..],
            b"\"\"",
            b"\"open",
            b"\"a\"b\"",
            b"\"bad\\escape\"",
            b"two words",
            b"\"tab\there\"",
            b"\"\xc3\xa9\"",
        ] {
            assert_eq!(parse_key(bad), None, "{:?}", bad.escape_ascii());
        }
        assert_eq!(parse_key(&vec![b'k'; MAX_KEY + 1]), None);
    }

    #[test]
    fn kept_fields_come_back_as_they_were() {
        let fields = vec![
            (
                Bytes::from_static(b"Location"),
                Bytes::from_static(b"/items/1"),
            ),
            (Bytes::from_static(b"ETag"), Bytes::from_static(b"\"v1\"")),
        ];
        assert_eq!(parse_lines(&head_lines(&fields)), fields);
    }
}
