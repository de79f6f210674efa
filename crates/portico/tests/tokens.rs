//! The token service and `auth: token` over real sockets: the Keystone v3 password-method
//! request keystoneauth1 sends gets a 201 in Keystone's shape with the token in
//! `X-Subject-Token`; the token then opens routes of its project; every refusal has its code.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use portico_gateway::tokens::{MemoryTokens, StoredGrant, token_digest};
use portico_testkit::{RawResponse, TestGateway, assert_error};
use serde_json::{Value, json};

const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const BROKE: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const PASSWORD: &str = "alice-password-123";

fn config() -> String {
    format!(
        r#"
projects:
  - id: {ACME}
    name: acme
    consumers:
      - {{name: alice, roles: [member], password: "{PASSWORD}"}}
      - {{name: bob, enabled: false, password: "bob-password-123"}}
  - {{id: {BROKE}, name: broke, billing_state: suspended, consumers: [{{name: carol, password: "carol-password-1"}}]}}
routes:
  - {{name: tokens, path: /v3/auth/tokens, methods: [POST], handler: tokens, token_ttl: 1h}}
  - {{name: servers, path: "/v1/{{project_id}}/servers", methods: [GET], handler: echo, auth: token}}
"#
    )
}

async fn start() -> (TestGateway, Arc<MemoryTokens>) {
    let tokens = Arc::new(MemoryTokens::default());
    let store = tokens.clone();
    let gw = TestGateway::start_with(&config(), move |g| g.with_tokens(store)).await;
    (gw, tokens)
}

/// The request keystoneauth1's `v3.Password` plugin sends (its headers and body, as
/// keystoneauth1 5.x writes them), with this user, password and scope.
fn keystone_request(user: &str, password: &str, scope: Value) -> String {
    let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
        "password": password, "name": user, "domain": {"name": "Default"}}}}});
    if !scope.is_null() {
        auth["scope"] = scope;
    }
    let body = json!({"auth": auth}).to_string();
    format!(
        "POST /v3/auth/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: keystoneauth1/5.8.0 python-requests/2.32.3 CPython/3.11.2\r\nAccept-Encoding: gzip, deflate\r\nAccept: application/json\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn by_name() -> Value {
    json!({"project": {"name": "acme", "domain": {"name": "Default"}}})
}

async fn use_token(gw: &TestGateway, project: &str, token: &str) -> RawResponse {
    gw.request(&format!(
        "GET /v1/{project}/servers HTTP/1.1\r\nHost: h\r\nX-Auth-Token: {token}\r\n\r\n"
    ))
    .await
}

#[tokio::test]
async fn a_keystone_password_request_gets_a_token_that_opens_its_projects_routes() {
    let (gw, tokens) = start().await;
    let resp = gw
        .request(&keystone_request("alice", PASSWORD, by_name()))
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let token = resp.header("x-subject-token").unwrap().to_string();
    assert!(token.starts_with("pt_") && token.len() == 67, "{token}");
    let body = resp.json();
    let t = &body["token"];
    assert_eq!(t["methods"], json!(["password"]));
    assert_eq!(t["project"]["id"], ACME);
    assert_eq!(t["project"]["name"], "acme");
    assert_eq!(t["user"]["name"], "alice");
    assert_eq!(t["roles"], json!([{"id": "member", "name": "member"}]));
    assert!(t["expires_at"].as_str().unwrap().ends_with("000Z"));
    assert!(t["catalog"].is_array());
    // Kept only as its digest.
    assert!(
        futures_util::FutureExt::now_or_never(portico_gateway::tokens::TokenStore::get(
            &*tokens,
            &token_digest(token.as_bytes())
        ))
        .unwrap()
        .unwrap()
        .is_some()
    );
    // The token opens its project's routes, and stays at the gateway.
    let resp = use_token(&gw, ACME, &token).await;
    assert_eq!(resp.status, 200);
    let seen = resp.json();
    assert_eq!(seen["caller"]["consumer"], "alice");
    assert!(seen["headers"].get("x-auth-token").is_none());
    assert_error(
        &use_token(&gw, BROKE, &token).await,
        403,
        "PTC.PROJECT_MISMATCH",
    );
    // Scoped by id, and unscoped when the user name is unique.
    for scope in [json!({"project": {"id": ACME}}), Value::Null] {
        let resp = gw
            .request(&keystone_request("alice", PASSWORD, scope))
            .await;
        assert_eq!(resp.status, 201);
    }
}

#[tokio::test]
async fn wrong_logins_and_bad_requests_have_their_codes() {
    let (gw, _) = start().await;
    for (user, password) in [
        ("alice", "wrong-password-1"),
        ("nobody", PASSWORD),
        ("bob", "bob-password-123"),
    ] {
        let resp = gw
            .request(&keystone_request(user, password, by_name()))
            .await;
        assert_error(&resp, 401, "PTC.LOGIN_FAILED");
        assert!(!String::from_utf8_lossy(&resp.body).contains(password));
    }
    let resp = gw
        .request(&keystone_request(
            "carol",
            "carol-password-1",
            json!({"project": {"name": "broke"}}),
        ))
        .await;
    assert_error(&resp, 402, "PTC.BILLING_SUSPENDED");
    let raw = |body: &str| {
        format!(
            "POST /v3/auth/tokens HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    assert_error(&gw.request(&raw("{")).await, 400, "PTC.JSON_MALFORMED");
    assert_error(
        &gw.request(&raw(r#"{"auth": {"identity": {"methods": ["token"]}}}"#))
            .await,
        400,
        "PTC.TOKEN_REQUEST_INVALID",
    );
}

#[tokio::test]
async fn unknown_expired_and_revoked_tokens_are_refused() {
    let (gw, tokens) = start().await;
    let resp = use_token(&gw, ACME, "pt_never-issued").await;
    assert_error(&resp, 401, "PTC.TOKEN_UNKNOWN");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Keystone realm=\"portico\"")
    );
    let grant = json!({"project_id": ACME, "consumer": "alice", "roles": "member"});
    let planted = |expires_ms, revoked| StoredGrant {
        body: grant.clone(),
        expires_ms,
        revoked,
    };
    tokens.insert(&token_digest(b"pt_expired"), planted(1_000, false));
    tokens.insert(&token_digest(b"pt_revoked"), planted(i64::MAX, true));
    // A token of a consumer that has since been disabled.
    let bob = json!({"project_id": ACME, "consumer": "bob", "roles": ""});
    tokens.insert(
        &token_digest(b"pt_bob"),
        StoredGrant {
            body: bob,
            expires_ms: i64::MAX,
            revoked: false,
        },
    );
    for (token, code) in [
        ("pt_expired", "PTC.CREDENTIAL_EXPIRED"),
        ("pt_revoked", "PTC.CREDENTIAL_REVOKED"),
        ("pt_bob", "PTC.CREDENTIAL_REVOKED"),
    ] {
        assert_error(&use_token(&gw, ACME, token).await, 401, code);
    }
    assert!(tokens.revoke(&token_digest(b"pt_bob")));
    assert_error(
        &gw.request(&format!(
            "GET /v1/{ACME}/servers HTTP/1.1\r\nHost: h\r\n\r\n"
        ))
        .await,
        401,
        "PTC.CREDENTIALS_MISSING",
    );
}
