//! Buffered request bodies (`buffer_body: true`) and the budget they share
//! (`limits.body_buffer_bytes`): the temporary 413 with `Retry-After` when the budget is
//! spent, the permanent one when a body is over its route's limit.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use portico_testkit::{MockUpstream, RawClient, Reply, TestGateway, assert_error};

fn config(upstream: SocketAddr, budget: &str, route_max: &str) -> String {
    format!(
        r#"
limits:
  body_buffer_bytes: {budget}
upstreams:
  - name: up
    targets: ["http://{upstream}"]
routes:
  - name: uploads
    path: /uploads
    methods: [POST]
    upstream: up
    buffer_body: true
    max_body_bytes: {route_max}
"#
    )
}

/// Sends a head that declares `len` bytes and expects 100-continue; returns once the 100 has
/// come, that is once Portico has reserved the room and started reading.
async fn begin_upload(gw: &TestGateway, len: usize) -> RawClient {
    let mut c = gw.connect().await;
    c.send(format!(
        "POST /uploads HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    ))
    .await;
    assert_eq!(c.response().await.status, 100);
    c
}

#[tokio::test]
async fn a_spent_budget_is_a_temporary_413_with_retry_after() {
    let mut up = MockUpstream::start(|r| Reply::ok(&format!("got {} bytes", r.body.len()))).await;
    let gw = TestGateway::start(&config(up.addr, "100", "100")).await;
    // The first upload holds 80 of the 100 bytes while its body arrives.
    let mut first = begin_upload(&gw, 80).await;
    first.send("x".repeat(10)).await;

    // The second cannot reserve 50 now: a temporary 413 at once, before any 100 Continue.
    let mut second = gw.connect().await;
    second
        .send("POST /uploads HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let resp = second.response().await;
    assert_error(&resp, 413, "PTC.BODY_BUFFER_FULL");
    assert_eq!(resp.header("retry-after"), Some("1"));
    // Its body was never read, so the connection closes (the contract's rule of connection hygiene).
    assert!(resp.closes() && second.is_closed().await);

    // The first completes and is sent on whole, with its length.
    first.send("x".repeat(70)).await;
    let resp = first.response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(String::from_utf8(resp.body).unwrap(), "got 80 bytes");
    let got = up.next().await;
    assert_eq!(got.header("content-length"), Some("80"));

    // Its room is given back: the retry after Retry-After succeeds.
    let resp = gw
        .request(&format!(
            "POST /uploads HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n{}",
            "y".repeat(50)
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.body.len(), 50);
}

#[tokio::test]
async fn a_chunked_body_that_outgrows_the_budget_is_a_temporary_413_and_a_close() {
    let up = MockUpstream::start(|_| Reply::ok("stored")).await;
    let gw = TestGateway::start(&config(up.addr, "100", "100")).await;
    let mut holder = begin_upload(&gw, 60).await;
    // A chunked body has no size to reserve up front: it reserves as it arrives, and the
    // 41st byte does not fit.
    let mut c = gw.connect().await;
    c.send(format!(
        "POST /uploads HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n{}\r\n5\r\nhello\r\n0\r\n\r\n",
        "z".repeat(40)
    ))
    .await;
    let resp = c.response().await;
    assert_error(&resp, 413, "PTC.BODY_BUFFER_FULL");
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert!(resp.closes() && c.is_closed().await);
    assert_eq!(up.connections(), 0, "nothing was sent upstream");
    holder.send("h".repeat(60)).await;
    assert_eq!(holder.response().await.status, 200);
}

#[tokio::test]
async fn a_body_over_the_route_limit_is_the_permanent_413() {
    let up = MockUpstream::start(|_| Reply::ok("stored")).await;
    let gw = TestGateway::start(&config(up.addr, "1000", "100")).await;
    let mut c = gw.connect().await;
    c.send(
        "POST /uploads HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let resp = c.response().await;
    assert_error(&resp, 413, "PTC.BODY_TOO_LARGE");
    // Permanent: no Retry-After, and the connection closes.
    assert!(resp.header("retry-after").is_none());
    assert!(resp.closes());
}

#[tokio::test(start_paused = true)]
async fn a_buffered_body_reaches_the_upstream_whole_and_only_when_complete() {
    let mut up = MockUpstream::start(|r| Reply::ok(&format!("{} bytes", r.body.len()))).await;
    let gw = TestGateway::start(&config(up.addr, "1MiB", "1MiB")).await;
    let mut c = gw.connect().await;
    c.send("POST /uploads HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await;
    // The client pauses mid-body: the upstream hears nothing meanwhile, however long it is.
    let waited = tokio::time::timeout(Duration::from_secs(20), up.next()).await;
    assert!(
        waited.is_err(),
        "the upstream was contacted before the body was complete"
    );
    assert_eq!(up.connections(), 0);
    c.send("6\r\n world\r\n0\r\n\r\n").await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    // Sent on with its length, not chunked: Portico knows it now.
    let got = up.next().await;
    assert_eq!(got.body, b"hello world");
    assert!(!got.chunked);
    assert_eq!(got.header("content-length"), Some("11"));
    // (Without buffer_body the body streams: proxy::request_body_streams_to_the_upstream_
    // before_it_is_complete.)
}
