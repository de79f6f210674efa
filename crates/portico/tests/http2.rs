//! HTTP/2 on cleartext (prior knowledge): the same contract per stream as per HTTP/1.1
//! request, streams that fail on their own without taking the connection, and a connection
//! that attacks (floods of CONTINUATION or RST_STREAM frames, oversized heads) that ends
//! without costing the process anything.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use portico_testkit::h2::{
    self as h2t, RawH2, flag, frame, kind, literal_block, reason, request, send,
};
use portico_testkit::{MockUpstream, Reply, TestGateway, assert_error, proxy_config};

/// Why the server reset a stream the client was still sending on.
async fn reset_reason(stream: &mut h2::SendStream<Bytes>) -> h2::Reason {
    match poll_fn(|cx| stream.poll_reset(cx)).await {
        Ok(reason) => reason,
        Err(e) => e.reason().unwrap(),
    }
}

fn echo_config(extra: &str) -> String {
    format!(
        "{extra}routes:\n  - {{name: echo, path: /echo, methods: [GET, HEAD, POST, PUT], handler: echo, max_body_bytes: 16}}\n"
    )
}

#[tokio::test]
async fn streams_on_one_connection_are_served_side_by_side_and_http1_goes_on() {
    let mut gw = TestGateway::start(&echo_config("")).await;
    let mut client = h2t::client(gw.addr).await;
    let mut pending = Vec::new();
    for i in 0..10 {
        let mut c = client.clone();
        pending.push(tokio::spawn(async move {
            send(
                &mut c,
                request("GET", &format!("http://api.test/echo?i={i}"), &[]),
                None,
            )
            .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, p) in pending.into_iter().enumerate() {
        let resp = p.await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.json();
        assert_eq!(body["query"], format!("i={i}"));
        assert_eq!(body["headers"]["host"], "api.test");
        assert!(resp.header("date").is_some());
        assert_eq!(
            resp.header("content-length"),
            Some(resp.body.len().to_string().as_str())
        );
        ids.insert(resp.header("x-request-id").unwrap().to_string());
    }
    assert_eq!(ids.len(), 10, "each stream has its own request id");
    let line = gw.next_log().await;
    assert_eq!(line["protocol"], "HTTP/2");
    assert_eq!(line["status"], 200);

    // HEAD: the length a GET would have, and no body.
    let head = send(
        &mut client,
        request("HEAD", "http://api.test/echo", &[]),
        None,
    )
    .await;
    assert_eq!(head.status(), 200);
    assert!(head.header("content-length").is_some());
    assert!(head.body.is_empty());

    // The same port still speaks HTTP/1.1.
    let resp = gw.request("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn errors_carry_the_envelope_and_the_request_id() {
    let gw = TestGateway::start(&echo_config("")).await;
    let mut client = h2t::client(gw.addr).await;
    let resp = send(&mut client, request("GET", "http://a/nowhere", &[]), None).await;
    resp.assert_error(404, "PTC.ROUTE_NOT_FOUND");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let resp = send(&mut client, request("DELETE", "http://a/echo", &[]), None).await;
    resp.assert_error(405, "PTC.METHOD_NOT_ALLOWED");
    assert!(resp.header("allow").is_some());
    let resp = send(
        &mut client,
        request(
            "GET",
            "http://a/nowhere",
            &[("accept", "application/problem+json")],
        ),
        None,
    )
    .await;
    assert_eq!(
        resp.header("content-type"),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn requests_are_proxied_to_http1_upstreams() {
    let mut up = MockUpstream::start(|r| {
        Reply::Bytes(
            format!(
                "HTTP/1.1 201 Created\r\nContent-Length: {}\r\nX-Up: yes\r\nConnection: keep-alive\r\n\r\n{}",
                r.body.len(),
                String::from_utf8_lossy(&r.body)
            )
            .into_bytes(),
        )
    })
    .await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut client = h2t::client(gw.addr).await;

    // A body with a declared length.
    let resp = send(
        &mut client,
        request(
            "POST",
            "http://api.test/api/items?x=1",
            &[
                ("content-length", "5"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
            ],
        ),
        Some(b"hello"),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.body, "hello");
    assert_eq!(resp.header("x-up"), Some("yes"));
    assert!(resp.header("connection").is_none());
    let got = up.next().await;
    assert_eq!(got.line, "POST /api/items?x=1 HTTP/1.1");
    assert_eq!(got.header("host"), Some("api.test"));
    assert_eq!(got.header("content-length"), Some("5"));
    assert_eq!(got.header("cookie"), Some("a=1; b=2"));
    assert_eq!(got.header("via"), Some("2 portico"));
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
    assert_eq!(got.body, b"hello");

    // A body whose length the client never announced goes on chunked.
    let mut c = client.clone().ready().await.unwrap();
    let (response, mut stream) = c
        .send_request(request("PUT", "http://api.test/api/items", &[]), false)
        .unwrap();
    stream
        .send_data(Bytes::from_static(b"part one, "), false)
        .unwrap();
    stream
        .send_data(Bytes::from_static(b"part two"), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 201);
    let body = h2t::read_body(response.into_body()).await.unwrap();
    assert_eq!(body, "part one, part two");
    let got = up.next().await;
    assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    assert_eq!(got.body, b"part one, part two");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_ends_only_its_stream() {
    let gw = TestGateway::start(&echo_config("")).await;
    let mut client = h2t::client(gw.addr).await;

    // Declared too large: refused before any of it is read, then the stream is reset (after
    // the response) so the client stops sending.
    let mut c = client.clone().ready().await.unwrap();
    let (response, mut stream) = c
        .send_request(
            request("POST", "http://a/echo", &[("content-length", "100")]),
            false,
        )
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(reset_reason(&mut stream).await, h2::Reason::NO_ERROR);

    // Sent without a length and past the limit.
    let mut c = client.clone().ready().await.unwrap();
    let (response, mut stream) = c
        .send_request(request("POST", "http://a/echo", &[]), false)
        .unwrap();
    stream
        .send_data(Bytes::from(vec![b'x'; 40]), false)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 413);
    let body = h2t::read_body(response.into_body()).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error_code"], "PTC.BODY_TOO_LARGE_STREAMED");
    assert_eq!(reset_reason(&mut stream).await, h2::Reason::NO_ERROR);

    // The connection carries on.
    let resp = send(
        &mut client,
        request("POST", "http://a/echo", &[("content-length", "3")]),
        Some(b"abc"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json()["body_length"], 3);
}

#[tokio::test]
async fn continue_is_sent_only_when_the_body_is_wanted() {
    let gw = TestGateway::start(&echo_config("")).await;
    let client = h2t::client(gw.addr).await;

    let mut c = client.clone().ready().await.unwrap();
    let (mut response, mut stream) = c
        .send_request(
            request(
                "PUT",
                "http://a/echo",
                &[("content-length", "4"), ("expect", "100-continue")],
            ),
            false,
        )
        .unwrap();
    let interim = poll_fn(|cx| response.poll_informational(cx))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(interim.status(), 100);
    assert!(interim.headers().get("x-request-id").is_some());
    stream.send_data(Bytes::from_static(b"body"), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        interim.headers().get("x-request-id"),
        response.headers().get("x-request-id")
    );

    // Refused from its head: the final answer comes with no 100 before it.
    let mut c = client.clone().ready().await.unwrap();
    let (mut response, _stream) = c
        .send_request(
            request(
                "PUT",
                "http://a/echo",
                &[("content-length", "100"), ("expect", "100-continue")],
            ),
            false,
        )
        .unwrap();
    let first = poll_fn(|cx| response.poll_informational(cx)).await;
    assert!(first.is_none(), "{first:?}");
    assert_eq!(response.await.unwrap().status(), 413);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_gets_408_and_the_connection_goes_on() {
    let gw = TestGateway::start(&echo_config("limits: {body_timeout: 5s}\n")).await;
    let mut client = h2t::client(gw.addr).await;
    let mut c = client.clone().ready().await.unwrap();
    let (response, mut stream) = c
        .send_request(
            request("POST", "http://a/echo", &[("content-length", "10")]),
            false,
        )
        .unwrap();
    stream.send_data(Bytes::from_static(b"abc"), false).unwrap();
    let started = tokio::time::Instant::now();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 408);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    let body = h2t::read_body(response.into_body()).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error_code"], "PTC.BODY_TIMEOUT");
    assert_eq!(reset_reason(&mut stream).await, h2::Reason::NO_ERROR);
    let resp = send(&mut client, request("GET", "http://a/echo", &[]), None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn heads_break_the_same_rules_as_on_http1_and_get_400_never_431() {
    let gw = TestGateway::start(&echo_config("limits: {max_header_bytes: 4KiB}\n")).await;
    let mut client = h2t::client(gw.addr).await;
    let big = "v".repeat(6000);
    let resp = send(
        &mut client,
        request("GET", "http://a/echo", &[("x-big", &big)]),
        None,
    )
    .await;
    resp.assert_error(400, "PTC.HEADER_SECTION_TOO_LARGE");
    let resp = send(
        &mut client,
        request("GET", "http://a/echo", &[("host", "b")]),
        None,
    )
    .await;
    resp.assert_error(400, "PTC.HOST_MISMATCH");
    let resp = send(
        &mut client,
        request("GET", "http://a/echo", &[("content_length", "1")]),
        None,
    )
    .await;
    resp.assert_error(400, "PTC.HEADER_NAME_AMBIGUOUS");
    // Still one connection, still serving.
    let resp = send(&mut client, request("GET", "http://a/echo", &[]), None).await;
    assert_eq!(resp.status(), 200);
}

/// The fields of a good GET of `/echo`.
fn get_echo() -> Vec<(&'static str, &'static str)> {
    vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a"),
        (":path", "/echo"),
    ]
}

#[tokio::test]
async fn malformed_heads_reset_their_stream_with_protocol_error() {
    let gw = TestGateway::start(&echo_config("")).await;
    let mut raw = RawH2::connect(gw.addr).await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        // Connection-specific fields (RFC 9113 §8.2.2).
        [get_echo(), vec![("connection", "keep-alive")]].concat(),
        [get_echo(), vec![("transfer-encoding", "chunked")]].concat(),
        [get_echo(), vec![("te", "gzip")]].concat(),
        // A missing :path, a pseudo-header after a field (§8.3).
        vec![(":method", "GET"), (":scheme", "http"), (":authority", "a")],
        vec![
            (":method", "GET"),
            (":scheme", "http"),
            ("x-a", "1"),
            (":path", "/echo"),
        ],
    ];
    let mut id = 1;
    for fields in &cases {
        raw.headers(id, fields, flag::END_STREAM).await;
        let f = raw
            .until(|f| f.stream == id && (f.kind == kind::RST_STREAM || f.kind == kind::HEADERS))
            .await;
        assert_eq!(f.kind, kind::RST_STREAM, "{fields:?} was answered");
        assert_eq!(f.error_code(), reason::PROTOCOL_ERROR, "{fields:?}");
        id += 2;
    }
    // The connection serves a good request after all that: `:status: 200` is the static
    // table's entry 8, which `h2` sends as the single byte 0x88.
    raw.headers(id, &get_echo(), flag::END_STREAM).await;
    let f = raw
        .until(|f| f.stream == id && f.kind == kind::HEADERS)
        .await;
    assert_eq!(f.payload[0], 0x88, "{f:?}");
}

#[tokio::test]
async fn heads_that_cannot_be_decoded_end_the_connection() {
    // `h2` takes an upper-case name (§8.2.1) or an unknown pseudo-header (§8.3) as a failure
    // to decode the block: the connection ends with GOAWAY(PROTOCOL_ERROR), and nothing is
    // answered.
    let gw = TestGateway::start(&echo_config("")).await;
    for extra in [("X-Upper", "1"), (":nonsense", "1")] {
        let mut raw = RawH2::connect(gw.addr).await;
        raw.headers(1, &[get_echo(), vec![extra]].concat(), flag::END_STREAM)
            .await;
        let frames = raw.to_end().await;
        let goaway = frames.iter().find(|f| f.kind == kind::GOAWAY).unwrap();
        assert_eq!(goaway.error_code(), reason::PROTOCOL_ERROR, "{extra:?}");
        assert!(frames.iter().all(|f| f.kind != kind::HEADERS), "{frames:?}");
    }
}

#[tokio::test]
async fn a_continuation_flood_ends_the_connection_only() {
    let gw = TestGateway::start(&echo_config("")).await;
    // An endless run of empty CONTINUATION frames after a HEADERS without END_HEADERS.
    let mut raw = RawH2::connect(gw.addr).await;
    let mut flood = frame(kind::HEADERS, 0, 1, &literal_block(&get_echo()[..2]));
    for _ in 0..10_000 {
        flood.extend_from_slice(&frame(kind::CONTINUATION, 0, 1, &[]));
    }
    let _ = raw.send_raw(&flood).await;
    let frames = raw.to_end().await;
    assert!(
        frames.iter().all(|f| f.kind != kind::HEADERS),
        "nothing was answered: {frames:?}"
    );
    // Nor a block of many large frames, far past any head Portico accepts.
    let mut raw = RawH2::connect(gw.addr).await;
    let big = literal_block(&[("x-big", &"v".repeat(16_000))]);
    let mut flood = frame(kind::HEADERS, 0, 1, &literal_block(&get_echo()));
    for _ in 0..100 {
        flood.extend_from_slice(&frame(kind::CONTINUATION, 0, 1, &big));
    }
    let _ = raw.send_raw(&flood).await;
    let frames = raw.to_end().await;
    assert!(frames.iter().all(|f| f.kind != kind::HEADERS), "{frames:?}");
    // Others are served meanwhile.
    let mut client = h2t::client(gw.addr).await;
    let resp = send(&mut client, request("GET", "http://a/echo", &[]), None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_header_block_left_open_ends_at_the_header_timeout() {
    let gw = TestGateway::start(&echo_config("limits: {header_timeout: 3s}\n")).await;
    let mut raw = RawH2::connect(gw.addr).await;
    raw.send(kind::HEADERS, 0, 1, &literal_block(&get_echo()))
        .await;
    let started = tokio::time::Instant::now();
    let frames = raw.to_end().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert!(frames.iter().all(|f| f.kind != kind::HEADERS), "{frames:?}");
}

#[tokio::test]
async fn rapid_resets_end_the_connection_before_they_cost_upstream_work() {
    let mut up = MockUpstream::start(|_| Reply::ok("up")).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut raw = RawH2::connect(gw.addr).await;
    let get = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a"),
        (":path", "/api/x"),
    ];
    let mut attack = Vec::new();
    for i in 0..5_000u32 {
        let id = 2 * i + 1;
        attack.extend_from_slice(&frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            id,
            &literal_block(&get),
        ));
        attack.extend_from_slice(&frame(
            kind::RST_STREAM,
            0,
            id,
            &reason::CANCEL.to_be_bytes(),
        ));
    }
    let _ = raw.send_raw(&attack).await;
    let frames = raw.to_end().await;
    let goaway = frames
        .iter()
        .find(|f| f.kind == kind::GOAWAY)
        .expect("a GOAWAY");
    assert_eq!(goaway.error_code(), reason::ENHANCE_YOUR_CALM);
    // Few of the 5,000 requests reached the upstream, if any.
    let reached = up.received.len();
    assert!(reached < 200, "{reached} requests reached the upstream");
    // And the gateway serves the next client.
    let mut client = h2t::client(gw.addr).await;
    let resp = send(&mut client, request("GET", "http://a/api/y", &[]), None).await;
    assert_eq!(resp.status(), 200);
    let _ = up.next().await;
}

#[tokio::test]
async fn settings_announce_the_stream_limit() {
    let gw = TestGateway::start(&echo_config("http2: {max_concurrent_streams: 3}\n")).await;
    let raw = RawH2::connect(gw.addr).await;
    let settings = raw.server_settings();
    let mut max_streams = None;
    for entry in settings.payload.chunks(6) {
        let id = u16::from_be_bytes([entry[0], entry[1]]);
        let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
        if id == 0x3 {
            max_streams = Some(value);
        }
    }
    assert_eq!(max_streams, Some(3));
}

#[tokio::test]
async fn with_http2_off_the_preface_is_not_http2() {
    let gw = TestGateway::start(&echo_config("http2: {enabled: false}\n")).await;
    let resp = gw.request("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert_error(&resp, 505, "PTC.VERSION_NOT_SUPPORTED");
}

/// The fields of a GET to `path` on the raw client.
fn raw_get(path: &str) -> Vec<(&str, &str)> {
    vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "api.test"),
        (":path", path),
    ]
}

/// A SETTINGS payload setting `SETTINGS_INITIAL_WINDOW_SIZE` (0x4).
fn initial_window(size: u32) -> Vec<u8> {
    let mut p = vec![0, 4];
    p.extend_from_slice(&size.to_be_bytes());
    p
}

/// DATA frames of stream 1 until one ends it, skipping other frames; a reset fails the test.
async fn data_to_end(h2: &mut RawH2) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let f = h2
            .until(|f| f.stream == 1 && (f.kind == kind::DATA || f.kind == kind::RST_STREAM))
            .await;
        assert_eq!(f.kind, kind::DATA, "reset with {:#x}", f.error_code());
        body.extend_from_slice(&f.payload);
        if f.flags & flag::END_STREAM != 0 {
            return body;
        }
    }
}

// h2spec http2/6.9.1/1, 6.9.2/1-2, 5.1/2-3, 6.5.3/1: a streamed (proxied) body that must wait
// for the client's window was cancelled the moment it had to wait.
#[tokio::test]
async fn a_proxied_body_waits_for_the_clients_window_however_small() {
    let body = "0123456789abcdefghijklmnopqrstuvwxyz";
    let up = MockUpstream::start(move |_| Reply::ok(body)).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;

    // A window of one byte: one byte, then the rest once the client opens the window.
    let mut h2 = RawH2::connect(gw.addr).await;
    h2.send(kind::SETTINGS, 0, 0, &initial_window(1)).await;
    h2.headers(1, &raw_get("/api/x"), flag::END_STREAM).await;
    let first = h2
        .until(|f| f.stream == 1 && (f.kind == kind::DATA || f.kind == kind::RST_STREAM))
        .await;
    assert_eq!(
        first.kind,
        kind::DATA,
        "reset with {:#x}",
        first.error_code()
    );
    assert_eq!(&first.payload[..], b"0");
    h2.send(kind::WINDOW_UPDATE, 0, 1, &1000u32.to_be_bytes())
        .await;
    assert_eq!(data_to_end(&mut h2).await, &body.as_bytes()[1..]);

    // A window of none, opened by a new SETTINGS_INITIAL_WINDOW_SIZE after the request.
    let mut h2 = RawH2::connect(gw.addr).await;
    h2.send(kind::SETTINGS, 0, 0, &initial_window(0)).await;
    h2.headers(1, &raw_get("/api/x"), flag::END_STREAM).await;
    h2.until(|f| f.stream == 1 && f.kind == kind::HEADERS).await;
    h2.send(kind::SETTINGS, 0, 0, &initial_window(1000)).await;
    assert_eq!(data_to_end(&mut h2).await, body.as_bytes());
}

// h2spec http2/8.1.2.6/2: a response complete before its request body (here a 405 decided from
// the head) left the stream cancelled, so a body that then overran its content-length was
// never answered as the malformed request it is.
#[tokio::test]
async fn a_body_that_breaks_its_length_after_an_early_answer_is_a_protocol_error() {
    let gw = TestGateway::start(&echo_config("")).await;
    let delete = [
        (":method", "DELETE"),
        (":scheme", "http"),
        (":authority", "api.test"),
        (":path", "/echo"),
        ("content-length", "1"),
    ];

    let mut h2 = RawH2::connect(gw.addr).await;
    h2.headers(1, &delete, 0).await;
    let head = h2.until(|f| f.stream == 1 && f.kind == kind::HEADERS).await;
    assert!(head.flags & flag::END_STREAM == 0);
    h2.until(|f| f.stream == 1 && f.flags & flag::END_STREAM != 0)
        .await;
    h2.send(kind::DATA, 0, 1, b"test").await;
    let reset = h2
        .until(|f| f.stream == 1 && f.kind == kind::RST_STREAM)
        .await;
    assert_eq!(reset.error_code(), reason::PROTOCOL_ERROR);

    // A body that ends as announced ends the stream without a reset.
    let mut h2 = RawH2::connect(gw.addr).await;
    h2.headers(1, &delete, 0).await;
    h2.until(|f| f.stream == 1 && f.flags & flag::END_STREAM != 0)
        .await;
    h2.send(kind::DATA, flag::END_STREAM, 1, b"t").await;
    h2.send(kind::PING, 0, 0, b"portico!").await;
    let next = h2
        .until(|f| f.kind == kind::PING || f.kind == kind::RST_STREAM)
        .await;
    assert_eq!(next.kind, kind::PING, "reset with {:#x}", next.error_code());
}

/// A raw connection to `gw` that has asked for a GET of a proxied route after announcing an
/// initial window of `window` bytes: the response's body has to wait for the window.
async fn proxied_get_with_window(gw: &TestGateway, window: &[u8]) -> RawH2 {
    let mut h2 = RawH2::connect(gw.addr).await;
    h2.send(kind::SETTINGS, 0, 0, window).await;
    h2.until(|f| f.kind == kind::SETTINGS && f.flags & flag::ACK != 0)
        .await;
    h2.headers(1, &raw_get("/api/x"), flag::END_STREAM).await;
    h2
}

/// The next DATA of stream 1 (a reset fails the test).
async fn next_data(h2: &mut RawH2) -> Bytes {
    let f = h2
        .until(|f| f.stream == 1 && (f.kind == kind::DATA || f.kind == kind::RST_STREAM))
        .await;
    assert_eq!(f.kind, kind::DATA, "reset with {:#x}", f.error_code());
    f.payload
}

// h2spec generic/2 case 3: a PRIORITY frame on a stream half-closed by the client is taken,
// and the body it waits on still flows.
#[tokio::test]
async fn a_priority_frame_on_a_half_closed_stream_leaves_its_body_flowing() {
    let up = MockUpstream::start(|_| Reply::ok("abcdef")).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut h2 = proxied_get_with_window(&gw, &initial_window(1)).await;
    assert_eq!(&next_data(&mut h2).await[..], b"a");
    // PRIORITY (0x2): depends on stream 0, weight 16.
    h2.send(0x2, 0, 1, &[0, 0, 0, 0, 15]).await;
    h2.send(kind::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes())
        .await;
    assert_eq!(data_to_end(&mut h2).await, b"bcdef");
}

// h2spec http2/6.5.3 case 1: of several SETTINGS_INITIAL_WINDOW_SIZE values in one frame, the
// last holds.
#[tokio::test]
async fn several_initial_window_sizes_in_one_settings_frame_take_the_last() {
    let up = MockUpstream::start(|_| Reply::ok("abcdef")).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut settings = initial_window(100);
    settings.extend(initial_window(1));
    let mut h2 = proxied_get_with_window(&gw, &settings).await;
    assert_eq!(&next_data(&mut h2).await[..], b"a");
}

// h2spec http2/6.9.2 case 2: a smaller SETTINGS_INITIAL_WINDOW_SIZE after DATA was sent makes
// the stream's window negative, and a WINDOW_UPDATE then opens only what lifts it above zero.
#[tokio::test]
async fn a_window_made_negative_by_settings_is_tracked() {
    let up = MockUpstream::start(|_| Reply::ok("abcdefgh")).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut h2 = proxied_get_with_window(&gw, &initial_window(3)).await;
    assert_eq!(&next_data(&mut h2).await[..], b"abc");
    // 3 sent against a window now of 2: -1, and a WINDOW_UPDATE of 2 leaves room for 1.
    h2.send(kind::SETTINGS, 0, 0, &initial_window(2)).await;
    h2.until(|f| f.kind == kind::SETTINGS && f.flags & flag::ACK != 0)
        .await;
    h2.send(kind::WINDOW_UPDATE, 0, 1, &2u32.to_be_bytes())
        .await;
    assert_eq!(&next_data(&mut h2).await[..], b"d");
}

/// Opens a connection, writes `bytes`, and checks that all that comes back before the close
/// is HTTP/2's connection error: an empty SETTINGS and `GOAWAY(PROTOCOL_ERROR)`.
async fn assert_goaway_for(gw: &TestGateway, bytes: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    assert_eq!(
        answer,
        [
            &frame(kind::SETTINGS, 0, 0, &[])[..],
            &frame(kind::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 1])[..],
        ]
        .concat()
    );
}

// RFC 9113 §3.4: a preface that goes wrong after its first line is an HTTP/2 client's
// connection error (SETTINGS, then GOAWAY with PROTOCOL_ERROR, then close), not an HTTP/1.1
// request; bytes that never looked like the preface are still HTTP/1.1's.
#[tokio::test]
async fn a_preface_broken_after_its_first_line_ends_with_goaway() {
    let gw = TestGateway::start(&echo_config("")).await;
    assert_goaway_for(&gw, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").await;

    let resp = gw.request("INVALID CONNECTION PREFACE\r\n\r\n").await;
    assert_error(&resp, 400, "PTC.VERSION_MALFORMED");
}

// `http2: {cleartext: only}`: the plain listener speaks HTTP/2 alone, so anything but the
// preface is HTTP/2's connection error (RFC 9113 §3.4) rather than an HTTP/1.1 request.
#[tokio::test]
async fn a_plain_listener_for_http2_only_answers_anything_else_with_goaway() {
    let gw = TestGateway::start(&echo_config("http2: {cleartext: only}\n")).await;
    assert_goaway_for(&gw, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let mut client = h2t::client(gw.addr).await;
    let resp = send(&mut client, request("GET", "http://a/echo", &[]), None).await;
    assert_eq!(resp.status(), 200);
}
