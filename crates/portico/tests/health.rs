//! Upstream targets and their health, over real sockets: a target that cannot be reached is
//! skipped for the next one (the request never reached it), consecutive failures eject a
//! target (passive health), no target left is 503 with `Retry-After`, and least-in-flight
//! balancing sends requests where none are waiting.

#![allow(clippy::unwrap_used)]

use portico_testkit::{MockUpstream, Reply, TestGateway, UpstreamConn, assert_error, closed_port};

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n")
}

#[tokio::test]
async fn a_target_that_cannot_be_reached_is_skipped_for_the_next() {
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let closed = closed_port().await;
    let gw = TestGateway::start(&format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{closed}", "http://{}"]}}
routes:
  - {{name: r, path: /r, methods: [GET, POST], upstream: up}}
"#,
        up.addr
    ))
    .await;
    // Whichever target comes first, every request is answered by the one that listens.
    for _ in 0..4 {
        let resp = gw.request(&get("/r")).await;
        assert_eq!(resp.status, 200);
        up.next().await;
    }
    // A POST too: a refused connection never saw it.
    for _ in 0..2 {
        let resp = gw
            .request("POST /r HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(up.next().await.body, b"hi");
    }
}

#[tokio::test]
async fn consecutive_failures_eject_targets_and_none_left_is_503_with_retry_after() {
    let (a, b) = (closed_port().await, closed_port().await);
    let gw = TestGateway::start(&format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{a}", "http://{b}"], passive: {{failures: 1, eject: 60s}}}}
routes:
  - {{name: r, path: /r, methods: [GET], upstream: up}}
"#
    ))
    .await;
    // Both are tried, both refuse: the answer says what happened, and both are now out.
    let resp = gw.request(&get("/r")).await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
    let resp = gw.request(&get("/r")).await;
    assert_error(&resp, 503, "PTC.NO_HEALTHY_TARGET");
    let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&wait), "{wait}");
}

#[tokio::test]
async fn least_in_flight_sends_requests_where_none_are_waiting() {
    let held = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let held_addr = held.local_addr().unwrap();
    let mut quick = MockUpstream::start(|_| Reply::ok("quick")).await;
    let gw = TestGateway::start(&format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{held_addr}", "http://{}"], balance: least_in_flight}}
routes:
  - {{name: r, path: /r, methods: [GET], upstream: up}}
"#,
        quick.addr
    ))
    .await;
    // Requests until one is held by the slow target (the first or the second).
    let mut waiting = Vec::new();
    let accepted = loop {
        let mut c = gw.connect().await;
        c.send(get("/r")).await;
        tokio::select! {
            conn = held.accept() => {
                let mut conn = UpstreamConn::new(conn.unwrap().0);
                conn.read_request().await.unwrap();
                waiting.push(c);
                break conn;
            }
            _ = quick.next() => {
                assert_eq!(c.response().await.status, 200);
            }
        }
    };
    // With one request waiting there, the next ones all go to the other target.
    for _ in 0..4 {
        let resp = gw.request(&get("/r")).await;
        assert_eq!(resp.status, 200);
        quick.next().await;
    }
    drop(accepted);
}

#[tokio::test]
async fn a_target_failing_its_health_checks_is_left_out_until_they_pass() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // The sick target answers its health check with 503 while `sick` is set; both record
    // what they receive.
    let sick = Arc::new(AtomicBool::new(true));
    let flag = sick.clone();
    let mut flaky = MockUpstream::start(move |r| {
        if r.line.starts_with("GET /healthz") && flag.load(Ordering::SeqCst) {
            Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            Reply::ok("flaky")
        }
    })
    .await;
    let mut steady = MockUpstream::start(|_| Reply::ok("steady")).await;
    let gw = TestGateway::start(&format!(
        r#"
upstreams:
  - name: up
    targets: ["http://{}", "http://{}"]
    health: {{path: /healthz, interval: 10ms, timeout: 1s, healthy: 2, unhealthy: 2}}
routes:
  - {{name: r, path: /r, methods: [GET], upstream: up}}
"#,
        flaky.addr, steady.addr
    ))
    .await;
    // Two failed checks mark it down; the third shows the second was taken into account.
    for _ in 0..3 {
        while !flaky.next().await.line.starts_with("GET /healthz") {}
    }
    for _ in 0..4 {
        let resp = gw.request(&get("/r")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"steady");
        while !steady.next().await.line.starts_with("GET /r ") {}
    }
    // It recovers: two passes in a row and it serves again. Checks received before now are
    // dropped; of the next four, the first may still have been answered as sick, the next
    // two pass, and the fourth starts once they are taken into account.
    sick.store(false, Ordering::SeqCst);
    while flaky.received.try_recv().is_ok() {}
    for _ in 0..4 {
        while !flaky.next().await.line.starts_with("GET /healthz") {}
    }
    let mut answered_by_flaky = false;
    for _ in 0..4 {
        let resp = gw.request(&get("/r")).await;
        assert_eq!(resp.status, 200);
        answered_by_flaky |= resp.body == b"flaky";
    }
    assert!(answered_by_flaky);
}

#[tokio::test]
async fn when_every_target_fails_its_checks_it_is_503() {
    let mut down = MockUpstream::start(|_| {
        Reply::Bytes(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    let gw = TestGateway::start(&format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{}"], health: {{path: /healthz, interval: 10ms, unhealthy: 1}}}}
routes:
  - {{name: r, path: /r, methods: [GET], upstream: up}}
"#,
        down.addr
    ))
    .await;
    // One failed check is enough here; the second shows it was taken into account.
    down.next().await;
    down.next().await;
    let resp = gw.request(&get("/r")).await;
    assert_error(&resp, 503, "PTC.NO_HEALTHY_TARGET");
    assert_eq!(resp.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn the_same_cause_gives_the_same_code_on_http1_http2_and_after_retries() {
    use portico_testkit::h2::{client, request, send};
    let (a, b) = (closed_port().await, closed_port().await);
    let gw = TestGateway::start(&format!(
        r#"
upstreams:
  - {{name: one, targets: ["http://{a}"]}}
  - {{name: two, targets: ["http://{a}", "http://{b}"]}}
  - {{name: out, targets: ["http://{b}"], passive: {{failures: 1, eject: 60s}}}}
routes:
  - {{name: one, path: /one, methods: [GET], upstream: one}}
  - {{name: two, path: /two, methods: [GET], upstream: two}}
  - {{name: out, path: /out, methods: [GET], upstream: out}}
"#
    ))
    .await;
    let mut h2 = client(gw.addr).await;
    // Refused: on one target, and on two tried in turn; over HTTP/1.1 and HTTP/2.
    for path in ["/one", "/two"] {
        let resp = gw.request(&get(path)).await;
        assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
        let resp = send(
            &mut h2,
            request("GET", &format!("http://h{path}"), &[]),
            None,
        )
        .await;
        resp.assert_error(502, "PTC.UPSTREAM_CONNECT_REFUSED");
    }
    // Ejected: 503 with Retry-After, either way.
    let resp = gw.request(&get("/out")).await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
    let resp = gw.request(&get("/out")).await;
    assert_error(&resp, 503, "PTC.NO_HEALTHY_TARGET");
    let resp = send(&mut h2, request("GET", "http://h/out", &[]), None).await;
    resp.assert_error(503, "PTC.NO_HEALTHY_TARGET");
    assert!(resp.header("retry-after").is_some());
}
