//! Portico's response cache: where stored responses live, and how concurrent misses for one
//! target are collapsed into one request to the origin.
//!
//! What may be stored, for how long, and when a stored response may answer are RFC 9111's
//! rules, decided purely in `portico_http::caching`; this crate keeps the entries. Memory is
//! bounded in bytes by a TinyLFU cache (`moka`): admission and eviction are the crate's, each
//! entry weighed by its body, its fields and its key. Entries are keyed by the normalised
//! target; the responses of one target that differ by the request fields their `Vary` names
//! are kept together as its variants (at most [`MAX_VARIANTS`]), so invalidating a target
//! drops every variant at once (RFC 9111 §4.4).
//!
//! Times come from a [`Clock`], so freshness is tested with a clock the test moves.
//!
//! With a disk tier (`disk.rs`), what memory evicts for room is written to a directory
//! bounded in bytes and read back when asked for, across restarts.

mod disk;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use portico_http::caching::{ResponseDirectives, Staleness, Timing};
use portico_http::conditional::HttpDate;
use tokio::sync::watch;

/// The most variants a target keeps; storing one more drops the oldest.
pub const MAX_VARIANTS: usize = 16;

/// What an entry costs beyond its bytes: the entry, its vectors, the cache's own node.
const ENTRY_OVERHEAD: u64 = 256;

/// The time, for freshness and age.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock a test sets and moves.
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    /// A clock that reads `at` until moved.
    pub fn new(at: SystemTime) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stored response's fields, compact: `name:value` lines in one allocation, read back by
/// splitting (a name holds no `:`, a value no line break; the upstream client refuses both).
/// A cache holds many of these for a long time, so their size is its overhead: a pair of
/// `Bytes` per field would take 64 bytes before the field's own.
#[derive(Clone, Debug, Default)]
pub struct StoredFields {
    blob: Bytes,
}

impl StoredFields {
    fn write<'a>(
        out: &mut bytes::BytesMut,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) {
        for (n, v) in fields {
            // Never the case for what the upstream client parsed; a field that would not
            // read back as itself is left out.
            if n.is_empty() || n.contains(&b':') || n.contains(&b'\n') || v.contains(&b'\n') {
                continue;
            }
            out.extend_from_slice(n);
            out.extend_from_slice(b":");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\n");
        }
    }

    /// The fields given, in order.
    pub fn new<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> StoredFields {
        let mut blob = bytes::BytesMut::new();
        StoredFields::write(&mut blob, fields);
        StoredFields {
            blob: Bytes::copy_from_slice(&blob),
        }
    }

    /// The fields given and a body, in one allocation of their size: the fields, and the
    /// body as a view of the same allocation.
    pub fn with_body<'a>(
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        body: &[u8],
    ) -> (StoredFields, Bytes) {
        let mut head = bytes::BytesMut::new();
        StoredFields::write(&mut head, fields);
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(&head);
        all.extend_from_slice(body);
        let all = Bytes::from(all);
        (
            StoredFields {
                blob: all.slice(..head.len()),
            },
            all.slice(head.len()..),
        )
    }

    /// Where each field's name and value are in the blob.
    fn spans(&self) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> + '_ {
        let mut at = 0;
        self.blob.split(|&b| b == b'\n').filter_map(move |line| {
            let start = at;
            at += line.len() + 1;
            let colon = line.iter().position(|&b| b == b':')?;
            Some((start..start + colon, start + colon + 1..start + line.len()))
        })
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans().map(|(n, v)| (&self.blob[n], &self.blob[v]))
    }

    /// The fields as a response carries them (views of this one allocation, no copies).
    pub fn to_vec(&self) -> Vec<(Bytes, Bytes)> {
        self.to_vec_with(0)
    }

    /// The same, with room for `extra` more.
    pub fn to_vec_with(&self, extra: usize) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::with_capacity(self.blob.iter().filter(|&&b| b == b'\n').count() + extra);
        out.extend(
            self.spans()
                .map(|(n, v)| (self.blob.slice(n), self.blob.slice(v))),
        );
        out
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.spans().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.blob.is_empty()
    }

    /// The memory they take.
    fn weight(&self) -> usize {
        self.blob.len()
    }
}

