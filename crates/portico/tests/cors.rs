//! CORS per route, over raw sockets and in a real browser: a preflight that passes is 204
//! with the CORS fields; one from a disallowed origin, or for a method or header the route
//! does not allow, is 403; a request from a disallowed origin is 403; an allowed one is told
//! so on every answer, errors included. Headless Chromium shows a real browser's preflight.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_testkit::{TestGateway, assert_error};

use crate::served;

const APP: &str = "http://127.0.0.1:8000";

fn config(root: &std::path::Path, app_origin: &str) -> String {
    format!(
        r#"
projects:
  - {{name: p, consumers: [{{name: c, api_keys: [key-0123456789abcdef]}}]}}
routes:
  - name: items
    path: /api/items
    methods: [GET, PUT]
    handler: echo
    cors: {{origins: ["{app_origin}"], headers: [X-Api-Key, X-Custom], max_age: 10m, expose_headers: [X-Request-Id]}}
  - name: guarded
    path: /api/guarded
    methods: [GET]
    handler: echo
    auth: api_key
    cors: {{origins: ["{app_origin}"], headers: [X-Api-Key], credentials: true}}
  - name: page
    path: /{{*file}}
    handler: static
    root: {}
"#,
        root.display()
    )
}

#[tokio::test]
async fn preflights_and_requests_follow_the_routes_cors() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(&config(dir.path(), APP)).await;
    let preflight = |origin: &str, method: &str, headers: &str| {
        format!(
            "OPTIONS /api/items HTTP/1.1\r\nHost: h\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: {headers}\r\n\r\n"
        )
    };
    let ok = gw
        .request(&preflight(APP, "PUT", "x-custom, content-type"))
        .await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert!(
        ok.header("access-control-allow-methods")
            .unwrap()
            .contains("PUT")
    );
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("x-custom, content-type")
    );
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert_eq!(ok.header("vary"), Some("Origin"));
    for (origin, method, headers) in [
        ("http://evil.example", "PUT", ""),
        (APP, "DELETE", ""),
        (APP, "PUT", "x-not-listed"),
    ] {
        assert_error(
            &gw.request(&preflight(origin, method, headers)).await,
            403,
            "PTC.CORS_PREFLIGHT_DENIED",
        );
    }
    // A plain OPTIONS is still 204 with Allow.
    let plain = gw
        .request("OPTIONS /api/items HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!((plain.status, plain.header("allow").is_some()), (204, true));

    // The requests themselves.
    let get = |origin: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: h\r\nOrigin: {origin}\r\n\r\n")
    };
    let resp = gw.request(&get(APP, "/api/items")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("X-Request-Id")
    );
    assert_error(
        &gw.request(&get("http://evil.example", "/api/items")).await,
        403,
        "PTC.CORS_ORIGIN_DENIED",
    );
    // An error answer carries the CORS fields too, so that the page can read it.
    let resp = gw.request(&get(APP, "/api/guarded")).await;
    assert_error(&resp, 401, "PTC.CREDENTIALS_MISSING");
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    // Without an Origin (not a browser's cross-origin request), nothing changes.
    let resp = gw
        .request("GET /api/items HTTP/1.1\r\nHost: h\r\n\r\n")
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_preflights_and_is_answered() {
    let Some(browser) = served::chromium("the browser half of the CORS test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The page is served from 127.0.0.1; it calls the API as `localhost`, another origin.
    let mut gw = TestGateway::start(&config(dir.path(), "http://127.0.0.1:PORT")).await;
    let port = gw.addr.port();
    // The allowed origin must name the real port: reload with it.
    let origin = format!("http://127.0.0.1:{port}");
    gw.reload(&config(dir.path(), &origin));
    let api = format!("http://localhost:{port}");
    std::fs::write(
        dir.path().join("page.html"),
        format!(
            r#"<!doctype html><html><body><pre id="allowed">pending</pre><pre id="refused">pending</pre><script>
fetch("{api}/api/items", {{method: "PUT", headers: {{"X-Custom": "1", "Content-Type": "application/json"}}, body: "{{}}"}})
  .then(r => r.json().then(j => {{ document.getElementById("allowed").textContent = "status " + r.status + " route " + j.route; }}))
  .catch(e => {{ document.getElementById("allowed").textContent = "failed " + e; }});
fetch("{api}/api/items", {{method: "PUT", headers: {{"X-Not-Listed": "1"}}}})
  .then(r => {{ document.getElementById("refused").textContent = "status " + r.status; }})
  .catch(e => {{ document.getElementById("refused").textContent = "failed " + e.name; }});
</script></body></html>"#
        ),
    )
    .unwrap();
    let page = format!("{origin}/page.html");
    let profile = dir.path().join("profile");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(browser)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(page)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#"<pre id="allowed">status 200 route items</pre>"#),
        "{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains(r#"<pre id="refused">failed TypeError</pre>"#),
        "{dom}"
    );
    // The browser asked first: its preflights are in the access log.
    let mut preflights = 0;
    while let Ok(line) = gw.log.try_recv() {
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        if line["method"] == "OPTIONS" && line["path"] == "/api/items" {
            preflights += 1;
        }
    }
    assert_eq!(preflights, 2);
}
