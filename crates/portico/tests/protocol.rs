//! The HTTP/1.1 protocol rules of docs/contract.md, each as raw bytes over a real TCP socket.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_testkit::{TestGateway, assert_error};

const CONFIG: &str = r#"
limits:
  max_uri_bytes: 1024
  max_header_bytes: 2048
  max_headers: 20
  max_body_bytes: 1MiB
routes:
  - name: echo
    path: /echo
    methods: [GET, POST, PUT]
    handler: echo
    max_body_bytes: 64
  - name: upload
    path: /upload/{*name}
    methods: [PUT]
    handler: echo
    require_content_length: true
"#;

async fn gateway() -> TestGateway {
    TestGateway::start(CONFIG).await
}

/// Sends `raw` on a new connection and checks the response is the error `code`, after which the
/// connection is closed.
async fn expect_error_and_close(raw: &[u8], status: u16, code: &str) {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send(raw).await;
    let resp = c.response().await;
    assert_error(&resp, status, code);
    assert!(resp.closes(), "{code} must close the connection");
    assert!(c.is_closed().await, "connection still open after {code}");
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    for i in 0..3 {
        c.send(format!("GET /echo?n={i} HTTP/1.1\r\nHost: a\r\n\r\n"))
            .await;
        let resp = c.response().await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["query"], format!("n={i}"));
        assert!(!resp.closes());
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send(
        "GET /echo?n=1 HTTP/1.1\r\nHost: a\r\n\r\n\
         POST /echo?n=2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
         GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n\
         GET /echo?n=4 HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    let r1 = c.response().await;
    assert_eq!(r1.json()["query"], "n=1");
    let r2 = c.response().await;
    assert_eq!(
        (r2.json()["query"].clone(), r2.json()["body_length"].clone()),
        ("n=2".into(), 3.into())
    );
    assert_error(&c.response().await, 404, "PTC.ROUTE_NOT_FOUND");
    assert_eq!(c.response().await.json()["query"], "n=4");
}

#[tokio::test]
async fn http10_client_gets_close_unless_it_asks_for_keep_alive() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send("GET /echo HTTP/1.0\r\n\r\n").await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert!(resp.closes());
    assert!(c.is_closed().await);

    let mut c = gw.connect().await;
    c.send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    c.send("GET /echo HTTP/1.0\r\n\r\n").await;
    assert_eq!(c.response().await.status, 200);
}

#[tokio::test]
async fn head_gets_the_headers_of_get_and_no_body() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send("HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let head = c.response_to("HEAD").await;
    assert_eq!(head.status, 200);
    let length: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(length > 0);
    assert!(head.body.is_empty());
    // The next response starts right after the head: no body bytes were sent.
    let get = c.response().await;
    assert_eq!(get.status, 200);
    // An error to HEAD: same headers, no body.
    let mut c = gw.connect().await;
    c.send("HEAD /nowhere HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let resp = c.response_to("HEAD").await;
    assert_eq!(resp.status, 404);
    assert!(resp.body.is_empty() && resp.header("content-length").is_some());
}

#[tokio::test]
async fn content_length_and_chunked_bodies_are_read() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    assert_eq!(c.response().await.json()["body_length"], 5);
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n").await;
    let resp = c.response().await;
    assert_eq!(resp.json()["body_length"], 5);
    assert!(!resp.closes());
}