/// A stored response.
#[derive(Debug)]
pub struct Entry {
    /// The route that stored it.
    pub route: Arc<str>,
    /// Its status.
    pub status: u16,
    /// Its fields, end-to-end only, without `Age` (computed when served).
    pub headers: StoredFields,
    /// Its body.
    pub body: Bytes,
    /// The times that fix its age.
    pub timing: Timing,
    /// Its `Cache-Control`.
    pub directives: ResponseDirectives,
    /// Its freshness lifetime, seconds.
    pub lifetime: u64,
    /// The request's values of the fields the response's `Vary` names, in the order of
    /// [`Variants::names`].
    pub vary: Vec<Option<Bytes>>,
}

impl Entry {
    /// Its age and lifetime at `now`.
    pub fn staleness(&self, now: SystemTime) -> Staleness {
        Staleness {
            age: self.timing.current_age(HttpDate::from_system_time(now).0),
            lifetime: self.lifetime,
        }
    }

    /// The first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every line of the field `name`.
    pub fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// What the entry costs in memory, as the cache weighs it.
    fn weight(&self) -> u64 {
        let vary: usize = self.vary.iter().flatten().map(|v| v.len() + 16).sum();
        self.body.len() as u64 + self.headers.weight() as u64 + vary as u64 + ENTRY_OVERHEAD
    }
}

/// The stored responses of one target: the field names its responses vary on, and one entry
/// per combination of the request's values of them.
#[derive(Debug)]
pub struct Variants {
    /// The fields the responses' `Vary` names (lowercase); empty when they vary on nothing.
    pub names: Arc<[String]>,
    /// The entries, oldest first.
    pub entries: Vec<Arc<Entry>>,
}

impl Variants {
    fn weight(&self, key: &str) -> u32 {
        let sum: u64 = self.entries.iter().map(|e| e.weight()).sum();
        let names: usize = self.names.iter().map(|n| n.len() + 16).sum();
        u32::try_from(sum + names as u64 + key.len() as u64).unwrap_or(u32::MAX)
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// Nothing stored for the target.
    UriMiss,
    /// Responses stored for the target, none for this request's values of the fields they
    /// vary on.
    VaryMiss,
    /// A stored response selected for the request (§4.1).
    Entry(Arc<Entry>),
}

/// How many responses the cache answered, and how.
#[derive(Debug, Default)]
pub struct Counts {
    /// Served from the cache, fresh (or stale where allowed), without the origin.
    pub hits: AtomicU64,
    /// Forwarded with nothing usable stored.
    pub misses: AtomicU64,
    /// Stored responses that were stale and went to the origin (revalidated or replaced).
    pub stale: AtomicU64,
    /// Stale responses served because the origin failed (`stale-if-error`).
    pub stale_if_error: AtomicU64,
    /// Responses stored.
    pub stored: AtomicU64,
    /// Bytes of the bodies served from the cache.
    pub bytes_served: AtomicU64,
}

impl Counts {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter, by name.
    pub fn snapshot(&self) -> [(&'static str, u64); 6] {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("hits", read(&self.hits)),
            ("misses", read(&self.misses)),
            ("stale", read(&self.stale)),
            ("stale_if_error", read(&self.stale_if_error)),
            ("stored", read(&self.stored)),
            ("bytes_served", read(&self.bytes_served)),
        ]
    }
}

/// The cache.
pub struct Cache {
    entries: moka::sync::Cache<Arc<str>, Arc<Variants>>,
    disk: Option<Arc<disk::Disk>>,
    fills: Arc<Mutex<HashMap<Arc<str>, Slot>>>,
    counts: Mutex<HashMap<Arc<str>, Arc<Counts>>>,
    clock: Arc<dyn Clock>,
    max_bytes: u64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("max_bytes", &self.max_bytes)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

/// The default memory bound: 64 MiB.
pub const DEFAULT_MEMORY: u64 = 64 << 20;

impl Cache {
    /// A cache of at most `max_bytes` in memory, reading times from `clock`.
    pub fn new(max_bytes: u64, clock: Arc<dyn Clock>) -> Cache {
        Cache::build(max_bytes, clock, None)
    }

