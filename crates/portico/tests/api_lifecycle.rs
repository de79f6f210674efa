//! API lifecycle on the data plane: version discovery (300), deprecated versions (`Deprecation`,
//! `Sunset`), retired (410), disabled (503 without `Retry-After`) and maintenance windows (503
//! with `Retry-After` to the window's end).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_testkit::{TestGateway, assert_error};

/// `t` as RFC 3339 (`2027-01-31T08:00:00Z`), for windows relative to now.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = portico_http::civil::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn config() -> String {
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    format!(
        r#"
apis:
  - name: compute
    base_path: /compute
    versions:
      - {{id: v3, status: published}}
      - id: v2
        status: published
        maintenance: {{start: "{started}", end: "{ends}"}}
      - id: v1
        status: deprecated
        deprecated_at: "2026-01-01T00:00:00Z"
        sunset: "2027-01-01T00:00:00Z"
        maintenance: {{start: "{past_start}", end: "{past_end}"}}
      - {{id: v0, status: retired}}
      - {{id: v9, status: disabled}}
  - name: single
    base_path: /single
    versions:
      - {{id: v1, status: published}}
routes:
  - name: compute
    path: /compute/{{version}}/{{*rest}}
    methods: [GET, POST]
    handler: echo
  - name: single
    path: /single/{{*rest}}
    methods: [GET]
    handler: echo
"#,
        started = rfc3339(now - hour),
        ends = rfc3339(now + hour),
        past_start = rfc3339(now - 3 * hour),
        past_end = rfc3339(now - 2 * hour),
    )
}

#[tokio::test]
async fn the_base_path_lists_the_versions_with_300() {
    let gw = TestGateway::start(&config()).await;
    for raw in [
        "GET /compute HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /compute/ HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        let resp = gw.request(raw).await;
        assert_eq!(resp.status, 300, "{raw}");
        assert_eq!(resp.header("location"), Some("/compute/v3/"));
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body = resp.json();
        let versions = body["versions"].as_array().unwrap();
        let listed: Vec<(&str, &str)> = versions
            .iter()
            .map(|v| (v["id"].as_str().unwrap(), v["status"].as_str().unwrap()))
            .collect();
        // Retired versions are not offered.
        assert_eq!(
            listed,
            [
                ("v3", "CURRENT"),
                ("v2", "SUPPORTED"),
                ("v1", "DEPRECATED"),
                ("v9", "DISABLED")
            ]
        );
        assert_eq!(versions[0]["links"][0]["href"], "/compute/v3/");
        assert_eq!(versions[2]["sunset"], "Fri, 01 Jan 2027 00:00:00 GMT");
    }
    // HEAD: the same head, no body.
    let mut c = gw.connect().await;
    c.send("HEAD /compute HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let resp = c.response_to("HEAD").await;
    assert_eq!(resp.status, 300);
    assert!(resp.body.is_empty());
    // Only GET and HEAD discover; one served version is nothing to choose from.
    let resp = gw
        .request("POST /compute HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
    let resp = gw.request("GET /single HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_error(&resp, 404, "PTC.ROUTE_NOT_FOUND");
}

#[tokio::test]
async fn published_and_deprecated_versions_are_served() {
    let gw = TestGateway::start(&config()).await;
    let resp = gw
        .request("GET /compute/v3/servers HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    assert!(resp.header("deprecation").is_none());
    assert!(resp.header("sunset").is_none());
    // A maintenance window that is over changes nothing.
    let resp = gw
        .request("GET /compute/v1/servers HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("deprecation"), Some("@1767225600"));
    assert_eq!(resp.header("sunset"), Some("Fri, 01 Jan 2027 00:00:00 GMT"));
    // On errors too.
    let resp = gw
        .request("DELETE /compute/v1/servers HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    assert_eq!(resp.header("deprecation"), Some("@1767225600"));
    // A segment that only starts like a version is not that version.
    let resp = gw
        .request("GET /compute/v0x/servers HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn retired_disabled_and_maintained_versions_are_refused() {
    let gw = TestGateway::start(&config()).await;
    let resp = gw
        .request("GET /compute/v0/servers HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_error(&resp, 410, "PTC.API_VERSION_RETIRED");
    let resp = gw
        .request("GET /compute/v9 HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_error(&resp, 503, "PTC.API_VERSION_DISABLED");
    assert!(resp.header("retry-after").is_none());
    // Dot segments are removed first: this is v0.
    let resp = gw
        .request("GET /compute/v3/../v0/servers HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_error(&resp, 410, "PTC.API_VERSION_RETIRED");

    let resp = gw
        .request("POST /compute/v2/servers HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_error(&resp, 503, "PTC.API_VERSION_MAINTENANCE");
    let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    // The window ends an hour after the configuration was written (whole seconds, up).
    assert!((3500..=3600).contains(&retry), "Retry-After: {retry}");
}
