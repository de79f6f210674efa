//! `produces` and `consumes` on proxied and echo routes: 406 and 415 are decided from the
//! head, before `100 Continue` and before anything is sent upstream.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;

use portico_testkit::{MockUpstream, Reply, TestGateway, assert_error};

fn config(upstream: SocketAddr) -> String {
    format!(
        r#"
upstreams:
  - name: up
    targets: ["http://{upstream}"]
routes:
  - name: items
    path: /items
    methods: [GET, POST, PUT]
    upstream: up
    produces: [application/json, "text/csv; charset=utf-8"]
    consumes: [application/json, "application/*+json"]
  - name: uploads
    path: /uploads
    methods: [PUT]
    upstream: up
    consumes: ["image/*"]
    consumes_encodings: [gzip]
  - name: echo
    path: /echo
    methods: [POST]
    handler: echo
    produces: [application/json]
    consumes: [application/json]
"#
    )
}

fn post(path: &str, headers: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn content_type_not_consumed_is_415_with_accept() {
    let up = MockUpstream::start(|_| Reply::ok("upstream")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    for ct in [
        "Content-Type: text/plain\r\n",
        "Content-Type: application/xml\r\n",
        "Content-Type: json\r\n",
        // No Content-Type: taken as application/octet-stream (RFC 9110 §8.3).
        "",
        // Two of them: ambiguous, taken as application/octet-stream too.
        "Content-Type: application/json\r\nContent-Type: application/json\r\n",
    ] {
        let resp = gw.request(&post("/items", ct, "{}")).await;
        assert_error(&resp, 415, "PTC.UNSUPPORTED_MEDIA_TYPE");
        assert_eq!(
            resp.header("accept"),
            Some("application/json, application/*+json"),
            "{ct}"
        );
        // The body was not read, so the connection closes (the contract's rule of connection hygiene).
        assert!(resp.closes());
    }
    assert_eq!(up.connections(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn consumed_types_reach_the_upstream_with_their_headers() {
    let mut up = MockUpstream::start(|_| Reply::ok("stored")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    for ct in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let resp = gw
            .request(&post(
                "/items",
                &format!("Content-Type: {ct}\r\nAccept: text/csv\r\n"),
                "{\"a\":1}",
            ))
            .await;
        assert_eq!(resp.status, 200, "{ct}");
        let got = up.next().await;
        assert_eq!(got.header("content-type"), Some(ct));
        assert_eq!(got.header("accept"), Some("text/csv"));
        assert_eq!(got.body, b"{\"a\":1}");
    }
    // A request without a body is not checked against `consumes`.
    let resp = gw
        .request("GET /items HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn unsupported_media_type_is_decided_before_100_continue() {
    let up = MockUpstream::start(|_| Reply::ok("upstream")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    let mut c = gw.connect().await;
    c.send(
        "POST /items HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\
         Expect: 100-continue\r\n\r\n",
    )
    .await;
    // The first thing back is the final 415, not a 100.
    let resp = c.response().await;
    assert_error(&resp, 415, "PTC.UNSUPPORTED_MEDIA_TYPE");
    assert!(resp.closes() && c.is_closed().await);
    // A consumed type gets its 100 Continue.
    let mut c = gw.connect().await;
    c.send(
        "POST /items HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         Expect: 100-continue\r\n\r\n",
    )
    .await;
    assert_eq!(c.response().await.status, 100);
    c.send("{}").await;
    assert_eq!(c.response().await.status, 200);
    assert_eq!(up.connections(), 1);
}

#[tokio::test]
async fn content_encoding_not_taken_is_415_with_accept_encoding() {
    let mut up = MockUpstream::start(|_| Reply::ok("ok")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    let put = |ce: &str| {
        format!(
            "PUT /uploads HTTP/1.1\r\nHost: a\r\nContent-Type: image/png\r\n{ce}Content-Length: 3\r\n\r\nabc"
        )
    };
    for ce in ["Content-Encoding: br\r\n", "Content-Encoding: gzip, br\r\n"] {
        let resp = gw.request(&put(ce)).await;
        assert_error(&resp, 415, "PTC.UNSUPPORTED_CONTENT_ENCODING");
        assert_eq!(resp.header("accept-encoding"), Some("gzip, identity"));
    }
    assert_eq!(up.connections(), 0);
    for ce in [
        "",
        "Content-Encoding: gzip\r\n",
        "Content-Encoding: x-gzip, identity\r\n",
    ] {
        let resp = gw.request(&put(ce)).await;
        assert_eq!(resp.status, 200, "{ce}");
        up.next().await;
    }
    // A route that declares `consumes` alone takes identity bodies only.
    let resp = gw
        .request(&post(
            "/items",
            "Content-Type: application/json\r\nContent-Encoding: gzip\r\n",
            "{}",
        ))
        .await;
    assert_error(&resp, 415, "PTC.UNSUPPORTED_CONTENT_ENCODING");
    assert_eq!(resp.header("accept-encoding"), Some("identity"));
}

#[tokio::test]
async fn accept_matching_nothing_produced_is_406_before_the_upstream() {
    let up = MockUpstream::start(|_| Reply::ok("upstream")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    for accept in [
        "text/html",
        "application/xml, image/*",
        "*/*;q=0",
        "application/json;q=0, text/*;q=0",
    ] {
        let resp = gw
            .request(&format!(
                "GET /items HTTP/1.1\r\nHost: a\r\nAccept: {accept}\r\n\r\n"
            ))
            .await;
        assert_error(&resp, 406, "PTC.NOT_ACCEPTABLE");
        assert_eq!(
            resp.json()["available"],
            serde_json::json!(["application/json", "text/csv; charset=utf-8"]),
            "{accept}"
        );
        // Nothing to read: the connection stays open.
        assert!(!resp.closes());
    }
    assert_eq!(up.connections(), 0);
    // The error body itself is negotiated: problem+json when preferred.
    let resp = gw
        .request("GET /items HTTP/1.1\r\nHost: a\r\nAccept: application/problem+json\r\n\r\n")
        .await;
    assert_error(&resp, 406, "PTC.NOT_ACCEPTABLE");
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn acceptable_requests_pass_whatever_the_accept_syntax() {
    let up = MockUpstream::start(|_| Reply::ok("upstream")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    for accept in [
        None,
        Some("*/*"),
        Some("application/*"),
        Some("text/csv;q=0.1, text/html"),
        Some("text/csv; charset=UTF-8"),
        // Garbage is disregarded rather than refused (RFC 9110 §12.5.1).
        Some(";;, /, a/"),
    ] {
        let header = accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default();
        let resp = gw
            .request(&format!("GET /items HTTP/1.1\r\nHost: a\r\n{header}\r\n"))
            .await;
        assert_eq!(resp.status, 200, "{accept:?}");
    }
    // Accept sent on two lines is one list.
    let resp = gw
        .request("GET /items HTTP/1.1\r\nHost: a\r\nAccept: text/html\r\nAccept: text/csv\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn echo_routes_negotiate_too() {
    let up = MockUpstream::start(|_| Reply::ok("unused")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    let resp = gw
        .request(&post("/echo", "Content-Type: application/json\r\n", "{}"))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["body_length"], 2);
    let resp = gw
        .request(&post(
            "/echo",
            "Content-Type: application/json\r\nAccept: text/plain\r\n",
            "{}",
        ))
        .await;
    assert_error(&resp, 406, "PTC.NOT_ACCEPTABLE");
}