    /// A cache of at most `max_bytes` in memory and `disk_bytes` in the directory `dir`
    /// (created if needed; what an earlier process left there whole is served again).
    pub fn with_disk(
        max_bytes: u64,
        clock: Arc<dyn Clock>,
        dir: &std::path::Path,
        disk_bytes: u64,
    ) -> std::io::Result<Cache> {
        let disk = Arc::new(disk::Disk::open(dir, disk_bytes)?);
        Ok(Cache::build(max_bytes, clock, Some(disk)))
    }

    fn build(max_bytes: u64, clock: Arc<dyn Clock>, disk: Option<Arc<disk::Disk>>) -> Cache {
        let mut builder = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<str>, v: &Arc<Variants>| v.weight(k));
        if let Some(disk) = &disk {
            let disk = disk.clone();
            // What memory evicts for room goes to disk; what is replaced, invalidated or
            // purged does not.
            builder = builder.eviction_listener(move |key: Arc<Arc<str>>, value, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    disk.spill((*key).clone(), value);
                }
            });
        }
        Cache {
            entries: builder.build(),
            disk,
            fills: Arc::default(),
            counts: Mutex::default(),
            clock,
            max_bytes,
        }
    }

    /// Its bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The time now, by the cache's clock.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The response stored for `key` that matches the request, whose value of a field is
    /// `field(name)` (§4.1: every field the response's `Vary` names has the same value in
    /// both requests, absent matching absent).
    pub fn lookup(&self, key: &str, field: impl Fn(&str) -> Option<Bytes>) -> Found {
        let Some(variants) = self.entries.get(key) else {
            return Found::UriMiss;
        };
        let values: Vec<Option<Bytes>> = variants.names.iter().map(|n| field(n)).collect();
        match variants.entries.iter().rev().find(|e| e.vary == values) {
            Some(e) => Found::Entry(e.clone()),
            None => Found::VaryMiss,
        }
    }

    /// Stores `entry` for `key`, its `Vary` naming `names`. It replaces the variant with the
    /// same values; when the target's responses varied on other fields, the old ones go
    /// (their keys no longer select).
    pub fn store(&self, key: &str, names: Vec<String>, entry: Arc<Entry>) {
        let key: Arc<str> = key.into();
        let mut entries = match self.entries.get(&key) {
            Some(old) if *old.names == *names => old
                .entries
                .iter()
                .filter(|e| e.vary != entry.vary)
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if entries.len() >= MAX_VARIANTS {
            entries.remove(0);
        }
        entries.push(entry);
        let variants = Variants {
            names: names.into(),
            entries,
        };
        self.entries.insert(key, Arc::new(variants));
    }

    /// Like [`Cache::lookup`], reading the target from the disk tier (and keeping it in
    /// memory again) when memory does not hold it.
    pub async fn find(&self, key: &str, field: impl Fn(&str) -> Option<Bytes>) -> Found {
        let found = self.lookup(key, &field);
        let Some(disk) = self.disk.as_ref().filter(|d| d.contains(key)) else {
            return found;
        };
        if !matches!(found, Found::UriMiss) {
            return found;
        }
        let (disk, owned) = (disk.clone(), key.to_string());
        let read = tokio::task::spawn_blocking(move || disk.read(&owned)).await;
        if let Ok(Some(variants)) = read {
            // Unless a newer response was stored meanwhile.
            if !self.entries.contains_key(key) {
                self.entries.insert(key.into(), Arc::new(variants));
            }
        }
        self.lookup(key, field)
    }

    /// The bytes the disk tier's files take (0 without one).
    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.bytes())
    }

    /// Writes to the disk tier that failed (a full disk), since the cache was made.
    pub fn disk_write_failures(&self) -> u64 {
        self.disk
            .as_ref()
            .map_or(0, |d| d.failed_writes.load(Ordering::Relaxed))
    }

    /// Runs the cache's pending maintenance (evictions, and so writes to disk).
    pub fn run_pending(&self) {
        self.entries.run_pending_tasks();
    }

    /// Runs pending evictions and waits until the disk tier has written what they spilled
    /// (blocking; a no-op without a disk tier).
    pub fn flush(&self) {
        self.entries.run_pending_tasks();
        if let Some(d) = &self.disk {
            let (tx, rx) = std::sync::mpsc::channel();
            d.barrier(tx);
            let _ = rx.recv();
        }
    }

    /// Drops every response stored for `key`.
    pub fn invalidate(&self, key: &str) {
        self.entries.invalidate(key);
        if let Some(d) = &self.disk {
            d.remove(key);
        }
    }

    /// Drops the stored responses whose key starts with `prefix`; returns how many targets.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.purge(|k, _| k.starts_with(prefix))
    }

    /// Applies a purge; returns how many targets lost their stored responses.
    pub fn apply(&self, purge: &Purge) -> usize {
        match purge {
            Purge::Route(route) => self.purge_route(route),
            Purge::Url { host, target } => match host {
                Some(h) => {
                    let key = format!("{h}{target}");
                    let had = self.entries.contains_key(key.as_str())
                        || self.disk.as_ref().is_some_and(|d| d.contains(&key));
                    self.invalidate(&key);
                    usize::from(had)
                }
                None => self.purge(|k, _| split_key(k).1 == target),
            },
            Purge::Prefix { host, target } => self.purge(|k, _| {
                let (h, rest) = split_key(k);
                host.as_deref().is_none_or(|want| want == h) && rest.starts_with(target.as_str())
            }),
        }
    }

    /// Drops the responses `route` stored.
    pub fn purge_route(&self, route: &str) -> usize {
        self.purge(|_, routes| routes.iter().any(|r| &**r == route))
    }

    /// Drops the targets for which `doomed(key, the routes that stored its responses)`, in
    /// memory and on disk; returns how many.
    fn purge(&self, doomed: impl Fn(&str, &[Arc<str>]) -> bool) -> usize {
        let mut keys: Vec<Arc<str>> = self
            .entries
            .iter()
            .filter(|(k, v)| {
                let routes: Vec<Arc<str>> = v.entries.iter().map(|e| e.route.clone()).collect();
                doomed(k, &routes)
            })
            .map(|(k, _)| Arc::clone(&*k))
            .collect();
        if let Some(d) = &self.disk {
            let mut seen: std::collections::HashSet<Arc<str>> = keys.iter().cloned().collect();
            for k in d.keys_where(&doomed) {
                if seen.insert(k.clone()) {
                    keys.push(k);
                }
            }
        }
        for k in &keys {
            self.invalidate(k);
        }
        keys.len()
    }

    /// The bytes the entries weigh, once pending evictions have run.
    pub fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    /// How many targets have stored responses, once pending evictions have run.
    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// The counters of `route`.
    pub fn counts(&self, route: &Arc<str>) -> Arc<Counts> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.entry(route.clone()).or_default().clone()
    }

    /// The counters of `route`, when it has answered through the cache.
    pub fn counts_of(&self, route: &str) -> Option<Arc<Counts>> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(route).cloned()
    }

    /// Every route's counters.
    pub fn all_counts(&self) -> Vec<(Arc<str>, Arc<Counts>)> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = counts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Joins the fill of `key`: the first request to miss leads it (goes to the origin);
    /// the others follow (wait for it, then look again).
    pub fn fill(&self, key: &str) -> Fill {
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = fills.get_mut(key) {
            slot.followers += 1;
            return Fill::Follow(Waiter(slot.done.clone()));
        }
        let (tx, done) = watch::channel(());
        let key: Arc<str> = key.into();
        fills.insert(key.clone(), Slot { done, followers: 0 });
        Fill::Lead(FillGuard {
            key,
            fills: self.fills.clone(),
            _done: tx,
        })
    }
}

