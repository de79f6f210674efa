//! The Prometheus metrics: one registry per process, families with bounded labels, and the
//! exposition in either text format.
//!
//! Every label value comes from the configuration or from a closed set (route and upstream
//! names, targets as configured, methods of the IANA registry, status codes, `PTC.*` codes,
//! limit names), never from a request's path or fields, so a flood of distinct requests
//! cannot grow the number of series: a request no route took counts under `route=""`.
//!
//! What changes on the request path is counted where it happens (a relaxed atomic add, or a
//! histogram's short lock), through series resolved when a configuration is built
//! ([`RouteSeries`], [`UpstreamSeries`]) rather than looked up by label per request; what
//! already has a count elsewhere (connections, the cache, upstream health, the process) is
//! read when scraped, by collectors.

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use hashbrown::Equivalent;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The labels of `portico_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status: u16,
    error_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: Arc<str>,
    target: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    route: Arc<str>,
    limit: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Histograms of one family share their bucket bounds.
#[derive(Clone)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// How many configuration loads [`Metrics::recent_reloads`] keeps.
pub const RECENT_RELOADS: usize = 20;

/// Store calls are quicker than requests: 100 µs to 2.5 s.
const STORE_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 2.5,
];

/// A gauge or counter read when scraped: its name, help, kind and samples.
pub struct Sampled {
    /// The metric's name (a counter's without `_total`, which the exposition adds).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: SampledKind,
    /// Each series' labels and value.
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// What a [`Sampled`] metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampledKind {
    /// Goes up and down.
    Gauge,
    /// Only goes up.
    Counter,
}

type Sampler = Box<dyn Fn(&mut Vec<Sampled>) + Send + Sync>;

/// Metrics read when scraped, from closures the process registers.
struct Samplers(Arc<Mutex<Vec<Sampler>>>);

impl fmt::Debug for Samplers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Samplers")
    }
}

impl Collector for Samplers {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut out = Vec::new();
        for s in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            s(&mut out);
        }
        for m in out {
            let kind = match m.kind {
                SampledKind::Gauge => MetricType::Gauge,
                SampledKind::Counter => MetricType::Counter,
            };
            let mut metric = encoder.encode_descriptor(m.name, m.help, None, kind)?;
            for (labels, value) in &m.samples {
                let family = metric.encode_family(labels)?;
                match m.kind {
                    SampledKind::Gauge => ConstGauge::new(*value).encode(family)?,
                    SampledKind::Counter => ConstCounter::new(*value).encode(family)?,
                }
            }
        }
        Ok(())
    }
}

/// The process's CPU time, memory and file descriptors, read from `/proc` when scraped
/// (written here because `prometheus-client` has no process collector; the names are the
/// ones every Prometheus client library uses).
#[derive(Debug)]
struct ProcessCollector {
    start: f64,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let p = crate::process::read();
        let mut gauge = |name: &str, help: &str, unit: Option<&Unit>, v: f64| {
            let m = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)
        };
        gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            None,
            self.start,
        )?;
        if let Some(v) = p.resident_bytes {
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                None,
                v as f64,
            )?;
        }
        if let Some(v) = p.virtual_bytes {
            gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                None,
                v as f64,
            )?;
        }
        if let Some(v) = p.open_fds {
            gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                v as f64,
            )?;
        }
        if let Some(v) = p.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                v as f64,
            )?;
        }
        if let Some(v) = p.threads {
            gauge("process_threads", "Number of OS threads.", None, v as f64)?;
        }
        if let Some(v) = p.cpu_seconds {
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(m)?;
        }
        Ok(())
    }
}

/// The exposition format a scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`application/openmetrics-text`), ending in `# EOF`.
    OpenMetrics,
    /// Prometheus text 0.0.4 (`text/plain`).
    PrometheusText,
}

