//! `Idempotency-Key` over real sockets: the first POST with a key reaches the upstream and
//! its response is kept; a retry with the same payload gets it again without reaching the
//! upstream; another payload is 422; a retry while the first is in flight is 409; keys are
//! scoped to the caller; Portico's own errors give the key up; a response too large to keep
//! is relayed whole and its retry is 409.
//!
//! The upstream is a [`HeldUpstream`]: each request waits for the test's answer, and "nothing
//! else reached the upstream" is checked by the next request it sees being the one expected.

#![allow(clippy::unwrap_used)]

use portico_testkit::{HeldUpstream, TestGateway, assert_error};

const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ALICE_KEY: &str = "alice-key-0123456789abcdef";
const OSCAR_KEY: &str = "oscar-key-0123456789abcdef";

fn config(upstream: std::net::SocketAddr, idempotency: &str) -> String {
    format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{upstream}"]}}
projects:
  - {{id: {ACME}, name: acme, consumers: [{{name: alice, api_keys: ["{ALICE_KEY}"]}}]}}
  - {{id: {OTHER}, name: other, consumers: [{{name: oscar, api_keys: ["{OSCAR_KEY}"]}}]}}
routes:
  - {{name: orders, path: /orders, methods: [GET, POST, PUT], upstream: up, idempotency: {idempotency}}}
  - {{name: mine, path: "/v1/{{project_id}}/orders", methods: [POST], upstream: up, auth: api_key, idempotency: true}}
"#
    )
}

fn post(target: &str, key: Option<&str>, body: &str, extra: &str) -> String {
    let key = key.map_or(String::new(), |k| format!("Idempotency-Key: {k}\r\n"));
    format!(
        "POST {target} HTTP/1.1\r\nHost: h\r\n{key}{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const CREATED: &str = "HTTP/1.1 201 Created\r\nLocation: /orders/1\r\nETag: \"v1\"\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"id\":1}";

#[tokio::test]
async fn a_retry_with_the_same_key_and_payload_gets_the_first_response_again() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let mut c = gw.connect().await;
    c.send(post("/orders", Some("\"k-1\""), "{\"n\":1}", ""))
        .await;
    let held = up.next().await;
    assert_eq!(held.received.body, b"{\"n\":1}");
    held.answer(CREATED);
    let first = c.response().await;
    assert_eq!(first.status, 201);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The retry (on another connection, as after a lost answer) is answered from what was kept.
    let again = gw
        .request(&post("/orders", Some("\"k-1\""), "{\"n\":1}", ""))
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, b"{\"id\":1}");
    assert_eq!(again.header("location"), Some("/orders/1"));
    assert_eq!(again.header("etag"), Some("\"v1\""));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_ne!(again.header("x-request-id"), first.header("x-request-id"));
    // A bare token is the same key as its quoted form.
    let bare = gw
        .request(&post("/orders", Some("k-1"), "{\"n\":1}", ""))
        .await;
    assert_eq!(bare.header("idempotent-replayed"), Some("true"));
    // Nothing of those reached the upstream: the next request it sees is this one.
    let mut c = gw.connect().await;
    c.send(post("/orders", Some("\"k-2\""), "{\"n\":2}", ""))
        .await;
    let held = up.next().await;
    assert_eq!(held.received.body, b"{\"n\":2}");
    held.ok("second");
    assert_eq!(c.response().await.body, b"second");
}

