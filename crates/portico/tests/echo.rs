//! The built-in echo handler and the access log.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_testkit::TestGateway;

const CONFIG: &str = r#"
routes:
  - name: item
    path: /v1/{project_id}/items/{item_id}
    methods: [GET, PUT]
    handler: echo
"#;

#[tokio::test]
async fn echo_returns_the_request_as_json() {
    let gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("PUT /v1/p1/items/i9?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Tag: a\r\nX-Tag: b\r\nContent-Length: 4\r\n\r\nbody")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["path"], "/v1/p1/items/i9");
    assert_eq!(v["query"], "x=1&y=2");
    assert_eq!(v["route"], "item");
    assert_eq!(v["params"]["project_id"], "p1");
    assert_eq!(v["params"]["item_id"], "i9");
    assert_eq!(v["headers"]["host"], "example.com");
    assert_eq!(v["headers"]["x-tag"], "a, b");
    assert_eq!(v["body_length"], 4);
}

#[tokio::test]
async fn every_request_gets_one_access_log_line() {
    let mut gw = TestGateway::start(CONFIG).await;
    let resp = gw
        .request("GET /v1/p1/items/i9?api_key=secret HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let line = gw.next_log().await;
    assert_eq!(line["method"], "GET");
    assert_eq!(
        line["path"], "/v1/p1/items/i9",
        "the query (it may hold secrets) is not logged"
    );
    assert!(!line.to_string().contains("secret"));
    assert_eq!(line["status"], 200);
    assert_eq!(line["error_code"], serde_json::Value::Null);
    assert_eq!(line["route"], "item");
    assert_eq!(line["request_id"], resp.header("x-request-id").unwrap());
    assert!(line["bytes_in"].as_u64().unwrap() > 30);
    assert!(line["bytes_out"].as_u64().unwrap() > resp.body.len() as u64);
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));

    let resp = gw.request("GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let line = gw.next_log().await;
    assert_eq!(line["status"], 404);
    assert_eq!(line["error_code"], "PTC.ROUTE_NOT_FOUND");
    assert_eq!(line["request_id"], resp.json()["request_id"]);

    // A request that never parsed is logged too.
    let resp = gw.request("GET / HTTP/9.9\r\n\r\n").await;
    let line = gw.next_log().await;
    assert_eq!(line["status"], 505);
    assert_eq!(line["method"], serde_json::Value::Null);
    assert_eq!(line["request_id"], resp.header("x-request-id").unwrap());
}
