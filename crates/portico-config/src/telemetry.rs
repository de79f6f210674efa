//! Telemetry: top-level `metrics` (the Prometheus exposition and its histogram buckets) and
//! `tracing` (OpenTelemetry spans exported over OTLP/HTTP).

use std::net::SocketAddr;

use crate::listen::read_listen;
use crate::read::Reader;
use crate::yaml::{Kind, Node};

/// Top-level `metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Whether requests are counted at all (`enabled: false` takes metrics off the request
    /// path; `/metrics` then shows only process and build figures).
    pub enabled: bool,
    /// A listener of its own for scrapers, which serves `GET /metrics` without the admin
    /// token (the admin listener serves it with the token either way).
    pub listen: Option<SocketAddr>,
    /// Upper bounds of the request-duration histograms' buckets, in seconds, ascending.
    pub buckets: Vec<f64>,
}

impl Metrics {
    /// The buckets when none are configured: 1 ms to 10 s, about three per decade (the
    /// spread of an API's latencies, from a cached answer to a slow upstream).
    pub const DEFAULT_BUCKETS: [f64; 13] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            enabled: true,
            listen: None,
            buckets: Metrics::DEFAULT_BUCKETS.to_vec(),
        }
    }
}

/// Top-level `tracing`: where spans go and how many requests are traced.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracing {
    /// The OTLP/HTTP endpoint (`http://collector:4318`); spans are sent to its
    /// `/v1/traces` unless the URL already names that path.
    pub otlp_endpoint: String,
    /// The share of requests traced when the client sent no sampled `traceparent`, 0 to 1.
    /// A client's sampling decision is followed.
    pub sample_ratio: f64,
    /// `service.name` of the spans.
    pub service_name: String,
}

const METRICS_KEYS: &[&str] = &["enabled", "listen", "buckets"];
const TRACING_KEYS: &[&str] = &["otlp_endpoint", "sample_ratio", "service_name"];

/// Top-level `metrics: {enabled, listen, buckets}`.
pub(crate) fn read_metrics(r: &mut Reader, node: Option<&Node>) -> Option<Metrics> {
    let Some(node) = node else {
        return Some(Metrics::default());
    };
    let f = r.map(node, "metrics", METRICS_KEYS)?;
    let enabled = f
        .get("enabled")
        .map_or(Some(true), |n| r.boolean(n, "metrics.enabled"));
    let listen = match f.get("listen") {
        None => Some(None),
        Some(n) => read_listen(r, n, "metrics.listen", Some("127.0.0.1:9464")).map(Some),
    };
    let buckets = match f.get("buckets") {
        None => Some(Metrics::DEFAULT_BUCKETS.to_vec()),
        Some(n) => read_buckets(r, n),
    };
    Some(Metrics {
        enabled: enabled?,
        listen: listen?,
        buckets: buckets?,
    })
}

/// `buckets: [0.01, 0.1, 1]`: positive, finite, ascending, at most 64.
fn read_buckets(r: &mut Reader, n: &Node) -> Option<Vec<f64>> {
    let items = r.seq(n, "metrics.buckets")?;
    if items.is_empty() || items.len() > 64 {
        r.problem(n, "metrics.buckets", "give between 1 and 64 bucket bounds");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let v = number(r, item, "metrics.buckets")?;
        if !(v.is_finite() && v > 0.0) {
            r.problem(
                item,
                "metrics.buckets",
                "a bucket bound is a number of seconds greater than zero",
            );
            return None;
        }
        if out.last().is_some_and(|last| *last >= v) {
            r.problem(item, "metrics.buckets", "bucket bounds must be ascending");
            return None;
        }
        out.push(v);
    }
    Some(out)
}

/// Top-level `tracing: {otlp_endpoint, sample_ratio, service_name}`.
pub(crate) fn read_tracing(r: &mut Reader, node: &Node) -> Option<Tracing> {
    let f = r.map(node, "tracing", TRACING_KEYS)?;
    let endpoint = match f.get("otlp_endpoint") {
        None => {
            r.missing(node, "tracing", "otlp_endpoint");
            None
        }
        Some(n) => {
            let s = r.string(n, "tracing.otlp_endpoint")?;
            let ok = (s.starts_with("http://") || s.starts_with("https://"))
                && s.split_once("://").is_some_and(|(_, rest)| {
                    !rest.is_empty() && !rest.starts_with('/') && !s.contains(char::is_whitespace)
                });
            if !ok {
                r.problem(
                    n,
                    "tracing.otlp_endpoint",
                    format!("`{s}` is not an http:// or https:// URL, e.g. http://127.0.0.1:4318"),
                );
            }
            ok.then(|| s.to_string())
        }
    };
    let sample_ratio = match f.get("sample_ratio") {
        None => Some(1.0),
        Some(n) => match number(r, n, "tracing.sample_ratio")? {
            v if (0.0..=1.0).contains(&v) => Some(v),
            _ => {
                r.problem(
                    n,
                    "tracing.sample_ratio",
                    "the share of requests traced is between 0 and 1",
                );
                None
            }
        },
    };
    let service_name = match f.get("service_name") {
        None => Some("portico".to_string()),
        Some(n) => r.string(n, "tracing.service_name").map(str::to_string),
    };
    Some(Tracing {
        otlp_endpoint: endpoint?,
        sample_ratio: sample_ratio?,
        service_name: service_name?,
    })
}

/// A plain scalar that is a decimal number.
fn number(r: &mut Reader, n: &Node, path: &str) -> Option<f64> {
    match &n.kind {
        Kind::Scalar { value, plain: true } => match value.parse::<f64>() {
            Ok(v) => Some(v),
            Err(_) => {
                r.problem(n, path, format!("expected a number, found `{value}`"));
                None
            }
        },
        _ => {
            r.problem(n, path, "expected a number");
            None
        }
    }
}