impl Cache {
    /// How many requests wait on the fill of `key` (for tests and diagnostics).
    pub fn followers(&self, key: &str) -> usize {
        let fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        fills.get(key).map_or(0, |slot| slot.followers)
    }
}

/// A fill under way: how its followers learn it is done, and how many joined.
#[derive(Debug)]
struct Slot {
    done: watch::Receiver<()>,
    followers: usize,
}

/// A key's authority and its target (`/path?query`).
fn split_key(key: &str) -> (&str, &str) {
    match key.find('/') {
        Some(i) => key.split_at(i),
        None => (key, ""),
    }
}

/// What a purge drops: a route's stored responses, one URL's, or those under a prefix. A URL
/// or prefix without an authority (`/path`) applies to every authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purge {
    /// Every response the route stored.
    Route(String),
    /// The responses stored for one target.
    Url {
        /// The authority, lowercase; every authority when `None`.
        host: Option<String>,
        /// The path and query.
        target: String,
    },
    /// The responses stored for every target that starts with `target`.
    Prefix {
        /// The authority, lowercase; every authority when `None`.
        host: Option<String>,
        /// The start of the path.
        target: String,
    },
}

impl Purge {
    /// A purge from its JSON form, `{"route": NAME}`, `{"url": URL}` or `{"prefix": URL}`
    /// where a URL is `http(s)://authority/path?query` or `/path?query`; `None` for anything
    /// else.
    pub fn from_json(v: &serde_json::Value) -> Option<Purge> {
        let map = v.as_object().filter(|m| m.len() == 1)?;
        let (key, value) = map.iter().next()?;
        let value = value.as_str()?;
        match key.as_str() {
            "route" => Some(Purge::Route(value.to_string())),
            "url" => split_url(value).map(|(host, target)| Purge::Url { host, target }),
            "prefix" => split_url(value).map(|(host, target)| Purge::Prefix { host, target }),
            _ => None,
        }
    }

