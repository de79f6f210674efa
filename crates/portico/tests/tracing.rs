//! OpenTelemetry tracing: spans exported over OTLP/HTTP to a receiver on an ephemeral port
//! that decodes the real protobuf messages; their parentage and attributes, the
//! `traceparent` the upstream gets, the access log's ids, and a collector that never reads.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use portico_telemetry::{Metrics, Tracing, TracingSettings};
use portico_testkit::{MockUpstream, Reply, TestGateway};
use prost::Message;

/// An OTLP/HTTP receiver: answers every export with an empty success.
async fn receiver() -> MockUpstream {
    MockUpstream::start(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
    })
    .await
}

fn tracer(endpoint: String, ratio: f64, timeout: Duration) -> (Tracing, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(&[1.0]));
    let settings = TracingSettings {
        otlp_endpoint: endpoint,
        sample_ratio: ratio,
        service_name: "portico-test".into(),
        export_timeout: timeout,
    };
    (
        Tracing::start(&settings, None, metrics.clone()).unwrap(),
        metrics,
    )
}

/// A gateway with a route `/api/{*rest}` to `upstream` under a rate limit (a phase that
/// waits, so it has a span), traced by `tracing`.
async fn gateway(upstream: std::net::SocketAddr, tracing: Tracing) -> TestGateway {
    let yaml = format!(
        "upstreams:\n  - {{name: up, targets: ['http://{upstream}']}}\nroutes:\n  - {{name: api, path: '/api/{{*rest}}', methods: [GET], upstream: up, rate_limit: {{key: ip, rate: 1000/s, name: fast}}}}\n"
    );
    TestGateway::start_with(&yaml, |gw| gw.with_tracing(tracing)).await
}

/// Spans received until `want` says there are enough.
async fn spans_until(collector: &mut MockUpstream, want: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let mut spans = Vec::new();
    while !want(&spans) {
        let export = collector.next().await;
        assert_eq!(export.line, "POST /v1/traces HTTP/1.1");
        assert_eq!(
            export.header("content-type"),
            Some("application/x-protobuf")
        );
        let request = ExportTraceServiceRequest::decode(&export.body[..]).unwrap();
        for rs in request.resource_spans {
            let resource = rs.resource.unwrap();
            assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"
                && matches!(&kv.value.as_ref().unwrap().value, Some(Value::StringValue(s)) if s == "portico-test")));
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    spans
}

fn attributes(span: &Span) -> HashMap<&str, String> {
    span.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.as_str(), v)
        })
        .collect()
}

/// The value of an unlabelled counter.
fn counter(metrics: &Metrics, name: &str) -> f64 {
    let text = metrics.encode(portico_telemetry::Format::PrometheusText);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap()
        .parse()
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_traced_request_exports_a_server_span_with_children_and_continues_upstream() {
    let mut collector = receiver().await;
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let (tracing, metrics) = tracer(
        format!("http://{}", collector.addr),
        1.0,
        Duration::from_secs(10),
    );
    let mut settled = tracing.settled();
    let mut gw = gateway(up.addr, tracing).await;

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let resp = gw
        .request(&format!(
            "GET /api/items?secret=1 HTTP/1.1\r\nHost: a\r\ntraceparent: 00-{trace_id}-{parent}-01\r\ntracestate: vendor=abc\r\n\r\n"
        ))
        .await;
    assert_eq!(resp.status, 200);

    // The upstream continues the trace from the upstream call's span.
    let got = up.next().await;
    let sent = got.header("traceparent").unwrap().to_string();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", trace_id, "01"));
    assert_ne!(parts[2], parent);
    assert_eq!(got.headers_named("traceparent").len(), 1);
    assert_eq!(got.header("tracestate"), Some("vendor=abc"));

    // The access log carries the ids.
    let line = gw.next_log().await;
    assert_eq!(line["trace_id"], trace_id);
    let server_id = line["span_id"].as_str().unwrap().to_string();

    let spans = spans_until(&mut collector, |s| s.len() >= 3).await;
    let server = spans
        .iter()
        .find(|s| hex(&s.span_id) == server_id)
        .expect("the server span");
    assert_eq!(hex(&server.trace_id), trace_id);
    assert_eq!(hex(&server.parent_span_id), parent);
    assert_eq!(server.name, "GET /api/{*rest}");
    assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
    let a = attributes(server);
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["http.route"], "/api/{*rest}");
    assert!(!a.contains_key("portico.error_code"));
    assert!(
        server.end_time_unix_nano >= server.start_time_unix_nano,
        "{server:?}"
    );
    for name in ["rate_limits", "upstream"] {
        let child = spans.iter().find(|s| s.name == name).expect(name);
        assert_eq!(hex(&child.trace_id), trace_id);
        assert_eq!(hex(&child.parent_span_id), server_id, "{name}");
    }
    let upstream = spans.iter().find(|s| s.name == "upstream").unwrap();
    assert_eq!(hex(&upstream.span_id), parts[2]);
    assert_eq!(upstream.kind, 3, "SPAN_KIND_CLIENT");
    let a = attributes(upstream);
    assert_eq!(a["server.address"], up.addr.to_string());
    assert_eq!(a["http.response.status_code"], "200");
    // Nothing of the query reaches a span.
    for s in &spans {
        assert!(!format!("{s:?}").contains("secret"), "{s:?}");
    }
    // Counted once the collector's answer is in (each batch it settles is an event).
    settled
        .wait_for(|_| counter(&metrics, "portico_trace_spans_exported_total") >= 3.0)
        .await
        .unwrap();
    assert_eq!(counter(&metrics, "portico_trace_spans_dropped_total"), 0.0);
}

