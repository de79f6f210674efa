//! HTTP caching (RFC 9111) as a shared cache decides it: what a response's and a request's
//! `Cache-Control` say, whether a response may be stored (§3, §3.5), how long it is fresh
//! (§4.2.1, §4.2.2), how old it is (§4.2.3), whether a stored response may answer a request
//! (§4.2.4, §5.2.1), which methods invalidate (§4.4), and the `Cache-Status` field (RFC 9211).
//!
//! Everything here is a pure function of field values and times, so each rule can be read
//! beside its section and tested from literals; `portico-cache` keeps the entries and the
//! gateway acts on the answers.
//!
//! Where the RFC leaves a choice, the careful one is taken: a directive whose argument cannot
//! be parsed, or that is given twice with different values, makes the response stale rather
//! than fresh for longer than its origin meant (§4.2.1: "a cache is encouraged to consider
//! the response stale"); the qualified forms of `no-cache` and `private` (naming fields) are
//! treated as their unqualified forms (§5.2.2.4, §5.2.2.7 allow it).

use std::time::{Duration, SystemTime};

use crate::conditional::HttpDate;
use crate::method::Method;
use crate::request::{list_elements, trim_ows};

/// The largest delta-seconds a cache keeps (§1.2.2: 2^31 when a value is larger).
pub const DELTA_MAX: u64 = 1 << 31;

/// The most field names a `Vary` may list for its response to be stored: beyond this the
/// secondary key would cost more than the entry saves, and the response is relayed uncached.
pub const VARY_MAX_FIELDS: usize = 32;

/// The statuses that are heuristically cacheable (RFC 9110 §15.1), 206 left out: Portico
/// stores complete responses only.
const HEURISTIC: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The directives of a response's `Cache-Control` that a shared cache acts on (§5.2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without field names): revalidate before every use.
    pub no_cache: bool,
    /// `private` (with or without field names): not for a shared cache.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `proxy-revalidate`: never served stale by a shared cache.
    pub proxy_revalidate: bool,
    /// `must-understand`.
    pub must_understand: bool,
    /// `max-age`, in seconds.
    pub max_age: Option<u64>,
    /// `s-maxage`, in seconds.
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate` (RFC 5861), in seconds.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861), in seconds.
    pub stale_if_error: Option<u64>,
    /// A freshness directive was given twice with different values, or could not be parsed:
    /// the response is stale from the start.
    pub conflicting: bool,
}

/// The directives of a request's `Cache-Control` (§5.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `no-store`: the response is not stored.
    pub no_store: bool,
    /// `no-cache`: a stored response is not used without validation.
    pub no_cache: bool,
    /// `only-if-cached`: answer from the cache or not at all.
    pub only_if_cached: bool,
    /// `max-age`: the oldest response the client takes.
    pub max_age: Option<u64>,
    /// `max-stale`: how stale the client accepts; `Some(None)` for any staleness.
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh`: how long a response must stay fresh.
    pub min_fresh: Option<u64>,
    /// `stale-if-error` sent by the client (RFC 5861 §4).
    pub stale_if_error: Option<u64>,
}

/// One directive: its name (lowercase ASCII compared) and argument, quotes removed.
struct Directive<'a> {
    name: &'a [u8],
    arg: Option<&'a [u8]>,
}

/// The directives of `Cache-Control` field lines, in order. A quoted argument may hold a
/// comma (`no-cache="a, b"`), so elements are split outside quotes.
fn directives<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<Directive<'a>> {
    let mut out = Vec::new();
    for line in lines {
        let mut start = 0;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in line.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == b',' && !quoted {
                push_directive(&mut out, &line[start..i]);
                start = i + 1;
            }
        }
        push_directive(&mut out, &line[start..]);
    }
    out
}

fn push_directive<'a>(out: &mut Vec<Directive<'a>>, element: &'a [u8]) {
    let element = trim_ows(element);
    if element.is_empty() {
        return;
    }
    let (name, arg) = match element.iter().position(|&b| b == b'=') {
        Some(eq) => {
            let arg = trim_ows(&element[eq + 1..]);
            let arg = arg
                .strip_prefix(b"\"")
                .and_then(|a| a.strip_suffix(b"\""))
                .unwrap_or(arg);
            (trim_ows(&element[..eq]), Some(arg))
        }
        None => (element, None),
    };
    out.push(Directive { name, arg });
}