    /// Its JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        let url = |host: &Option<String>, target: &str| match host {
            Some(h) => format!("http://{h}{target}"),
            None => target.to_string(),
        };
        match self {
            Purge::Route(r) => serde_json::json!({"route": r}),
            Purge::Url { host, target } => serde_json::json!({"url": url(host, target)}),
            Purge::Prefix { host, target } => serde_json::json!({"prefix": url(host, target)}),
        }
    }
}

/// `http(s)://authority/path?query` → (authority, `/path?query`); `/path?query` → (none, it);
/// the target's percent-encodings normalised as cache keys are.
fn split_url(url: &str) -> Option<(Option<String>, String)> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let (host, target) = match rest {
        Some(r) => {
            let slash = r.find('/').unwrap_or(r.len());
            let (h, t) = r.split_at(slash);
            if h.is_empty() {
                return None;
            }
            (
                Some(h.to_ascii_lowercase()),
                if t.is_empty() { "/" } else { t },
            )
        }
        None if url.starts_with('/') => (None, url),
        None => return None,
    };
    // Normalised as keys are, so an equivalent spelling purges the same responses.
    let mut normal = String::with_capacity(target.len());
    portico_http::caching::push_normalised(
        &mut normal,
        target.split('#').next().unwrap_or("").as_bytes(),
    );
    Some((host, normal))
}

/// A request's part in filling a key.
#[derive(Debug)]
pub enum Fill {
    /// This request goes to the origin; the others wait until the guard is dropped.
    Lead(FillGuard),
    /// Another request is going to the origin for the key.
    Follow(Waiter),
}

/// Held by the request that fills a key; dropping it (stored or not, answered or failed)
/// wakes the requests that wait.
#[derive(Debug)]
pub struct FillGuard {
    key: Arc<str>,
    fills: Arc<Mutex<HashMap<Arc<str>, Slot>>>,
    _done: watch::Sender<()>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        fills.remove(&self.key);
    }
}

/// Waits for the fill another request leads.
#[derive(Debug)]
pub struct Waiter(watch::Receiver<()>);