#[tokio::test]
async fn refusals_carry_their_error_code_and_malformed_traceparents_start_new_traces() {
    let mut collector = receiver().await;
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let (tracing, _) = tracer(
        format!("http://{}", collector.addr),
        1.0,
        Duration::from_secs(10),
    );
    let mut gw = gateway(up.addr, tracing).await;
    let long = "f".repeat(10 * 1024);
    for bad in [
        "garbage".to_string(),
        "00-00000000000000000000000000000000-b7ad6b7169203331-01".to_string(),
        format!("00-{long}-b7ad6b7169203331-01"),
    ] {
        let resp = gw
            .request(&format!(
                "GET /api/x HTTP/1.1\r\nHost: a\r\ntraceparent: {bad}\r\ntracestate: {long}\r\n\r\n"
            ))
            .await;
        assert_eq!(resp.status, 200);
        let got = up.next().await;
        let sent = got.header("traceparent").unwrap();
        assert_eq!(sent.len(), 55, "{sent}");
        assert!(!sent.contains(&long[..32]) && !sent.contains("0000000000000000000000000000000"));
        assert_eq!(got.header("tracestate"), None);
        let line = gw.next_log().await;
        assert_eq!(line["trace_id"].as_str().unwrap(), &sent[3..35]);
    }
    // A request the gateway refuses: its code is on the server span.
    let resp = gw
        .request("POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(resp.status, 405);
    let line = gw.next_log().await;
    let id = line["span_id"].as_str().unwrap().to_string();
    let spans = spans_until(&mut collector, |s| s.iter().any(|s| hex(&s.span_id) == id)).await;
    let refused = spans.iter().find(|s| hex(&s.span_id) == id).unwrap();
    let a = attributes(refused);
    assert_eq!(a["portico.error_code"], "PTC.METHOD_NOT_ALLOWED");
    assert_eq!(a["http.response.status_code"], "405");
}

#[tokio::test]
async fn unsampled_requests_export_nothing_but_still_propagate() {
    let mut collector = receiver().await;
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let (tracing, _) = tracer(
        format!("http://{}", collector.addr),
        0.0,
        Duration::from_secs(10),
    );
    let mut gw = gateway(up.addr, tracing).await;
    let mut traces = std::collections::HashSet::new();
    for _ in 0..20 {
        assert_eq!(
            gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .status,
            200
        );
        let sent = up.next().await.header("traceparent").unwrap().to_string();
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts.len(), 4, "{sent}");
        assert_eq!((parts[0], parts[3]), ("00", "00"), "not sampled: {sent}");
        assert!(parts[1].len() == 32 && parts[1] != "0".repeat(32), "{sent}");
        assert!(parts[2].len() == 16 && parts[2] != "0".repeat(16), "{sent}");
        traces.insert(parts[1].to_string());
        assert!(gw.next_log().await.get("trace_id").is_none());
    }
    assert_eq!(
        traces.len(),
        20,
        "each request without a parent starts a trace"
    );
    // A parent that is not sampled is continued, not traced: its trace id and tracestate go
    // on with a span id of Portico's.
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let resp = gw
        .request(&format!(
            "GET /api/x HTTP/1.1\r\nHost: a\r\ntraceparent: {parent}\r\ntracestate: vendor=1\r\n\r\n"
        ))
        .await;
    assert_eq!(resp.status, 200);
    let sent = up.next().await;
    let traceparent = sent.header("traceparent").unwrap();
    assert!(
        traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-")
            && traceparent.ends_with("-00"),
        "{traceparent}"
    );
    assert_ne!(traceparent, parent);
    assert_eq!(sent.header("tracestate"), Some("vendor=1"));
    assert!(gw.next_log().await.get("trace_id").is_none());
    // A client's sampled parent is followed; its spans are the only ones exported.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = gw
        .request(&format!(
            "GET /api/x HTTP/1.1\r\nHost: a\r\ntraceparent: 00-{trace_id}-00f067aa0ba902b7-01\r\n\r\n"
        ))
        .await;
    assert_eq!(resp.status, 200);
    let spans = spans_until(&mut collector, |s| s.len() >= 3).await;
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == trace_id),
        "{spans:?}"
    );
}

#[tokio::test]
async fn a_collector_that_never_reads_slows_no_request_and_its_spans_are_counted_as_dropped() {
    // Accepts connections and never reads from them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let (tracing, metrics) = tracer(endpoint, 1.0, Duration::from_millis(200));
    let mut settled = tracing.settled();
    let mut gw = gateway(up.addr, tracing).await;
    let mut c = gw.connect().await;
    for _ in 0..200 {
        c.send("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(c.response().await.status, 200);
        up.next().await;
        gw.next_log().await;
    }
    // The exporter gives up on the batch within its timeout and counts it.
    settled.wait_for(|n| *n >= 1).await.unwrap();
    assert!(counter(&metrics, "portico_trace_spans_dropped_total") >= 1.0);
    assert_eq!(counter(&metrics, "portico_trace_spans_exported_total"), 0.0);
    held.abort();
}
