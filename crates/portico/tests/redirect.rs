//! Redirect routes: 301, 302, 303, 307 and 308 answered by Portico with a `Location` built from
//! the route's path parameters and the request's query.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_testkit::h2::{self as h2t, request, send};
use portico_testkit::{TestGateway, assert_error};

const CONFIG: &str = r#"
routes:
  - name: moved
    path: /v1/{project}/items/{*rest}
    methods: [GET]
    redirect: {to: "/v2/{project}/items/{*rest}", status: 301}
  - name: found
    path: /found/{id}
    methods: [GET]
    redirect: {to: "/elsewhere/{id}?via=found#top", status: 302}
  - name: see-other
    path: /orders
    methods: [POST]
    redirect: {to: "/orders/latest", status: 303}
  - name: temporary
    path: /upload/{*rest}
    methods: [POST, PUT]
    redirect: {to: "https://uploads.example/{rest}", status: 307}
  - name: permanent
    path: /old-api/{*rest}
    methods: [GET, POST]
    redirect: {to: "/api/{rest}", status: 308}
  - name: default
    path: /docs
    methods: [GET]
    redirect: {to: "https://docs.example/"}
"#;

#[tokio::test]
async fn each_redirect_status_carries_its_location() {
    let gw = TestGateway::start(CONFIG).await;
    let cases = [
        (
            "GET /v1/p1/items/a/b%20c?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n",
            301,
            "/v2/p1/items/a/b%20c?x=1&y=2",
        ),
        // The target's own query comes first, the request's after it, before the fragment.
        (
            "GET /found/7?z=9 HTTP/1.1\r\nHost: h\r\n\r\n",
            302,
            "/elsewhere/7?via=found&z=9#top",
        ),
        (
            "POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            303,
            "/orders/latest",
        ),
        (
            "PUT /upload/f/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            307,
            "https://uploads.example/f/1",
        ),
        ("GET /old-api/x HTTP/1.1\r\nHost: h\r\n\r\n", 308, "/api/x"),
        (
            "GET /docs HTTP/1.1\r\nHost: h\r\n\r\n",
            301,
            "https://docs.example/",
        ),
        // Dot segments are removed before matching, so the parameters are the normalised ones.
        (
            "GET /v1/p1/items/x/../y HTTP/1.1\r\nHost: h\r\n\r\n",
            301,
            "/v2/p1/items/y",
        ),
    ];
    for (raw, status, location) in cases {
        let resp = gw.request(raw).await;
        assert_eq!(resp.status, status, "{raw}");
        assert_eq!(resp.header("location"), Some(location), "{raw}");
        assert_eq!(resp.header("content-length"), Some("0"));
        assert!(resp.body.is_empty());
        assert!(resp.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn methods_head_and_options_follow_the_route() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    c.send("HEAD /v1/p/items/q HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    let resp = c.response_to("HEAD").await;
    assert_eq!(resp.status, 301);
    assert_eq!(resp.header("location"), Some("/v2/p/items/q"));
    let resp = gw
        .request("DELETE /v1/p/items/q HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    let resp = gw
        .request("OPTIONS /old-api/x HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
}

#[tokio::test]
async fn a_body_sent_to_a_redirect_does_not_desynchronise_the_connection() {
    let gw = TestGateway::start(CONFIG).await;
    let mut c = gw.connect().await;
    // The body is never read: the answer says so and the connection ends, or the body was
    // drained; either way the bytes of the body are never taken for a request.
    c.send("POST /old-api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 33\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 308);
    assert_eq!(resp.header("location"), Some("/api/x"));
    if resp.closes() {
        assert!(c.is_closed().await);
    } else {
        c.send("GET /docs HTTP/1.1\r\nHost: h\r\n\r\n").await;
        let next = c.response().await;
        assert_eq!(next.status, 301);
        assert_eq!(next.header("location"), Some("https://docs.example/"));
    }
}

#[tokio::test]
async fn http2_clients_get_the_same_redirects() {
    let gw = TestGateway::start(CONFIG).await;
    let mut client = h2t::client(gw.addr).await;
    let resp = send(
        &mut client,
        request("GET", "http://h/found/1?a=b", &[]),
        None,
    )
    .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.header("location"),
        Some("/elsewhere/1?via=found&a=b#top")
    );
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn use_proxy_routes_answer_305_with_the_proxy_after_the_access_checks() {
    let gw = TestGateway::start(
        "projects:\n  - {name: p, consumers: [{name: c, api_keys: [key-0123456789abcdef]}]}\nroutes:\n  - {name: via-proxy, path: \"/legacy/{*rest}\", methods: [GET, POST], use_proxy: \"http://proxy.example:3128\"}\n  - {name: guarded, path: /guarded, methods: [GET], use_proxy: \"http://proxy.example:3128\", auth: api_key}\n",
    )
    .await;
    let resp = gw
        .request("GET /legacy/a?b=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(resp.status, 305);
    assert_eq!(resp.reason, "Use Proxy");
    assert_eq!(resp.header("location"), Some("http://proxy.example:3128"));
    assert!(resp.body.is_empty());
    // A route's access checks come first.
    assert_error(
        &gw.request("GET /guarded HTTP/1.1\r\nHost: h\r\n\r\n").await,
        401,
        "PTC.CREDENTIALS_MISSING",
    );
    let resp = gw
        .request("GET /guarded HTTP/1.1\r\nHost: h\r\nX-Api-Key: key-0123456789abcdef\r\n\r\n")
        .await;
    assert_eq!(resp.status, 305);
}
