//! Routes from an API's OpenAPI document: 404 and 405 from its paths, 400 for parameters,
//! 415, 400 and 422 for bodies, 406 from what it produces, responses checked against it, and
//! `transform` (203). Each refusal comes before anything is sent upstream.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;

use portico_testkit::{MockUpstream, Reply, TestGateway, assert_error};
use serde_json::{Value, json};

const PETSTORE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/openapi/petstore.yaml"
);

fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
upstreams:
  - name: pets
    targets: ["http://{upstream}"]
routes:
  - name: pets
    path: /api
    openapi: {PETSTORE}
    upstream: pets
{extra}"#
    )
}

fn request(method: &str, target: &str, headers: &str, body: &str) -> String {
    let length = if body.is_empty() && method == "GET" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    format!("{method} {target} HTTP/1.1\r\nHost: a\r\n{headers}{length}\r\n{body}")
}

fn json_reply(status: &str, headers: &str, body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn errors(resp: &portico_testkit::RawResponse) -> Vec<Value> {
    resp.json()["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_documents_paths_are_the_routes_404_and_405_with_allow() {
    let mut up = MockUpstream::start(|_| json_reply("200 OK", "", "[]")).await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let resp = gw.request(&request("GET", "/api/pets", "", "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.line, "GET /api/pets HTTP/1.1");
    let resp = gw.request(&request("GET", "/api/owners", "", "")).await;
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
    let resp = gw.request(&request("PUT", "/api/pets", "", "{}")).await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    assert_eq!(resp.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    let resp = gw.request(&request("PATCH", "/api/pets/1", "", "{}")).await;
    assert_eq!(resp.header("allow"), Some("GET, HEAD, DELETE, OPTIONS"));
}

#[tokio::test]
async fn bad_parameters_are_400_listing_every_problem_before_the_upstream() {
    let mut up = MockUpstream::start(|_| json_reply("200 OK", "", "[]")).await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let resp = gw
        .request(&request(
            "GET",
            "/api/pets?limit=0&filter[age]=old&tags=a,b",
            "",
            "",
        ))
        .await;
    assert_error(&resp, 400, "PTC.PARAMETER_INVALID");
    let listed = errors(&resp);
    let found: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|e| {
            (
                e["in"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
                e["pointer"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [("query", "limit", ""), ("query", "filter", "/age")],
        "{listed:?}"
    );
    assert!(resp.json()["detail"].as_str().unwrap().contains("limit"));
    // Path parameters, by their schema.
    let resp = gw.request(&request("GET", "/api/pets/0", "", "")).await;
    assert_error(&resp, 400, "PTC.PARAMETER_INVALID");
    assert_eq!(errors(&resp)[0]["in"], "path");
    let resp = gw.request(&request("GET", "/api/pets/rex", "", "")).await;
    assert_error(&resp, 400, "PTC.PARAMETER_INVALID");
    // Decided from the head: with `Expect: 100-continue`, no 100 and the body never read.
    let mut c = gw.connect().await;
    c.send("GET /api/pets?limit=500 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 400, "PTC.PARAMETER_INVALID");
    // None of these reached the upstream: the next request it sees is this one.
    let resp = gw
        .request(&request(
            "GET",
            "/api/pets?limit=5&tags=a,b&filter[age]=3",
            "",
            "",
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        up.next().await.line,
        "GET /api/pets?limit=5&tags=a,b&filter[age]=3 HTTP/1.1"
    );
    let resp = gw.request(&request("GET", "/api/pets/7", "", "")).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn bodies_are_415_400_or_422_by_the_operations_request_body() {
    let mut up = MockUpstream::start(|r| {
        json_reply(
            "201 Created",
            "",
            &String::from_utf8_lossy(&r.body).replace('{', "{\"id\":1,"),
        )
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let json_ct = "Content-Type: application/json\r\n";
    // 415 from the head, with what it takes in `Accept`.
    let resp = gw
        .request(&request(
            "POST",
            "/api/pets",
            "Content-Type: text/plain\r\n",
            "rex",
        ))
        .await;
    assert_error(&resp, 415, "PTC.UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(resp.header("accept"), Some("application/json"));
    // A required body that is not there.
    let resp = gw.request(&request("POST", "/api/pets", json_ct, "")).await;
    assert_error(&resp, 400, "PTC.BODY_REQUIRED");
    // Not JSON; nested deeper than any parser should follow.
    let resp = gw
        .request(&request("POST", "/api/pets", json_ct, "{\"name\": "))
        .await;
    assert_error(&resp, 400, "PTC.BODY_MALFORMED");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let resp = gw
        .request(&request("POST", "/api/pets", json_ct, &deep))
        .await;
    assert_error(&resp, 400, "PTC.BODY_MALFORMED");
    // Every violation, with where it is in the body and in the document.
    let resp = gw
        .request(&request(
            "POST",
            "/api/pets",
            json_ct,
            r#"{"id": 9, "name": "", "tag": "fish", "owner_email": "nobody", "color": "red"}"#,
        ))
        .await;
    assert_error(&resp, 422, "PTC.SCHEMA_INVALID");
    let mut found: Vec<(String, String)> = errors(&resp)
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_string(),
                e["keyword"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("/color".to_string(), "additionalProperties".to_string()),
            ("/id".to_string(), "readOnly".to_string()),
            ("/name".to_string(), "minLength".to_string()),
            ("/owner_email".to_string(), "format".to_string()),
            ("/tag".to_string(), "enum".to_string()),
        ]
    );
    let tag = errors(&resp)
        .into_iter()
        .find(|e| e["keyword"] == "enum")
        .unwrap();
    assert_eq!(
        tag["schema"],
        "petstore.yaml#/components/schemas/Pet/properties/tag/enum"
    );
    // A valid body reaches the upstream as it was sent.
    let body = r#"{"name": "rex", "tag": "dog"}"#;
    let resp = gw
        .request(&request("POST", "/api/pets", json_ct, body))
        .await;
    assert_eq!(resp.status, 201);
    assert_eq!(up.next().await.body, body.as_bytes());
}

#[tokio::test]
async fn accept_is_held_to_what_the_operation_produces() {
    let up = MockUpstream::start(|_| json_reply("200 OK", "", "[]")).await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let resp = gw
        .request(&request("GET", "/api/pets", "Accept: text/html\r\n", ""))
        .await;
    assert_error(&resp, 406, "PTC.NOT_ACCEPTABLE");
    assert_eq!(resp.json()["available"], json!(["application/json"]));
    let resp = gw
        .request(&request(
            "GET",
            "/api/pets",
            "Accept: application/*\r\n",
            "",
        ))
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn responses_the_document_does_not_allow_are_502_when_enforced_and_counted_when_reported() {
    let up = MockUpstream::start(|r| match r.line.as_str() {
        l if l.contains("/pets/1 ") => json_reply("200 OK", "", r#"{"id": 1, "name": 5}"#),
        l if l.contains("/pets/2 ") => json_reply("418 I'm a teapot", "", "{}"),
        l if l.contains("/pets/3 ") => Reply::ok("not json"),
        _ => json_reply("200 OK", "", r#"{"id": 4, "name": "rex"}"#),
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "    validate_responses: enforce\n")).await;
    for id in [1, 2, 3] {
        let resp = gw
            .request(&request("GET", &format!("/api/pets/{id}"), "", ""))
            .await;
        assert_error(&resp, 502, "PTC.UPSTREAM_RESPONSE_INVALID");
        // Where the response broke the document is logged, never its body.
    }
    let resp = gw.request(&request("GET", "/api/pets/4", "", "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({"id": 4, "name": "rex"}));

    let counts = std::sync::Arc::new(portico_gateway::BodyCounts::default());
    let shared = counts.clone();
    let gw = TestGateway::start_with(&config(up.addr, "    validate_responses: report\n"), |g| {
        g.with_body_counts(shared)
    })
    .await;
    let resp = gw.request(&request("GET", "/api/pets/1", "", "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({"id": 1, "name": 5}));
    let resp = gw.request(&request("GET", "/api/pets/2", "", "")).await;
    assert_eq!(resp.status, 418);
    let resp = gw.request(&request("GET", "/api/pets/4", "", "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(counts.snapshot()["response_violations"], 2);
}

#[tokio::test]
async fn write_only_properties_never_leave_and_the_200_becomes_203() {
    let up = MockUpstream::start(|_| {
        json_reply(
            "200 OK",
            "ETag: \"v1\"\r\nContent-Digest: sha-256=:x:\r\n",
            r#"{"id": 1, "name": "rex", "microchip": "985112345"}"#,
        )
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let resp = gw.request(&request("GET", "/api/pets/1", "", "")).await;
    assert_eq!(resp.status, 203);
    assert_eq!(resp.json(), json!({"id": 1, "name": "rex"}));
    assert_eq!(resp.header("etag"), Some("W/\"v1\""));
    assert_eq!(resp.header("content-digest"), None);
    assert_eq!(
        resp.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        resp.body.len()
    );
}

fn transform_config(upstream: SocketAddr) -> String {
    format!(
        r#"
upstreams:
  - name: up
    targets: ["http://{upstream}"]
routes:
  - name: accounts
    path: /accounts/{{*rest}}
    methods: [GET]
    upstream: up
    transform:
      remove: [/items/*/secret]
      rename: {{/items/*/nm: name}}
      add: {{/masked: true}}
      max_bytes: 1KiB
"#
    )
}

#[tokio::test]
async fn a_transformed_200_is_203_with_a_weak_etag_and_no_digest() {
    let big = format!(r#"{{"items": [], "pad": "{}"}}"#, "x".repeat(2000));
    let up = MockUpstream::start(move |r| match r.line.as_str() {
        l if l.contains("/json ") => json_reply(
            "200 OK",
            "ETag: \"abc\"\r\nContent-Digest: sha-256=:AAAA:\r\n",
            r#"{"items": [{"nm": "a", "secret": "s1"}, {"nm": "b", "secret": "s2"}]}"#,
        ),
        l if l.contains("/text ") => Reply::ok("plain"),
        l if l.contains("/big ") => json_reply("200 OK", "", &big),
        _ => json_reply("404 Not Found", "", r#"{"items": [{"secret": "s"}]}"#),
    })
    .await;
    let gw = TestGateway::start(&transform_config(up.addr)).await;
    let resp = gw.request(&request("GET", "/accounts/json", "", "")).await;
    assert_eq!(resp.status, 203);
    assert_eq!(
        resp.json(),
        json!({"items": [{"name": "a"}, {"name": "b"}], "masked": true})
    );
    assert_eq!(resp.header("etag"), Some("W/\"abc\""));
    assert_eq!(resp.header("content-digest"), None);
    assert_eq!(
        resp.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        resp.body.len()
    );
    // HEAD says what GET would.
    let mut c = gw.connect().await;
    c.send("HEAD /accounts/json HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let head = c.response_to("HEAD").await;
    assert_eq!(head.status, 203);
    assert_eq!(head.header("etag"), Some("W/\"abc\""));
    // Not JSON, too large, or not a 200: relayed as they came.
    let resp = gw.request(&request("GET", "/accounts/text", "", "")).await;
    assert_eq!((resp.status, resp.body.as_slice()), (200, &b"plain"[..]));
    let resp = gw.request(&request("GET", "/accounts/big", "", "")).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body.len() > 2000);
    let resp = gw.request(&request("GET", "/accounts/other", "", "")).await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json(), json!({"items": [{"secret": "s"}]}));
}

#[tokio::test]
async fn http2_requests_are_checked_the_same_way() {
    use portico_testkit::h2::{client, request as h2_request, send};
    let mut up = MockUpstream::start(|r| {
        json_reply(
            "201 Created",
            "",
            &String::from_utf8_lossy(&r.body).replace('{', "{\"id\":1,"),
        )
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "")).await;
    let mut h2 = client(gw.addr).await;
    let json_ct = [("content-type", "application/json")];
    let resp = send(
        &mut h2,
        h2_request("POST", "http://h/api/pets", &json_ct),
        Some(br#"{"name": 5}"#),
    )
    .await;
    resp.assert_error(422, "PTC.SCHEMA_INVALID");
    assert_eq!(resp.json()["errors"][0]["pointer"], "/name");
    let resp = send(
        &mut h2,
        h2_request("GET", "http://h/api/pets?limit=x", &[]),
        None,
    )
    .await;
    resp.assert_error(400, "PTC.PARAMETER_INVALID");
    let resp = send(
        &mut h2,
        h2_request("POST", "http://h/api/pets", &json_ct),
        Some(br#"{"name": "rex"}"#),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(up.next().await.body, br#"{"name": "rex"}"#);
}
