//! The process's metrics: the registry every gateway counts in, the figures read when
//! scraped (connections, upstream health, the cache, the access log), and the listener of
//! `metrics.listen`.

use std::sync::Arc;

use portico_gateway::Gateway;
use portico_server::Reloadable;
use portico_telemetry::{Metrics, Sampled, SampledKind, Tracing, TracingSettings};

/// Diagnostics to stderr at the level `RUST_LOG` asks for (`info` without it), each place in
/// the code that logs limited to a burst and a rate (`portico_telemetry::throttle`).
pub(crate) fn log_to_stderr() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let level = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(level.and(portico_telemetry::throttle::Throttle::new()));
    tracing_subscriber::registry().with(stderr).init();
}

/// Every ten seconds, a line saying how many log lines the throttle left out since the last,
/// when it left any out.
pub(crate) async fn report_suppressed_lines() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    let mut reported = 0;
    loop {
        tick.tick().await;
        let now = portico_telemetry::throttle::suppressed();
        if now > reported {
            tracing::warn!(
                suppressed = now - reported,
                "log lines left out: the places that wrote them wrote too many at once"
            );
            reported = now;
        }
    }
}

/// The tracer `tracing` asks for; an `https://` collector is verified against the system's
/// trust store.
pub(crate) fn tracer(
    config: &portico_config::Tracing,
    metrics: Arc<Metrics>,
) -> Result<Tracing, Box<dyn std::error::Error>> {
    let tls = if config.otlp_endpoint.starts_with("https://") {
        Some(portico_server::tls::client_config(None, false)?)
    } else {
        None
    };
    let settings = TracingSettings {
        otlp_endpoint: config.otlp_endpoint.clone(),
        sample_ratio: config.sample_ratio,
        service_name: config.service_name.clone(),
        export_timeout: portico_telemetry::trace::EXPORT_TIMEOUT,
    };
    let tracer = Tracing::start(&settings, tls, metrics)?;
    tracing::info!(
        endpoint = %portico_telemetry::trace::traces_url(&config.otlp_endpoint),
        sample_ratio = config.sample_ratio,
        "tracing: spans go to the OTLP collector"
    );
    Ok(tracer)
}

/// What `GET /admin/v1/overview` answers: the serving gateway's routes, APIs and upstream
/// health, and the last configuration loads.
pub(crate) fn overview(
    gateway: Arc<Reloadable<Gateway>>,
    metrics: Arc<Metrics>,
) -> portico_admin::Overview {
    Arc::new(move || {
        let mut overview = gateway.current().overview(std::time::SystemTime::now());
        overview["reloads"] = metrics
            .recent_reloads()
            .into_iter()
            .map(|(time, ok)| {
                serde_json::json!({
                    "time": portico_gateway::access_log::rfc3339_millis(time),
                    "result": if ok { "success" } else { "failure" },
                })
            })
            .collect();
        overview
    })
}

/// Registers in `metrics` what is read when scraped: connections by protocol, each upstream
/// target's health and the access log's dropped lines (from the gateway serving then), the
/// response cache's size and per-route counts, and the shared rate-limit store's failures.
pub(crate) fn sample(
    metrics: &Metrics,
    gateway: &Arc<Reloadable<Gateway>>,
    cache: &Arc<portico_cache::Cache>,
    limiters: &Arc<portico_gateway::limits::RateLimiters>,
) {
    metrics.sample(|out| {
        let counts = portico_server::connections::counts();
        let by = |f: fn(&portico_server::connections::Counts) -> u64| {
            counts
                .iter()
                .map(|c| (vec![("protocol", c.protocol.as_str().to_string())], f(c) as f64))
                .collect()
        };
        out.push(Sampled {
            name: "portico_connections",
            help: "Client connections open now, by protocol.",
            kind: SampledKind::Gauge,
            samples: by(|c| c.open),
        });
        out.push(Sampled {
            name: "portico_connections_accepted",
            help: "Client connections taken since the start, by protocol (a cleartext HTTP/2 connection counts under both).",
            kind: SampledKind::Counter,
            samples: by(|c| c.accepted),
        });
    });
    let swap = gateway.clone();
    metrics.sample(move |out| {
        let gw = swap.current();
        out.push(Sampled {
            name: "portico_upstream_target_healthy",
            help: "1 when the upstream target takes requests, 0 while health checks leave it out.",
            kind: SampledKind::Gauge,
            samples: gw
                .upstream_health()
                .into_iter()
                .map(|(upstream, target, up)| {
                    (
                        vec![
                            ("upstream", upstream.to_string()),
                            ("target", target.to_string()),
                        ],
                        if up { 1.0 } else { 0.0 },
                    )
                })
                .collect(),
        });
        out.push(Sampled {
            name: "portico_access_log_lines_dropped",
            help: "Access-log lines dropped because the writer fell behind.",
            kind: SampledKind::Counter,
            samples: vec![(Vec::new(), gw.access_log().dropped() as f64)],
        });
    });
    let cache = cache.clone();
    metrics.sample(move |out| {
        let gauge = |name, help, v: u64| Sampled {
            name,
            help,
            kind: SampledKind::Gauge,
            samples: vec![(Vec::new(), v as f64)],
        };
        out.push(gauge(
            "portico_cache_memory_bytes",
            "Bytes the response cache holds in memory.",
            cache.weighted_size(),
        ));
        out.push(gauge(
            "portico_cache_entries",
            "Responses the response cache holds in memory.",
            cache.entry_count(),
        ));
        out.push(gauge(
            "portico_cache_disk_bytes",
            "Bytes the response cache's disk tier holds.",
            cache.disk_bytes(),
        ));
        let (mut outcomes, mut bytes) = (Vec::new(), Vec::new());
        for (route, counts) in cache.all_counts() {
            for (outcome, n) in counts.snapshot() {
                if outcome == "bytes_served" {
                    bytes.push((vec![("route", route.to_string())], n as f64));
                } else {
                    outcomes.push((
                        vec![("route", route.to_string()), ("outcome", outcome.to_string())],
                        n as f64,
                    ));
                }
            }
        }
        out.push(Sampled {
            name: "portico_cache_lookups",
            help: "What each caching route's cache did, by route and outcome (hits, misses, stale answers, stored responses).",
            kind: SampledKind::Counter,
            samples: outcomes,
        });
        out.push(Sampled {
            name: "portico_cache_served_bytes",
            help: "Body bytes answered from the cache, by route.",
            kind: SampledKind::Counter,
            samples: bytes,
        });
    });
    let limiters = limiters.clone();
    metrics.sample(move |out| {
        out.push(Sampled {
            name: "portico_rate_limit_store_failures",
            help: "Rate-limit decisions the shared store could not make (the limit's on_store_failure applied).",
            kind: SampledKind::Counter,
            samples: vec![(Vec::new(), limiters.store_failures() as f64)],
        });
    });
}
