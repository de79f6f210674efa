//! Upstreams over HTTP/2 and TLS: `h2c://` targets (HTTP/2 by prior knowledge, one shared
//! connection per target) and `https://` targets (TLS, then HTTP/2 when the target chooses
//! `h2` with ALPN, else HTTP/1.1), whatever protocol the client spoke.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portico_testkit::h2::{self as h2t, H2Reply, H2Upstream, request, send};
use portico_testkit::{
    MockUpstream, RawClient, Reply, TestGateway, TlsFront, assert_error, closed_port,
    tls_server_config,
};

/// A configuration with a route `/api/{*rest}` to one target, `upstream_extra` added to the
/// upstream (indented for it).
fn config(target: &str, upstream_extra: &str) -> String {
    format!(
        "upstreams:\n  - name: up\n    targets: [\"{target}\"]\n{upstream_extra}routes:\n  - name: api\n    path: /api/{{*rest}}\n    methods: [GET, HEAD, POST, PUT]\n    upstream: up\n"
    )
}

/// A 200 whose body says what the upstream saw.
fn describe(r: &h2t::H2Received) -> H2Reply {
    H2Reply::Answer {
        status: 200,
        headers: vec![("x-up", "h2".to_string())],
        body: format!(
            "{} {} {} {}",
            r.method,
            r.uri.scheme_str().unwrap_or("-"),
            r.uri.authority().map_or("-", |a| a.as_str()),
            r.uri.path_and_query().map_or("-", |p| p.as_str()),
        )
        .into_bytes(),
        length: true,
    }
}

