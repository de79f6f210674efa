//! Proxying to real upstream servers on ephemeral ports.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_testkit::{
    MockUpstream, Reply, TestGateway, UpstreamConn, assert_error, closed_port, ok_bytes,
    proxy_config,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test]
async fn proxies_over_pooled_keep_alive_connections() {
    let mut up = MockUpstream::start(|r| Reply::ok(&format!("you asked {}", r.line))).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut c = gw.connect().await;
    for i in 0..3 {
        c.send(format!(
            "GET /api/items/{i}?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"
        ))
        .await;
        let resp = c.response().await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            String::from_utf8(resp.body).unwrap(),
            format!("you asked GET /api/items/{i}?q=1 HTTP/1.1")
        );
        assert_eq!(up.next().await.connection, 0);
    }
    // Three requests from a second client reuse the same upstream connection too.
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_added() {
    let mut up = MockUpstream::start(|_| {
        Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: X-Up-Private\r\nX-Up-Private: 1\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream-made\r\nX-End: kept\r\n\r\n".to_vec())
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw
        .request(
            "GET /api/h HTTP/1.1\r\nHost: api.example\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: 5\r\n\
             TE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nX-Forwarded-For: 203.0.113.9\r\n\
             X-Forwarded-Proto: https\r\nX-Request-Id: forged\r\nVia: 1.0 edge\r\nX-Keep: yes\r\n\r\n",
        )
        .await;
    let got = up.next().await;
    for hop in [
        "connection",
        "x-private",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-connection",
        "transfer-encoding",
    ] {
        assert!(got.header(hop).is_none(), "{hop} was forwarded");
    }
    assert_eq!(got.header("x-keep"), Some("yes"));
    assert_eq!(got.header("host"), Some("api.example"));
    assert_eq!(
        got.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
    assert_eq!(got.header("x-forwarded-host"), Some("api.example"));
    assert_eq!(got.header("via"), Some("1.0 edge, 1.1 portico"));
    assert_eq!(
        got.headers_named("x-request-id"),
        vec![resp.header("x-request-id").unwrap()]
    );
    // And on the way back.
    assert!(resp.header("x-up-private").is_none() && resp.header("keep-alive").is_none());
    assert_eq!(resp.header("x-end"), Some("kept"));
    assert_eq!(resp.headers_named("x-request-id").len(), 1);
    assert_ne!(resp.header("x-request-id"), Some("upstream-made"));
    assert_eq!(resp.header("via"), Some("1.1 portico"));
}

#[tokio::test]
async fn upstream_status_codes_are_relayed_unchanged() {
    let mut up = MockUpstream::start(|r| {
        let status = r.line.split('/').nth(2).unwrap().split(' ').next().unwrap().to_string();
        Reply::Bytes(format!("HTTP/1.1 {status} Upstream Says\r\nContent-Length: 6\r\nX-S: {status}\r\n\r\nfrom-u").into_bytes())
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    for status in [200u16, 201, 299, 404, 418, 429, 503, 599] {
        let resp = gw
            .request(&format!("GET /api/{status} HTTP/1.1\r\nHost: a\r\n\r\n"))
            .await;
        assert_eq!(resp.status, status);
        assert_eq!(resp.reason, "Upstream Says");
        assert_eq!(resp.body, b"from-u");
        assert!(resp.header("x-request-id").is_some());
        let _ = up.next().await;
    }
}

#[tokio::test]
async fn upstream_refusing_connections_is_502() {
    let gw = TestGateway::start(&proxy_config(closed_port().await)).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
}

#[tokio::test]
async fn upstream_reset_is_502() {
    let up = MockUpstream::start(|_| Reply::Reset).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_RESET");
    let resp = gw
        .request("POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        .await;
    assert_error(&resp, 502, "PTC.UPSTREAM_RESET");
}

#[tokio::test]
async fn upstream_garbage_is_502() {
    let up =
        MockUpstream::start(|_| Reply::BytesThenClose(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec()))
            .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_INVALID_RESPONSE");
    let up = MockUpstream::start(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        )
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_INVALID_RESPONSE");
}

#[tokio::test]
async fn upstream_306_becomes_502() {
    let up = MockUpstream::start(|_| {
        Reply::Bytes(b"HTTP/1.1 306 Switch Proxy\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_STATUS_306");
}

#[tokio::test]
async fn interim_responses_from_the_upstream_are_not_relayed() {
    let up = MockUpstream::start(|_| {
        Reply::Bytes(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec())
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw
        .request("POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        .await;
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"ok"[..]));
}

#[tokio::test]
async fn bodies_are_reframed_for_each_side() {
    // Chunked from the client, chunked to the upstream; a close-delimited answer becomes
    // chunked for an HTTP/1.1 client and stays close-delimited for HTTP/1.0.
    let mut up = MockUpstream::start(|r| {
        if r.line.contains("close") {
            Reply::BytesThenClose(b"HTTP/1.1 200 OK\r\n\r\nuntil-close".to_vec())
        } else {
            Reply::Bytes(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\n2\r\nef\r\n0\r\nT: 1\r\n\r\n".to_vec())
        }
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw
        .request("POST /api/chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    assert!(resp.chunked);
    assert_eq!(resp.body, b"abcdef");
    let got = up.next().await;
    assert!(got.chunked);
    assert_eq!(got.body, b"abc");

    let resp = gw
        .request("GET /api/close HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert!(resp.chunked);
    assert_eq!(resp.body, b"until-close");
    let mut c = gw.connect().await;
    c.send("GET /api/close HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert!(!resp.chunked && resp.closes());
    assert_eq!(resp.body, b"until-close");
}

#[tokio::test]
async fn head_is_relayed_with_the_upstream_content_length() {
    let up = MockUpstream::start(|_| {
        Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".to_vec())
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut c = gw.connect().await;
    c.send("HEAD /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let resp = c.response_to("HEAD").await;
    assert_eq!(resp.header("content-length"), Some("1234"));
    c.send("HEAD /api/x HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.response_to("HEAD").await.status, 200);
}

#[tokio::test]
async fn request_body_streams_to_the_upstream_before_it_is_complete() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (first_part_tx, first_part_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = UpstreamConn::new(stream);
        conn.read_head().await.unwrap();
        let mut got = conn.read_some().await;
        while got.len() < 5 {
            got.extend(conn.read_some().await);
        }
        first_part_tx.send(got).unwrap();
        let mut rest = Vec::new();
        while rest.len() < 5 {
            rest.extend(conn.read_some().await);
        }
        conn.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
    });
    let gw = TestGateway::start(&proxy_config(addr)).await;
    let mut c = gw.connect().await;
    c.send("PUT /api/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nfirst")
        .await;
    // The upstream holds the first half while the client has not sent the second.
    assert_eq!(first_part_rx.await.unwrap(), b"first");
    c.send("-last").await;
    assert_eq!(c.response().await.status, 201);
}

#[tokio::test]
async fn response_body_streams_to_the_client_before_it_is_complete() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (go_on_tx, go_on_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = UpstreamConn::new(stream);
        conn.read_request().await.unwrap();
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
            .await
            .unwrap();
        go_on_rx.await.unwrap();
        conn.write(b"-last").await.unwrap();
    });
    let gw = TestGateway::start(&proxy_config(addr)).await;
    let mut c = gw.connect().await;
    c.send("GET /api/download HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    // The head and the first half arrive while the upstream is still holding the rest.
    let seen = c.read_until(b"first").await;
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    go_on_tx.send(()).unwrap();
    assert_eq!(c.read_until(b"-last").await, b"-last");
}

#[tokio::test]
async fn stale_pooled_connection_is_retried_for_idempotent_requests() {
    let mut up = MockUpstream::start(|r| {
        if r.line.contains("/once") {
            Reply::BytesThenClose(ok_bytes("first"))
        } else {
            Reply::ok("fresh")
        }
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let resp = gw
        .request("GET /api/once HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.body, b"first");
    let _ = up.next().await;
    // The upstream said nothing about closing, so Portico pooled the connection; the next
    // request finds it closed and goes to a new one instead of failing.
    let resp = gw
        .request("GET /api/again HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"fresh");
    assert_eq!(up.next().await.connection, 1);
}

#[tokio::test]
async fn an_early_upstream_answer_ends_the_upload_and_closes_the_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = UpstreamConn::new(stream);
        conn.read_head().await.unwrap();
        conn.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
        )
        .await
        .unwrap();
    });
    let gw = TestGateway::start(&proxy_config(addr)).await;
    let mut c = gw.connect().await;
    c.send("PUT /api/big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nsome")
        .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 413);
    assert_eq!(resp.body, b"nope");
    assert!(resp.closes(), "the rest of the body was never read");
    assert!(c.is_closed().await);
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_is_502() {
    // A listener whose accept queue is full drops new SYNs: a connect to it hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let _fillers: Vec<_> = (0..2)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100)).ok()
        })
        .collect();
    let config = format!(
        "upstreams:\n  - name: up\n    targets: [\"http://{addr}\"]\n    connect_timeout: 250ms\nroutes:\n  - {{name: api, path: /api, methods: [GET], upstream: up}}\n"
    );
    let gw = TestGateway::start(&config).await;
    let resp = gw.request("GET /api HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_TIMEOUT");
}

#[tokio::test]
async fn unresolvable_upstream_is_502() {
    // `.invalid` never resolves (RFC 6761 §6.4).
    let config = "upstreams:\n  - name: up\n    targets: [\"http://upstream.invalid:80\"]\nroutes:\n  - {name: api, path: /api, methods: [GET], upstream: up}\n";
    let gw = TestGateway::start(config).await;
    let resp = gw.request("GET /api HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_FAILED");
}
