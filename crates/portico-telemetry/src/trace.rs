//! OpenTelemetry tracing: a server span per request, child spans for the phases that wait
//! (access checks, limits, the store) and for the upstream call, exported over OTLP/HTTP.
//!
//! A client's W3C `traceparent` (and `tracestate`) is continued; a malformed one is ignored,
//! never an error, and a `tracestate` longer than the 512 characters W3C asks vendors to
//! propagate is left out. A request with a parent follows its sampled flag; one without is
//! traced at `sample_ratio`.
//!
//! Only a sampled request costs an SDK span. The others (nearly all, at the ratios operators
//! run) carry only ids: the trace id (the parent's, or a new one) and a span id for the
//! upstream call, which goes upstream in a `traceparent` flagged not sampled, so the services
//! behind Portico see one trace either way. Nothing about them is recorded.
//!
//! Export never slows a request: a finished span is handed to a bounded queue
//! ([`QUEUE`] spans) without waiting, and a task sends batches to the collector, each bounded
//! in time ([`EXPORT_TIMEOUT`]). A collector that is slow, down, or that accepts and never
//! reads only fills the queue: what does not fit is dropped and counted
//! (`portico_trace_spans_dropped_total`), as is every span of a batch that failed. This
//! processor is written here, not taken from the SDK, because the SDK's batch processor keeps
//! its count of dropped spans to itself.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, SdkTracer, SdkTracerProvider,
    ShouldSample, SpanData, SpanExporter as _, SpanProcessor,
};
use tokio::sync::mpsc;

use crate::Metrics;

/// Finished spans waiting for the collector before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Spans sent to the collector at once, at most.
pub const BATCH: usize = 512;
/// How long one batch may take to reach the collector before it counts as dropped.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a span waits for others to fill its batch.
const LINGER: Duration = Duration::from_millis(500);
/// The longest `tracestate` continued.
const MAX_TRACESTATE: usize = 512;

/// Where spans go and how many requests are traced.
#[derive(Clone, Debug)]
pub struct TracingSettings {
    /// The OTLP/HTTP endpoint: `http://collector:4318` (spans are posted to its
    /// `/v1/traces`), or the full URL of the traces path.
    pub otlp_endpoint: String,
    /// The share of requests traced without a sampled parent, 0 to 1.
    pub sample_ratio: f64,
    /// `service.name`.
    pub service_name: String,
    /// How long one batch may take to reach the collector ([`EXPORT_TIMEOUT`] unless a test
    /// wants less).
    pub export_timeout: Duration,
}

/// Why tracing could not start.
#[derive(Debug)]
pub struct TracingError(String);

impl std::fmt::Display for TracingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tracing: {}", self.0)
    }
}

impl std::error::Error for TracingError {}

/// The process's tracer. Cloning shares it.
#[derive(Clone)]
pub struct Tracing {
    /// Holds the provider (and its span processor) for as long as any clone lives.
    tracer: SdkTracer,
    /// Decides whether a request without a parent is traced (`sample_ratio`); one with a
    /// parent follows the parent's flag.
    root: Sampler,
    ids: RandomIdGenerator,
    settled: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracing")
    }
}

/// The OTLP traces URL of an endpoint: its `/v1/traces` unless it names that path.
pub fn traces_url(endpoint: &str) -> String {
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }
}