#[tokio::test]
async fn h2c_targets_take_http1_requests_on_one_shared_connection() {
    let mut up = H2Upstream::start(describe).await;
    let gw = TestGateway::start(&config(&format!("h2c://{}", up.addr), "")).await;

    let resp = gw
        .request("GET /api/items?q=1 HTTP/1.1\r\nHost: api.test\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nTE: trailers\r\nX-Custom: kept\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"GET http api.test /api/items?q=1");
    assert_eq!(resp.header("x-up"), Some("h2"));
    assert_eq!(resp.header("content-length"), Some("32"));
    assert_eq!(resp.header("via"), Some("1.1 portico"));
    let got = up.next().await;
    for gone in [
        "connection",
        "x-hop",
        "host",
        "transfer-encoding",
        "keep-alive",
    ] {
        assert!(got.header(gone).is_none(), "{gone} went upstream: {got:?}");
    }
    // The client takes trailers, and Portico relays them: the target is told so in the one
    // `te` HTTP/2 allows.
    assert_eq!(got.header("te"), Some("trailers"));
    assert_eq!(got.header("x-custom"), Some("kept"));
    assert_eq!(got.header("via"), Some("1.1 portico"));
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
    assert!(got.header("x-request-id").is_some());

    // Many clients at once: their requests are streams of one upstream connection.
    let mut pending = Vec::new();
    for i in 0..20 {
        let addr = gw.addr;
        pending.push(tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await;
            c.send(format!("GET /api/n/{i} HTTP/1.1\r\nHost: h\r\n\r\n"))
                .await;
            c.response().await
        }));
    }
    for (i, p) in pending.into_iter().enumerate() {
        let resp = p.await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, format!("GET http h /api/n/{i}").as_bytes());
        // Without `TE: trailers` from the client, no `te` goes on.
        assert!(up.next().await.header("te").is_none());
    }
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn bodies_cross_an_h2c_target_both_ways_under_flow_control() {
    // Larger than the per-stream windows on both sides (256 KiB by default and as sent).
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let reply_big = big.clone();
    let mut up = H2Upstream::start(move |r| match r.uri.path() {
        "/api/big" => H2Reply::Answer {
            status: 200,
            headers: vec![],
            body: reply_big.clone(),
            length: false,
        },
        _ => H2Reply::Answer {
            status: 201,
            headers: vec![("x-len", r.body.len().to_string())],
            body: r.body.clone(),
            length: true,
        },
    })
    .await;
    let gw = TestGateway::start(&config(&format!("h2c://{}", up.addr), "")).await;
    let mut c = gw.connect().await;

    // A declared length goes upstream as content-length.
    c.send("POST /api/a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body, b"hello");
    let got = up.next().await;
    assert_eq!(got.body, b"hello");
    assert_eq!(got.header("content-length"), Some("5"));

    // A chunked body goes as DATA frames, without transfer-encoding.
    c.send("PUT /api/b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunk \r\n3\r\none\r\n0\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body, b"chunk one");
    let got = up.next().await;
    assert_eq!(got.body, b"chunk one");
    assert!(got.header("transfer-encoding").is_none());

    // A large upload.
    let mut upload = format!(
        "POST /api/c HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    upload.extend_from_slice(&big);
    c.send(&upload).await;
    let resp = c.response().await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("x-len"), Some("600000"));
    assert!(resp.body == big);
    assert!(up.next().await.body == big);

    // A large answer with no length: relayed chunked, every byte.
    c.send("GET /api/big HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert!(resp.chunked);
    assert!(resp.body == big);

    // HEAD: no body, and the length of the representation relayed.
    c.send("HEAD /api/a HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let resp = c.response_to("HEAD").await;
    assert_eq!(resp.status, 201);
    assert!(resp.body.is_empty());
    assert_eq!(resp.header("content-length"), Some("0"));
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn http2_clients_reach_h2c_targets() {
    let mut up = H2Upstream::start(describe).await;
    let gw = TestGateway::start(&config(&format!("h2c://{}", up.addr), "")).await;
    let mut client = h2t::client(gw.addr).await;
    let resp = send(
        &mut client,
        request("POST", "http://api.test/api/x", &[("content-length", "2")]),
        Some(b"hi"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, "POST http api.test /api/x");
    assert_eq!(resp.header("x-up"), Some("h2"));
    let got = up.next().await;
    assert_eq!(got.body, b"hi");
    assert_eq!(got.header("via"), Some("2 portico"));
}

/// Sends a POST with `body` and then a trailer section; the response's status.
async fn post_with_trailers(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    length: Option<usize>,
    body: &'static [u8],
    trailers: &[(&'static str, &'static str)],
) -> u16 {
    let mut fields = vec![];
    let n;
    if let Some(len) = length {
        n = len.to_string();
        fields.push(("content-length", n.as_str()));
    }
    let req = request("POST", "http://api.test/api/t", &fields);
    let mut client = client.clone().ready().await.unwrap();
    let (response, mut stream) = client.send_request(req, false).unwrap();
    stream
        .send_data(bytes::Bytes::from_static(body), false)
        .unwrap();
    let mut map = http::HeaderMap::new();
    for (name, value) in trailers {
        map.append(*name, http::HeaderValue::from_static(value));
    }
    stream.send_trailers(map).unwrap();
    response.await.unwrap().status().as_u16()
}

#[tokio::test]
async fn an_http2_clients_trailers_reach_an_h2c_target() {
    let mut up = H2Upstream::start(describe).await;
    let gw = TestGateway::start(&config(&format!("h2c://{}", up.addr), "")).await;
    let mut client = h2t::client(gw.addr).await;
    for length in [Some(5), None] {
        let trailers = [
            ("x-checksum", "abc"),
            ("content-type", "text/plain"),
            ("x-checksum", "def"),
        ];
        let status = post_with_trailers(&mut client, length, b"hello", &trailers).await;
        assert_eq!(status, 200);
        let got = up.next().await;
        assert_eq!(got.body, b"hello");
        let t = got.trailers.expect("the trailer section went on");
        let sums: Vec<_> = t.get_all("x-checksum").iter().collect();
        assert_eq!(sums, ["abc", "def"]);
        // A field a trailer section must not carry stays here.
        assert!(t.get("content-type").is_none(), "{t:?}");
    }
    // Without trailers, none go on.
    let resp = send(
        &mut client,
        request("POST", "http://api.test/api/x", &[]),
        Some(b"hi"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(up.next().await.trailers.is_none());
}

#[tokio::test]
async fn upstream_stream_failures_are_502_and_refused_streams_are_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let up = H2Upstream::start(move |r| match r.uri.path() {
        "/api/reset" => H2Reply::Reset(h2::Reason::INTERNAL_ERROR),
        // Refused once, then answered: a refused stream was never processed.
        "/api/refused-once" if seen.fetch_add(1, Ordering::SeqCst) == 0 => {
            H2Reply::Reset(h2::Reason::REFUSED_STREAM)
        }
        "/api/always-refused" => H2Reply::Reset(h2::Reason::REFUSED_STREAM),
        "/api/306" => H2Reply::Answer {
            status: 306,
            headers: vec![],
            body: vec![],
            length: true,
        },
        _ => H2Reply::ok("fine"),
    })
    .await;
    let gw = TestGateway::start(&config(&format!("h2c://{}", up.addr), "")).await;
    let resp = gw
        .request("GET /api/reset HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_error(&resp, 502, "PTC.UPSTREAM_RESET");
    let resp = gw
        .request("GET /api/refused-once HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let resp = gw
        .request("GET /api/always-refused HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_error(&resp, 502, "PTC.UPSTREAM_RESET");
    // A refused request with a body is not sent twice: its body is gone.
    let resp = gw
        .request("POST /api/always-refused HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx")
        .await;
    assert_error(&resp, 502, "PTC.UPSTREAM_RESET");
    let resp = gw.request("GET /api/306 HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_STATUS_306");
    // The connection survived all of it.
    let resp = gw.request("GET /api/ok HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(resp.body, b"fine");
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn a_closed_upstream_connection_is_replaced_even_for_requests_with_bodies() {
    let mut up = H2Upstream::start(describe).await;
    let gw = TestGateway::start(&config(&format!("h2c://{}", up.addr), "")).await;
    let resp = gw.request("GET /api/one HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.connection, 0);
    // The upstream says GOAWAY and closes; the next request, a POST that cannot be retried
    // once sent, goes on a new connection.
    up.close_connections().await;
    let resp = gw
        .request("POST /api/two HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"POST http h /api/two");
    let got = up.next().await;
    assert_eq!(got.connection, 1);
    assert_eq!(got.body, b"ok");
}

#[tokio::test]
async fn targets_that_do_not_speak_http2_are_502() {
    // Nothing listens.
    let gw = TestGateway::start(&config(&format!("h2c://{}", closed_port().await), "")).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_CONNECT_REFUSED");
    // An HTTP/1.1 server answers the preface with an HTTP/1.1 error.
    let up = MockUpstream::start(|_| {
        Reply::BytesThenClose(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    let gw = TestGateway::start(&config(&format!("h2c://{}", up.addr), "")).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(resp.status, 502);
    assert!(
        resp.json()["error_code"]
            .as_str()
            .unwrap()
            .starts_with("PTC.UPSTREAM_"),
        "{resp:?}"
    );
}

/// A self-signed certificate for `localhost` (its own CA), written as `ca.pem`: the
/// certificate's PEM, its key's PEM, and the CA file.
fn certificate(dir: &tempfile::TempDir) -> (String, String, PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, c.cert.pem()).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem(), ca)
}

fn tls_upstream(ca: &std::path::Path, extra: &str) -> String {
    format!("    tls:\n      ca: {}\n{extra}", ca.display())
}

async fn https_front(cert: &str, key: &str, alpn: &[&[u8]], behind: SocketAddr) -> TlsFront {
    TlsFront::start(tls_server_config(cert, key, alpn), behind).await
}

#[tokio::test]
async fn https_targets_speak_http2_when_they_choose_h2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certificate(&dir);
    let mut up = H2Upstream::start(describe).await;
    let mut front = https_front(&cert, &key, &[b"h2", b"http/1.1"], up.addr).await;
    let target = format!("https://localhost:{}", front.addr.port());
    let gw = TestGateway::start(&config(&target, &tls_upstream(&ca, ""))).await;
    for i in 0..3 {
        let resp = gw
            .request(&format!(
                "GET /api/s/{i} HTTP/1.1\r\nHost: api.test\r\n\r\n"
            ))
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.body,
            format!("GET https api.test /api/s/{i}").as_bytes()
        );
    }
    assert_eq!(up.next().await.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        up.connections(),
        1,
        "one TLS connection carries every request"
    );
    assert_eq!(front.next_alpn().await.as_deref(), Some("h2"));
}

#[tokio::test]
async fn https_targets_without_h2_get_http11_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certificate(&dir);
    let mut up = MockUpstream::start(|r| {
        Reply::Bytes(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                r.body.len(),
                String::from_utf8_lossy(&r.body)
            )
            .into_bytes(),
        )
    })
    .await;
    let mut front = https_front(&cert, &key, &[b"http/1.1"], up.addr).await;
    let target = format!("https://localhost:{}", front.addr.port());
    let gw = TestGateway::start(&config(&target, &tls_upstream(&ca, ""))).await;
    let mut c = gw.connect().await;
    c.send("POST /api/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello");
    assert_eq!(up.next().await.line, "POST /api/a HTTP/1.1");
    c.send("GET /api/b HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(c.response().await.status, 200);
    assert_eq!(up.next().await.line, "GET /api/b HTTP/1.1");
    assert_eq!(up.connections(), 1, "the TLS connection was kept alive");
    assert_eq!(front.next_alpn().await.as_deref(), Some("http/1.1"));
}

#[tokio::test]
async fn untrusted_or_misnamed_upstream_certificates_are_502() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certificate(&dir);
    let other = tempfile::tempdir().unwrap();
    let (_, _, other_ca) = certificate(&other);
    let up = H2Upstream::start(describe).await;
    let front = https_front(&cert, &key, &[b"h2"], up.addr).await;
    let target = format!("https://localhost:{}", front.addr.port());

    let gw = TestGateway::start(&config(&target, &tls_upstream(&other_ca, ""))).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_TLS_FAILED");

    let misnamed = tls_upstream(&ca, "      server_name: other.test\n");
    let gw = TestGateway::start(&config(&target, &misnamed)).await;
    let resp = gw.request("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_error(&resp, 502, "PTC.UPSTREAM_TLS_FAILED");
    assert_eq!(up.connections(), 0, "no request reached the upstream");
}

#[tokio::test(start_paused = true)]
async fn requests_waiting_for_a_dial_that_fails_fail_with_it() {
    // A target that accepts TCP and never answers the TLS handshake: each dial ends at
    // `connect_timeout`. Requests that queued behind the first dial must not each wait out
    // their own timeout in turn.
    let dir = tempfile::tempdir().unwrap();
    let (_, _, ca) = certificate(&dir);
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let extra = format!("    connect_timeout: 5s\n{}", tls_upstream(&ca, ""));
    let gw = TestGateway::start(&config(&format!("https://localhost:{port}"), &extra)).await;
    let started = tokio::time::Instant::now();
    let mut pending = Vec::new();
    for _ in 0..3 {
        let addr = gw.addr;
        pending.push(tokio::spawn(async move {
            let mut c = RawClient::connect(addr).await;
            c.send("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n").await;
            c.response().await
        }));
    }
    for p in pending {
        assert_error(&p.await.unwrap(), 502, "PTC.UPSTREAM_CONNECT_TIMEOUT");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "one timeout for all, not one each: {:?}",
        started.elapsed()
    );
}
