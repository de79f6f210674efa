//! The gateway's life: reloading its configuration under load without dropping a request,
//! and stopping gracefully (requests in flight finish, up to `shutdown_grace`). The SIGHUP and
//! SIGTERM wiring of the binary is in `cli.rs`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use portico_testkit::{RawClient, TestGateway, UpstreamConn, proxy_config};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A configuration whose echo route is named `v{version}`, so a response shows which
/// configuration answered it.
fn versioned(version: usize) -> String {
    format!(
        "routes:\n  - name: v{version}\n    path: /echo\n    methods: [GET, POST]\n    handler: echo\n"
    )
}

const GET: &str = "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n";

/// The route name in an echo response.
async fn answered_by(c: &mut RawClient) -> String {
    c.send(GET).await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    resp.json()["route"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_drop_no_request() {
    let gw = Arc::new(TestGateway::start(&versioned(0)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    // Clients that keep requesting, on keep-alive connections and on new ones, throughout.
    let mut clients = Vec::new();
    for n in 0..8 {
        let (gw, stop, served) = (gw.clone(), stop.clone(), served.clone());
        clients.push(tokio::spawn(async move {
            let mut c = gw.connect().await;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if (i + n).is_multiple_of(16) {
                    c = gw.connect().await;
                }
                let body = format!("{i}");
                c.send(format!(
                    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ))
                .await;
                let resp = c.response().await;
                assert_eq!(
                    resp.status,
                    200,
                    "{:?}",
                    String::from_utf8_lossy(&resp.body)
                );
                assert_eq!(resp.json()["body_length"], body.len());
                served.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let mut observer = gw.connect().await;
    for version in 1..=20 {
        gw.reload(&versioned(version));
        // The next request is answered by the new configuration: the swap is immediate.
        assert_eq!(answered_by(&mut observer).await, format!("v{version}"));
        // Let the clients run some requests on this configuration before the next reload.
        let seen = served.load(Ordering::Relaxed);
        while served.load(Ordering::Relaxed) < seen + 16 {
            tokio::task::yield_now().await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        // A failed request panics its client, and the panic surfaces here.
        c.await.unwrap();
    }
    assert!(served.load(Ordering::Relaxed) >= 20 * 16);
}

/// An upstream that holds its answer to the first request until told to go on.
async fn held_upstream() -> (
    std::net::SocketAddr,
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_tx, got_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = UpstreamConn::new(stream);
        conn.read_request().await.unwrap();
        got_tx.send(()).unwrap();
        let _ = go_rx.await;
        let _ = conn
            .write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
            .await;
    });
    (addr, got_rx, go_tx)
}

#[tokio::test]
async fn a_request_in_flight_finishes_with_the_configuration_it_began_with() {
    let (upstream, got, go) = held_upstream().await;
    let gw = TestGateway::start(&proxy_config(upstream)).await;
    let mut c = gw.connect().await;
    c.send("GET /api/slow HTTP/1.1\r\nHost: a\r\n\r\n").await;
    got.await.unwrap();
    // The configuration changes while the request waits: the api route is gone.
    gw.reload(&versioned(1));
    let mut other = gw.connect().await;
    assert_eq!(answered_by(&mut other).await, "v1");
    go.send(()).unwrap();
    let resp = c.response().await;
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"slow"[..]));
    // The next request on that connection gets the new configuration (no /api any more).
    c.send("GET /api/slow HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.response().await.status, 404);
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish_and_refuses_new_ones() {
    let (upstream, got, go) = held_upstream().await;
    let gw = TestGateway::start(&proxy_config(upstream)).await;
    let addr = gw.addr;
    let mut c = gw.connect().await;
    c.send("GET /api/slow HTTP/1.1\r\nHost: a\r\n\r\n").await;
    got.await.unwrap();
    let mut idle = gw.connect().await;
    let stopping = tokio::spawn(gw.shutdown());
    // An idle connection is closed at once, without a response.
    assert!(idle.is_closed().await);
    // The listener is gone: new connections are refused.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // The request in flight finishes, told that the connection closes after it.
    go.send(()).unwrap();
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert!(resp.closes());
    // Closing our side ends Portico's linger on the connection, and with it the shutdown.
    drop(c);
    stopping.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_requests_only_up_to_the_grace_period() {
    let (upstream, got, _never) = held_upstream().await;
    let yaml = format!("shutdown_grace: 5s\n{}", proxy_config(upstream));
    let gw = TestGateway::start(&yaml).await;
    let mut c = gw.connect().await;
    c.send("GET /api/slow HTTP/1.1\r\nHost: a\r\n\r\n").await;
    got.await.unwrap();
    let started = tokio::time::Instant::now();
    gw.shutdown().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}
