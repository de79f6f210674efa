//! The access phase over real sockets: API keys (401 with a challenge and a code for each
//! failure), the caller's project against the URL's (403), billing states (402, 403), client
//! networks (403) — each decided before `100 Continue` and before the upstream sees anything,
//! and no credential passed on or logged.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::{Duration, SystemTime};

use portico_testkit::{MockUpstream, Reply, TestGateway, assert_error};

const ALICE_KEY: &str = "alice-key-0123456789abcdef";
const BOB_KEY: &str = "bob-key-0123456789abcdef";
const CAROL_KEY: &str = "carol-key-0123456789abcdef";
const DAVE_KEY: &str = "dave-key-0123456789abcdef";
const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const BROKE: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const GONE: &str = "cccccccccccccccccccccccccccccccc";
const METERED: &str = "dddddddddddddddddddddddddddddddd";
const ERIN_KEY: &str = "erin-key-0123456789abcdef";

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{upstream}"]}}
plans:
  - {{name: small, quota: {{requests: 3, period: month}}}}
  - {{name: unmetered}}
projects:
  - id: {ACME}
    name: acme
    consumers:
      - {{name: alice, roles: [member, reader], api_keys: ["{ALICE_KEY}"]}}
      - {{name: bob, enabled: false, api_keys: ["{BOB_KEY}"]}}
  - {{id: {BROKE}, name: broke, billing_state: suspended, consumers: [{{name: carol, api_keys: ["{CAROL_KEY}"]}}]}}
  - {{id: {GONE}, name: gone, billing_state: closed, consumers: [{{name: dave, api_keys: ["{DAVE_KEY}"]}}]}}
  - {{id: {METERED}, name: metered, plan: small, consumers: [{{name: erin, api_keys: ["{ERIN_KEY}"]}}]}}
routes:
  - name: servers
    path: /v1/{{project_id}}/servers
    methods: [GET, POST]
    upstream: up
    auth: [api_key]
  - name: by-query
    path: /q/{{project_id}}
    methods: [GET]
    upstream: up
    auth: api_key
    api_key: {{query: api_key}}
  - name: maybe
    path: /maybe
    methods: [GET]
    upstream: up
    auth: [api_key, none]
  - name: open
    path: /open/{{project_id}}
    methods: [GET]
    upstream: up
  - name: guarded
    path: /v1/{{project_id}}/guarded/{{*rest}}
    methods: [GET, DELETE]
    upstream: up
    auth: [api_key]
    policy:
      - deny: {{paths: ["/v1/{ACME}/guarded/locked*"]}}
      - allow: {{roles: [reader], methods: [GET]}}
      - allow: {{consumers: [root]}}
  - name: local
    path: /local
    methods: [GET]
    upstream: up
    allow_cidrs: [127.0.0.0/8, "::1"]
  - name: denied
    path: /denied
    methods: [GET]
    upstream: up
    allow_cidrs: [0.0.0.0/0]
    deny_cidrs: [127.0.0.1]
  - name: elsewhere
    path: /elsewhere
    methods: [GET]
    upstream: up
    allow_cidrs: [10.0.0.0/8]
"#
    )
}

async fn start() -> (TestGateway, MockUpstream) {
    let up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    (gw, up)
}

fn get(path: &str, fields: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n{fields}\r\n")
}

#[tokio::test]
async fn api_keys_name_the_caller_and_every_failure_has_its_code() {
    let (gw, mut up) = start().await;
    let path = format!("/v1/{ACME}/servers");
    let missing = gw.request(&get(&path, "")).await;
    assert_error(&missing, 401, "PTC.CREDENTIALS_MISSING");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("ApiKey realm=\"portico\", header=\"X-Api-Key\"")
    );
    let cases = [
        (
            "X-Api-Key: not-a-key-at-all-0123\r\n",
            "PTC.API_KEY_UNKNOWN",
        ),
        (
            &*format!("X-Api-Key: {BOB_KEY}\r\n"),
            "PTC.CREDENTIAL_REVOKED",
        ),
        (
            &*format!("X-Api-Key: {ALICE_KEY}\r\nX-Api-Key: {ALICE_KEY}\r\n"),
            "PTC.CREDENTIALS_MALFORMED",
        ),
        ("X-Api-Key: \r\n", "PTC.CREDENTIALS_MALFORMED"),
        (
            &*format!("X-Api-Key: {}\r\n", "k".repeat(600)),
            "PTC.CREDENTIALS_MALFORMED",
        ),
    ];
    for (fields, code) in cases {
        let resp = gw.request(&get(&path, fields)).await;
        assert_error(&resp, 401, code);
        assert!(resp.header("www-authenticate").is_some(), "{code}");
        assert!(!String::from_utf8_lossy(&resp.body).contains("key-0123"));
    }

    // The right key: the upstream learns who called, never the key; forged identity fields
    // are dropped.
    let resp = gw
        .request(&get(
            &path,
            &format!(
                "X-Api-Key: {ALICE_KEY}\r\nX-Portico-Consumer: admin\r\nX-Portico-Roles: admin\r\n"
            ),
        ))
        .await;
    assert_eq!(resp.status, 200);
    let seen = up.next().await;
    assert_eq!(seen.header("x-portico-project-id"), Some(ACME));
    assert_eq!(seen.headers_named("x-portico-consumer"), ["alice"]);
    assert_eq!(seen.headers_named("x-portico-roles"), ["member,reader"]);
    assert_eq!(seen.header("x-api-key"), None);
    // Nothing else reached the upstream: every refusal above was the gateway's.
    assert!(up.received.try_recv().is_err());
}