#[tokio::test]
async fn the_key_with_another_payload_is_422_and_in_flight_is_409() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let mut first = gw.connect().await;
    first
        .send(post("/orders", Some("\"k\""), "{\"n\":1}", ""))
        .await;
    let held = up.next().await;
    // While the first is at the upstream: the same payload waits its turn...
    let resp = gw
        .request(&post("/orders", Some("\"k\""), "{\"n\":1}", ""))
        .await;
    assert_error(&resp, 409, "PTC.IDEMPOTENCY_KEY_IN_FLIGHT");
    assert_eq!(resp.header("retry-after"), Some("1"));
    // ... and another payload (body, target or content type) is another request.
    for other in [
        post("/orders", Some("\"k\""), "{\"n\":2}", ""),
        post("/orders?x=1", Some("\"k\""), "{\"n\":1}", ""),
        post(
            "/orders",
            Some("\"k\""),
            "{\"n\":1}",
            "Content-Type: text/plain\r\n",
        ),
    ] {
        let resp = gw.request(&other).await;
        assert_error(&resp, 422, "PTC.IDEMPOTENCY_KEY_REUSED");
    }
    held.answer(CREATED);
    assert_eq!(first.response().await.status, 201);
    let resp = gw
        .request(&post("/orders", Some("\"k\""), "{\"n\":2}", ""))
        .await;
    assert_error(&resp, 422, "PTC.IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn bad_and_missing_keys_are_400_and_safe_methods_ignore_keys() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "{required: true}")).await;
    let resp = gw.request(&post("/orders", None, "{}", "")).await;
    assert_error(&resp, 400, "PTC.IDEMPOTENCY_KEY_MISSING");
    for bad in ["\"\"", "\"open", "two words", "\"a\\b\""] {
        let resp = gw.request(&post("/orders", Some(bad), "{}", "")).await;
        assert_error(&resp, 400, "PTC.IDEMPOTENCY_KEY_INVALID");
    }
    let resp = gw
        .request(&post(
            "/orders",
            Some("\"a\""),
            "{}",
            "Idempotency-Key: \"b\"\r\n",
        ))
        .await;
    assert_error(&resp, 400, "PTC.IDEMPOTENCY_KEY_INVALID");
    let long = format!("\"{}\"", "k".repeat(256));
    let resp = gw.request(&post("/orders", Some(&long), "{}", "")).await;
    assert_error(&resp, 400, "PTC.IDEMPOTENCY_KEY_INVALID");
    // GET and PUT are idempotent already: no key needed, none checked, each one goes on.
    for _ in 0..2 {
        let mut c = gw.connect().await;
        c.send("GET /orders HTTP/1.1\r\nHost: h\r\nIdempotency-Key: \"g\"\r\n\r\n")
            .await;
        up.next().await.ok("listed");
        assert_eq!(c.response().await.status, 200);
    }
    let mut c = gw.connect().await;
    c.send("PUT /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        .await;
    up.next().await.ok("put");
    assert_eq!(c.response().await.status, 200);
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    for (project, api_key) in [(ACME, ALICE_KEY), (OTHER, OSCAR_KEY)] {
        let mut c = gw.connect().await;
        c.send(post(
            &format!("/v1/{project}/orders"),
            Some("\"shared-key\""),
            "{}",
            &format!("X-Api-Key: {api_key}\r\n"),
        ))
        .await;
        // Each caller's first use reaches the upstream: one caller's key is not another's.
        let held = up.next().await;
        assert_eq!(held.received.header("x-portico-project-id"), Some(project));
        held.ok(project);
        assert_eq!(c.response().await.body, project.as_bytes());
    }
    // And each one's retry replays its own response.
    for (project, api_key) in [(ACME, ALICE_KEY), (OTHER, OSCAR_KEY)] {
        let resp = gw
            .request(&post(
                &format!("/v1/{project}/orders"),
                Some("\"shared-key\""),
                "{}",
                &format!("X-Api-Key: {api_key}\r\n"),
            ))
            .await;
        assert_eq!(resp.header("idempotent-replayed"), Some("true"));
        assert_eq!(resp.body, project.as_bytes());
    }
}

#[tokio::test]
async fn portico_s_own_errors_give_the_key_up() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let mut c = gw.connect().await;
    c.send(post("/orders?timeout=200ms", Some("\"t\""), "{}", ""))
        .await;
    let held = up.next().await;
    assert_error(&c.response().await, 504, "PTC.DEADLINE_EXCEEDED");
    held.cancelled().await;
    // The 504 was not the upstream's answer: the retry goes to the upstream.
    let mut c = gw.connect().await;
    c.send(post("/orders?timeout=200ms", Some("\"t\""), "{}", ""))
        .await;
    up.next().await.answer(CREATED);
    assert_eq!(c.response().await.status, 201);
}

#[tokio::test]
async fn a_response_too_large_to_keep_is_relayed_whole_and_its_retry_is_409() {
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start(&config(up.addr, "{max_response_bytes: 1KiB}")).await;
    let big = "x".repeat(5000);
    let mut c = gw.connect().await;
    c.send(post("/orders", Some("\"big\""), "{}", "")).await;
    up.next().await.answer(format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    ));
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, big.as_bytes());
    let resp = gw
        .request(&post("/orders", Some("\"big\""), "{}", ""))
        .await;
    assert_error(&resp, 409, "PTC.IDEMPOTENCY_RESPONSE_NOT_KEPT");
    // One that fits is kept, chunked or not.
    let mut c = gw.connect().await;
    c.send(post("/orders", Some("\"small\""), "{}", "")).await;
    up.next()
        .await
        .answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    assert_eq!(c.response().await.body, b"ok");
    let resp = gw
        .request(&post("/orders", Some("\"small\""), "{}", ""))
        .await;
    assert_eq!(resp.body, b"ok");
    assert_eq!(resp.header("idempotent-replayed"), Some("true"));
}

/// A store that fails is 503 with `Retry-After`, and the request goes nowhere: processing it
/// without its key would break the promise the key makes; once the server is back, so is the
/// store. (A PostgreSQL store whose connections the server cuts and refuses: a real failure,
/// in a database of the test's own.)
#[tokio::test]
async fn a_store_that_fails_is_503_and_nothing_is_sent() {
    let Some(db) = portico_testkit::pg::Scratch::create("idem_fail").await else {
        return;
    };
    let store = portico_store::PgStore::connect(&db.url, None)
        .await
        .unwrap();
    let mut up = HeldUpstream::start().await;
    let gw = TestGateway::start_with(&config(up.addr, "true"), |g| {
        g.with_idempotency_keys(std::sync::Arc::new(store))
    })
    .await;
    let mut c = gw.connect().await;
    c.send(post("/orders", Some("\"s\""), "{}", "")).await;
    up.next().await.answer(CREATED);
    assert_eq!(c.response().await.status, 201);
    db.refuse_connections().await;
    let resp = gw.request(&post("/orders", Some("\"t\""), "{}", "")).await;
    assert_error(&resp, 503, "PTC.IDEMPOTENCY_STORE_UNAVAILABLE");
    assert_eq!(resp.header("retry-after"), Some("1"));
    // Nothing went upstream: the next request it sees is one without a key.
    let mut c = gw.connect().await;
    c.send(post("/orders", None, "{\"plain\":1}", "")).await;
    let held = up.next().await;
    assert_eq!(held.received.body, b"{\"plain\":1}");
    held.ok("plain");
    assert_eq!(c.response().await.status, 200);
    // The server is back: so is the store (it connects again), and the key works.
    db.allow_connections().await;
    let mut c = gw.connect().await;
    c.send(post("/orders", Some("\"t\""), "{}", "")).await;
    up.next().await.answer(CREATED);
    assert_eq!(c.response().await.status, 201);
    let again = gw.request(&post("/orders", Some("\"t\""), "{}", "")).await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    db.drop_database().await;
}
