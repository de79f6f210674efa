//! WebSocket through Portico, with a real WebSocket client (tokio-tungstenite) against a real
//! WebSocket upstream: the 101 only after every check and only when the upstream agrees, then
//! frames both ways until either side closes or the idle timeout passes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use portico_testkit::{
    MockUpstream, Reply, TestGateway, TlsFront, assert_error, ok_bytes, tls_server_config,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket upstream: greets each client, then answers every text message with
/// `echo: <message>`; closes when the client does, or after `close_after` messages.
async fn ws_upstream(close_after: Option<usize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                ws.send(Message::text("hello from upstream")).await.unwrap();
                let mut seen = 0;
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Text(t) => {
                            ws.send(Message::text(format!("echo: {t}"))).await.unwrap();
                        }
                        Message::Binary(b) => ws.send(Message::Binary(b)).await.unwrap(),
                        Message::Close(_) => break,
                        _ => {}
                    }
                    seen += 1;
                    if close_after == Some(seen) {
                        let _ = ws.close(None).await;
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "upstreams:\n  - name: up\n    targets: [\"http://{upstream}\"]\nroutes:\n  - name: chat\n    path: /ws/{{room}}\n    methods: [GET]\n    upstream: up\n    websocket: true\n{extra}  - name: api\n    path: /api\n    methods: [GET]\n    upstream: up\n"
    )
}

async fn connect(
    gw: &TestGateway,
    path: &str,
) -> (
    tokio_tungstenite::WebSocketStream<TcpStream>,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!("ws://{}{path}", gw.addr)
        .into_client_request()
        .unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap()
}

#[tokio::test]
async fn websocket_is_relayed_both_ways_after_the_upstreams_101() {
    let upstream = ws_upstream(None).await;
    let gw = TestGateway::start(&config(upstream, "")).await;
    let (mut ws, response) = connect(&gw, "/ws/lobby").await;
    assert_eq!(response.status(), 101);
    assert!(response.headers().get("x-request-id").is_some());
    assert_eq!(response.headers().get("via").unwrap(), "1.1 portico");
    // Frames flow both ways: the upstream speaks first, then answers.
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello from upstream")
    );
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("echo: ping")
    );
    let big = vec![7u8; 100_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    // The client closes: the close handshake goes through and the stream ends.
    ws.close(None).await.unwrap();
    while let Some(Ok(msg)) = ws.next().await {
        assert!(msg.is_close(), "{msg:?}");
    }
}

#[tokio::test]
async fn websocket_reaches_https_targets_over_http11_even_when_they_offer_h2() {
    let upstream = ws_upstream(None).await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    // The target would choose h2 if offered: the handshake must offer only http/1.1.
    let server = tls_server_config(
        &cert.cert.pem(),
        &cert.signing_key.serialize_pem(),
        &[b"h2", b"http/1.1"],
    );
    let mut front = TlsFront::start(server, upstream).await;
    let yaml = format!(
        "upstreams:\n  - name: up\n    targets: [\"https://localhost:{}\"]\n    tls: {{ca: {}}}\nroutes:\n  - {{name: chat, path: \"/ws/{{room}}\", methods: [GET], upstream: up, websocket: true}}\n",
        front.addr.port(),
        ca.display()
    );
    let gw = TestGateway::start(&yaml).await;
    let (mut ws, response) = connect(&gw, "/ws/lobby").await;
    assert_eq!(response.status(), 101);
    assert_eq!(front.next_alpn().await.as_deref(), Some("http/1.1"));
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello from upstream")
    );
    // Each frame crosses TLS at once, not when the next one pushes it out.
    for i in 0..3 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(format!("echo: m{i}"))
        );
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn the_upstream_closing_ends_the_relay() {
    let upstream = ws_upstream(Some(1)).await;
    let gw = TestGateway::start(&config(upstream, "")).await;
    let (mut ws, _) = connect(&gw, "/ws/lobby").await;
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello from upstream")
    );
    ws.send(Message::text("bye")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("echo: bye")
    );
    // The upstream closes after one message: the client sees its close, then the end.
    let closing = ws.next().await.unwrap().unwrap();
    assert!(closing.is_close(), "{closing:?}");
}

const HANDSHAKE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[tokio::test]
async fn every_check_comes_before_the_upgrade() {
    let up = MockUpstream::start(|_| Reply::ok("not a websocket server")).await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    // No route: 404. A method the route does not take: 405. Nothing reaches the upstream.
    let resp = gw
        .request(&format!(
            "GET /elsewhere HTTP/1.1\r\nHost: a\r\n{HANDSHAKE}\r\n"
        ))
        .await;
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
    let resp = gw
        .request(&format!(
            "DELETE /ws/lobby HTTP/1.1\r\nHost: a\r\n{HANDSHAKE}\r\n"
        ))
        .await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    // A handshake that breaks RFC 6455 §4.2.1: 400, naming the version Portico speaks.
    for bad in [
        HANDSHAKE.replace("dGhlIHNhbXBsZSBub25jZQ==", "not-a-nonce"),
        HANDSHAKE.replace("Version: 13", "Version: 8"),
    ] {
        let resp = gw
            .request(&format!("GET /ws/lobby HTTP/1.1\r\nHost: a\r\n{bad}\r\n"))
            .await;
        assert_error(&resp, 400, "PTC.WEBSOCKET_HANDSHAKE_INVALID");
        assert_eq!(resp.header("sec-websocket-version"), Some("13"));
    }
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn an_upstream_that_does_not_switch_is_relayed_as_it_answers() {
    let mut up = MockUpstream::start(|_| {
        Reply::BytesThenClose(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nno way"
                .to_vec(),
        )
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let mut c = gw.connect().await;
    c.send(format!(
        "GET /ws/lobby HTTP/1.1\r\nHost: a\r\n{HANDSHAKE}\r\n"
    ))
    .await;
    let resp = c.response().await;
    assert_eq!((resp.status, resp.body.as_slice()), (403, &b"no way"[..]));
    // The upstream was asked for the switch.
    let got = up.next().await;
    assert_eq!(got.header("upgrade"), Some("websocket"));
    assert_eq!(
        got.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    // The client's connection is still HTTP and goes on.
    c.send("GET /api HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.response().await.status, 403);
}

#[tokio::test]
async fn upgrade_is_ignored_on_other_routes() {
    let mut up = MockUpstream::start(|_| Reply::Bytes(ok_bytes("plain http"))).await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let resp = gw
        .request(&format!("GET /api HTTP/1.1\r\nHost: a\r\n{HANDSHAKE}\r\n"))
        .await;
    assert_eq!(
        (resp.status, resp.body.as_slice()),
        (200, &b"plain http"[..])
    );
    let got = up.next().await;
    assert!(got.header("upgrade").is_none(), "Upgrade is hop-by-hop");
    assert!(got.header("connection").is_none());
}

#[tokio::test(start_paused = true)]
async fn an_idle_websocket_is_closed_after_its_timeout() {
    let upstream = ws_upstream(None).await;
    let gw = TestGateway::start(&config(upstream, "    websocket_idle_timeout: 30s\n")).await;
    let (mut ws, _) = connect(&gw, "/ws/lobby").await;
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello from upstream")
    );
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("echo: ping")
    );
    // Then nothing, either way: Portico closes both sides after 30 seconds.
    let started = tokio::time::Instant::now();
    let end = ws.next().await;
    assert!(
        end.is_none() || end.as_ref().is_some_and(|r| r.is_err()),
        "{end:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
}