impl Tracing {
    /// A tracer exporting to `settings.otlp_endpoint`, counting what it exports and drops in
    /// `metrics`. `tls` verifies an `https://` collector. Must be called within a Tokio
    /// runtime: the export task is spawned on it.
    pub fn start(
        settings: &TracingSettings,
        tls: Option<rustls::ClientConfig>,
        metrics: Arc<Metrics>,
    ) -> Result<Tracing, TracingError> {
        let timeout = settings.export_timeout;
        let mut client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2));
        // reqwest is built without a crypto provider of its own: it always gets a rustls
        // configuration on ring, the process's (one that trusts nothing when the collector is
        // plain HTTP and no TLS is needed).
        let tls = match tls {
            Some(tls) => tls,
            None => rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| TracingError(format!("TLS: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        };
        client = client.tls_backend_preconfigured(tls);
        let client = client
            .build()
            .map_err(|e| TracingError(format!("the HTTP client: {e}")))?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .build();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(traces_url(&settings.otlp_endpoint))
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(timeout)
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .build()
            .map_err(|e| TracingError(e.to_string()))?;
        exporter.set_resource(&resource);
        let (tx, rx) = mpsc::channel(QUEUE);
        let (done, settled) = tokio::sync::watch::channel(0);
        tokio::spawn(export(exporter, rx, metrics.clone(), timeout, done));
        // The SDK sees only requests `begin` chose to trace, and their children: it records
        // every span whose parent is sampled (and a root span only when `begin` asks).
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_span_processor(Queue { tx, metrics })
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("portico");
        Ok(Tracing {
            tracer,
            root: Sampler::TraceIdRatioBased(settings.sample_ratio),
            ids: RandomIdGenerator::default(),
            settled,
        })
    }

    /// Begins the server span of a request whose head holds `traceparent` and `tracestate`
    /// (as received; malformed ones start a new trace).
    pub fn begin(&self, traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> RequestSpan {
        // Most requests carry no trace context: no propagator, no context to build.
        let parent = traceparent.map(|traceparent| {
            TraceContextPropagator::new().extract(&Incoming {
                traceparent: std::str::from_utf8(traceparent).ok(),
                tracestate: tracestate
                    .filter(|v| v.len() <= MAX_TRACESTATE)
                    .and_then(|v| std::str::from_utf8(v).ok()),
            })
        });
        let remote = parent
            .as_ref()
            .map(|cx| cx.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let trace_id = remote
            .as_ref()
            .map_or_else(|| self.ids.new_trace_id(), SpanContext::trace_id);
        let sampled = match &remote {
            Some(parent) => parent.is_sampled(),
            None => {
                self.root
                    .should_sample(None, trace_id, "request", &SpanKind::Server, &[], &[])
                    .decision
                    == SamplingDecision::RecordAndSample
            }
        };
        if !sampled {
            let state = remote.map_or(TraceState::NONE, |sc| sc.trace_state().clone());
            return RequestSpan(Span::Ids(SpanContext::new(
                trace_id,
                self.ids.new_span_id(),
                TraceFlags::NOT_SAMPLED,
                false,
                state,
            )));
        }
        let parent = parent.unwrap_or_default();
        let span = self
            .tracer
            .span_builder("request")
            .with_kind(SpanKind::Server)
            .with_start_time(SystemTime::now())
            .start_with_context(&self.tracer, &parent);
        RequestSpan(Span::Recorded(parent.with_span(span)))
    }

    /// Begins a child of `parent` named `name`; it ends when dropped. The child of a request
    /// not traced is ids only, for `traceparent`.
    pub fn child(&self, parent: &RequestSpan, name: &'static str, kind: SpanKind) -> ChildSpan {
        match &parent.0 {
            Span::Recorded(cx) => {
                let span = self
                    .tracer
                    .span_builder(name)
                    .with_kind(kind)
                    .start_with_context(&self.tracer, cx);
                ChildSpan(Span::Recorded(cx.with_span(span)))
            }
            Span::Ids(sc) => ChildSpan(Span::Ids(SpanContext::new(
                sc.trace_id(),
                self.ids.new_span_id(),
                sc.trace_flags(),
                false,
                sc.trace_state().clone(),
            ))),
        }
    }

    /// How many batches the exporter has finished with (sent, or dropped after a failure or
    /// a timeout): what a test waits on instead of a clock.
    pub fn settled(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settled.clone()
    }
}

/// A span: an SDK span when the request is traced, its ids alone when it is not.
#[derive(Clone, Debug)]
enum Span {
    Recorded(Context),
    Ids(SpanContext),
}

impl Span {
    fn span_context(&self) -> SpanContext {
        match self {
            Span::Recorded(cx) => cx.span().span_context().clone(),
            Span::Ids(sc) => sc.clone(),
        }
    }
}

/// A request's server span, kept with the request until its exchange is logged.
#[derive(Clone, Debug)]
pub struct RequestSpan(Span);

/// What the server span says of a finished request.
pub struct Finished<'a> {
    /// The request's method.
    pub method: &'static str,
    /// The route that took it (`http.route` is its path template).
    pub route: Option<(&'a str, &'a str)>,
    /// The status sent, if any.
    pub status: Option<u16>,
    /// Portico's error code, when it generated the response.
    pub error_code: Option<&'static str>,
    /// When the response's last byte went.
    pub end: SystemTime,
}

impl RequestSpan {
    /// The span's context (trace id, span id, sampling).
    pub fn context(&self) -> SpanContext {
        self.0.span_context()
    }

    /// Whether the request is traced (its spans are exported).
    pub fn sampled(&self) -> bool {
        matches!(self.0, Span::Recorded(_))
    }

    /// Ends the span with what became of the request.
    pub fn finish(&self, f: Finished<'_>) {
        let Span::Recorded(cx) = &self.0 else {
            return;
        };
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        let name = match f.route {
            Some((_, template)) => format!("{} {template}", f.method),
            None => f.method.to_string(),
        };
        span.update_name(name);
        span.set_attribute(KeyValue::new("http.request.method", f.method));
        if let Some((route, template)) = f.route {
            span.set_attribute(KeyValue::new("http.route", template.to_string()));
            span.set_attribute(KeyValue::new("portico.route", route.to_string()));
        }
        if let Some(status) = f.status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                span.set_status(Status::error(""));
            }
        }
        if let Some(code) = f.error_code {
            span.set_attribute(KeyValue::new("portico.error_code", code));
        }
        span.end_with_timestamp(f.end);
    }
}

