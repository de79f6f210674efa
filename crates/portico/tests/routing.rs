//! Routing: 404, 405 with Allow, OPTIONS 204 with Allow, path normalisation.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_testkit::{TestGateway, assert_error};

const CONFIG: &str = r#"
routes:
  - name: items
    path: /v1/{project_id}/items
    methods: [GET, POST]
    handler: echo
  - name: item-delete
    path: /v1/{project_id}/items
    methods: [DELETE]
    handler: echo
  - name: files
    path: /files/{*rest}
    methods: [PUT]
    handler: echo
"#;

#[tokio::test]
async fn unknown_path_is_404() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    c.send("GET /v2/p/items HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let resp = c.response().await;
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
    // A 404 on a request without a body keeps the connection.
    assert!(!resp.closes());
    c.send("GET /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(c.response().await.status, 200);
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("PUT /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    // Routes sharing the template pool their methods; HEAD comes with GET.
    assert_eq!(
        resp.header("allow"),
        Some("GET, HEAD, POST, DELETE, OPTIONS")
    );
    // TRACE is a known method that no route here takes.
    let resp = gw
        .request("TRACE /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
}

/// Every method of the IANA registry is one a path may not take (405 with `Allow`), never one
/// Portico does not know (501, which stays for tokens outside the registry).
#[tokio::test]
async fn registered_methods_a_route_does_not_take_are_405_and_others_501() {
    let gw = TestGateway::start(CONFIG).await;
    for method in portico_http::Method::ALL {
        let m = method.as_str();
        if ["GET", "HEAD", "POST", "DELETE", "OPTIONS", "CONNECT"].contains(&m) {
            continue;
        }
        let resp = gw
            .request(&format!("{m} /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n"))
            .await;
        assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
        assert_eq!(
            resp.header("allow"),
            Some("GET, HEAD, POST, DELETE, OPTIONS"),
            "{m}"
        );
        let resp = gw
            .request(&format!("{m} /nowhere HTTP/1.1\r\nHost: a\r\n\r\n"))
            .await;
        assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
    }
    // QUERY carries a body (draft-ietf-httpbis-safe-method-w-body); refused from its head,
    // the body is never read and the connection closes.
    let resp = gw
        .request("QUERY /v1/p/items HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
        .await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    for token in ["BREW", "query", "FETCH"] {
        let resp = gw
            .request(&format!("{token} /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n"))
            .await;
        assert_error(&resp, 501, "PTC.METHOD_NOT_IMPLEMENTED");
    }
}

#[tokio::test]
async fn methods_of_one_template_reach_their_own_route() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("DELETE /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.json()["route"], "item-delete");
    let resp = gw
        .request("HEAD /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn options_on_a_route_is_204_with_allow() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("OPTIONS /v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.status, 204);
    assert_eq!(
        resp.header("allow"),
        Some("GET, HEAD, POST, DELETE, OPTIONS")
    );
    assert!(resp.body.is_empty());
    assert_eq!(
        resp.header("content-length"),
        None,
        "RFC 9110 §8.6: no Content-Length on 204"
    );
    let resp = gw
        .request("OPTIONS /files/a/b HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.header("allow"), Some("PUT, OPTIONS"));
    let resp = gw
        .request("OPTIONS /nowhere HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
}

#[tokio::test]
async fn options_asterisk_is_204() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw.request("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(resp.status, 204);
    assert_eq!(
        resp.header("allow"),
        Some("GET, HEAD, POST, PUT, DELETE, OPTIONS")
    );
}

#[tokio::test]
async fn catch_all_matches_the_rest_including_nothing() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("PUT /files/a/b/c.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(resp.json()["params"]["rest"], "a/b/c.txt");
    let resp = gw
        .request("PUT /files/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    let resp = gw
        .request("PUT /files HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(resp.status, 404);
}

#[tokio::test]
async fn dot_segments_are_resolved_before_routing() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("GET /files/../v1/p/./items HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["route"], "items");
    assert_eq!(resp.json()["path"], "/v1/p/items");
    // Percent-encoded dots count as dots.
    let resp = gw
        .request("GET /files/%2e%2e/v1/p/items HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.json()["route"], "items");
}

#[tokio::test]
async fn absolute_form_targets_are_routed_by_their_path() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("GET http://a/v1/p/items?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(resp.json()["path"], "/v1/p/items");
    assert_eq!(resp.json()["query"], "x=1");
    let resp = gw
        .request("GET http://a/v1/p/items HTTP/1.1\r\nHost: b\r\n\r\n")
        .await;
    assert_error(&resp, 400, "PTC.HOST_MISMATCH");
}
