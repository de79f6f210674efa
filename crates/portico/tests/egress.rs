//! The egress (forward) proxy: 407 with `Proxy-Authenticate` until the client proves who it
//! is, 403 for destinations `allow_hosts` does not name and for internal addresses it does not
//! list, absolute-form requests forwarded and CONNECT tunnels relayed, over real sockets to a
//! real upstream on loopback (listed explicitly, as the SSRF guard demands).

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use portico_testkit::{MockUpstream, RawResponse, Reply, TestGateway, assert_error};

const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ALICE_PASSWORD: &str = "alice-egress-password";

fn config(upstream_port: u16, auth: &str) -> String {
    format!(
        r#"
limits: {{auth_failures: {{max: 3, per: 1m}}}}
projects:
  - id: {ACME}
    name: acme
    consumers:
      - {{name: alice, roles: [member], password: "{ALICE_PASSWORD}"}}
      - {{name: bob, enabled: false, password: "bob-egress-password"}}
  - {{name: broke, billing_state: suspended, consumers: [{{name: carol, password: "carol-egress-password"}}]}}
routes:
  - {{name: tokens, path: /v3/auth/tokens, methods: [POST], handler: tokens}}
egress:
  listen: 127.0.0.1:0
  allow_hosts: ["127.0.0.1:{upstream_port}", localhost, "*.example.invalid"]
  auth: {auth}
"#
    )
}