impl Format {
    /// The format an `Accept` field value asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a weight above zero, else the Prometheus text
    /// format, which every scraper reads.
    pub fn from_accept(accept: Option<&[u8]>) -> Format {
        let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
            return Format::PrometheusText;
        };
        let wants = accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            media.eq_ignore_ascii_case("application/openmetrics-text")
                && parts.all(|p| {
                    !p.get(..2).is_some_and(|k| k.eq_ignore_ascii_case("q="))
                        || p[2..].parse::<f32>().is_ok_and(|q| q > 0.0)
                })
        });
        if wants {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// A family's counters found through a map of their own, keyed by what the caller has at
/// hand (no label to allocate or clone) and hashed with foldhash, in front of the family's
/// map (SipHash over owned labels, taken only the first time a key is seen). Counting is then
/// a read lock, a short hash and an atomic add. The map holds no more keys than the family
/// has series, which are bounded.
struct Counters<K, L> {
    family: Family<L, Counter>,
    resolved: RwLock<hashbrown::HashMap<K, Counter>>,
}

impl<K: Hash + Eq, L: Clone + Hash + Eq> Counters<K, L> {
    fn new(family: Family<L, Counter>) -> Counters<K, L> {
        Counters {
            family,
            resolved: RwLock::default(),
        }
    }

    /// Adds one to the counter of `query`; the first time, its key and labels are made.
    fn inc<Q: Hash + Equivalent<K> + ?Sized>(
        &self,
        query: &Q,
        key: impl FnOnce() -> K,
        labels: impl FnOnce() -> L,
    ) {
        if let Some(counter) = self
            .resolved
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(query)
        {
            counter.inc();
            return;
        }
        let counter = self.family.get_or_create(&labels()).clone();
        counter.inc();
        self.resolved
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key(), counter);
    }
}

impl<K, L> fmt::Debug for Counters<K, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Counters")
    }
}

/// One route's series: its duration histogram, and its request counters by method, status
/// and error code.
#[derive(Debug)]
pub struct RouteSeries {
    route: Arc<str>,
    duration: Histogram,
    requests: Counters<(&'static str, u16, &'static str), RequestLabels>,
}

impl RouteSeries {
    /// Counts one answered request; `error_code` is empty unless Portico generated the
    /// response.
    pub fn request(
        &self,
        method: &'static str,
        status: u16,
        error_code: &'static str,
        duration: Duration,
    ) {
        let key = (method, status, error_code);
        self.requests.inc(
            &key,
            || key,
            || RequestLabels {
                route: self.route.clone(),
                method,
                status,
                error_code,
            },
        );
        self.duration.observe(duration.as_secs_f64());
    }
}