#[tokio::test]
async fn refusals_come_before_100_continue_and_before_the_upstream() {
    let (gw, mut up) = start().await;
    let mut c = gw.connect().await;
    c.send(format!(
        "POST /v1/{ACME}/servers HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    ))
    .await;
    let resp = c.response().await;
    // The first thing back is the 401, not an interim 100.
    assert_error(&resp, 401, "PTC.CREDENTIALS_MISSING");
    let resp = gw
        .request(&format!(
            "POST /v1/{ACME}/servers HTTP/1.1\r\nHost: h\r\nX-Api-Key: {ALICE_KEY}\r\nContent-Length: 5\r\n\r\nhello"
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.body, b"hello");
    assert!(up.received.try_recv().is_err());
}

#[tokio::test]
async fn the_callers_project_must_be_the_one_in_the_url() {
    let (gw, _up) = start().await;
    let resp = gw
        .request(&get(
            &format!("/v1/{BROKE}/servers"),
            &format!("X-Api-Key: {ALICE_KEY}\r\n"),
        ))
        .await;
    assert_error(&resp, 403, "PTC.PROJECT_MISMATCH");
}

#[tokio::test]
async fn suspended_projects_get_402_and_closed_ones_403() {
    let (gw, _up) = start().await;
    let resp = gw
        .request(&get(
            &format!("/v1/{BROKE}/servers"),
            &format!("X-Api-Key: {CAROL_KEY}\r\n"),
        ))
        .await;
    assert_error(&resp, 402, "PTC.BILLING_SUSPENDED");
    let resp = gw
        .request(&get(
            &format!("/v1/{GONE}/servers"),
            &format!("X-Api-Key: {DAVE_KEY}\r\n"),
        ))
        .await;
    assert_error(&resp, 403, "PTC.PROJECT_CLOSED");
    // On a route that asks for no credentials, the URL's project decides.
    let resp = gw.request(&get(&format!("/open/{BROKE}"), "")).await;
    assert_error(&resp, 402, "PTC.BILLING_SUSPENDED");
    let resp = gw.request(&get(&format!("/open/{ACME}"), "")).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn a_spent_prepaid_quota_is_402_before_the_upstream() {
    let (gw, mut up) = start().await;
    let erin = format!("X-Api-Key: {ERIN_KEY}\r\n");
    // Refused requests take nothing: a wrong project, a bad key.
    let resp = gw
        .request(&get(&format!("/v1/{ACME}/servers"), &erin))
        .await;
    assert_error(&resp, 403, "PTC.PROJECT_MISMATCH");
    let resp = gw
        .request(&get(
            &format!("/v1/{METERED}/servers"),
            "X-Api-Key: nope\r\n",
        ))
        .await;
    assert_error(&resp, 401, "PTC.API_KEY_UNKNOWN");
    // Three, whether the caller proves the project or the URL names it on an open route.
    for path in [
        format!("/v1/{METERED}/servers"),
        format!("/open/{METERED}"),
        format!("/v1/{METERED}/servers"),
    ] {
        let resp = gw.request(&get(&path, &erin)).await;
        assert_eq!(resp.status, 200, "{path}");
        up.next().await;
    }
    let resp = gw
        .request(&get(&format!("/v1/{METERED}/servers"), &erin))
        .await;
    assert_error(&resp, 402, "PTC.QUOTA_SPENT");
    // The detail says when the next month begins (the first, at midnight UTC).
    let detail = resp.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("-01T00:00:00.000Z"), "{detail}");
    let resp = gw.request(&get(&format!("/open/{METERED}"), "")).await;
    assert_error(&resp, 402, "PTC.QUOTA_SPENT");
    assert!(
        up.received.try_recv().is_err(),
        "a refused request went upstream"
    );
    // Other projects are not touched.
    let resp = gw
        .request(&get(
            &format!("/v1/{ACME}/servers"),
            &format!("X-Api-Key: {ALICE_KEY}\r\n"),
        ))
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn keys_in_the_query_are_read_and_not_passed_on() {
    let (mut gw, mut up) = start().await;
    let resp = gw
        .request(&get(&format!("/q/{ACME}?a=1&api_key={ALICE_KEY}&b=2"), ""))
        .await;
    assert_eq!(resp.status, 200);
    let seen = up.next().await;
    assert_eq!(seen.line, format!("GET /q/{ACME}?a=1&b=2 HTTP/1.1"));
    assert_eq!(seen.header("x-portico-consumer"), Some("alice"));
    // The access log says who called, and never the key.
    let line = gw.next_log().await;
    assert_eq!(line["consumer"], "alice");
    assert_eq!(line["project"], ACME);
    assert!(!line.to_string().contains(ALICE_KEY));
    let resp = gw.request(&get(&format!("/q/{ACME}?a=1"), "")).await;
    assert_error(&resp, 401, "PTC.CREDENTIALS_MISSING");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("ApiKey realm=\"portico\", query=\"api_key\"")
    );
}

#[tokio::test]
async fn none_beside_a_scheme_lets_anonymous_callers_through() {
    let (gw, mut up) = start().await;
    let resp = gw.request(&get("/maybe", "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.header("x-portico-consumer"), None);
    // Credentials that are given must still be good.
    let resp = gw
        .request(&get("/maybe", "X-Api-Key: wrong-wrong-wrong-wrong\r\n"))
        .await;
    assert_error(&resp, 401, "PTC.API_KEY_UNKNOWN");
}

#[tokio::test]
async fn client_networks_are_allowed_and_denied() {
    let (gw, _up) = start().await;
    assert_eq!(gw.request(&get("/local", "")).await.status, 200);
    assert_error(
        &gw.request(&get("/denied", "")).await,
        403,
        "PTC.CLIENT_ADDRESS_DENIED",
    );
    assert_error(
        &gw.request(&get("/elsewhere", "")).await,
        403,
        "PTC.CLIENT_ADDRESS_DENIED",
    );
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let mut config = portico_config::from_str(&config(up.addr), "test.yaml").unwrap();
    let alice = &mut config.projects[0].consumers[0];
    alice.api_keys[0].expires = Some(SystemTime::now() - Duration::from_secs(1));
    let gw = TestGateway::start_config(config, |g| g).await;
    let resp = gw
        .request(&get(
            &format!("/v1/{ACME}/servers"),
            &format!("X-Api-Key: {ALICE_KEY}\r\n"),
        ))
        .await;
    assert_error(&resp, 401, "PTC.CREDENTIAL_EXPIRED");
}

#[tokio::test]
async fn a_route_policy_allows_and_denies_by_who_and_what() {
    let (gw, _up) = start().await;
    let alice = format!("X-Api-Key: {ALICE_KEY}\r\n");
    let resp = gw
        .request(&get(&format!("/v1/{ACME}/guarded/a"), &alice))
        .await;
    assert_eq!(resp.status, 200);
    // No allow rule matches a DELETE by a reader: an allow list refuses it.
    let resp = gw
        .request(&format!(
            "DELETE /v1/{ACME}/guarded/a HTTP/1.1\r\nHost: h\r\n{alice}\r\n"
        ))
        .await;
    assert_error(&resp, 403, "PTC.POLICY_DENIED");
    // The deny rule comes first, whatever the roles.
    let resp = gw
        .request(&get(&format!("/v1/{ACME}/guarded/locked/x"), &alice))
        .await;
    assert_error(&resp, 403, "PTC.POLICY_DENIED");
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429_with_the_exact_wait() {
    let up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let yaml = format!(
        "limits: {{auth_failures: {{max: 3, per: 30s}}}}\n{}",
        config(up.addr)
    );
    let gw = TestGateway::start(&yaml).await;
    let path = format!("/v1/{ACME}/servers");
    let bad = "X-Api-Key: guess-guess-guess-guess\r\n";
    // Three failures at once are allowed (a missing key is not a failure)...
    assert_error(
        &gw.request(&get(&path, "")).await,
        401,
        "PTC.CREDENTIALS_MISSING",
    );
    for _ in 0..3 {
        assert_error(
            &gw.request(&get(&path, bad)).await,
            401,
            "PTC.API_KEY_UNKNOWN",
        );
    }
    // ...the fourth puts this address one interval (30 s / 3) ahead of its allowance.
    assert_error(
        &gw.request(&get(&path, bad)).await,
        401,
        "PTC.API_KEY_UNKNOWN",
    );
    let good = format!("X-Api-Key: {ALICE_KEY}\r\n");
    let limited = gw.request(&get(&path, &good)).await;
    assert_error(&limited, 429, "PTC.AUTH_FAILURES_LIMITED");
    assert_eq!(limited.header("retry-after"), Some("10"));
    // Routes that ask for no credentials are not affected.
    assert_eq!(gw.request(&get("/local", "")).await.status, 200);
}
