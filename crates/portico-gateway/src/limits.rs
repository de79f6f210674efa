//! Rate limits on routes (`rate_limit:`), checked after the access phase (so a limit can count
//! per consumer or project) and before anything is read or sent on (so before `100 Continue`).
//!
//! A refused request gets 429 `PTC.RATE_LIMITED` with `Retry-After`: the exact time until it
//! would have been admitted, in whole seconds rounded up, never 0. Every answer of a limited
//! route, refusals and errors included, says the route's policies in `RateLimit-Policy` and
//! where the caller stands in `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10:
//! `"name";q=QUOTA;w=WINDOW` and `"name";r=REMAINING;t=SECONDS`).
//!
//! Limiter state outlives the gateways that reloads build ([`RateLimiters`]), and time comes
//! from a [`Clock`] the embedder may replace (tests move it by hand). With a [`SharedLimits`]
//! store (Redis, `cluster:`), every node decides from the same state, one round trip per limit;
//! when the store cannot decide within its budget, each limit does what its
//! `on_store_failure` says: `allow` (the limit is skipped for that request) or `deny` (503
//! `PTC.RATE_LIMIT_STORE_UNAVAILABLE` with `Retry-After: 1`), with a warning at most once a
//! second and a count ([`RateLimiters::store_failures`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use portico_telemetry::Metrics;
use std::time::{Duration, Instant};

use portico_config::{LimitKey, OnStoreFailure, RateLimit};
use portico_http::ErrorCode;
use portico_policy::ratelimit::{Decision, Limiter, retry_after_secs};
use portico_server::{Error, Request};
use portico_store::StoreError;

use crate::caller::Caller;

/// Where rate limits read the time: nanoseconds from a fixed origin, never going back.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Duration;
}

/// The machine's monotonic clock.
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told: for tests.
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Moves it forward by `d`.
    pub fn advance(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        // Starts an hour in, so that nothing is ever before the origin.
        Duration::from_secs(3600) + Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// A boxed future, for the shared store's object-safe method.
pub type LimitFuture<'a> = Pin<Box<dyn Future<Output = Result<Decision, StoreError>> + Send + 'a>>;

/// Rate-limit state every node shares: one GCRA decision per call, atomic in the store.
pub trait SharedLimits: Send + Sync + 'static {
    /// Decides a request for `key` under a limit admitting one per `interval` with a burst of
    /// `burst`; an error when the store cannot decide within its budget.
    fn check<'a>(&'a self, key: &'a [u8], interval: Duration, burst: u64) -> LimitFuture<'a>;

    /// Forgets these keys, and every key starting with `prefix` when one is given.
    fn forget<'a>(&'a self, keys: Vec<Vec<u8>>, prefix: Option<Vec<u8>>) -> ForgetFuture<'a>;
}

/// A boxed future, for the shared store's `forget`.
pub type ForgetFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Redis (`cluster.redis`): every node on it decides from the same state.
impl SharedLimits for portico_store::RedisLimits {
    fn check<'a>(&'a self, key: &'a [u8], interval: Duration, burst: u64) -> LimitFuture<'a> {
        Box::pin(async move {
            use portico_store::SharedDecision;
            match portico_store::RedisLimits::check(self, key, interval, burst).await {
                Ok(SharedDecision::Allowed { remaining, reset }) => {
                    Ok(Decision::Allowed { remaining, reset })
                }
                Ok(SharedDecision::Limited { retry_after, reset }) => {
                    Ok(Decision::Limited { retry_after, reset })
                }
                Err(e) => Err(e),
            }
        })
    }

    fn forget<'a>(&'a self, keys: Vec<Vec<u8>>, prefix: Option<Vec<u8>>) -> ForgetFuture<'a> {
        Box::pin(
            async move { portico_store::RedisLimits::forget(self, &keys, prefix.as_deref()).await },
        )
    }
}

