//! Client deadlines over real sockets: `?timeout=` and `Timeout:` set the request's deadline
//! (cut to the route's `max_timeout`), the upstream is told the time left, and when the
//! deadline passes before the upstream's answer the client gets 504 and the upstream's
//! connection is closed. A route's `timeout` is the deadline of requests that set none;
//! connection failures stay 502.
//!
//! The upstream is a [`HeldUpstream`]: it answers when the test says, and reports when the
//! gateway gives up on a request. Deadlines are short (a few hundred milliseconds); each test
//! waits for the gateway's answer or the upstream's event, never for a clock.

#![allow(clippy::unwrap_used)]

use portico_testkit::h2::{client, request, send};
use portico_testkit::{HeldUpstream, TestGateway, assert_error, closed_port};

fn config(upstream: std::net::SocketAddr, route_extra: &str) -> String {
    format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{upstream}"]}}
routes:
  - {{name: r, path: /r, methods: [GET, POST], upstream: up{route_extra}}}
"#
    )
}

fn get(target: &str, fields: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: h\r\n{fields}\r\n")
}

/// The time the upstream was told it has, in milliseconds.
fn told(req: &portico_testkit::Received) -> u64 {
    req.header("x-portico-timeout-ms")
        .expect("the upstream is told its deadline")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_client_timeout_that_passes_first_is_504_and_the_upstream_request_is_dropped() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let mut c = gw.connect().await;
    c.send(get("/r?a=1&timeout=300ms&b=2", "")).await;
    let held = up.next().await;
    // The parameter is the gateway's; the upstream learns the time left instead.
    assert_eq!(held.received.line, "GET /r?a=1&b=2 HTTP/1.1");
    assert!((1..=300).contains(&told(&held.received)));
    // The upstream never answers: the client's deadline passes.
    let resp = c.response().await;
    assert_error(&resp, 504, "PTC.DEADLINE_EXCEEDED");
    // ... and the request the upstream was working on is given up.
    held.cancelled().await;
    // The client's connection goes on.
    c.send(get("/r", "")).await;
    up.next().await.ok("later");
    assert_eq!(c.response().await.status, 200);
}

#[tokio::test]
async fn the_timeout_field_sets_the_deadline_and_the_route_caps_it() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, ", max_timeout: 2s")).await;
    let mut c = gw.connect().await;
    // Asked for a minute, given the route's two seconds; answered in time, as usual.
    c.send(get("/r", "Timeout: 60\r\n")).await;
    let held = up.next().await;
    assert!((1..=2_000).contains(&told(&held.received)));
    assert_eq!(held.received.header("timeout"), None);
    held.ok("in time");
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"in time");
    // Both forms: the shorter wins.
    c.send(get("/r?timeout=1", "Timeout: 0.25\r\n")).await;
    let held = up.next().await;
    assert!((1..=250).contains(&told(&held.received)));
    let resp = c.response().await;
    assert_error(&resp, 504, "PTC.DEADLINE_EXCEEDED");
    held.cancelled().await;
}

#[tokio::test]
async fn invalid_deadlines_are_400_before_anything_is_sent() {
    // Nothing listens upstream: a request that went on would get 502, not 400.
    let gw = TestGateway::start(&config(closed_port().await, "")).await;
    for (target, fields) in [
        ("/r?timeout=soon", ""),
        ("/r?timeout=0", ""),
        ("/r?timeout=-5s", ""),
        ("/r?timeout=1d", ""),
        ("/r?timeout=1&timeout=2", ""),
        ("/r", "Timeout: 5s\r\n"),
        ("/r", "Timeout: 0\r\n"),
        ("/r", "Timeout: 1\r\nTimeout: 2\r\n"),
        ("/r?timeout=5", "Timeout: never\r\n"),
    ] {
        let resp = gw.request(&get(target, fields)).await;
        assert_error(&resp, 400, "PTC.TIMEOUT_INVALID");
    }
}

#[tokio::test]
async fn a_route_timeout_is_the_default_deadline_and_connect_failures_stay_502() {
    let mut up = HeldUpstream::start().await;
    let refused = closed_port().await;
    let gw = TestGateway::start(&format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{}"]}}
  - {{name: gone, targets: ["http://{refused}"]}}
routes:
  - {{name: r, path: /r, methods: [GET], upstream: up, timeout: 300ms}}
  - {{name: g, path: /g, methods: [GET], upstream: gone, timeout: 30s}}
"#,
        up.addr
    ))
    .await;
    let mut c = gw.connect().await;
    c.send(get("/r", "")).await;
    let held = up.next().await;
    assert!((1..=300).contains(&told(&held.received)));
    assert_error(&c.response().await, 504, "PTC.DEADLINE_EXCEEDED");
    held.cancelled().await;
    // A client may ask for longer than the route's default (no `max_timeout` here).
    c.send(get("/r?timeout=40s", "")).await;
    let held = up.next().await;
    assert!(told(&held.received) > 30_000);
    held.ok("slow but fine");
    assert_eq!(c.response().await.status, 200);
    // An upstream that refuses is 502 whatever the deadline.
    let resp = gw.request(&get("/g", "")).await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
}

#[tokio::test]
async fn pass_timeout_forwards_what_the_client_wrote() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, ", pass_timeout: true")).await;
    let mut c = gw.connect().await;
    c.send(get("/r?timeout=5s", "Timeout: 5\r\n")).await;
    let held = up.next().await;
    assert_eq!(held.received.line, "GET /r?timeout=5s HTTP/1.1");
    assert_eq!(held.received.header("timeout"), Some("5"));
    assert!((1..=5_000).contains(&told(&held.received)));
    held.ok("ok");
    assert_eq!(c.response().await.status, 200);
}

#[tokio::test]
async fn a_client_cannot_tell_the_upstream_its_own_remaining_time() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let mut c = gw.connect().await;
    // No deadline: the forged field does not reach the upstream.
    c.send(get("/r", "X-Portico-Timeout-Ms: 999999\r\n")).await;
    let held = up.next().await;
    assert_eq!(held.received.header("x-portico-timeout-ms"), None);
    held.ok("ok");
    assert_eq!(c.response().await.status, 200);
    // With one, only the gateway's own value arrives.
    c.send(get("/r?timeout=2s", "X-Portico-Timeout-Ms: 999999\r\n"))
        .await;
    let held = up.next().await;
    assert_eq!(held.received.headers_named("x-portico-timeout-ms").len(), 1);
    assert!((1..=2_000).contains(&told(&held.received)));
    held.ok("ok");
    assert_eq!(c.response().await.status, 200);
}

#[tokio::test]
async fn http2_requests_have_the_same_deadlines() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let mut h2 = client(gw.addr).await;
    let pending = tokio::spawn(async move {
        send(
            &mut h2,
            request("GET", "http://h/r?timeout=300ms", &[]),
            None,
        )
        .await
    });
    let held = up.next().await;
    assert_eq!(held.received.line, "GET /r HTTP/1.1");
    let resp = pending.await.unwrap();
    resp.assert_error(504, "PTC.DEADLINE_EXCEEDED");
    held.cancelled().await;
    let mut h2 = client(gw.addr).await;
    let resp = send(
        &mut h2,
        request("GET", "http://h/r", &[("timeout", "nope")]),
        None,
    )
    .await;
    resp.assert_error(400, "PTC.TIMEOUT_INVALID");
}
