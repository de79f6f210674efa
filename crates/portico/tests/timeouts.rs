//! Slow clients. Time is tokio's paused clock: the runtime advances it when every task is
//! waiting, so a 10-second timeout fires at once and the tests never sleep.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_testkit::{TestGateway, assert_error};

const CONFIG: &str = r#"
limits:
  header_timeout: 10s
  body_timeout: 30s
  idle_timeout: 60s
routes:
  - name: echo
    path: /echo
    methods: [GET, POST]
    handler: echo
"#;

#[tokio::test(start_paused = true)]
async fn head_timeout_is_408_then_close() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    c.send("GET /echo HTTP/1.1\r\nHost: a\r\n").await;
    let started = tokio::time::Instant::now();
    let resp = c.response().await;
    assert_error(&resp, 408, "PTC.HEAD_TIMEOUT");
    assert!(resp.closes());
    assert!(c.is_closed().await);
    assert!(started.elapsed() >= std::time::Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn head_timeout_counts_from_the_first_byte_not_per_read() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    let started = tokio::time::Instant::now();
    // A byte now and then does not extend the deadline (the slowloris pattern).
    for b in b"GET /echo HTTP/1.1\r\n" {
        c.send([*b]).await;
        tokio::time::advance(std::time::Duration::from_millis(400)).await;
    }
    let resp = c.response().await;
    assert_error(&resp, 408, "PTC.HEAD_TIMEOUT");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(10) && waited < std::time::Duration::from_secs(11),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn body_stall_is_408_then_close() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhalf")
        .await;
    let started = tokio::time::Instant::now();
    let resp = c.response().await;
    assert_error(&resp, 408, "PTC.BODY_TIMEOUT");
    assert!(resp.closes());
    assert!(c.is_closed().await);
    assert!(started.elapsed() >= std::time::Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn idle_keep_alive_connection_closes_silently() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.response().await.status, 200);
    let started = tokio::time::Instant::now();
    // No request begins: the connection is closed after the idle timeout, with no response.
    assert!(c.is_closed().await);
    assert!(started.elapsed() >= std::time::Duration::from_secs(60));
    assert!(!c.has_buffered());
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_that_sends_nothing_closes_silently() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    assert!(c.is_closed().await);
    assert_eq!(c.read_to_end().await, b"");
}