/// Every route's limiters, by route, limit name, rate and burst: what a reload keeps (a limit
/// whose rate or burst changed starts afresh), and what the admin API resets.
pub struct RateLimiters {
    clock: Arc<dyn Clock>,
    limiters: Mutex<HashMap<LimiterId, Arc<Limiter>>>,
    /// Requests in progress, by `route:NAME` or `upstream:NAME`.
    in_flight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    shared: Option<Arc<dyn SharedLimits>>,
    store_failures: AtomicU64,
    /// When a store failure was last logged (seconds on the clock): one line a second.
    last_warning: AtomicU64,
    /// Where refusals are counted, once the process has metrics.
    metrics: Arc<OnceLock<Arc<Metrics>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct LimiterId {
    route: String,
    limit: String,
    count: u64,
    per: Duration,
    burst: u64,
}

impl RateLimiters {
    /// Limiters reading `clock`, each node counting its own.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<RateLimiters> {
        Arc::new(RateLimiters {
            clock,
            limiters: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            shared: None,
            store_failures: AtomicU64::new(0),
            last_warning: AtomicU64::new(u64::MAX),
            metrics: Arc::default(),
        })
    }

    /// Limiters whose state is in `store`, shared by every node on it.
    pub fn shared(clock: Arc<dyn Clock>, store: Arc<dyn SharedLimits>) -> Arc<RateLimiters> {
        Arc::new(RateLimiters {
            clock,
            limiters: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            shared: Some(store),
            store_failures: AtomicU64::new(0),
            last_warning: AtomicU64::new(u64::MAX),
            metrics: Arc::default(),
        })
    }

    /// The count of requests in progress for `name` (`route:NAME`, `upstream:NAME`).
    fn counter(&self, name: &str) -> Arc<AtomicUsize> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Counts refusals in `metrics` from now on (the first registry given stays: a process
    /// has one).
    pub fn set_metrics(&self, metrics: &Arc<Metrics>) {
        let _ = self.metrics.set(metrics.clone());
    }

    /// How many decisions the shared store failed to make (a metric).
    pub fn store_failures(&self) -> u64 {
        self.store_failures.load(Ordering::Relaxed)
    }

    fn store_failed(&self, route: &str, limit: &str, error: &StoreError) {
        self.store_failures.fetch_add(1, Ordering::Relaxed);
        let second = self.clock.now().as_secs();
        if self.last_warning.swap(second, Ordering::Relaxed) != second {
            tracing::warn!(
                route,
                limit,
                %error,
                "the shared rate-limit store could not decide; the limit's on_store_failure applies"
            );
        }
    }

    fn limiter(&self, route: &str, l: &RateLimit) -> Arc<Limiter> {
        let id = LimiterId {
            route: route.to_string(),
            limit: l.name.clone(),
            count: l.rate.count,
            per: l.rate.per,
            burst: l.burst,
        };
        self.limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_insert_with(|| Arc::new(Limiter::new(l.rate, l.burst)))
            .clone()
    }

    /// Forgets every key of every limit of `route`, here and in the shared store.
    pub async fn reset_route(&self, route: &str) -> Result<(), StoreError> {
        {
            let limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, limiter) in limiters.iter() {
                if id.route == route {
                    limiter.clear();
                }
            }
        }
        match &self.shared {
            None => Ok(()),
            Some(shared) => {
                let prefix = format!("portico:rl:{route}:").into_bytes();
                shared.forget(Vec::new(), Some(prefix)).await
            }
        }
    }

    /// Forgets the consumer's key (`project_id/consumer`) in every limit, here and in the
    /// shared store.
    pub async fn reset_consumer(&self, project_id: &str, consumer: &str) -> Result<(), StoreError> {
        let key = tagged(
            &LimitKey::Consumer,
            format!("{project_id}/{consumer}").as_bytes(),
        );
        let shared_keys: Vec<Vec<u8>> = {
            let limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
            limiters
                .iter()
                .map(|(id, limiter)| {
                    limiter.reset(&key);
                    let mut k = format!("portico:rl:{}:{}:", id.route, id.limit).into_bytes();
                    k.extend_from_slice(&key);
                    k
                })
                .collect()
        };
        match &self.shared {
            Some(shared) if !shared_keys.is_empty() => shared.forget(shared_keys, None).await,
            _ => Ok(()),
        }
    }
}