impl Waiter {
    /// Returns once the leader is done (its guard dropped).
    pub async fn done(mut self) {
        // The sender is never used to send: `changed` returns an error once it is dropped.
        while self.0.changed().await.is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(route: &str, body: &'static [u8], vary: Vec<Option<Bytes>>) -> Entry {
        Entry {
            route: route.into(),
            status: 200,
            headers: StoredFields::new([(b"content-type".as_slice(), b"text/plain".as_slice())]),
            body: Bytes::from_static(body),
            timing: Timing::default(),
            directives: ResponseDirectives::default(),
            lifetime: 60,
            vary,
        }
    }

    fn cache(bytes: u64) -> Cache {
        Cache::new(bytes, Arc::new(ManualClock::new(UNIX_EPOCH)))
    }

    #[test]
    fn variants_are_selected_by_the_fields_their_vary_names() {
        let c = cache(1 << 20);
        let gzip = Some(Bytes::from_static(b"gzip"));
        c.store(
            "k",
            vec!["accept-encoding".into()],
            Arc::new(entry("r", b"zipped", vec![gzip.clone()])),
        );
        c.store(
            "k",
            vec!["accept-encoding".into()],
            Arc::new(entry("r", b"plain", vec![None])),
        );
        let body = |f: Found| match f {
            Found::Entry(e) => e.body.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(body(c.lookup("k", |_| gzip.clone())), "zipped");
        assert_eq!(body(c.lookup("k", |_| None)), "plain");
        assert!(matches!(
            c.lookup("k", |_| Some(Bytes::from_static(b"br"))),
            Found::VaryMiss
        ));
        assert!(matches!(c.lookup("other", |_| None), Found::UriMiss));
        // A response varying on other fields replaces the old variants.
        c.store(
            "k",
            vec!["accept".into()],
            Arc::new(entry("r", b"json", vec![None])),
        );
        assert!(matches!(
            c.lookup("k", |n| (n == "accept-encoding")
                .then(|| gzip.clone())
                .flatten()),
            Found::Entry(_)
        ));
        c.invalidate("k");
        assert!(matches!(c.lookup("k", |_| None), Found::UriMiss));
    }

    #[test]
    fn stored_fields_read_back_as_they_were_given() {
        let given: [(&[u8], &[u8]); 4] = [
            (b"Date", b"Sun, 06 Nov 1994 08:49:37 GMT"),
            (b"Set-Cookie", b"a=b"),
            (b"Set-Cookie", b""),
            (b"X-Odd", b"\x80\xff"),
        ];
        let (fields, body) = StoredFields::with_body(given, b"the body");
        assert_eq!(fields.iter().collect::<Vec<_>>(), given.to_vec());
        assert_eq!(fields.len(), 4);
        assert_eq!(&body[..], b"the body");
        let views = fields.to_vec();
        assert_eq!(
            (&views[0].0[..], &views[3].1[..]),
            (&b"Date"[..], &b"\x80\xff"[..])
        );
        // A field that could not read back as itself is left out.
        let odd = StoredFields::new([(b"a:b".as_slice(), b"1".as_slice()), (b"c", b"x\ny")]);
        assert!(odd.is_empty());
    }

    #[test]
    fn variants_of_a_target_are_bounded() {
        let c = cache(1 << 20);
        for i in 0..(MAX_VARIANTS + 4) {
            let v = Some(Bytes::from(i.to_string()));
            c.store("k", vec!["x".into()], Arc::new(entry("r", b"b", vec![v])));
        }
        let Some(v) = c.entries.get("k") else {
            panic!("stored")
        };
        assert_eq!(v.entries.len(), MAX_VARIANTS);
    }

    #[test]
    fn the_byte_bound_holds_however_much_is_stored() {
        let c = cache(64 << 10);
        static BODY: [u8; 1000] = [b'x'; 1000];
        for i in 0..1000 {
            c.store(
                &format!("k{i}"),
                Vec::new(),
                Arc::new(entry("r", &BODY, Vec::new())),
            );
        }
        let size = c.weighted_size();
        assert!(size <= 64 << 10, "{size}");
        assert!(c.entry_count() > 10);
    }

    #[test]
    fn purges_by_prefix_and_by_route() {
        let c = cache(1 << 20);
        c.store(
            "h/a/1",
            Vec::new(),
            Arc::new(entry("one", b"1", Vec::new())),
        );
        c.store(
            "h/a/2",
            Vec::new(),
            Arc::new(entry("one", b"2", Vec::new())),
        );
        c.store(
            "h/b/1",
            Vec::new(),
            Arc::new(entry("two", b"3", Vec::new())),
        );
        assert_eq!(c.purge_prefix("h/a/"), 2);
        assert!(matches!(c.lookup("h/b/1", |_| None), Found::Entry(_)));
        assert_eq!(c.purge_route("two"), 1);
        assert_eq!(c.entry_count(), 0);
    }

    #[test]
    fn purges_by_url_and_prefix_with_or_without_an_authority() {
        let c = cache(1 << 20);
        for k in [
            "a.example/x/1",
            "a.example/x/2?q",
            "b.example/x/1",
            "b.example/y",
        ] {
            c.store(k, Vec::new(), Arc::new(entry("r", b"1", Vec::new())));
        }
        let purge = |v: serde_json::Value| Purge::from_json(&v).expect("a purge");
        assert_eq!(
            c.apply(&purge(serde_json::json!({"url": "http://A.example/x/1"}))),
            1
        );
        assert_eq!(c.apply(&purge(serde_json::json!({"url": "/x/1"}))), 1);
        assert_eq!(
            c.apply(&purge(
                serde_json::json!({"prefix": "https://a.example/x/"})
            )),
            1
        );
        assert_eq!(c.apply(&purge(serde_json::json!({"prefix": "/"}))), 1);
        assert_eq!(c.entry_count(), 0);
        for bad in [
            serde_json::json!({"url": "x/1"}),
            serde_json::json!({"url": "http:///x"}),
            serde_json::json!({"url": "/a", "prefix": "/b"}),
            serde_json::json!({"other": "/a"}),
            serde_json::json!("/a"),
        ] {
            assert_eq!(Purge::from_json(&bad), None, "{bad}");
        }
        let p = purge(serde_json::json!({"prefix": "http://h/a"}));
        assert_eq!(Purge::from_json(&p.to_json()), Some(p));
    }

    #[test]
    fn age_grows_with_the_clock() {
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(1000)));
        let mut e = entry("r", b"x", Vec::new());
        e.timing = Timing {
            request_time: 1000,
            response_time: 1000,
            date: Some(1000),
            ..Timing::default()
        };
        assert!(e.staleness(clock.now()).is_fresh());
        clock.advance(Duration::from_secs(61));
        let s = e.staleness(clock.now());
        assert_eq!((s.age, s.is_fresh()), (61, false));
    }