/// One upstream's series: its latency histogram, and its call counters by target and
/// outcome.
#[derive(Debug)]
pub struct UpstreamSeries {
    upstream: Arc<str>,
    duration: Histogram,
    calls: Counters<(Arc<str>, &'static str), UpstreamLabels>,
}

/// A `(target, outcome)` key looked up without cloning the target.
#[derive(Hash)]
struct TargetOutcome<'a>(&'a str, &'static str);

impl Equivalent<(Arc<str>, &'static str)> for TargetOutcome<'_> {
    fn equivalent(&self, key: &(Arc<str>, &'static str)) -> bool {
        *key.0 == *self.0 && key.1 == self.1
    }
}

impl UpstreamSeries {
    /// Counts one request sent upstream to `target` (empty when none answered): `outcome`
    /// is `2xx`…`5xx`, or how it failed.
    pub fn call(&self, target: &Arc<str>, outcome: &'static str, took: Duration) {
        self.calls.inc(
            &TargetOutcome(target, outcome),
            || (target.clone(), outcome),
            || UpstreamLabels {
                upstream: self.upstream.clone(),
                target: target.clone(),
                outcome,
            },
        );
        self.duration.observe(took.as_secs_f64());
    }
}

/// The process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    samplers: Arc<Mutex<Vec<Sampler>>>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabel, Histogram, Buckets>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_durations: Family<UpstreamLabel, Histogram, Buckets>,
    rate_limited: Family<LimitLabels, Counter>,
    concurrency_limited: Family<LimitLabel, Counter>,
    refusals: Family<ReasonLabel, Counter>,
    idempotency: Family<OutcomeLabel, Counter>,
    jobs: Family<StateLabel, Counter>,
    store_durations: Family<OperationLabel, Histogram, Buckets>,
    store_failures: Family<OperationLabel, Counter>,
    reloads: Family<ResultLabel, Counter>,
    last_reload: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// The last [`RECENT_RELOADS`] loads: when, and whether they succeeded.
    recent_reloads: Mutex<std::collections::VecDeque<(SystemTime, bool)>>,
    spans_dropped: Counter,
    spans_exported: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A registry with every family Portico counts, request durations in `buckets`
    /// (seconds, ascending).
    pub fn new(buckets: &[f64]) -> Metrics {
        let request_buckets = Buckets(buckets.into());
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            samplers: Arc::new(Mutex::new(Vec::new())),
            requests: Family::default(),
            durations: Family::new_with_constructor(request_buckets.clone()),
            upstream_requests: Family::default(),
            upstream_durations: Family::new_with_constructor(request_buckets),
            rate_limited: Family::default(),
            concurrency_limited: Family::default(),
            refusals: Family::default(),
            idempotency: Family::default(),
            jobs: Family::default(),
            store_durations: Family::new_with_constructor(Buckets(STORE_BUCKETS.into())),
            store_failures: Family::default(),
            reloads: Family::default(),
            last_reload: Gauge::default(),
            recent_reloads: Mutex::default(),
            spans_dropped: Counter::default(),
            spans_exported: Counter::default(),
        };
        m.register();
        m.sample(|out| {
            out.push(Sampled {
                name: "portico_log_lines_suppressed",
                help: "Diagnostic log lines left out because their place in the code logged too many at once.",
                kind: SampledKind::Counter,
                samples: vec![(Vec::new(), crate::throttle::suppressed() as f64)],
            });
        });
        m
    }

    fn register(&self) {
        let mut r = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        r.register(
            "portico_build",
            "Portico's version; the value is always 1",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        r.register(
            "portico_requests",
            "Requests answered, by route (empty when no route took it), method, status and Portico's error code (empty unless Portico generated the response)",
            self.requests.clone(),
        );
        r.register_with_unit(
            "portico_request_duration",
            "Time from a request's first byte to its response's last, by route",
            Unit::Seconds,
            self.durations.clone(),
        );
        r.register(
            "portico_upstream_requests",
            "Requests sent to upstream targets, by upstream, target and outcome (the response's status class, or how it failed)",
            self.upstream_requests.clone(),
        );
        r.register_with_unit(
            "portico_upstream_request_duration",
            "Time from sending a request upstream to its response head, by upstream",
            Unit::Seconds,
            self.upstream_durations.clone(),
        );
        r.register(
            "portico_rate_limit_rejections",
            "Requests refused with 429 by a rate limit, by route and limit (`plan:NAME` routes are a plan's limits)",
            self.rate_limited.clone(),
        );
        r.register(
            "portico_concurrency_rejections",
            "Requests refused with 429 by a concurrency limit (`route:NAME` or `upstream:NAME`)",
            self.concurrency_limited.clone(),
        );
        r.register(
            "portico_quota_refusals",
            "Requests refused for the project's quota or billing, by reason",
            self.refusals.clone(),
        );
        r.register(
            "portico_idempotency",
            "Requests with an Idempotency-Key, by outcome",
            self.idempotency.clone(),
        );
        r.register(
            "portico_jobs",
            "Jobs that reached each state on this node",
            self.jobs.clone(),
        );
        r.register_with_unit(
            "portico_store_operation_duration",
            "Time the store took to answer, by operation",
            Unit::Seconds,
            self.store_durations.clone(),
        );
        r.register(
            "portico_store_failures",
            "Store calls that failed, by operation",
            self.store_failures.clone(),
        );
        r.register(
            "portico_config_reloads",
            "Configuration reloads, by result",
            self.reloads.clone(),
        );
        r.register(
            "portico_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in seconds since the Unix epoch",
            self.last_reload.clone(),
        );
        r.register(
            "portico_trace_spans_dropped",
            "Trace spans dropped because the exporter's queue was full or the collector failed",
            self.spans_dropped.clone(),
        );
        r.register(
            "portico_trace_spans_exported",
            "Trace spans the collector accepted",
            self.spans_exported.clone(),
        );
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        r.register_collector(Box::new(ProcessCollector { start }));
        r.register_collector(Box::new(Samplers(self.samplers.clone())));
    }

    /// Adds metrics read when scraped: `sample` pushes their current values.
    pub fn sample(&self, sample: impl Fn(&mut Vec<Sampled>) + Send + Sync + 'static) {
        self.samplers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(sample));
    }

    /// The series of the route named `route` (empty for requests no route took), to count
    /// its requests with [`RouteSeries::request`]: resolved once, when a configuration is
    /// built, not per request.
    pub fn route(&self, route: &Arc<str>) -> RouteSeries {
        RouteSeries {
            route: route.clone(),
            duration: self
                .durations
                .get_or_create(&RouteLabel {
                    route: route.clone(),
                })
                .clone(),
            requests: Counters::new(self.requests.clone()),
        }
    }

    /// The series of the upstream named `upstream`, to count its calls with
    /// [`UpstreamSeries::call`].
    pub fn upstream_series(&self, upstream: &Arc<str>) -> UpstreamSeries {
        UpstreamSeries {
            upstream: upstream.clone(),
            duration: self
                .upstream_durations
                .get_or_create(&UpstreamLabel {
                    upstream: upstream.clone(),
                })
                .clone(),
            calls: Counters::new(self.upstream_requests.clone()),
        }
    }

    /// Counts a request a rate limit refused.
    pub fn rate_limited(&self, route: &Arc<str>, limit: &Arc<str>) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                route: route.clone(),
                limit: limit.clone(),
            })
            .inc();
    }

    /// Counts a request a concurrency limit refused.
    pub fn concurrency_limited(&self, limit: &Arc<str>) {
        self.concurrency_limited
            .get_or_create(&LimitLabel {
                limit: limit.clone(),
            })
            .inc();
    }

    /// Counts a request refused for its project's quota or billing (`reason`: the code's
    /// name, e.g. `quota_spent`).
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a request with an `Idempotency-Key` by what became of it.
    pub fn idempotency(&self, outcome: &'static str) {
        self.idempotency
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts a job that reached `state`.
    pub fn job(&self, state: &'static str) {
        self.jobs.get_or_create(&StateLabel { state }).inc();
    }

    /// Records one store call: how long it took and whether it failed.
    pub fn store(&self, operation: &'static str, took: Duration, failed: bool) {
        self.store_durations
            .get_or_create(&OperationLabel { operation })
            .observe(took.as_secs_f64());
        if failed {
            self.store_failures
                .get_or_create(&OperationLabel { operation })
                .inc();
        }
    }

    /// Records a configuration load: a success also sets the time of the last one.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
        let now = SystemTime::now();
        if ok {
            let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
            self.last_reload.set(since.as_secs_f64());
        }
        let mut recent = self
            .recent_reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECENT_RELOADS {
            recent.pop_front();
        }
        recent.push_back((now, ok));
    }

    /// The last loads of the configuration, oldest first: when, and whether they succeeded.
    pub fn recent_reloads(&self) -> Vec<(SystemTime, bool)> {
        self.recent_reloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }

    /// Counts spans dropped on the way to the collector.
    pub fn spans_dropped(&self, n: u64) {
        self.spans_dropped.inc_by(n);
    }

    /// Counts spans the collector took.
    pub fn spans_exported(&self, n: u64) {
        self.spans_exported.inc_by(n);
    }

    /// The exposition, in `format`.
    pub fn encode(&self, format: Format) -> String {
        let r = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail; the encoders fail only on a failing writer.
        let _ = match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &r),
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &r)
            }
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_chooses_openmetrics_only_when_asked() {
        assert_eq!(Format::from_accept(None), Format::PrometheusText);
        assert_eq!(
            Format::from_accept(Some(b"text/plain;version=0.0.4")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::from_accept(Some(
                b"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_accept(Some(b"application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
    }

    #[test]
    fn requests_are_counted_under_bounded_labels() {
        let m = Metrics::new(&[0.1, 1.0]);
        let route: Arc<str> = "orders".into();
        let none: Arc<str> = "".into();
        let orders = m.route(&route);
        orders.request("GET", 200, "", Duration::from_millis(20));
        orders.request("GET", 200, "", Duration::from_millis(200));
        m.route(&none)
            .request("GET", 404, "PTC.ROUTE_NOT_FOUND", Duration::from_millis(1));
        // A second configuration's series of the same route count on in the same series.
        m.route(&route)
            .request("GET", 200, "", Duration::from_millis(20));
        let upstream = m.upstream_series(&route);
        let (a, b): (Arc<str>, Arc<str>) = ("a:1".into(), "b:1".into());
        upstream.call(&a, "2xx", Duration::from_millis(3));
        upstream.call(&a, "2xx", Duration::from_millis(3));
        upstream.call(&b, "5xx", Duration::from_millis(3));
        upstream.call(&a, "5xx", Duration::from_millis(3));
        let text = m.encode(Format::PrometheusText);
        assert!(
            text.contains(
                r#"portico_requests_total{route="orders",method="GET",status="200",error_code=""} 3"#
            ),
            "{text}"
        );
        for (target, outcome, n) in [("a:1", "2xx", 2), ("a:1", "5xx", 1), ("b:1", "5xx", 1)] {
            let line = format!(
                r#"portico_upstream_requests_total{{upstream="orders",target="{target}",outcome="{outcome}"}} {n}"#
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            text.contains(
                r#"portico_upstream_request_duration_seconds_count{upstream="orders"} 4"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"portico_requests_total{route="",method="GET",status="404",error_code="PTC.ROUTE_NOT_FOUND"} 1"#));
        assert!(
            text.contains(r#"portico_request_duration_seconds_bucket{route="orders",le="0.1"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"portico_build_info{version=""#));
        let om = m.encode(Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn every_family_is_in_docs_metrics_md() {
        let m = Metrics::new(&[1.0]);
        let name: Arc<str> = "x".into();
        m.route(&name).request("GET", 200, "", Duration::ZERO);
        m.upstream_series(&name).call(&name, "2xx", Duration::ZERO);
        m.rate_limited(&name, &name);
        m.concurrency_limited(&name);
        m.refused("quota_spent");
        m.idempotency("replayed");
        m.job("succeeded");
        m.store("job_create", Duration::ZERO, true);
        m.reload(true);
        let text = m.encode(Format::PrometheusText);
        let documented = include_str!("../../../docs/metrics.md");
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
            .collect();
        assert!(families.len() >= 20, "{families:?}");
        for name in families {
            assert!(
                documented.contains(&format!("| `{name}` |")),
                "{name} is not in docs/metrics.md"
            );
        }
    }

    #[test]
    fn sampled_metrics_are_read_when_scraped() {
        let m = Metrics::new(&[1.0]);
        let n = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let read = n.clone();
        m.sample(move |out| {
            out.push(Sampled {
                name: "portico_upstream_target_healthy",
                help: "1 when the target takes requests.",
                kind: SampledKind::Gauge,
                samples: vec![(
                    vec![("upstream", "u".into()), ("target", "a:1".into())],
                    read.load(std::sync::atomic::Ordering::Relaxed) as f64,
                )],
            });
        });
        assert!(
            m.encode(Format::PrometheusText)
                .contains(r#"portico_upstream_target_healthy{upstream="u",target="a:1"} 1"#)
        );
        n.store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(
            m.encode(Format::PrometheusText)
                .contains(r#"portico_upstream_target_healthy{upstream="u",target="a:1"} 0"#)
        );
    }
}