/// A child span; ends when dropped.
pub struct ChildSpan(Span);

impl ChildSpan {
    /// The `traceparent` an outgoing request carries to continue the trace from this span
    /// (flagged not sampled when the request is not traced).
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        match &self.0 {
            Span::Recorded(cx) => traceparent(cx.span().span_context()),
            Span::Ids(sc) => traceparent(sc),
        }
    }

    /// The `tracestate` an outgoing request carries, when there is one.
    pub fn tracestate(&self) -> Option<String> {
        let header = self.0.span_context().trace_state().header();
        (!header.is_empty()).then_some(header)
    }

    /// Whether the span records (its request is traced): what to check before building an
    /// attribute's value.
    pub fn recording(&self) -> bool {
        matches!(self.0, Span::Recorded(_))
    }

    /// Records an attribute.
    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Span::Recorded(cx) = &self.0 {
            cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Records the `PTC.*` code of a refusal or failure.
    pub fn failed(&self, code: &'static str) {
        if let Span::Recorded(cx) = &self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new("portico.error_code", code));
            span.set_status(Status::error(Cow::Borrowed(code)));
        }
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        if let Span::Recorded(cx) = &self.0 {
            cx.span().end();
        }
    }
}

/// The length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

/// `00-{trace id}-{span id}-{flags}` in lowercase hex. Written here rather than with
/// `format!` because every proxied request sends one: a fixed array, no formatter, no
/// allocation.
fn traceparent(sc: &SpanContext) -> [u8; TRACEPARENT_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; TRACEPARENT_LEN];
    out[..2].copy_from_slice(b"00");
    let fields: [(&[u8], usize); 3] = [
        (&sc.trace_id().to_bytes(), 3),
        (&sc.span_id().to_bytes(), 36),
        (&[sc.trace_flags().to_u8()], 53),
    ];
    for (bytes, at) in fields {
        for (i, b) in bytes.iter().enumerate() {
            out[at + 2 * i] = HEX[usize::from(b >> 4)];
            out[at + 2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
    }
    out
}

/// The trace fields of a request head, as the propagator asks for them.
struct Incoming<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The span processor: finished spans into the bounded queue, never waiting.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<SpanData>,
    metrics: Arc<Metrics>,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.metrics.spans_dropped(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Sends batches from the queue to the collector, one at a time, each within
/// [`EXPORT_TIMEOUT`]; what fails or times out is counted as dropped.
async fn export(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    metrics: Arc<Metrics>,
    timeout: Duration,
    settled: tokio::sync::watch::Sender<u64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            tokio::select! {
                more = rx.recv() => match more {
                    Some(span) => batch.push(span),
                    None => break,
                },
                () = &mut linger => break,
            }
        }
        let n = batch.len() as u64;
        let sent = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        match tokio::time::timeout(timeout, exporter.export(sent)).await {
            Ok(Ok(())) => metrics.spans_exported(n),
            Ok(Err(e)) => {
                metrics.spans_dropped(n);
                tracing::debug!(error = %e, spans = n, "spans not exported");
            }
            Err(_) => {
                metrics.spans_dropped(n);
                tracing::debug!(
                    spans = n,
                    "the collector did not answer in time; spans dropped"
                );
            }
        }
        settled.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_the_w3c_text_of_the_span_context() {
        let sc = SpanContext::new(
            opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        assert_eq!(
            &traceparent(&sc)[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let unsampled = SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            TraceFlags::NOT_SAMPLED,
            false,
            TraceState::NONE,
        );
        assert!(traceparent(&unsampled).ends_with(b"-00"));
    }

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://c:4318"),
            "http://c:4318/v1/traces".to_string()
        );
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("https://c/otlp/v1/traces"),
            "https://c/otlp/v1/traces"
        );
    }
}
