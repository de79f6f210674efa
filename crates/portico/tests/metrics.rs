//! `GET /metrics`: the Prometheus exposition of a running `portico serve`, on the admin
//! listener (with the admin token) and on `metrics.listen` (without it), held to
//! `promtool check metrics`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::served;

use served::{Served, exchange, write_config};

fn get(addr: &str, path: &str, extra: &str) -> String {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: a\r\n{extra}Connection: close\r\n\r\n"),
    )
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").unwrap().1
}

fn status(response: &str) -> &str {
    &response[9..12]
}

/// The value of the series `series` (name and labels, exactly as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

/// `promtool check metrics` on `text`: its complaints, empty when it has none. `.ci/run`
/// installs promtool (Debian's `prometheus`); elsewhere without it the check is skipped
/// with a note, and in CI its absence fails the test.
fn promtool(text: &str) -> Option<String> {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed; .ci/run installs it"
        );
        eprintln!("promtool is not installed (.ci/run installs it): exposition not checked");
        return None;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || !said.is_empty(),
        "promtool failed silently"
    );
    Some(said)
}

#[test]
fn metrics_count_requests_by_route_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let token = "metrics-admin-token";
    let path = write_config(
        &dir,
        "portico.yaml",
        &format!(
            "listen: 127.0.0.1:0
access_log: off
admin: {{listen: 127.0.0.1:0, token: {token}}}
storage: sqlite://{db}
metrics: {{listen: 127.0.0.1:0, buckets: [0.005, 0.05, 0.5]}}
upstreams:
  - {{name: backend, targets: ['http://{gone}']}}
routes:
  - {{name: echo, path: /echo, methods: [GET], handler: echo}}
  - {{name: limited, path: /limited, methods: [GET], handler: echo, rate_limit: {{key: route, rate: 1/h, name: hourly}}}}
  - {{name: proxied, path: /api, methods: [GET], upstream: backend}}
",
            db = dir.path().join("portico.db").display()
        ),
    );
    let mut served = Served::start(&path, Stdio::null());
    let data = served.address("portico listening");
    let admin = served.address("admin API listening");
    let scrape = served.address("metrics listening");
    served.drain();

    for _ in 0..3 {
        assert_eq!(status(&get(&data, "/echo", "")), "200");
    }
    assert_eq!(status(&get(&data, "/limited", "")), "200");
    assert_eq!(status(&get(&data, "/limited", "")), "429");
    assert_eq!(status(&get(&data, "/api", "")), "502");
    // 10,000 distinct unknown paths (pipelined on one connection) all count under one
    // series: no label holds a path.
    let mut conn = TcpStream::connect(&data).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let mut all = String::new();
        for i in 0..10_000 {
            let close = if i == 9_999 {
                "Connection: close\r\n"
            } else {
                ""
            };
            all.push_str(&format!(
                "GET /nowhere/{i} HTTP/1.1\r\nHost: a\r\n{close}\r\n"
            ));
        }
        writer.write_all(all.as_bytes()).unwrap();
    });
    let mut answers = String::new();
    conn.read_to_string(&mut answers).unwrap();
    sending.join().unwrap();
    assert_eq!(answers.matches("HTTP/1.1 404 ").count(), 10_000);

    // The admin listener wants its token; the scrape listener does not.
    let refused = get(&admin, "/metrics", "");
    assert_eq!(status(&refused), "401", "{refused}");
    let with_token = get(
        &admin,
        "/metrics",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(status(&with_token), "200", "{with_token}");
    let response = get(&scrape, "/metrics", "");
    assert_eq!(status(&response), "200");
    assert!(
        response.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{response}"
    );
    let text = body(&response);

    let requests = |labels: &str| value(text, &format!("portico_requests_total{{{labels}}}"));
    assert_eq!(
        requests(r#"route="echo",method="GET",status="200",error_code="""#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        requests(r#"route="limited",method="GET",status="429",error_code="PTC.RATE_LIMITED""#),
        Some(1.0)
    );
    assert_eq!(
        requests(r#"route="",method="GET",status="404",error_code="PTC.ROUTE_NOT_FOUND""#),
        Some(10_000.0)
    );
    assert_eq!(
        text.matches("portico_requests_total{").count(),
        5,
        "one series per route, method, status and code: {text}"
    );
    assert_eq!(
        value(
            text,
            r#"portico_rate_limit_rejections_total{route="limited",limit="hourly"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            text,
            r#"portico_upstream_requests_total{upstream="backend",target="",outcome="PTC.UPSTREAM_CONNECT_REFUSED"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            text,
            &format!(r#"portico_upstream_target_healthy{{upstream="backend",target="{gone}"}}"#)
        ),
        Some(1.0)
    );
    // The configured buckets, and every request of the route in the last.
    assert_eq!(
        value(
            text,
            r#"portico_request_duration_seconds_bucket{route="echo",le="+Inf"}"#
        ),
        Some(3.0)
    );
    assert!(text.contains(r#"portico_request_duration_seconds_bucket{route="echo",le="0.05"}"#));
    assert!(value(text, r#"portico_connections{protocol="http1"}"#).is_some_and(|n| n >= 1.0));
    assert!(
        value(
            text,
            r#"portico_connections_accepted_total{protocol="http1"}"#
        )
        .is_some_and(|n| n >= 8.0),
        "{text}"
    );
    assert_eq!(
        value(text, r#"portico_config_reloads_total{result="success"}"#),
        Some(1.0)
    );
    assert!(value(text, "process_resident_memory_bytes").is_some_and(|b| b > 1e6));
    assert!(value(text, "process_open_fds").is_some_and(|n| n > 3.0));
    assert!(text.contains("portico_build_info{version="));

    let documented = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
    )
    .unwrap();
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split_whitespace().next().unwrap();
        assert!(
            documented.contains(&format!("| `{name}` |")),
            "{name} is not in docs/metrics.md"
        );
    }
    if let Some(said) = promtool(text) {
        assert!(said.is_empty(), "promtool check metrics: {said}");
    }
    // OpenMetrics, when asked for.
    let om = get(
        &scrape,
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
    );
    assert!(
        om.contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"),
        "{om}"
    );
    assert!(body(&om).ends_with("# EOF\n"));
    // Anything else on the scrape listener is not there.
    assert_eq!(status(&get(&scrape, "/admin/v1/routes", "")), "404");
    let post = exchange(
        &scrape,
        "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&post), "405");
    assert!(post.contains("Allow: GET, HEAD, OPTIONS\r\n"));
    served.stop();
}

#[test]
fn a_reload_is_counted_and_a_scrape_during_reloads_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = |route: &str| {
        format!(
            "listen: 127.0.0.1:0\naccess_log: off\nmetrics: {{listen: 127.0.0.1:0}}\nroutes:\n  - {{name: {route}, path: /e, methods: [GET], handler: echo}}\n"
        )
    };
    let path = write_config(&dir, "portico.yaml", &config("first"));
    let mut served = Served::start(&path, Stdio::null());
    let data = served.address("portico listening");
    let scrape = served.address("metrics listening");
    assert_eq!(status(&get(&data, "/e", "")), "200");
    std::fs::write(&path, config("second")).unwrap();
    served.signal("HUP");
    // Scrapes while the reload happens all answer in full.
    let mut reloaded = false;
    for _ in 0..10_000 {
        let response = get(&scrape, "/metrics", "");
        assert_eq!(status(&response), "200");
        assert!(body(&response).contains("portico_build_info"));
        if value(
            body(&response),
            r#"portico_config_reloads_total{result="success"}"#,
        ) == Some(2.0)
        {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the reload was never counted");
    served.read_until("configuration reloaded");
    std::fs::write(&path, "routes: []\n").unwrap();
    served.signal("HUP");
    served.read_until("configuration not reloaded");
    let text = get(&scrape, "/metrics", "");
    assert_eq!(
        value(
            body(&text),
            r#"portico_config_reloads_total{result="failure"}"#
        ),
        Some(1.0)
    );
    assert!(
        value(
            body(&text),
            "portico_config_last_reload_success_timestamp_seconds"
        )
        .is_some_and(|t| t > 1.7e9)
    );
    // Counts of the route before the reload are kept.
    assert_eq!(status(&get(&data, "/e", "")), "200");
    let text = get(&scrape, "/metrics", "");
    assert!(
        value(
            body(&text),
            r#"portico_requests_total{route="first",method="GET",status="200",error_code=""}"#
        ) == Some(1.0)
            && value(
                body(&text),
                r#"portico_requests_total{route="second",method="GET",status="200",error_code=""}"#
            ) == Some(1.0),
        "{text}"
    );
    served.stop();
}