/// A delta-seconds argument (§1.2.2); `None` when it is missing or not digits.
fn delta_seconds(arg: Option<&[u8]>) -> Option<u64> {
    let arg = arg?;
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &b in arg {
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(n.min(DELTA_MAX))
}

/// Sets `slot` to a delta-seconds argument; a second, different value or one that does not
/// parse marks a conflict.
fn set_delta(slot: &mut Option<u64>, conflicting: &mut bool, arg: Option<&[u8]>) {
    match (delta_seconds(arg), *slot) {
        (None, _) => *conflicting = true,
        (Some(v), Some(old)) if v != old => *conflicting = true,
        (Some(v), _) => *slot = Some(v),
    }
}

impl ResponseDirectives {
    /// Parses the `Cache-Control` lines of a response.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> ResponseDirectives {
        let mut d = ResponseDirectives::default();
        for Directive { name, arg } in directives(lines) {
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("no-store") {
                d.no_store = true;
            } else if is("no-cache") {
                d.no_cache = true;
            } else if is("private") {
                d.private = true;
            } else if is("public") {
                d.public = true;
            } else if is("must-revalidate") {
                d.must_revalidate = true;
            } else if is("proxy-revalidate") {
                d.proxy_revalidate = true;
            } else if is("must-understand") {
                d.must_understand = true;
            } else if is("max-age") {
                set_delta(&mut d.max_age, &mut d.conflicting, arg);
            } else if is("s-maxage") {
                set_delta(&mut d.s_maxage, &mut d.conflicting, arg);
            } else if is("stale-while-revalidate") {
                d.stale_while_revalidate = delta_seconds(arg);
            } else if is("stale-if-error") {
                d.stale_if_error = delta_seconds(arg);
            }
        }
        d
    }

    /// The directives a response's targeted cache-control fields give a shared cache that
    /// is not told a target of its own: `CDN-Cache-Control` (RFC 9213), else the untargeted
    /// directives of `Surrogate-Control` (Edge Architecture 1.0; a directive with `;target`
    /// is for another device). `None` when neither has any; then `Cache-Control` decides.
    /// When they do, RFC 9213 §2.1: `Cache-Control` and `Expires` are ignored by this cache.
    pub fn targeted<'a>(
        cdn: impl IntoIterator<Item = &'a [u8]>,
        surrogate: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<ResponseDirectives> {
        let cdn: Vec<&[u8]> = cdn.into_iter().collect();
        if !directives(cdn.iter().copied()).is_empty() {
            return Some(ResponseDirectives::parse(cdn));
        }
        let untargeted: Vec<&[u8]> = surrogate
            .into_iter()
            .flat_map(|line| line.split(|&b| b == b','))
            .map(trim_ows)
            .filter(|d| !d.is_empty() && !d.contains(&b';'))
            .collect();
        (!untargeted.is_empty()).then(|| ResponseDirectives::parse(untargeted))
    }

    /// Whether a stale response may never be served (§4.2.4 via `must-revalidate` and, in a
    /// shared cache, `proxy-revalidate` and `s-maxage`, §5.2.2.10).
    pub fn never_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

impl RequestDirectives {
    /// Parses the `Cache-Control` lines of a request; `Pragma: no-cache` counts as `no-cache`
    /// when the request has no `Cache-Control` (§5.4).
    pub fn parse<'a>(
        lines: impl IntoIterator<Item = &'a [u8]>,
        pragma: impl IntoIterator<Item = &'a [u8]>,
    ) -> RequestDirectives {
        let mut d = RequestDirectives::default();
        let mut any = false;
        for Directive { name, arg } in directives(lines) {
            any = true;
            let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
            if is("no-store") {
                d.no_store = true;
            } else if is("no-cache") {
                d.no_cache = true;
            } else if is("only-if-cached") {
                d.only_if_cached = true;
            } else if is("max-age") {
                // One that does not parse asks for nothing stored: the careful reading.
                d.max_age = Some(delta_seconds(arg).unwrap_or(0));
            } else if is("max-stale") {
                d.max_stale = Some(arg.and_then(|a| delta_seconds(Some(a))));
            } else if is("min-fresh") {
                d.min_fresh = delta_seconds(arg);
            } else if is("stale-if-error") {
                d.stale_if_error = delta_seconds(arg);
            }
        }
        if !any {
            d.no_cache = pragma
                .into_iter()
                .flat_map(list_elements)
                .any(|e| e.eq_ignore_ascii_case(b"no-cache"));
        }
        d
    }
}