fn basic(user_password: &str) -> String {
    format!(
        "Proxy-Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

async fn through(gw: &TestGateway, raw: &str) -> RawResponse {
    let mut c = portico_testkit::RawClient::connect(gw.egress_addr.unwrap()).await;
    c.send(raw).await;
    let method = raw.split(' ').next().unwrap().to_string();
    c.response_to(&method).await
}

#[tokio::test]
async fn without_valid_proxy_credentials_it_is_407_with_proxy_authenticate() {
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let port = up.addr.port();
    let gw = TestGateway::start(&config(port, "basic")).await;
    let get = |fields: &str| {
        format!("GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{fields}\r\n")
    };
    let resp = through(&gw, &get("")).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_MISSING");
    assert_eq!(
        resp.header("proxy-authenticate"),
        Some("Basic realm=\"portico egress\", charset=\"UTF-8\"")
    );
    let resp = through(&gw, &get("Proxy-Authorization: Basic !!\r\n")).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_MALFORMED");
    assert!(resp.header("proxy-authenticate").is_some());
    // A consumer whose project is suspended is known, and told so.
    let resp = through(&gw, &get(&basic("broke/carol:carol-egress-password"))).await;
    assert_error(&resp, 402, "PTC.BILLING_SUSPENDED");
    // Each of these is a failure counted against the client.
    let resp = through(&gw, &get(&basic("alice:wrong"))).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_INVALID");
    let resp = through(&gw, &get(&basic("nobody:x"))).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_INVALID");
    // Nothing reached the destination.
    assert!(up.received.try_recv().is_err());
    // A CONNECT is refused the same way, before any connection is made.
    let resp = through(
        &gw,
        &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    )
    .await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_MISSING");
    assert_eq!(up.connections(), 0);
    // A disabled consumer does not get through either.
    let resp = through(&gw, &get(&basic("bob:bob-egress-password"))).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_INVALID");
    let resp = through(&gw, &get(&basic("acme/alice:wrong-again"))).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_INVALID");
    // More failures from one address than `auth_failures` allows: the next try waits,
    // whatever it sends.
    let resp = through(&gw, &get(&basic(&format!("alice:{ALICE_PASSWORD}")))).await;
    assert_error(&resp, 429, "PTC.AUTH_FAILURES_LIMITED");
    assert!(resp.header("retry-after").is_some());
}

#[tokio::test]
async fn absolute_form_requests_are_forwarded_without_the_proxy_credentials() {
    let mut up = MockUpstream::start(|_| Reply::ok("from the destination")).await;
    let port = up.addr.port();
    let gw = TestGateway::start(&config(port, "basic")).await;
    let alice = basic(&format!("acme/alice:{ALICE_PASSWORD}"));
    let resp = through(
        &gw,
        &format!(
            "POST http://127.0.0.1:{port}/v1/things?page=2 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{alice}Content-Length: 5\r\n\r\nhello"
        ),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"from the destination");
    let got = up.next().await;
    assert_eq!(got.line, "POST /v1/things?page=2 HTTP/1.1");
    assert_eq!(
        got.header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(got.body, b"hello");
    assert_eq!(got.header("proxy-authorization"), None);
    // The destination is not told who called.
    assert_eq!(got.header("x-portico-project-id"), None);
    // The consumer alone names it when its name is unique; "localhost" is allowed by name and
    // its loopback address is listed for this port.
    let resp = through(
        &gw,
        &format!(
            "GET http://localhost:{port}/again HTTP/1.1\r\nHost: localhost:{port}\r\n{}\r\n",
            basic(&format!("alice:{ALICE_PASSWORD}"))
        ),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.line, "GET /again HTTP/1.1");
}

#[tokio::test]
async fn connect_opens_a_tunnel_to_an_allowed_destination() {
    let mut up = MockUpstream::start(|_| Reply::ok("through the tunnel")).await;
    let port = up.addr.port();
    let gw = TestGateway::start(&config(port, "basic")).await;
    let alice = basic(&format!("alice:{ALICE_PASSWORD}"));
    let mut c = portico_testkit::RawClient::connect(gw.egress_addr.unwrap()).await;
    c.send(format!(
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{alice}\r\n"
    ))
    .await;
    let resp = c.response_to("CONNECT").await;
    assert_eq!(resp.status, 200);
    // RFC 9110 §9.3.6: no framing fields on a 2xx to CONNECT.
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("transfer-encoding"), None);
    // From here on the bytes are the destination's: an HTTP exchange, as TLS would be.
    c.send("GET /inside HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let inner = c.response().await;
    assert_eq!(inner.status, 200);
    assert_eq!(inner.body, b"through the tunnel");
    let got = up.next().await;
    assert_eq!(got.line, "GET /inside HTTP/1.1");
    // The tunnel carried the bytes as they were: no field of Portico's was added.
    assert_eq!(got.header("via"), None);
}

#[tokio::test]
async fn destinations_not_allowed_and_internal_addresses_are_403() {
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let port = up.addr.port();
    let gw = TestGateway::start(&config(port, "basic")).await;
    let alice = basic(&format!("alice:{ALICE_PASSWORD}"));
    let connect = |dest: &str| format!("CONNECT {dest} HTTP/1.1\r\nHost: {dest}\r\n{alice}\r\n");
    // Not named at all; named, but on another port.
    for dest in [
        "127.0.0.2:80".to_string(),
        format!("127.0.0.1:{}", port ^ 1),
    ] {
        let resp = through(&gw, &connect(&dest)).await;
        assert_error(&resp, 403, "PTC.EGRESS_HOST_DENIED");
    }
    // Allowed by name, but it resolves to loopback, which is listed only for the upstream's
    // port: the SSRF guard refuses it.
    let resp = through(&gw, &connect(&format!("localhost:{}", port ^ 1))).await;
    assert_error(&resp, 403, "PTC.EGRESS_ADDRESS_DENIED");
    // (No test resolves a name outside this machine: a name that does not resolve is 502
    // EGRESS_RESOLVE_FAILED, which only a real DNS answer could show.)
    assert_eq!(up.connections(), 0);
    assert!(up.received.try_recv().is_err());
    // What is not a proxy request: an origin-form target, an https:// absolute one.
    let resp = through(&gw, &format!("GET /x HTTP/1.1\r\nHost: a\r\n{alice}\r\n")).await;
    assert_error(&resp, 400, "PTC.EGRESS_TARGET_UNSUPPORTED");
    let resp = through(
        &gw,
        &format!("GET https://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{alice}\r\n"),
    )
    .await;
    assert_error(&resp, 400, "PTC.EGRESS_TARGET_UNSUPPORTED");
    // The data plane is no proxy.
    let resp = gw
        .request(&format!(
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        ))
        .await;
    assert_error(&resp, 501, "PTC.CONNECT_NOT_SUPPORTED");
}

#[tokio::test]
async fn with_auth_token_the_token_services_tokens_open_the_proxy() {
    let mut up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let port = up.addr.port();
    let gw = TestGateway::start(&config(port, "token")).await;
    let login = format!(
        r#"{{"auth": {{"identity": {{"methods": ["password"], "password": {{"user": {{"name": "alice", "domain": {{"name": "Default"}}, "password": "{ALICE_PASSWORD}"}}}}}}, "scope": {{"project": {{"id": "{ACME}"}}}}}}}}"#
    );
    let issued = gw
        .request(&format!(
            "POST /v3/auth/tokens HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{login}",
            login.len()
        ))
        .await;
    assert_eq!(issued.status, 201);
    let token = issued.header("x-subject-token").unwrap().to_string();
    let get = |fields: &str| {
        format!("GET http://127.0.0.1:{port}/t HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{fields}\r\n")
    };
    let resp = through(&gw, &get("")).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_MISSING");
    assert_eq!(
        resp.header("proxy-authenticate"),
        Some("Bearer realm=\"portico egress\"")
    );
    let resp = through(&gw, &get("Proxy-Authorization: Bearer pt_not-a-token\r\n")).await;
    assert_error(&resp, 407, "PTC.PROXY_CREDENTIALS_INVALID");
    let resp = through(
        &gw,
        &get(&format!("Proxy-Authorization: Bearer {token}\r\n")),
    )
    .await;
    assert_eq!(resp.status, 200);
    let got = up.next().await;
    assert_eq!(got.line, "GET /t HTTP/1.1");
    assert_eq!(got.header("proxy-authorization"), None);
}
