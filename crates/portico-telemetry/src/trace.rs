//! OpenTelemetry tracing: a server span per request, child spans for the phases that wait
//! (access checks, limits, the store) and for the upstream call, exported over OTLP/HTTP.
//!
//! A client's W3C `traceparent` (and `tracestate`) is continued; a malformed one is ignored,
//! never an error, and a `tracestate` longer than the 512 characters W3C asks vendors to
//! propagate is left out. Requests without a sampled parent are traced at `sample_ratio`
//! (the decision rides on the trace id, so every service of a trace agrees).
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
    SpanContext, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor,
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
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sample_ratio,
            ))))
            .with_span_processor(Queue { tx, metrics })
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("portico");
        Ok(Tracing { tracer, settled })
    }

    /// Begins the server span of a request whose head holds `traceparent` and `tracestate`
    /// (as received; malformed ones start a new trace).
    pub fn begin(
        &self,
        traceparent: Option<&[u8]>,
        tracestate: Option<&[u8]>,
        start: SystemTime,
    ) -> RequestSpan {
        let parent = TraceContextPropagator::new().extract(&Incoming {
            traceparent: traceparent.and_then(|v| std::str::from_utf8(v).ok()),
            tracestate: tracestate
                .filter(|v| v.len() <= MAX_TRACESTATE)
                .and_then(|v| std::str::from_utf8(v).ok()),
        });
        let span = self
            .tracer
            .span_builder("request")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .start_with_context(&self.tracer, &parent);
        RequestSpan {
            cx: parent.with_span(span),
        }
    }

    /// Begins a child of `parent` named `name`; it ends when dropped.
    pub fn child(&self, parent: &RequestSpan, name: &'static str, kind: SpanKind) -> ChildSpan {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&self.tracer, &parent.cx);
        ChildSpan {
            cx: parent.cx.with_span(span),
        }
    }

    /// How many batches the exporter has finished with (sent, or dropped after a failure or
    /// a timeout): what a test waits on instead of a clock.
    pub fn settled(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settled.clone()
    }
}

/// A request's server span, kept with the request until its exchange is logged.
#[derive(Clone, Debug)]
pub struct RequestSpan {
    cx: Context,
}

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
        self.cx.span().span_context().clone()
    }

    /// Whether the request is traced (its spans are exported).
    pub fn sampled(&self) -> bool {
        self.cx.span().span_context().is_sampled()
    }

    /// Ends the span with what became of the request.
    pub fn finish(&self, f: Finished<'_>) {
        let span = self.cx.span();
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
pub struct ChildSpan {
    cx: Context,
}

impl ChildSpan {
    /// The `traceparent` an outgoing request carries to continue the trace from this span.
    pub fn traceparent(&self) -> String {
        let span = self.cx.span();
        let sc = span.span_context();
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    }

    /// The `tracestate` an outgoing request carries, when there is one.
    pub fn tracestate(&self) -> Option<String> {
        let header = self.cx.span().span_context().trace_state().header();
        (!header.is_empty()).then_some(header)
    }

    /// Records an attribute.
    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.cx.span().set_attribute(KeyValue::new(key, value));
    }

    /// Records the `PTC.*` code of a refusal or failure.
    pub fn failed(&self, code: &'static str) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("portico.error_code", code));
        span.set_status(Status::error(Cow::Borrowed(code)));
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
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
