//! Many clients and slow ones: the connection limit, and thousands of slow-header clients
//! that neither delay a normal client nor escape their 408. Time is tokio's paused clock: the
//! runtime advances it when every task waits, so nothing here sleeps.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use portico_testkit::{RawClient, TestGateway, assert_error};
use tokio::time::Instant;

const REQUEST: &str = "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n";

fn config(limits: &str) -> String {
    format!(
        "limits:\n{limits}routes:\n  - name: echo\n    path: /echo\n    methods: [GET]\n    handler: echo\n"
    )
}

#[tokio::test(start_paused = true)]
async fn the_connection_limit_holds_new_clients_until_one_closes() {
    let gw = TestGateway::start(&config(
        "  max_connections: 2\n  header_timeout: 10s\n  idle_timeout: 1h\n",
    ))
    .await;
    let mut first = gw.connect().await;
    first.send(REQUEST).await;
    assert_eq!(first.response().await.status, 200);
    let mut second = gw.connect().await;
    second.send(REQUEST).await;
    assert_eq!(second.response().await.status, 200);

    // Both slots are taken by idle keep-alive connections: a third client connects (the
    // kernel queues it) but is not served, however long it waits.
    let mut third = gw.connect().await;
    third.send(REQUEST).await;
    let waited = tokio::time::timeout(Duration::from_secs(30), third.response()).await;
    assert!(waited.is_err(), "served past the connection limit");

    // One closes: the third is accepted and answered at once.
    drop(first);
    let started = Instant::now();
    assert_eq!(third.response().await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    // The survivors still work.
    second.send(REQUEST).await;
    assert_eq!(second.response().await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn slow_header_clients_neither_delay_others_nor_escape_their_408() {
    const SLOW: usize = 2000;
    let gw = TestGateway::start(&config("  header_timeout: 10s\n  max_connections: 5000\n")).await;
    let started = Instant::now();
    let mut slow: Vec<RawClient> = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut c = gw.connect().await;
        c.send("GET /echo HTTP/1.1\r\nHost: a\r\nX-Slow: ").await;
        slow.push(c);
    }
    // A normal client is answered at once while they hang: no timer has to fire for it, so
    // no time passes. (The listener accepts in order, so by now it has taken every slow one.)
    let before = Instant::now();
    assert_eq!(gw.request(REQUEST).await.status, 200);
    assert_eq!(before.elapsed(), Duration::ZERO, "the normal client waited");
    // A byte every two seconds from each of them (slowloris), for eight seconds.
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(2)).await;
        for c in &mut slow {
            c.send("z").await;
        }
    }
    let before = Instant::now();
    assert_eq!(gw.request(REQUEST).await.status, 200);
    assert_eq!(before.elapsed(), Duration::ZERO, "the normal client waited");

    // Each slow client gets its 408 when the header timeout, counted from its first byte,
    // passes: trickling bytes does not extend it.
    for c in &mut slow {
        let resp = c.response().await;
        assert_error(&resp, 408, "PTC.HEAD_TIMEOUT");
        assert!(resp.closes());
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(11),
        "{elapsed:?}"
    );
    for c in &mut slow {
        assert!(c.is_closed().await);
    }
    // And the server is as responsive afterwards.
    assert_eq!(gw.request(REQUEST).await.status, 200);
}