#[tokio::test]
async fn leading_empty_lines_are_ignored() {
    let gw = gateway().await;
    let resp = gw
        .request("\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn malformed_request_line_is_400() {
    expect_error_and_close(
        b"GET  /echo HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "PTC.REQUEST_LINE_MALFORMED",
    )
    .await;
    expect_error_and_close(
        b"GET /echo\r\nHost: a\r\n\r\n",
        400,
        "PTC.REQUEST_LINE_MALFORMED",
    )
    .await;
    expect_error_and_close(
        b"GET /echo http/1.1\r\nHost: a\r\n\r\n",
        400,
        "PTC.VERSION_MALFORMED",
    )
    .await;
    expect_error_and_close(
        b"GET /e<h\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "PTC.TARGET_INVALID",
    )
    .await;
}

#[tokio::test]
async fn obs_fold_is_400() {
    expect_error_and_close(
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n",
        400,
        "PTC.OBS_FOLD",
    )
    .await;
}

#[tokio::test]
async fn bare_cr_in_header_is_400() {
    expect_error_and_close(
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
        400,
        "PTC.BARE_CR",
    )
    .await;
}

#[tokio::test]
async fn bare_lf_is_400() {
    expect_error_and_close(b"GET /echo HTTP/1.1\nHost: a\n\n", 400, "PTC.BARE_LF").await;
}

#[tokio::test]
async fn nul_in_header_is_400() {
    expect_error_and_close(
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n",
        400,
        "PTC.NUL_BYTE",
    )
    .await;
}

#[tokio::test]
async fn whitespace_before_colon_is_400() {
    expect_error_and_close(
        b"GET /echo HTTP/1.1\r\nHost : a\r\n\r\n",
        400,
        "PTC.HEADER_NAME_WHITESPACE",
    )
    .await;
}

#[tokio::test]
async fn missing_host_on_http11_is_400() {
    expect_error_and_close(b"GET /echo HTTP/1.1\r\n\r\n", 400, "PTC.HOST_MISSING").await;
    expect_error_and_close(
        b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "PTC.HOST_MULTIPLE",
    )
    .await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400() {
    expect_error_and_close(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "PTC.CONTENT_LENGTH_WITH_TRANSFER_ENCODING",
    )
    .await;
}

#[tokio::test]
async fn conflicting_content_lengths_are_400() {
    expect_error_and_close(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
        "PTC.CONTENT_LENGTH_MULTIPLE",
    )
    .await;
    expect_error_and_close(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc",
        400,
        "PTC.CONTENT_LENGTH_INVALID",
    )
    .await;
}

#[tokio::test]
async fn bad_chunk_size_is_400() {
    expect_error_and_close(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        400,
        "PTC.CHUNK_SIZE_INVALID",
    )
    .await;
    expect_error_and_close(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        400,
        "PTC.CHUNK_TERMINATOR_MISSING",
    )
    .await;
}

#[tokio::test]
async fn header_section_over_limit_is_400_not_431() {
    let raw = format!(
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "v".repeat(3000)
    );
    expect_error_and_close(raw.as_bytes(), 400, "PTC.HEADER_SECTION_TOO_LARGE").await;
    let mut many = String::from("GET /echo HTTP/1.1\r\nHost: a\r\n");
    for i in 0..25 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    expect_error_and_close(many.as_bytes(), 400, "PTC.TOO_MANY_HEADERS").await;
}

#[tokio::test]
async fn long_target_is_414() {
    let raw = format!("GET /echo?{} HTTP/1.1\r\nHost: a\r\n\r\n", "q".repeat(1100));
    expect_error_and_close(raw.as_bytes(), 414, "PTC.URI_TOO_LONG").await;
}

#[tokio::test]
async fn long_target_is_414_before_line_ends() {
    // The request line never ends: Portico answers once the target alone is over the limit.
    let raw = format!("GET /{}", "a".repeat(1200));
    expect_error_and_close(raw.as_bytes(), 414, "PTC.URI_TOO_LONG").await;
}

#[tokio::test]
async fn unknown_expectation_is_417() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send("GET /echo HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 417, "PTC.EXPECTATION_FAILED");
}

#[tokio::test]
async fn expect_continue_is_sent_only_after_checks_pass() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send("PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = c.response().await;
    assert_eq!(interim.status, 100);
    assert!(interim.header("x-request-id").is_some());
    c.send("hello").await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["body_length"], 5);
    assert_eq!(resp.header("x-request-id"), interim.header("x-request-id"));
}

#[tokio::test]
async fn expect_continue_with_failing_check_gets_final_error_without_100() {
    let gw = gateway().await;
    // Declared length over the route limit: 413 at once, no 100, body never read.
    let mut c = gw.connect().await;
    c.send("PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 413, "PTC.BODY_TOO_LARGE");
    assert!(resp.closes() && c.is_closed().await);
    // No route: 404 at once.
    let mut c = gw.connect().await;
    c.send("PUT /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
    // The body was never read, so the connection cannot be reused.
    assert!(resp.closes() && c.is_closed().await);
    // Wrong method: 405 at once.
    let mut c = gw.connect().await;
    c.send("DELETE /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    assert_error(&c.response().await, 405, "PTC.METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn unknown_method_is_501() {
    expect_error_and_close(
        b"BREW /echo HTTP/1.1\r\nHost: a\r\n\r\n",
        501,
        "PTC.METHOD_NOT_IMPLEMENTED",
    )
    .await;
}

#[tokio::test]
async fn connect_is_501() {
    let gw = gateway().await;
    let resp = gw
        .request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await;
    assert_error(&resp, 501, "PTC.CONNECT_NOT_SUPPORTED");
}

#[tokio::test]
async fn transfer_encoding_gzip_is_501() {
    expect_error_and_close(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        "PTC.TRANSFER_ENCODING_UNSUPPORTED",
    )
    .await;
}

#[tokio::test]
async fn http2_request_line_is_505() {
    expect_error_and_close(
        b"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n",
        505,
        "PTC.VERSION_NOT_SUPPORTED",
    )
    .await;
    // The preface is HTTP/2 by prior knowledge, or 505 with HTTP/2 off: see http2.rs.
}

#[tokio::test]
async fn http3_request_line_is_505() {
    expect_error_and_close(
        b"GET /echo HTTP/3.0\r\nHost: a\r\n\r\n",
        505,
        "PTC.VERSION_NOT_SUPPORTED",
    )
    .await;
}

#[tokio::test]
async fn chunked_body_on_route_requiring_length_is_411() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    c.send("PUT /upload/a.bin HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 411, "PTC.LENGTH_REQUIRED");
    assert!(resp.closes(), "the chunked body was not read");
    // With a length the same route takes it.
    let resp = gw
        .request("PUT /upload/a.bin HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn declared_length_over_limit_is_413_without_reading_body() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    // Only the head is sent: were Portico waiting for the body, no response would come.
    c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 413, "PTC.BODY_TOO_LARGE");
    assert!(resp.json()["detail"].as_str().unwrap().contains("64 bytes"));
    assert!(resp.closes());
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn chunked_body_crossing_limit_is_413_and_close() {
    let gw = gateway().await;
    let mut c = gw.connect().await;
    let mut raw =
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n".to_vec();
    raw.extend_from_slice(&[b'x'; 64]);
    raw.extend_from_slice(b"\r\n1\r\ny\r\n0\r\n\r\n");
    c.send(&raw).await;
    let resp = c.response().await;
    assert_error(&resp, 413, "PTC.BODY_TOO_LARGE_STREAMED");
    assert!(resp.closes() && c.is_closed().await);
}

#[tokio::test]
async fn problem_json_when_the_client_prefers_it() {
    let gw = gateway().await;
    let resp = gw
        .request("GET /nowhere HTTP/1.1\r\nHost: a\r\nAccept: application/problem+json\r\n\r\n")
        .await;
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
    let resp = gw
        .request("GET /nowhere HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n")
        .await;
    assert_eq!(resp.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn every_response_has_a_request_id_and_a_date() {
    let gw = gateway().await;
    for raw in [
        "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let resp = gw.request(raw).await;
        assert_eq!(
            resp.header("x-request-id").map(str::len),
            Some(32),
            "{raw:?}"
        );
        assert!(resp.header("date").is_some(), "{raw:?}");
    }
}
