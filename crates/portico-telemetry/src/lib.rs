//! Portico's telemetry: the Prometheus metrics registry ([`Metrics`]) and OpenTelemetry
//! tracing ([`Tracing`]), in one crate that the server, the gateway and the admin API take a
//! handle of.
//!
//! Neither may slow a request or fail it: metrics are atomic adds on families whose labels
//! are bounded, and spans go to the collector from a bounded queue that drops (and counts)
//! what it cannot hold.

pub mod metrics;
pub mod process;
pub mod throttle;
pub mod trace;

pub use metrics::{Format, Metrics, RouteSeries, Sampled, SampledKind, UpstreamSeries};
pub use opentelemetry::trace::SpanKind;
pub use trace::{ChildSpan, Finished, RequestSpan, TRACEPARENT_LEN, Tracing, TracingSettings};