/// One route's limits, ready for the request path.
pub(crate) struct RouteLimits {
    route: String,
    limits: Vec<RouteLimit>,
    registry: Arc<RateLimiters>,
    /// `RateLimit-Policy`, the same on every answer.
    policy: String,
}

struct RouteLimit {
    name: String,
    key: LimitKey,
    limiter: Arc<Limiter>,
    interval: Duration,
    burst: u64,
    on_store_failure: OnStoreFailure,
    /// What the shared store's keys for this limit start with.
    shared_prefix: Vec<u8>,
}

impl RouteLimits {
    /// The limits of `route`, with state from `registry`; `None` when it has none.
    pub(crate) fn new(
        registry: &Arc<RateLimiters>,
        route: &str,
        limits: &[RateLimit],
    ) -> Option<RouteLimits> {
        if limits.is_empty() {
            return None;
        }
        let policy = limits
            .iter()
            .map(|l| {
                // The window: how long the whole burst takes to come back.
                let window = l.rate.per.as_secs_f64() * l.burst as f64 / l.rate.count as f64;
                format!(
                    "\"{}\";q={};w={}",
                    l.name,
                    l.burst,
                    window.ceil().max(1.0) as u64
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        Some(RouteLimits {
            route: route.to_string(),
            limits: limits
                .iter()
                .map(|l| RouteLimit {
                    name: l.name.clone(),
                    key: l.key.clone(),
                    limiter: registry.limiter(route, l),
                    interval: l.rate.per / u32::try_from(l.rate.count).unwrap_or(u32::MAX),
                    burst: l.burst,
                    on_store_failure: l.on_store_failure,
                    shared_prefix: format!("portico:rl:{route}:{}:", l.name).into_bytes(),
                })
                .collect(),
            registry: registry.clone(),
            policy,
        })
    }

    /// Counts the request against every limit; 429 when one refuses it. The `RateLimit`
    /// fields returned go onto whatever the answer is.
    pub(crate) async fn check(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        project: Option<&str>,
    ) -> ([(&'static str, String); 2], Result<(), Error>) {
        let now = u64::try_from(self.registry.clock.now().as_nanos()).unwrap_or(u64::MAX);
        let mut state = String::with_capacity(32 * self.limits.len());
        let mut refused = None;
        let mut unavailable = false;
        let mut key = Vec::with_capacity(64);
        for l in &self.limits {
            request_key(&l.key, req, caller, project, &mut key);
            let decision = match &self.registry.shared {
                None => l.limiter.check(&key, now),
                Some(shared) => {
                    let mut k = l.shared_prefix.clone();
                    k.extend_from_slice(&key);
                    match shared.check(&k, l.interval, l.burst).await {
                        Ok(d) => d,
                        Err(e) => {
                            self.registry.store_failed(&self.route, &l.name, &e);
                            match l.on_store_failure {
                                OnStoreFailure::Allow => continue,
                                OnStoreFailure::Deny => {
                                    unavailable = true;
                                    break;
                                }
                            }
                        }
                    }
                }
            };
            let (remaining, reset) = match decision {
                Decision::Allowed { remaining, reset } => (remaining, reset),
                Decision::Limited { retry_after, reset } => {
                    if let Some(m) = self.registry.metrics.get() {
                        m.rate_limited(&Arc::from(self.route.as_str()), &Arc::from(&*l.name));
                    }
                    refused = Some(retry_after);
                    (0, reset)
                }
            };
            // `"name";r=REMAINING;t=SECONDS`, written in place (this runs on every request).
            if !state.is_empty() {
                state.push_str(", ");
            }
            state.push('"');
            state.push_str(&l.name);
            // Writing to a String cannot fail.
            let _ = write!(state, "\";r={remaining};t={}", reset_secs(reset));
            if refused.is_some() {
                // The limits after this one are not counted for a refused request.
                break;
            }
        }
        let fields = [
            ("RateLimit-Policy", self.policy.clone()),
            ("RateLimit", state),
        ];
        let verdict =
            match refused {
                _ if unavailable => Err(Error::new(ErrorCode::RateLimitStoreUnavailable)
                    .with_header("Retry-After", "1")),
                None => Ok(()),
                Some(wait) => Err(Error::new(ErrorCode::RateLimited)
                    .with_header("Retry-After", retry_after_secs(wait).to_string())),
            };
        (fields, verdict)
    }
}

fn reset_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// What a limit of `kind` counts this request as, written into `out` (one buffer for all the
/// route's limits). A limit by consumer, project or header that finds none counts the
/// client's address instead.
fn request_key(
    kind: &LimitKey,
    req: &Request,
    caller: Option<&Caller>,
    project: Option<&str>,
    out: &mut Vec<u8>,
) {
    out.clear();
    match kind {
        LimitKey::Consumer => {
            if let Some(c) = caller {
                out.push(b'c');
                out.extend_from_slice(c.project_id.as_bytes());
                out.push(b'/');
                out.extend_from_slice(c.consumer.as_bytes());
                return;
            }
        }
        LimitKey::Project => {
            if let Some(p) = caller.map(|c| &*c.project_id).or(project) {
                out.push(b'p');
                out.extend_from_slice(p.as_bytes());
                return;
            }
        }
        LimitKey::Route => {
            out.push(b'r');
            return;
        }
        LimitKey::Ip => {}
        LimitKey::Header(name) => {
            if let Some(v) = req.head.field(name) {
                out.push(b'h');
                out.extend_from_slice(v);
                return;
            }
        }
    }
    push_address(out, req.peer.ip());
}

/// A key tagged with its kind, so that a name can never collide with an address.
fn tagged(kind: &LimitKey, key: &[u8]) -> Vec<u8> {
    let tag = match kind {
        LimitKey::Ip => b'i',
        LimitKey::Consumer => b'c',
        LimitKey::Project => b'p',
        LimitKey::Route => b'r',
        LimitKey::Header(_) => b'h',
    };
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(tag);
    k.extend_from_slice(key);
    k
}

fn push_address(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'i');
    match ip {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
}

/// A concurrency limit (`max_in_flight`) on a route or an upstream: at most `max` requests in
/// progress, each holding a slot until its exchange is over (response written and logged).
/// One more is 429 `PTC.CONCURRENCY_LIMITED` with `Retry-After: 1` (the table's "beyond its
/// processing capability"), before anything is read or sent on.
pub(crate) struct Concurrency {
    name: String,
    count: Arc<AtomicUsize>,
    max: usize,
    metrics: Arc<OnceLock<Arc<Metrics>>>,
}

/// A request's place under a concurrency limit; dropping it frees the place.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Concurrency {
    /// The limit `max` for `name` (`route:NAME`, `upstream:NAME`), counted in `registry`.
    pub(crate) fn new(registry: &RateLimiters, name: String, max: u64) -> Concurrency {
        Concurrency {
            count: registry.counter(&name),
            name,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            metrics: registry.metrics.clone(),
        }
    }

    /// The same limit, counted in `registry` (which outlives reloads).
    pub(crate) fn moved_to(&self, registry: &RateLimiters) -> Concurrency {
        Concurrency {
            count: registry.counter(&self.name),
            name: self.name.clone(),
            max: self.max,
            metrics: registry.metrics.clone(),
        }
    }

    /// Takes a place for a request until its exchange is over (among the request's
    /// `permits`); 429 when there is none.
    pub(crate) fn enter(&self, permits: &mut portico_server::Permits) -> Result<(), Error> {
        let taken = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                permits.push(Arc::new(Slot(self.count.clone())));
                Ok(())
            }
            Err(_) => {
                if let Some(m) = self.metrics.get() {
                    m.concurrency_limited(&Arc::from(self.name.as_str()));
                }
                Err(Error::new(ErrorCode::ConcurrencyLimited).with_header("Retry-After", "1"))
            }
        }
    }
}