    #[tokio::test]
    async fn a_fill_is_led_by_one_request_and_followed_by_the_others() {
        let c = cache(1 << 20);
        let Fill::Lead(guard) = c.fill("k") else {
            panic!("the first leads")
        };
        let Fill::Follow(waiter) = c.fill("k") else {
            panic!("the second follows")
        };
        let waiting = tokio::spawn(waiter.done());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(guard);
        waiting.await.expect("the waiter wakes");
        assert!(matches!(c.fill("k"), Fill::Lead(_)));
    }
}

#[cfg(test)]
mod disk_tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry(route: &str, body: Vec<u8>) -> Arc<Entry> {
        Arc::new(Entry {
            route: route.into(),
            status: 200,
            headers: StoredFields::new([(b"etag".as_slice(), b"\"e\"".as_slice())]),
            body: Bytes::from(body),
            timing: Timing {
                request_time: 10,
                response_time: 11,
                date: Some(9),
                age: Some(1),
                expires: Some(None),
                ..Timing::default()
            },
            directives: ResponseDirectives {
                max_age: Some(60),
                public: true,
                ..ResponseDirectives::default()
            },
            lifetime: 60,
            vary: vec![Some(Bytes::from_static(b"gzip")), None],
        })
    }

    fn cache(dir: &std::path::Path, memory: u64, disk: u64) -> Cache {
        Cache::with_disk(memory, Arc::new(ManualClock::new(UNIX_EPOCH)), dir, disk).expect("opens")
    }

    /// Waits until the writer thread has done what it was given (a barrier it answers after
    /// the jobs before it): an event, never a timer.
    fn settle(c: &Cache) {
        c.flush();
    }

    fn vary_of(n: &str) -> Option<Bytes> {
        (n == "accept-encoding").then(|| Bytes::from_static(b"gzip"))
    }

    #[tokio::test]
    async fn what_memory_evicts_is_read_back_from_disk_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("a directory");
        {
            let c = cache(dir.path(), 64 << 10, 8 << 20);
            for i in 0..40 {
                c.store(
                    &format!("h/{i}"),
                    vec!["accept-encoding".into(), "accept".into()],
                    entry("r", vec![b'a' + (i % 26) as u8; 8000]),
                );
            }
            settle(&c);
            assert!(c.weighted_size() <= 64 << 10);
            assert!(c.disk_bytes() > 0);
            // Every one of them is found, from memory or from disk.
            for i in 0..40 {
                match c.find(&format!("h/{i}"), vary_of).await {
                    Found::Entry(e) => {
                        assert_eq!(e.body.len(), 8000);
                        assert_eq!(e.body[0], b'a' + (i % 26) as u8);
                        assert_eq!(e.directives.max_age, Some(60));
                        assert_eq!(e.timing.expires, Some(None));
                    }
                    other => panic!("h/{i}: {other:?}"),
                }
            }
            settle(&c);
        }
        // A new process on the same directory serves what the old one spilled.
        let c = cache(dir.path(), 64 << 10, 8 << 20);
        let on_disk = (0..40)
            .filter(|i| {
                c.disk
                    .as_ref()
                    .is_some_and(|d| d.contains(&format!("h/{i}")))
            })
            .count();
        assert!(on_disk > 0);
        let i = (0..40)
            .find(|i| {
                c.disk
                    .as_ref()
                    .is_some_and(|d| d.contains(&format!("h/{i}")))
            })
            .expect("one on disk");
        assert!(matches!(
            c.find(&format!("h/{i}"), vary_of).await,
            Found::Entry(_)
        ));
        // Purges reach the disk.
        assert!(c.purge_route("r") >= on_disk);
        settle(&c);
        assert_eq!(c.disk_bytes(), 0);
    }

    #[tokio::test]
    async fn a_torn_or_foreign_file_is_never_served() {
        let dir = tempfile::tempdir().expect("a directory");
        let c = cache(dir.path(), 16 << 10, 8 << 20);
        for i in 0..10 {
            c.store(&format!("h/{i}"), Vec::new(), entry("r", vec![b'x'; 8000]));
        }
        settle(&c);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .expect("listed")
            .map(|e| e.expect("an entry").path())
            .collect();
        assert!(files.len() >= 2, "{files:?}");
        // One cut short, one with a byte changed: both are refused, and removed.
        let data = std::fs::read(&files[0]).expect("read");
        std::fs::write(&files[0], &data[..data.len() / 2]).expect("written");
        let mut data = std::fs::read(&files[1]).expect("read");
        let middle = data.len() / 2;
        data[middle] ^= 1;
        std::fs::write(&files[1], &data).expect("written");
        std::fs::write(dir.path().join("leftover.entry.partial"), b"half").expect("written");
        drop(c);
        let c = cache(dir.path(), 16 << 10, 8 << 20);
        assert!(!files[0].exists(), "a file cut short is removed at start");
        assert!(!dir.path().join("leftover.entry.partial").exists());
        for i in 0..10 {
            if let Found::Entry(e) = c.find(&format!("h/{i}"), |_| None).await {
                assert_eq!(&e.body[..], &[b'x'; 8000][..]);
            }
        }
        assert!(
            !files[1].exists(),
            "a file whose digest is wrong is removed when read"
        );
    }

    #[test]
    fn the_disk_bound_holds_and_a_failing_disk_only_loses_the_spill() {
        let dir = tempfile::tempdir().expect("a directory");
        let c = cache(dir.path(), 16 << 10, 64 << 10);
        for i in 0..100 {
            c.store(&format!("h/{i}"), Vec::new(), entry("r", vec![b'y'; 8000]));
        }
        settle(&c);
        assert!(c.disk_bytes() <= 64 << 10, "{}", c.disk_bytes());
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .expect("listed")
            .map(|e| e.expect("an entry").metadata().expect("metadata").len())
            .sum();
        assert!(on_disk <= 64 << 10, "{on_disk}");
        // The directory goes away (as a full disk would refuse writes): spills fail, and
        // are counted; the memory tier goes on.
        std::fs::remove_dir_all(dir.path()).expect("removed");
        std::fs::write(dir.path(), b"not a directory").expect("written");
        for i in 100..120 {
            c.store(&format!("h/{i}"), Vec::new(), entry("r", vec![b'y'; 8000]));
        }
        settle(&c);
        assert!(c.disk_write_failures() > 0);
        assert!(c.entry_count() >= 1 && c.weighted_size() <= 16 << 10);
        let _ = std::fs::remove_file(dir.path());
    }
}