/// What a shared cache knows of a response when it decides whether to store it.
#[derive(Clone, Copy, Debug)]
pub struct Storable<'a> {
    /// The request's method.
    pub method: Method,
    /// The response's status.
    pub status: u16,
    /// The response's `Cache-Control`.
    pub directives: &'a ResponseDirectives,
    /// The request's `Cache-Control`.
    pub request: &'a RequestDirectives,
    /// The request carried `Authorization`.
    pub authorization: bool,
    /// The response has an `Expires` field.
    pub expires: bool,
    /// The response's `Vary`, as field lines.
    pub vary: &'a [&'a [u8]],
}

/// Why a response is not stored (reported in `Cache-Status` as `detail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Only GET responses are stored.
    Method,
    /// A status the cache does not store (partial, not modified, not final, not understood).
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private`.
    Private,
    /// The request had `Authorization` and the response did not allow sharing (§3.5).
    Authorization,
    /// Nothing makes it storable: no explicit freshness, not `public`, and a status that is
    /// not heuristically cacheable.
    NoFreshness,
    /// `Vary: *`, or more fields than [`VARY_MAX_FIELDS`].
    Vary,
}

impl NotStored {
    /// The reason, as a `Cache-Status` `detail` token.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::Authorization => "authorization",
            NotStored::NoFreshness => "no-freshness",
            NotStored::Vary => "vary",
        }
    }
}

/// Whether a status is one this cache understands well enough to store (§3: "the response
/// status code is final and understood"). 206 and 304 are never stored as entries: a 304
/// refreshes an entry instead (§4.3.4).
pub fn status_understood(status: u16) -> bool {
    matches!(status,
        200..=205 | 300..=303 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 428 | 429 | 431 | 451
        | 500..=505)
}

/// RFC 9111 §3 for a shared cache: may this response be stored?
pub fn storable(s: &Storable<'_>) -> Result<(), NotStored> {
    if s.method != Method::Get {
        return Err(NotStored::Method);
    }
    if !status_understood(s.status) {
        return Err(NotStored::Status);
    }
    // must-understand lets an understood status through whatever no-store says (§5.2.2.3).
    if s.request.no_store || (s.directives.no_store && !s.directives.must_understand) {
        return Err(NotStored::NoStore);
    }
    if s.directives.private {
        return Err(NotStored::Private);
    }
    let d = s.directives;
    if s.authorization && !(d.must_revalidate || d.public || d.s_maxage.is_some()) {
        return Err(NotStored::Authorization);
    }
    let fields = vary_fields(s.vary).ok_or(NotStored::Vary)?;
    if fields.len() > VARY_MAX_FIELDS {
        return Err(NotStored::Vary);
    }
    if d.public
        || d.max_age.is_some()
        || d.s_maxage.is_some()
        || s.expires
        || HEURISTIC.contains(&s.status)
    {
        Ok(())
    } else {
        Err(NotStored::NoFreshness)
    }
}

/// The field names a `Vary` lists, lowercase and without repeats; `None` for `*`.
pub fn vary_fields(lines: &[&[u8]]) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for e in lines.iter().flat_map(|l| list_elements(l)) {
        if e == b"*" {
            return None;
        }
        let name = String::from_utf8_lossy(e).to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Some(names)
}

/// Whether a status is heuristically cacheable.
pub fn heuristically_cacheable(status: u16) -> bool {
    HEURISTIC.contains(&status)
}

/// The longest heuristic freshness Portico gives (§4.2.2 leaves the bound to the cache).
pub const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// The times and fields that fix a stored response's freshness and age.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// When the request that got it was sent (§4.2.3 `request_time`).
    pub request_time: u64,
    /// When the response arrived (§4.2.3 `response_time`).
    pub response_time: u64,
    /// Its `Date`, if it had a valid one.
    pub date: Option<u64>,
    /// Its `Age`, if it had a valid one.
    pub age: Option<u64>,
    /// It had an `Age` that is not one delta-seconds (two lines, a list, a sign, a fraction,
    /// a parameter): how old it is cannot be known, so it is stale from the start.
    pub age_invalid: bool,
    /// Its `Expires`: `Some(None)` when present but not a valid date (already expired).
    pub expires: Option<Option<u64>>,
    /// Its `Last-Modified`.
    pub last_modified: Option<u64>,
}

impl Timing {
    /// The times of a response from its fields and the clock readings around it.
    pub fn from_fields(
        request_time: SystemTime,
        response_time: SystemTime,
        date: Option<&[u8]>,
        ages: &[&[u8]],
        expires: Option<&[u8]>,
        last_modified: Option<&[u8]>,
    ) -> Timing {
        let secs = |t: SystemTime| HttpDate::from_system_time(t).0;
        let date_of = |v: Option<&[u8]>| v.and_then(HttpDate::parse).map(|d| d.0);
        let age = match ages {
            [one] => delta_seconds(Some(trim_ows(one))),
            _ => None,
        };
        Timing {
            request_time: secs(request_time),
            response_time: secs(response_time),
            date: date_of(date),
            age,
            age_invalid: !ages.is_empty() && age.is_none(),
            expires: expires.map(|e| HttpDate::parse(trim_ows(e)).map(|d| d.0)),
            last_modified: date_of(last_modified),
        }
    }

    /// The `Date` to reckon with: the response's own, else when it arrived.
    fn date_value(&self) -> u64 {
        self.date.unwrap_or(self.response_time)
    }

    /// §4.2.3 `corrected_initial_age`: how old the response was when it arrived.
    pub fn initial_age(&self) -> u64 {
        let apparent_age = self.response_time.saturating_sub(self.date_value());
        let response_delay = self.response_time.saturating_sub(self.request_time);
        let corrected_age_value = self.age.unwrap_or(0).saturating_add(response_delay);
        apparent_age.max(corrected_age_value)
    }

    /// §4.2.3 `current_age` at `now` (seconds since the epoch).
    pub fn current_age(&self, now: u64) -> u64 {
        self.initial_age()
            .saturating_add(now.saturating_sub(self.response_time))
    }

    /// §4.2.1 freshness lifetime for a shared cache, in seconds; heuristic (§4.2.2) only when
    /// `heuristic` allows it and the status is heuristically cacheable.
    pub fn freshness_lifetime(&self, d: &ResponseDirectives, status: u16, heuristic: bool) -> u64 {
        if d.conflicting || self.age_invalid {
            return 0;
        }
        if let Some(s) = d.s_maxage {
            return s;
        }
        if let Some(m) = d.max_age {
            return m;
        }
        if let Some(expires) = self.expires {
            return expires.map_or(0, |e| e.saturating_sub(self.date_value()).min(DELTA_MAX));
        }
        if heuristic && heuristically_cacheable(status) {
            // §4.2.2: "no more than some fraction"; 10% of the time since Last-Modified.
            if let Some(lm) = self.last_modified {
                let since = self.date_value().saturating_sub(lm);
                return (since / 10).min(HEURISTIC_MAX.as_secs());
            }
        }
        0
    }
}

/// What a stored response is, at the moment a request asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Staleness {
    /// Its current age, seconds.
    pub age: u64,
    /// Its freshness lifetime, seconds.
    pub lifetime: u64,
}

impl Staleness {
    /// Fresh for this many more seconds (negative: stale for that many).
    pub fn ttl(&self) -> i64 {
        i64::try_from(self.lifetime).unwrap_or(i64::MAX)
            - i64::try_from(self.age).unwrap_or(i64::MAX)
    }

    /// Whether it is fresh.
    pub fn is_fresh(&self) -> bool {
        self.lifetime > self.age
    }
}

/// How a stored response may be used for a request (§4, §4.2.4, §5.2.1, RFC 5861).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Served as it is.
    Serve,
    /// Served stale now, and refreshed in the background (`stale-while-revalidate`).
    ServeStaleAndRevalidate,
    /// Validated with the origin first (conditional request when it has validators).
    Revalidate,
}

/// Decides how the stored response may answer the request.
pub fn usable(req: &RequestDirectives, d: &ResponseDirectives, s: Staleness) -> Use {
    // §5.2.2.4: no-cache on the response; §5.2.1.4: on the request.
    if d.no_cache || req.no_cache {
        return Use::Revalidate;
    }
    if let Some(max_age) = req.max_age
        && s.age > max_age
    {
        return Use::Revalidate;
    }
    let ttl = s.ttl();
    if let Some(min_fresh) = req.min_fresh
        && ttl < i64::try_from(min_fresh).unwrap_or(i64::MAX)
    {
        return Use::Revalidate;
    }
    if ttl > 0 {
        return Use::Serve;
    }
    let stale_for = ttl.unsigned_abs();
    // §4.2.4: a stale response is never served when the origin forbids it.
    if d.never_stale() {
        return Use::Revalidate;
    }
    match req.max_stale {
        Some(None) => return Use::Serve,
        Some(Some(max)) if stale_for <= max => return Use::Serve,
        _ => {}
    }
    match d.stale_while_revalidate {
        Some(swr) if stale_for <= swr => Use::ServeStaleAndRevalidate,
        _ => Use::Revalidate,
    }
}

/// Whether a stale response may answer when the origin failed (RFC 5861 §4): the response's
/// or the request's `stale-if-error` window covers its staleness, and nothing forbids stale.
pub fn stale_if_error(req: &RequestDirectives, d: &ResponseDirectives, s: Staleness) -> bool {
    if d.never_stale() || d.no_cache {
        return false;
    }
    let stale_for = u64::try_from(-s.ttl()).unwrap_or(0);
    let window = d.stale_if_error.max(req.stale_if_error);
    window.is_some_and(|w| stale_for <= w)
}

/// Whether a request with this method, answered with `status`, invalidates the stored
/// responses of its target (§4.4: an unsafe method and a non-error response).
pub fn invalidates(method: Method, status: u16) -> bool {
    !method.is_safe() && (200..400).contains(&status)
}

/// The fields a 304 from the origin does not update in the stored response (§3.2): the
/// framing, and what describes the stored bytes themselves (their coding, their range, their
/// digests) and the validator the 304 was selected by (§4.3.4), which the stored response
/// depends on. Every other field the 304 carries replaces the stored one.
pub fn kept_on_update(name: &[u8]) -> bool {
    const KEPT: &[&str] = &[
        "content-length",
        "transfer-encoding",
        "content-encoding",
        "content-range",
        "content-md5",
        "content-digest",
        "repr-digest",
        "etag",
    ];
    KEPT.iter().any(|k| name.eq_ignore_ascii_case(k.as_bytes()))
}

/// Appends `target` to `key` normalised as RFC 3986 §6.2.2 allows, so that targets a server
/// must treat alike share one cache key: percent-encodings in uppercase hex, and those of
/// unreserved characters (`ALPHA DIGIT - . _ ~`) decoded. Other bytes are kept as they are.
pub fn push_normalised(key: &mut String, target: &[u8]) {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut i = 0;
    while i < target.len() {
        let b = target[i];
        if b == b'%'
            && let (Some(&h), Some(&l)) = (target.get(i + 1), target.get(i + 2))
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            let v = h * 16 + l;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                key.push(v as char);
            } else {
                key.push('%');
                key.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                key.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
            }
            i += 3;
            continue;
        }
        // A `%` that starts no escape is escaped itself, so that it cannot join the bytes
        // after it into one (`%2%41` is not `%2A`); a request target is visible ASCII, and
        // anything else is escaped too, so the key stays text.
        if b.is_ascii() && b != b'%' {
            key.push(b as char);
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
}

/// How a request was forwarded, for `Cache-Status: fwd=` (RFC 9211 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// No stored response for the target.
    UriMiss,
    /// Stored responses, none for this request's `Vary` fields.
    VaryMiss,
    /// A stored response that was stale.
    Stale,
    /// The request's own directives asked for the origin (`no-cache`, `max-age`, …).
    Request,
    /// The method is not served from the cache.
    Method,
    /// The stored response could not be used (it is `no-cache`).
    Miss,
}

impl Forward {
    /// The `fwd` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Stale => "stale",
            Forward::Request => "request",
            Forward::Method => "method",
            Forward::Miss => "miss",
        }
    }
}

/// One `Cache-Status` member (RFC 9211 §2): this cache's name and its parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Answered from the cache without going to the origin.
    pub hit: bool,
    /// Why and how it went to the origin.
    pub fwd: Option<Forward>,
    /// The status the origin answered the forwarded request with.
    pub fwd_status: Option<u16>,
    /// The remaining freshness of the response served or stored, seconds.
    pub ttl: Option<i64>,
    /// The origin's response was stored.
    pub stored: bool,
    /// The request waited for another's forwarded request and took its response.
    pub collapsed: bool,
    /// The key, when the route shows it.
    pub key: Option<String>,
    /// More on the outcome (why not stored; `stale-if-error`).
    pub detail: Option<&'static str>,
}

/// The name Portico gives itself in `Cache-Status`.
pub const CACHE_NAME: &str = "Portico";

impl CacheStatus {
    /// The field value: `Portico; hit; ttl=30` (RFC 9211 §2; parameters in its order).
    pub fn value(&self) -> String {
        use std::fmt::Write as _;
        let mut v = String::from(CACHE_NAME);
        if self.hit {
            v.push_str("; hit");
        }
        if let Some(f) = self.fwd {
            let _ = write!(v, "; fwd={}", f.as_str());
        }
        if let Some(s) = self.fwd_status {
            let _ = write!(v, "; fwd-status={s}");
        }
        if let Some(t) = self.ttl {
            let _ = write!(v, "; ttl={t}");
        }
        if self.stored {
            v.push_str("; stored");
        }
        if self.collapsed {
            v.push_str("; collapsed");
        }
        if let Some(k) = &self.key {
            // An sf-string: `"` and `\` escaped; other bytes are visible ASCII already.
            let escaped = k.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = write!(v, "; key=\"{escaped}\"");
        }
        if let Some(d) = self.detail {
            let _ = write!(v, "; detail={d}");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(v: &str) -> ResponseDirectives {
        ResponseDirectives::parse([v.as_bytes()])
    }

    fn req(v: &str) -> RequestDirectives {
        RequestDirectives::parse([v.as_bytes()], [])
    }

    #[test]
    fn response_directives_are_parsed_case_insensitively_with_quoted_arguments() {
        let d = resp(r#"Public, MAX-AGE="60", no-cache="set-cookie, x", s-maxage=10"#);
        assert!(d.public && d.no_cache);
        assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(10)));
        assert!(!d.conflicting);
    }

    #[test]
    fn a_directive_that_does_not_parse_or_repeats_differently_makes_the_response_stale() {
        let t = Timing::default();
        for v in [
            "max-age=abc",
            "max-age=10, max-age=20",
            "max-age",
            "max-age=-1",
        ] {
            let d = resp(v);
            assert!(d.conflicting, "{v}");
            assert_eq!(t.freshness_lifetime(&d, 200, true), 0, "{v}");
        }
        assert!(!resp("max-age=10, max-age=10").conflicting);
    }

    #[test]
    fn an_age_that_is_not_one_delta_seconds_makes_the_response_stale() {
        let t0 = SystemTime::UNIX_EPOCH;
        let d = resp("max-age=3600");
        for ages in [
            &[b"0, 0".as_slice()][..],
            &[b"0".as_slice(), b"0".as_slice()][..],
            &[b"-1".as_slice()][..],
            &[b"1.5".as_slice()][..],
            &[b"old".as_slice()][..],
            &[b"10;a=b".as_slice()][..],
        ] {
            let t = Timing::from_fields(t0, t0, None, ages, None, None);
            assert_eq!(t.freshness_lifetime(&d, 200, false), 0, "{ages:?}");
        }
        let ok = Timing::from_fields(t0, t0, None, &[b" 7 ".as_slice()], None, None);
        assert_eq!(
            (ok.age, ok.freshness_lifetime(&d, 200, false)),
            (Some(7), 3600)
        );
    }

    #[test]
    fn targeted_fields_replace_cache_control() {
        let sc = |v: &'static str| ResponseDirectives::targeted([], [v.as_bytes()]);
        assert_eq!(sc("max-age=60").and_then(|d| d.max_age), Some(60));
        assert!(sc("no-store").is_some_and(|d| d.no_store));
        assert_eq!(sc("max-age=60;edge"), None);
        assert_eq!(
            sc("max-age=60;edge, no-store").map(|d| (d.max_age, d.no_store)),
            Some((None, true))
        );
        let cdn =
            ResponseDirectives::targeted([b"max-age=5".as_slice()], [b"max-age=60".as_slice()]);
        assert_eq!(cdn.and_then(|d| d.max_age), Some(5));
        assert_eq!(ResponseDirectives::targeted([], []), None);
    }

    #[test]
    fn equivalent_targets_have_one_key() {
        let key = |t: &str| {
            let mut k = String::new();
            push_normalised(&mut k, t.as_bytes());
            k
        };
        assert_eq!(key("/a%7eb/%41?q=%2f%2F"), "/a~b/A?q=%2F%2F");
        assert_eq!(key("/a~b/A?q=%2F%2F"), "/a~b/A?q=%2F%2F");
        assert_eq!(key("/100%"), "/100%25");
        assert_eq!(key("/%zz%4"), "/%25zz%254");
        assert_ne!(key("/x%2%41"), key("/x%2A"));
        assert_eq!(key(&key("/x%2%41")), key("/x%2%41"));
    }

    #[test]
    fn delta_seconds_beyond_two_to_the_31_are_two_to_the_31() {
        assert_eq!(
            resp("max-age=99999999999999999999999").max_age,
            Some(DELTA_MAX)
        );
    }

    #[test]
    fn freshness_prefers_s_maxage_then_max_age_then_expires() {
        let t = Timing {
            date: Some(1_000),
            response_time: 1_000,
            request_time: 1_000,
            expires: Some(Some(1_100)),
            ..Timing::default()
        };
        assert_eq!(
            t.freshness_lifetime(&resp("max-age=5, s-maxage=7"), 200, false),
            7
        );
        assert_eq!(t.freshness_lifetime(&resp("max-age=5"), 200, false), 5);
        assert_eq!(t.freshness_lifetime(&resp(""), 200, false), 100);
        let bad = Timing {
            expires: Some(None),
            ..t
        };
        assert_eq!(bad.freshness_lifetime(&resp(""), 200, false), 0);
    }

    #[test]
    fn heuristic_freshness_only_when_allowed_and_for_heuristic_statuses() {
        let t = Timing {
            date: Some(100_000),
            response_time: 100_000,
            request_time: 100_000,
            last_modified: Some(0),
            ..Timing::default()
        };
        assert_eq!(t.freshness_lifetime(&resp(""), 200, false), 0);
        assert_eq!(t.freshness_lifetime(&resp(""), 200, true), 10_000);
        assert_eq!(t.freshness_lifetime(&resp(""), 201, true), 0);
        let old = Timing {
            last_modified: None,
            ..t
        };
        assert_eq!(old.freshness_lifetime(&resp(""), 200, true), 0);
    }

    #[test]
    fn current_age_follows_section_4_2_3() {
        // Sent at 100, arrived at 102 with Age: 10 and a Date of 95; asked at 150.
        let t = Timing {
            request_time: 100,
            response_time: 102,
            date: Some(95),
            age: Some(10),
            ..Timing::default()
        };
        // apparent 7, corrected age value 12: initial 12; resident 48.
        assert_eq!(t.initial_age(), 12);
        assert_eq!(t.current_age(150), 60);
        // A Date in the future gives no negative age.
        let ahead = Timing {
            date: Some(500),
            age: None,
            ..t
        };
        assert_eq!(ahead.initial_age(), 2);
    }

    fn storable_with(status: u16, cc: &str, auth: bool, vary: &[&[u8]]) -> Result<(), NotStored> {
        storable(&Storable {
            method: Method::Get,
            status,
            directives: &resp(cc),
            request: &req(""),
            authorization: auth,
            expires: false,
            vary,
        })
    }

    #[test]
    fn what_a_shared_cache_may_store() {
        assert_eq!(storable_with(200, "", false, &[]), Ok(()));
        assert_eq!(
            storable_with(201, "", false, &[]),
            Err(NotStored::NoFreshness)
        );
        assert_eq!(storable_with(201, "max-age=5", false, &[]), Ok(()));
        assert_eq!(
            storable_with(206, "max-age=5", false, &[]),
            Err(NotStored::Status)
        );
        assert_eq!(
            storable_with(299, "max-age=5", false, &[]),
            Err(NotStored::Status)
        );
        assert_eq!(
            storable_with(200, "no-store", false, &[]),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            storable_with(200, "no-store, must-understand", false, &[]),
            Ok(())
        );
        assert_eq!(
            storable_with(200, "private", false, &[]),
            Err(NotStored::Private)
        );
        assert_eq!(
            storable_with(200, "max-age=5", true, &[]),
            Err(NotStored::Authorization)
        );
        assert_eq!(storable_with(200, "public", true, &[]), Ok(()));
        assert_eq!(storable_with(200, "s-maxage=5", true, &[]), Ok(()));
        assert_eq!(
            storable_with(200, "", false, &[b"accept, *"]),
            Err(NotStored::Vary)
        );
        let many = (0..=VARY_MAX_FIELDS)
            .map(|i| format!("x-{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            storable_with(200, "", false, &[many.as_bytes()]),
            Err(NotStored::Vary)
        );
        let post = storable(&Storable {
            method: Method::Post,
            status: 200,
            directives: &resp("max-age=5"),
            request: &req(""),
            authorization: false,
            expires: false,
            vary: &[],
        });
        assert_eq!(post, Err(NotStored::Method));
    }

    #[test]
    fn vary_names_are_lowercase_and_unique() {
        assert_eq!(
            vary_fields(&[b"Accept, accept-encoding", b"ACCEPT"]),
            Some(vec!["accept".to_string(), "accept-encoding".to_string()])
        );
        assert_eq!(vary_fields(&[b"*"]), None);
    }

    fn at(age: u64, lifetime: u64) -> Staleness {
        Staleness { age, lifetime }
    }

    #[test]
    fn how_a_stored_response_answers_a_request() {
        let none = req("");
        assert_eq!(usable(&none, &resp("max-age=10"), at(5, 10)), Use::Serve);
        assert_eq!(
            usable(&none, &resp("max-age=10"), at(10, 10)),
            Use::Revalidate
        );
        assert_eq!(usable(&none, &resp("no-cache"), at(0, 10)), Use::Revalidate);
        assert_eq!(
            usable(&req("no-cache"), &resp(""), at(0, 10)),
            Use::Revalidate
        );
        assert_eq!(
            usable(&req("max-age=3"), &resp(""), at(5, 10)),
            Use::Revalidate
        );
        assert_eq!(
            usable(&req("min-fresh=6"), &resp(""), at(5, 10)),
            Use::Revalidate
        );
        assert_eq!(usable(&req("max-stale"), &resp(""), at(50, 10)), Use::Serve);
        assert_eq!(
            usable(&req("max-stale=5"), &resp(""), at(14, 10)),
            Use::Serve
        );
        assert_eq!(
            usable(&req("max-stale=5"), &resp(""), at(16, 10)),
            Use::Revalidate
        );
        assert_eq!(
            usable(&req("max-stale"), &resp("must-revalidate"), at(50, 10)),
            Use::Revalidate
        );
        assert_eq!(
            usable(&none, &resp("stale-while-revalidate=5"), at(12, 10)),
            Use::ServeStaleAndRevalidate
        );
        assert_eq!(
            usable(&none, &resp("stale-while-revalidate=5"), at(16, 10)),
            Use::Revalidate
        );
    }

    #[test]
    fn pragma_no_cache_counts_only_without_cache_control() {
        assert!(RequestDirectives::parse([], [b"no-cache".as_slice()]).no_cache);
        assert!(
            !RequestDirectives::parse([b"max-age=5".as_slice()], [b"no-cache".as_slice()]).no_cache
        );
        assert_eq!(req("max-stale").max_stale, Some(None));
        assert_eq!(req("max-stale=7").max_stale, Some(Some(7)));
    }

    #[test]
    fn stale_if_error_within_its_window() {
        let d = resp("max-age=10, stale-if-error=30");
        assert!(stale_if_error(&req(""), &d, at(30, 10)));
        assert!(!stale_if_error(&req(""), &d, at(41, 10)));
        assert!(!stale_if_error(&req(""), &resp("max-age=10"), at(11, 10)));
        assert!(stale_if_error(
            &req("stale-if-error=5"),
            &resp("max-age=10"),
            at(11, 10)
        ));
        assert!(!stale_if_error(
            &req(""),
            &resp("max-age=1, must-revalidate, stale-if-error=9"),
            at(2, 1)
        ));
    }

    #[test]
    fn unsafe_methods_with_success_invalidate() {
        assert!(invalidates(Method::Post, 201));
        assert!(invalidates(Method::Delete, 302));
        assert!(!invalidates(Method::Post, 500));
        assert!(!invalidates(Method::Get, 200));
    }

    #[test]
    fn cache_status_values_follow_rfc_9211() {
        let hit = CacheStatus {
            hit: true,
            ttl: Some(30),
            ..CacheStatus::default()
        };
        assert_eq!(hit.value(), "Portico; hit; ttl=30");
        let miss = CacheStatus {
            fwd: Some(Forward::UriMiss),
            fwd_status: Some(200),
            stored: true,
            collapsed: true,
            key: Some("GET a\"b".into()),
            ..CacheStatus::default()
        };
        assert_eq!(
            miss.value(),
            "Portico; fwd=uri-miss; fwd-status=200; stored; collapsed; key=\"GET a\\\"b\""
        );
    }
}
