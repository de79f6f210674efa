//! The admin API over real sockets, on a SQLite store in a temporary directory: authentication,
//! the resource semantics (201, 304, 409, 410, 412, 422, paging), the resources nested in a
//! project (consumers, their credentials), plans, and the data plane's model (upstreams,
//! routes, APIs).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portico_admin::Admin;
use portico_http::HeadLimits;
use portico_server::{ConnSettings, Listener, serve_all};
use portico_store::SqliteStore;
use portico_testkit::{RawClient, RawResponse, assert_error};
use serde_json::Value;
use sha2::{Digest, Sha256};

const TOKEN: &str = "an-admin-token-for-tests";

struct AdminApi {
    addr: SocketAddr,
    admin: Arc<Admin<SqliteStore>>,
    dir: tempfile::TempDir,
}

impl AdminApi {
    async fn start() -> AdminApi {
        AdminApi::start_with(None).await
    }

    /// With upstreams and routes, joining the model of the configuration `yaml`.
    async fn start_with(yaml: Option<&str>) -> AdminApi {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("portico.db"))
            .await
            .unwrap();
        let settings = Arc::new(ConnSettings {
            head: HeadLimits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            max_connections: 100,
            http2: None,
        });
        let mut admin = Admin::new(store, Sha256::digest(TOKEN).into(), settings)
            .with_prometheus(Arc::new(portico_telemetry::Metrics::new(&[0.1, 1.0])));
        if let Some(yaml) = yaml {
            let base = portico_config::from_str(yaml, "base.yaml").unwrap();
            admin = admin.with_model(Arc::new(arc_swap::ArcSwap::from_pointee(base)));
        }
        let admin = Arc::new(admin);
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        tokio::spawn(serve_all(
            vec![Listener::plain(tcp)],
            admin.clone(),
            Duration::from_secs(1),
            std::future::pending(),
        ));
        AdminApi { addr, admin, dir }
    }

    /// Sends a request with the admin token and `fields` (each `Name: value`).
    async fn send(
        &self,
        method: &str,
        path: &str,
        fields: &[&str],
        body: Option<&str>,
    ) -> RawResponse {
        let mut raw =
            format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n");
        for f in fields {
            raw.push_str(f);
            raw.push_str("\r\n");
        }
        if let Some(b) = body {
            raw.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        raw.push_str("\r\n");
        raw.push_str(body.unwrap_or(""));
        let mut c = RawClient::connect(self.addr).await;
        c.send(raw).await;
        c.response_to(method).await
    }

    async fn create(&self, json: &str) -> RawResponse {
        self.send(
            "POST",
            "/admin/v1/projects",
            &["Content-Type: application/json"],
            Some(json),
        )
        .await
    }
}

#[tokio::test]
async fn every_request_needs_the_bearer_token() {
    let api = AdminApi::start().await;
    let mut c = RawClient::connect(api.addr).await;
    c.send("GET /admin/v1/projects HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 401, "PTC.ADMIN_TOKEN_MISSING");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"portico-admin\"")
    );
    let mut c = RawClient::connect(api.addr).await;
    c.send("GET /admin/v1/projects HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer an-admin-token-for-testz\r\n\r\n")
        .await;
    let resp = c.response().await;
    assert_error(&resp, 401, "PTC.ADMIN_TOKEN_INVALID");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"portico-admin\", error=\"invalid_token\"")
    );
    // The token never shows in an answer.
    assert!(!String::from_utf8_lossy(&resp.body).contains("an-admin-token"));
    let resp = api.send("GET", "/admin/v1/projects", &[], None).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn create_read_update_delete_with_the_contracts_codes() {
    let api = AdminApi::start().await;
    let resp = api.create(r#"{"name": "acme"}"#).await;
    assert_eq!(resp.status, 201);
    let body = resp.json();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(
        resp.header("location"),
        Some(format!("/admin/v1/projects/{id}").as_str())
    );
    assert_eq!(resp.header("etag"), Some("\"v1\""));
    assert_eq!(
        (body["billing_state"].as_str(), body["plan"].as_str()),
        (Some("active"), Some("free"))
    );
    assert_eq!(body["version"], 1);
    // The name is taken now.
    assert_error(
        &api.create(r#"{"name": "acme"}"#).await,
        409,
        "PTC.NAME_TAKEN",
    );

    let item = format!("/admin/v1/projects/{id}");
    let resp = api.send("GET", &item, &[], None).await;
    assert_eq!((resp.status, resp.header("etag")), (200, Some("\"v1\"")));
    let resp = api
        .send("GET", &item, &["If-None-Match: \"v1\""], None)
        .await;
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());

    // Preconditions on writes.
    let json = ["Content-Type: application/json"];
    let resp = api
        .send(
            "PUT",
            &item,
            &[json[0], "If-Match: \"v9\""],
            Some(r#"{"name": "acme"}"#),
        )
        .await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");
    let resp = api
        .send(
            "PUT",
            &item,
            &[json[0], "If-None-Match: *"],
            Some(r#"{"name": "acme"}"#),
        )
        .await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");

    // PATCH is a merge patch; the version moves on.
    let resp = api
        .send(
            "PATCH",
            &item,
            &[
                "Content-Type: application/merge-patch+json",
                "If-Match: \"v1\"",
            ],
            Some(r#"{"plan": "pro", "description": "d"}"#),
        )
        .await;
    assert_eq!(resp.status, 200);
    let body = resp.json();
    assert_eq!(
        (
            body["plan"].as_str(),
            body["name"].as_str(),
            body["version"].as_u64()
        ),
        (Some("pro"), Some("acme"), Some(2))
    );
    assert_eq!(resp.header("etag"), Some("\"v2\""));
    // A body that says it read version 1 is stale.
    let resp = api
        .send(
            "PATCH",
            &item,
            &json,
            Some(r#"{"plan": "free", "version": 1}"#),
        )
        .await;
    assert_error(&resp, 409, "PTC.VERSION_CONFLICT");
    assert_eq!(resp.json()["current_version"], 2);
    // PUT replaces: what is not sent goes back to its default.
    let resp = api
        .send(
            "PUT",
            &item,
            &json,
            Some(r#"{"name": "acme-2", "version": 2}"#),
        )
        .await;
    assert_eq!(resp.status, 200);
    let body = resp.json();
    assert_eq!(
        (body["plan"].as_str(), body.get("description")),
        (Some("free"), None)
    );

    // Delete: 204, then 410; an id that never was: 404.
    let resp = api.send("DELETE", &item, &["If-Match: \"v2\""], None).await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");
    let resp = api.send("DELETE", &item, &["If-Match: \"v3\""], None).await;
    assert_eq!(resp.status, 204);
    assert_error(
        &api.send("GET", &item, &[], None).await,
        410,
        "PTC.RESOURCE_GONE",
    );
    assert_error(
        &api.send("PATCH", &item, &json, Some("{}")).await,
        410,
        "PTC.RESOURCE_GONE",
    );
    let never = format!("/admin/v1/projects/{}", "0".repeat(32));
    assert_error(
        &api.send("GET", &never, &[], None).await,
        404,
        "PTC.RESOURCE_NOT_FOUND",
    );
    // The name is free again.
    assert_eq!(api.create(r#"{"name": "acme"}"#).await.status, 201);
}

#[tokio::test]
async fn bad_bodies_get_400_415_and_422_with_every_violation() {
    let api = AdminApi::start().await;
    assert_error(&api.create("{\"name\": ").await, 400, "PTC.JSON_MALFORMED");
    assert_error(&api.create("[1, 2]").await, 400, "PTC.JSON_MALFORMED");
    let resp = api
        .send(
            "POST",
            "/admin/v1/projects",
            &["Content-Type: text/plain"],
            Some("{}"),
        )
        .await;
    assert_error(&resp, 415, "PTC.UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(resp.header("accept"), Some("application/json"));
    let resp = api
        .create(r#"{"name": "no spaces allowed", "billing_state": "gone", "colour/x": 1}"#)
        .await;
    assert_error(&resp, 422, "PTC.VALIDATION_FAILED");
    let json = resp.json();
    let mut got: Vec<String> = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["/billing_state", "/colour~1x", "/name"]);
    let resp = api.send("DELETE", "/admin/v1/projects", &[], None).await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    assert_eq!(resp.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    assert_error(
        &api.send("GET", "/admin/v1/nothing", &[], None).await,
        404,
        "PTC.ROUTE_NOT_FOUND",
    );
}

#[tokio::test]
async fn lists_page_with_limit_and_marker_and_revalidate() {
    let api = AdminApi::start().await;
    for i in 0..5 {
        assert_eq!(
            api.create(&format!(r#"{{"name": "p{i}"}}"#)).await.status,
            201
        );
    }
    let mut seen = Vec::new();
    let mut next = Some("/admin/v1/projects?limit=2".to_string());
    while let Some(url) = next {
        let resp = api.send("GET", &url, &[], None).await;
        assert_eq!(resp.status, 200);
        let page = resp.json();
        for p in page["projects"].as_array().unwrap() {
            seen.push(p["name"].as_str().unwrap().to_string());
        }
        next = page.get("next").and_then(Value::as_str).map(str::to_string);
    }
    seen.sort();
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4"]);

    let resp = api.send("GET", "/admin/v1/projects", &[], None).await;
    let tag = resp.header("etag").unwrap().to_string();
    let cond = format!("If-None-Match: {tag}");
    assert_eq!(
        api.send("GET", "/admin/v1/projects", &[&cond], None)
            .await
            .status,
        304
    );
    api.create(r#"{"name": "p5"}"#).await;
    assert_eq!(
        api.send("GET", "/admin/v1/projects", &[&cond], None)
            .await
            .status,
        200
    );
    assert_error(
        &api.send("GET", "/admin/v1/projects?limit=0", &[], None)
            .await,
        422,
        "PTC.VALIDATION_FAILED",
    );
}

/// The OpenAPI document's schema subset Portico uses: `$ref`, `type`, `required`,
/// `properties`, `items`, `enum`, `maxLength`. Returns what does not conform.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {r}"));
        return conforms(doc, target, value, at, problems);
    }
    let ok_type = match schema.get("type").and_then(Value::as_str) {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("schema type {other} not handled"),
        None => true,
    };
    if !ok_type {
        problems.push(format!("{at}: {value} is not {}", schema["type"]));
        return;
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        problems.push(format!("{at}: {value} not in {values:?}"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && value.as_str().is_some_and(|s| s.len() as u64 > max)
    {
        problems.push(format!("{at}: longer than {max}"));
    }
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap();
        if value.get(name).is_none() {
            problems.push(format!("{at}: `{name}` missing"));
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (k, v) in obj {
            if let Some(s) = props.get(k) {
                conforms(doc, s, v, &format!("{at}/{k}"), problems);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}/{i}"), problems);
        }
    }
}

/// The document's operation for a concrete path (`{id}` matches one segment).
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> (&'a str, &'a Value) {
    let path = path.split('?').next().unwrap();
    for (template, item) in doc["paths"].as_object().unwrap() {
        let t: Vec<&str> = template.split('/').collect();
        let p: Vec<&str> = path.split('/').collect();
        let matches = t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(a, b)| a == b || (a.starts_with('{') && !b.is_empty()));
        if matches && let Some(op) = item.get(method.to_ascii_lowercase()) {
            return (template, op);
        }
    }
    panic!("{method} {path} is not in the OpenAPI document");
}

#[tokio::test]
async fn the_openapi_document_matches_the_real_responses() {
    let base = "upstreams:\n  - {name: file-up, targets: [\"http://127.0.0.1:9000\"]}\nroutes:\n  - {name: file-route, path: /file, methods: [GET], upstream: file-up}\n";
    let api = AdminApi::start_with(Some(base)).await;
    let resp = api.send("GET", "/admin/v1/openapi.json", &[], None).await;
    assert_eq!(resp.status, 200);
    let doc: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(portico_admin::openapi()).unwrap()
    );

    // A scenario that reaches every operation and most of its documented answers.
    let json = "Content-Type: application/json";
    let mut exercised = std::collections::BTreeSet::new();
    let mut check = |method: &str, path: &str, resp: &RawResponse| {
        let (template, op) = operation(&doc, method, path);
        exercised.insert(format!("{method} {template}"));
        let documented = &op["responses"][resp.status.to_string()];
        assert!(
            !documented.is_null(),
            "{method} {path}: {} is not documented",
            resp.status
        );
        let documented = match documented.get("$ref").and_then(Value::as_str) {
            Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
            None => documented,
        };
        let content_type = resp.header("content-type").unwrap_or_default();
        if let Some(media) = documented["content"]
            .as_object()
            .filter(|c| !c.contains_key("application/json"))
        {
            assert!(
                media.contains_key(content_type),
                "{method} {path}: {content_type} is not documented"
            );
        } else if let Some(schema) = documented.pointer("/content/application~1json/schema") {
            let body: Value = serde_json::from_slice(&resp.body).unwrap();
            let mut problems = Vec::new();
            conforms(&doc, schema, &body, "", &mut problems);
            assert!(
                problems.is_empty(),
                "{method} {path} {}: {problems:?}",
                resp.status
            );
        } else {
            assert!(
                resp.body.is_empty(),
                "{method} {path}: an undocumented body"
            );
        }
    };
    check("GET", "/admin/v1/openapi.json", &resp);
    let created = api.create(r#"{"name": "doc"}"#).await;
    check("POST", "/admin/v1/projects", &created);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let item = format!("/admin/v1/projects/{id}");
    let steps: Vec<(&str, String, Vec<&str>, Option<&str>)> = vec![
        (
            "POST",
            "/admin/v1/projects".into(),
            vec![json],
            Some(r#"{"name": "doc"}"#),
        ),
        ("POST", "/admin/v1/projects".into(), vec![json], Some("{")),
        (
            "POST",
            "/admin/v1/projects".into(),
            vec!["Content-Type: text/plain"],
            Some("{}"),
        ),
        (
            "POST",
            "/admin/v1/projects".into(),
            vec![json],
            Some(r#"{"name": 1}"#),
        ),
        ("GET", "/admin/v1/projects?limit=1".into(), vec![], None),
        ("GET", "/admin/v1/projects?limit=0".into(), vec![], None),
        ("GET", item.clone(), vec![], None),
        ("GET", item.clone(), vec!["If-None-Match: \"v1\""], None),
        ("GET", item.clone(), vec!["If-Match: \"v7\""], None),
        (
            "PUT",
            item.clone(),
            vec![json],
            Some(r#"{"name": "doc", "plan": "pro"}"#),
        ),
        (
            "PUT",
            item.clone(),
            vec![json],
            Some(r#"{"name": "doc", "version": 1}"#),
        ),
        (
            "PATCH",
            item.clone(),
            vec![json, "If-Match: \"v1\""],
            Some("{}"),
        ),
        (
            "PATCH",
            item.clone(),
            vec!["Content-Type: application/merge-patch+json"],
            Some(r#"{"description": "x"}"#),
        ),
        ("DELETE", item.clone(), vec!["If-Match: \"v1\""], None),
        ("DELETE", item.clone(), vec![], None),
        ("GET", item.clone(), vec![], None),
        (
            "DELETE",
            format!("/admin/v1/projects/{}", "0".repeat(32)),
            vec![],
            None,
        ),
    ];
    for (method, path, fields, body) in steps {
        let resp = api.send(method, &path, &fields, body).await;
        check(method, &path, &resp);
    }
    // The data plane's model: upstreams and routes.
    let up = api
        .send(
            "POST",
            "/admin/v1/upstreams",
            &[json],
            Some(r#"{"name": "u", "targets": ["http://127.0.0.1:9"]}"#),
        )
        .await;
    check("POST", "/admin/v1/upstreams", &up);
    let up_item = format!("/admin/v1/upstreams/{}", up.json()["id"].as_str().unwrap());
    let route = api
        .send(
            "POST",
            "/admin/v1/routes",
            &[json],
            Some(r#"{"name": "r", "path": "/r", "methods": ["GET"], "upstream": "u"}"#),
        )
        .await;
    check("POST", "/admin/v1/routes", &route);
    let route_item = format!("/admin/v1/routes/{}", route.json()["id"].as_str().unwrap());
    let model_steps: Vec<(&str, String, Vec<&str>, Option<&str>)> = vec![
        (
            "POST",
            "/admin/v1/routes".into(),
            vec![json],
            Some(r#"{"name": "x", "path": "/file", "methods": ["GET"], "upstream": "u"}"#),
        ),
        ("GET", "/admin/v1/upstreams".into(), vec![], None),
        ("GET", "/admin/v1/routes".into(), vec![], None),
        ("GET", up_item.clone(), vec![], None),
        ("GET", route_item.clone(), vec![], None),
        (
            "PUT",
            up_item.clone(),
            vec![json],
            Some(r#"{"name": "u", "targets": ["http://127.0.0.1:10"]}"#),
        ),
        (
            "PATCH",
            route_item.clone(),
            vec![json],
            Some(r#"{"methods": ["GET", "POST"]}"#),
        ),
        (
            "PUT",
            route_item.clone(),
            vec![json],
            Some(r#"{"name": "r", "path": "/r", "methods": ["GET"], "upstream": "u"}"#),
        ),
        (
            "PATCH",
            up_item.clone(),
            vec![json],
            Some(r#"{"connect_timeout": "2s"}"#),
        ),
        ("DELETE", up_item.clone(), vec![], None),
        ("DELETE", route_item.clone(), vec![], None),
        ("DELETE", up_item.clone(), vec![], None),
    ];
    for (method, path, fields, body) in model_steps {
        let resp = api.send(method, &path, &fields, body).await;
        check(method, &path, &resp);
    }
    // APIs, and a route's request counts.
    let api_doc =
        r#"{"name": "a", "base_path": "/a", "versions": [{"id": "v1", "status": "published"}]}"#;
    let created_api = api
        .send("POST", "/admin/v1/apis", &[json], Some(api_doc))
        .await;
    check("POST", "/admin/v1/apis", &created_api);
    let api_item = format!(
        "/admin/v1/apis/{}",
        created_api.json()["id"].as_str().unwrap()
    );
    let route = api
        .send(
            "POST",
            "/admin/v1/routes",
            &[json],
            Some(r#"{"name": "counted", "path": "/counted", "methods": ["GET"], "upstream": "file-up"}"#),
        )
        .await;
    let route_item = format!("/admin/v1/routes/{}", route.json()["id"].as_str().unwrap());
    let more_steps: Vec<(&str, String, Vec<&str>, Option<&str>)> = vec![
        ("GET", "/admin/v1/apis".into(), vec![], None),
        ("GET", api_item.clone(), vec![], None),
        ("PUT", api_item.clone(), vec![json], Some(api_doc)),
        (
            "PATCH",
            api_item.clone(),
            vec![json],
            Some(r#"{"versions": [{"id": "v1", "status": "disabled"}]}"#),
        ),
        ("DELETE", api_item.clone(), vec![], None),
        ("GET", format!("{route_item}/stats"), vec![], None),
        ("POST", format!("{route_item}/stats/reset"), vec![], None),
        ("POST", format!("{route_item}/limits/reset"), vec![], None),
        ("POST", format!("{route_item}/cache/reset"), vec![], None),
        (
            "POST",
            "/admin/v1/cache/purge".into(),
            vec![json],
            Some(r#"{"prefix": "/r/"}"#),
        ),
        (
            "POST",
            "/admin/v1/cache/purge".into(),
            vec![json],
            Some(r#"{"url": "/r", "route": "r"}"#),
        ),
    ];
    for (method, path, fields, body) in more_steps {
        let resp = api.send(method, &path, &fields, body).await;
        check(method, &path, &resp);
    }
    // Plans, consumers and credentials.
    let plan = api
        .send("POST", "/admin/v1/plans", &[json], Some(r#"{"name": "p"}"#))
        .await;
    check("POST", "/admin/v1/plans", &plan);
    let plan_item = format!("/admin/v1/plans/{}", plan.json()["id"].as_str().unwrap());
    let owner = api.create(r#"{"name": "owner"}"#).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let consumers = format!("/admin/v1/projects/{owner}/consumers");
    let consumer = api
        .send("POST", &consumers, &[json], Some(r#"{"name": "c"}"#))
        .await;
    check("POST", &consumers, &consumer);
    let consumer_item = format!("{consumers}/{}", consumer.json()["id"].as_str().unwrap());
    let credentials = format!("{consumer_item}/credentials");
    let credential = api.send("POST", &credentials, &[json], Some("{}")).await;
    check("POST", &credentials, &credential);
    let credential_item = format!(
        "{credentials}/{}",
        credential.json()["id"].as_str().unwrap()
    );
    let nested_steps: Vec<(&str, String, Vec<&str>, Option<&str>)> = vec![
        ("GET", "/admin/v1/plans".into(), vec![], None),
        ("GET", plan_item.clone(), vec![], None),
        (
            "PUT",
            plan_item.clone(),
            vec![json],
            Some(r#"{"name": "p", "quota": {"requests": 10, "period": "day"}}"#),
        ),
        (
            "PATCH",
            plan_item.clone(),
            vec![json],
            Some(r#"{"quota": {"period": "year"}}"#),
        ),
        ("DELETE", plan_item.clone(), vec![], None),
        ("GET", consumers.clone(), vec![], None),
        ("GET", consumer_item.clone(), vec![], None),
        (
            "POST",
            format!("{consumer_item}/limits/reset"),
            vec![],
            None,
        ),
        (
            "PUT",
            consumer_item.clone(),
            vec![json],
            Some(r#"{"name": "c", "roles": ["admin"]}"#),
        ),
        (
            "PATCH",
            consumer_item.clone(),
            vec![json],
            Some(r#"{"enabled": false}"#),
        ),
        ("GET", credentials.clone(), vec![], None),
        ("GET", credential_item.clone(), vec![], None),
        (
            "PUT",
            credential_item.clone(),
            vec![json],
            Some(r#"{"type": "api_key", "description": "d"}"#),
        ),
        (
            "PATCH",
            credential_item.clone(),
            vec![json],
            Some(r#"{"enabled": false}"#),
        ),
        ("DELETE", consumer_item.clone(), vec![], None),
        ("DELETE", credential_item.clone(), vec![], None),
        ("GET", credentials.clone(), vec![], None),
        ("DELETE", consumer_item.clone(), vec![], None),
        ("GET", consumers.clone(), vec![], None),
    ];
    for (method, path, fields, body) in nested_steps {
        let resp = api.send(method, &path, &fields, body).await;
        check(method, &path, &resp);
    }
    let resp = api.send("GET", "/admin/v1/metrics", &[], None).await;
    check("GET", "/admin/v1/metrics", &resp);
    let resp = api.send("GET", "/metrics", &[], None).await;
    check("GET", "/metrics", &resp);
    let resp = api.send("GET", "/admin/v1/overview", &[], None).await;
    check("GET", "/admin/v1/overview", &resp);
    let openmetrics = ["Accept: application/openmetrics-text"];
    let resp = api.send("GET", "/metrics", &openmetrics, None).await;
    check("GET", "/metrics", &resp);
    // Tokens: a revocation needs the token, and one that was never issued is not found.
    for fields in [vec![], vec!["X-Subject-Token: pt_never-issued"]] {
        let resp = api.send("DELETE", "/admin/v1/tokens", &fields, None).await;
        check("DELETE", "/admin/v1/tokens", &resp);
    }
    // Every operation the document lists was exercised.
    let mut listed = std::collections::BTreeSet::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "put", "post", "patch", "delete"] {
            if item.get(m).is_some() {
                listed.insert(format!("{} {template}", m.to_ascii_uppercase()));
            }
        }
    }
    assert_eq!(exercised, listed);
}

#[tokio::test]
async fn tombstones_answer_410_until_their_retention_is_over() {
    let api = AdminApi::start().await;
    let id = api.create(r#"{"name": "short-lived"}"#).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let item = format!("/admin/v1/projects/{id}");
    assert_eq!(api.send("DELETE", &item, &[], None).await.status, 204);
    assert_eq!(
        api.admin.purge_tombstones(Duration::from_secs(3600)).await,
        Ok(0)
    );
    assert_error(
        &api.send("GET", &item, &[], None).await,
        410,
        "PTC.RESOURCE_GONE",
    );
    assert_eq!(api.admin.purge_tombstones(Duration::ZERO).await, Ok(1));
    assert_error(
        &api.send("GET", &item, &[], None).await,
        404,
        "PTC.RESOURCE_NOT_FOUND",
    );
}

#[tokio::test]
async fn upstreams_and_routes_are_checked_with_the_files_rules() {
    let base = "upstreams:\n  - {name: file-up, targets: [\"http://127.0.0.1:9000\"]}\nroutes:\n  - {name: file-route, path: /file, methods: [GET], upstream: file-up}\n";
    let api = AdminApi::start_with(Some(base)).await;
    let json = ["Content-Type: application/json"];
    let post = |kind: &'static str, body: &'static str| {
        let api = &api;
        async move {
            api.send("POST", &format!("/admin/v1/{kind}"), &json, Some(body))
                .await
        }
    };
    let up = post(
        "upstreams",
        r#"{"name": "store-up", "targets": ["h2c://127.0.0.1:9001"]}"#,
    )
    .await;
    assert_eq!(up.status, 201);
    let up_id = up.json()["id"].as_str().unwrap().to_string();
    let resp = post(
        "routes",
        r#"{"name": "r", "path": "/r/{*rest}", "methods": ["GET"], "upstream": "store-up"}"#,
    )
    .await;
    assert_eq!(resp.status, 201);

    // The file's rules, with pointers into the document.
    let resp = post("upstreams", r#"{"name": "x", "targets": ["ftp://h"]}"#).await;
    assert_error(&resp, 422, "PTC.VALIDATION_FAILED");
    assert_eq!(resp.json()["violations"][0]["pointer"], "/targets/0");
    // Valid documents the model cannot take are 409, with pointers into the document: names
    // are unique across the file and the store; routes may not overlap; an upstream named
    // must exist; what relates a route's parts (a redirect's parameters are its path's).
    let resp = post(
        "upstreams",
        r#"{"name": "file-up", "targets": ["http://127.0.0.1:1"]}"#,
    )
    .await;
    assert_error(&resp, 409, "PTC.MODEL_CONFLICT");
    let resp = post(
        "routes",
        r#"{"name": "again", "path": "/file", "methods": ["GET"], "upstream": "file-up"}"#,
    )
    .await;
    assert_error(&resp, 409, "PTC.MODEL_CONFLICT");
    assert_eq!(resp.json()["conflicts"][0]["pointer"], "/path");
    let resp = post(
        "routes",
        r#"{"name": "n", "path": "/n", "methods": ["GET"], "upstream": "nowhere"}"#,
    )
    .await;
    assert_eq!(resp.json()["conflicts"][0]["pointer"], "/upstream");
    let resp = post(
        "routes",
        r#"{"name": "m", "path": "/m/{a}", "methods": ["GET"], "redirect": {"to": "/n/{b}"}}"#,
    )
    .await;
    assert_error(&resp, 409, "PTC.MODEL_CONFLICT");
    assert_eq!(resp.json()["conflicts"][0]["pointer"], "/redirect/to");
    // What its schema says is 422, with every violation.
    let resp = post(
        "routes",
        r#"{"name": "0", "path": "relative", "upstream": "file-up", "handler": "echo"}"#,
    )
    .await;
    assert_error(&resp, 422, "PTC.VALIDATION_FAILED");
    let found = pointers(&resp);
    assert!(found.contains(&"/path".to_string()), "{found:?}");

    // An upstream a route still uses cannot go.
    let resp = api
        .send("DELETE", &format!("/admin/v1/upstreams/{up_id}"), &[], None)
        .await;
    assert_error(&resp, 409, "PTC.RESOURCE_IN_USE");
    assert_eq!(resp.json()["conflicts"][0]["kind"], "routes");

    // APIs: the file's rules too, and base paths unique across the file and the store.
    let resp = post(
        "apis",
        r#"{"name": "compute", "base_path": "/compute", "versions": [{"id": "v1", "status": "retired"}]}"#,
    )
    .await;
    assert_eq!(resp.status, 201);
    let resp = post(
        "apis",
        r#"{"name": "other", "base_path": "/compute", "versions": [{"id": "v1", "status": "sunny"}]}"#,
    )
    .await;
    assert_error(&resp, 422, "PTC.VALIDATION_FAILED");
    assert_eq!(
        resp.json()["violations"][0]["pointer"],
        "/versions/0/status"
    );
    let resp = post(
        "apis",
        r#"{"name": "other", "base_path": "/compute", "versions": [{"id": "v1", "status": "published"}]}"#,
    )
    .await;
    assert_error(&resp, 409, "PTC.MODEL_CONFLICT");
    assert_eq!(resp.json()["conflicts"][0]["pointer"], "/base_path");
}

/// The pointers of a 422's violations, in order.
fn pointers(resp: &RawResponse) -> Vec<String> {
    let mut out: Vec<String> = resp.json()["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Creates a project, returning its id.
async fn project(api: &AdminApi, name: &str) -> String {
    let resp = api.create(&format!(r#"{{"name": "{name}"}}"#)).await;
    assert_eq!(resp.status, 201);
    resp.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn consumers_live_in_their_project_and_credentials_show_their_secret_once() {
    let api = AdminApi::start().await;
    let json = ["Content-Type: application/json"];
    let acme = project(&api, "acme").await;
    let other = project(&api, "other").await;
    let consumers = format!("/admin/v1/projects/{acme}/consumers");
    let resp = api
        .send(
            "POST",
            &consumers,
            &json,
            Some(r#"{"name": "build-bot", "roles": ["reader"]}"#),
        )
        .await;
    assert_eq!(resp.status, 201);
    let consumer = resp.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        resp.header("location"),
        Some(format!("{consumers}/{consumer}").as_str())
    );
    assert_eq!(resp.json()["enabled"], true);
    // Names are unique within a project, not across projects.
    let again = api
        .send("POST", &consumers, &json, Some(r#"{"name": "build-bot"}"#))
        .await;
    assert_error(&again, 409, "PTC.NAME_TAKEN");
    let elsewhere = format!("/admin/v1/projects/{other}/consumers");
    let resp = api
        .send("POST", &elsewhere, &json, Some(r#"{"name": "build-bot"}"#))
        .await;
    assert_eq!(resp.status, 201);
    // Another project's consumer is not found under this one; nor is anything under a
    // project that never was.
    assert_error(
        &api.send("GET", &format!("{elsewhere}/{consumer}"), &[], None)
            .await,
        404,
        "PTC.RESOURCE_NOT_FOUND",
    );
    assert_error(
        &api.send(
            "GET",
            &format!("/admin/v1/projects/{}/consumers", "f".repeat(32)),
            &[],
            None,
        )
        .await,
        404,
        "PTC.RESOURCE_NOT_FOUND",
    );
    let list = api.send("GET", &consumers, &[], None).await.json();
    assert_eq!(list["consumers"].as_array().unwrap().len(), 1);
    let resp = api
        .send(
            "POST",
            &consumers,
            &json,
            Some(r#"{"name": "x", "roles": "admin", "enabled": 1}"#),
        )
        .await;
    assert_error(&resp, 422, "PTC.VALIDATION_FAILED");
    assert_eq!(pointers(&resp), ["/enabled", "/roles"]);

    // A credential: the secret once, then only its prefix.
    let credentials = format!("{consumers}/{consumer}/credentials");
    let resp = api
        .send(
            "POST",
            &credentials,
            &json,
            Some(r#"{"type": "api_key", "description": "ci"}"#),
        )
        .await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let issued = resp.json();
    let secret = issued["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("pk_") && secret.len() == 67, "{secret}");
    assert_eq!(issued["prefix"].as_str(), Some(&secret[..11]));
    assert!(issued.get("secret_sha256").is_none());
    let item = resp.header("location").unwrap().to_string();
    let read = api.send("GET", &item, &[], None).await;
    assert_eq!(read.status, 200);
    let listed = api.send("GET", &credentials, &[], None).await;
    // A client cannot set what Portico keeps of the secret, nor change the type.
    let patched = api
        .send(
            "PATCH",
            &item,
            &json,
            Some(r#"{"description": "rotated", "prefix": "pk_x"}"#),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["prefix"].as_str(), Some(&secret[..11]));
    let refused = api
        .send("PATCH", &item, &json, Some(r#"{"secret_sha256": "00"}"#))
        .await;
    assert_error(&refused, 422, "PTC.VALIDATION_FAILED");
    let bad = api
        .send("PATCH", &item, &json, Some(r#"{"type": "password"}"#))
        .await;
    assert_error(&bad, 409, "PTC.MODEL_CONFLICT");
    for resp in [&read, &listed, &patched, &bad] {
        let text = String::from_utf8_lossy(&resp.body);
        assert!(!text.contains(&secret), "the secret shows again: {text}");
        assert!(!text.contains("secret"), "{text}");
    }
    // The store has the secret's SHA-256, never the secret.
    let digest: String = Sha256::digest(&secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(api.dir.path()).unwrap() {
        stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains(&digest));
    assert!(!stored.contains(&secret[3..]));

    // A password: the client's own, kept only hashed, one per consumer.
    let resp = api
        .send("POST", &credentials, &json, Some(r#"{"type": "password"}"#))
        .await;
    assert_error(&resp, 422, "PTC.VALIDATION_FAILED");
    let resp = api
        .send(
            "POST",
            &credentials,
            &json,
            Some(r#"{"type": "password", "password": "a-long-password"}"#),
        )
        .await;
    assert_eq!(resp.status, 201);
    let text = String::from_utf8_lossy(&resp.body).to_string();
    assert!(
        !text.contains("a-long-password") && !text.contains("pbkdf2") && !text.contains("secret"),
        "{text}"
    );
    let again = api
        .send(
            "POST",
            &credentials,
            &json,
            Some(r#"{"type": "password", "password": "another-password"}"#),
        )
        .await;
    assert_error(&again, 409, "PTC.NAME_TAKEN");
    let password_item = resp.header("location").unwrap().to_string();
    assert_eq!(
        api.send("DELETE", &password_item, &[], None).await.status,
        204
    );

    // Nothing is left without its parent: a project holding consumers, or a consumer holding
    // credentials, cannot go.
    let resp = api
        .send("DELETE", &format!("/admin/v1/projects/{acme}"), &[], None)
        .await;
    assert_error(&resp, 409, "PTC.RESOURCE_IN_USE");
    assert_eq!(resp.json()["conflicts"][0]["kind"], "consumers");
    let consumer_item = format!("{consumers}/{consumer}");
    let resp = api.send("DELETE", &consumer_item, &[], None).await;
    assert_eq!(resp.json()["conflicts"][0]["kind"], "credentials");
    // Revoking: 204, then 410.
    assert_eq!(api.send("DELETE", &item, &[], None).await.status, 204);
    assert_error(
        &api.send("GET", &item, &[], None).await,
        410,
        "PTC.RESOURCE_GONE",
    );
    assert_eq!(
        api.send("DELETE", &consumer_item, &[], None).await.status,
        204
    );
    // Under a deleted consumer, its collection is gone too.
    assert_error(
        &api.send("GET", &credentials, &[], None).await,
        410,
        "PTC.RESOURCE_GONE",
    );
    assert_eq!(
        api.send("DELETE", &format!("/admin/v1/projects/{acme}"), &[], None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn plans_hold_a_quota_and_rate_limits() {
    let api = AdminApi::start().await;
    let json = ["Content-Type: application/json"];
    let resp = api
        .send(
            "POST",
            "/admin/v1/plans",
            &json,
            Some(r#"{"name": "pro", "quota": {"requests": 1000000, "period": "month"}, "rate_limits": [{"key": "project", "rate": "100/s", "burst": 200}, {"key": "header:X-Client", "rate": "5/m"}]}"#),
        )
        .await;
    assert_eq!(resp.status, 201);
    assert_eq!(resp.json()["quota"]["requests"], 1_000_000);
    // The data plane reads the stored plan as the file's reader would.
    let store = SqliteStore::open(api.dir.path().join("portico.db"))
        .await
        .unwrap();
    let mut plans = Vec::new();
    portico_admin::add_plans(&store, &mut plans).await.unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].quota.map(|q| q.requests), Some(1_000_000));
    let limits = &plans[0].rate_limits;
    assert_eq!(limits.len(), 2);
    assert_eq!(
        (limits[0].key.clone(), limits[0].rate.count, limits[0].burst),
        (portico_config::LimitKey::Project, 100, 200)
    );
    assert_eq!(
        limits[1].key,
        portico_config::LimitKey::Header("x-client".into())
    );
    assert_eq!(
        (limits[1].burst, limits[1].name.as_str()),
        (5, "header-x-client")
    );
    let resp = api
        .send(
            "POST",
            "/admin/v1/plans",
            &json,
            Some(r#"{"name": "bad", "quota": {"requests": -1, "period": "week"}, "rate_limits": [{"key": "moon", "rate": "0/s", "burst": 0}]}"#),
        )
        .await;
    assert_error(&resp, 422, "PTC.VALIDATION_FAILED");
    assert_eq!(
        pointers(&resp),
        [
            "/quota/period",
            "/quota/requests",
            "/rate_limits/0/burst",
            "/rate_limits/0/key",
            "/rate_limits/0/rate"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_never_leave_the_model_broken() {
    let base = "routes:\n  - {name: file-route, path: /file, methods: [GET], handler: echo}\n";
    let api = Arc::new(AdminApi::start_with(Some(base)).await);
    let json = "Content-Type: application/json";
    // Twenty routes on one path at once: each alone is fine, together they overlap. One is
    // created; every other is refused.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!(
                r#"{{"name": "same-{i}", "path": "/same", "methods": ["GET"], "handler": "echo"}}"#
            );
            api.send("POST", "/admin/v1/routes", &[json], Some(&body))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let resp = t.await.unwrap();
        match resp.status {
            201 => created += 1,
            409 if resp.json()["error_code"] == "PTC.MODEL_CONFLICT" => {
                assert_eq!(resp.json()["conflicts"][0]["pointer"], "/path")
            }
            409 => assert_eq!(resp.json()["error_code"], "PTC.CONCURRENT_CHANGE"),
            other => panic!("{other}: {:?}", String::from_utf8_lossy(&resp.body)),
        }
    }
    assert_eq!(created, 1);
    let routes = api.send("GET", "/admin/v1/routes", &[], None).await.json();
    assert_eq!(routes["routes"].as_array().unwrap().len(), 1);

    // An upstream deleted while routes that name it are created: never both.
    for round in 0..10 {
        let name = format!("up-{round}");
        let up = api
            .send(
                "POST",
                "/admin/v1/upstreams",
                &[json],
                Some(&format!(
                    r#"{{"name": "{name}", "targets": ["http://127.0.0.1:9"]}}"#
                )),
            )
            .await;
        assert_eq!(up.status, 201);
        let item = up.header("location").unwrap().to_string();
        let delete = {
            let api = api.clone();
            tokio::spawn(async move { api.send("DELETE", &item, &[], None).await.status })
        };
        let route = {
            let api = api.clone();
            let body = format!(
                r#"{{"name": "via-{round}", "path": "/via-{round}", "methods": ["GET"], "upstream": "{name}"}}"#
            );
            tokio::spawn(async move {
                api.send("POST", "/admin/v1/routes", &[json], Some(&body))
                    .await
                    .status
            })
        };
        let (deleted, routed) = (delete.await.unwrap(), route.await.unwrap());
        assert!(
            !(deleted == 204 && routed == 201),
            "round {round}: the upstream went and a route names it"
        );
    }
}

/// A store that does not answer is 503 with `Retry-After`, nothing changed; once the server
/// is back, so is the API. (A PostgreSQL store whose connections the server cuts and refuses:
/// a real failure, in a database of the test's own.)
#[tokio::test]
async fn a_store_that_fails_is_503_with_retry_after() {
    let Some(db) = portico_testkit::pg::Scratch::create("admin_fail").await else {
        return;
    };
    let store = portico_store::PgStore::connect(&db.url, None)
        .await
        .unwrap();
    let settings = Arc::new(ConnSettings {
        head: HeadLimits::default(),
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        max_body_bytes: 1 << 20,
        max_connections: 100,
        http2: None,
    });
    let admin = Arc::new(Admin::new(store, Sha256::digest(TOKEN).into(), settings));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(serve_all(
        vec![Listener::plain(tcp)],
        admin,
        Duration::from_secs(1),
        std::future::pending(),
    ));
    let create = |name: &str| {
        format!(
            "POST /admin/v1/projects HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"name\": \"{name}\"}}",
            name.len() + 12
        )
    };
    let send = |raw: String| async move {
        let mut c = RawClient::connect(addr).await;
        c.send(raw).await;
        c.response().await
    };
    assert_eq!(send(create("before")).await.status, 201);
    db.refuse_connections().await;
    let resp = send(create("during")).await;
    assert_error(&resp, 503, "PTC.STORE_UNAVAILABLE");
    assert_eq!(resp.header("retry-after"), Some("1"));
    db.allow_connections().await;
    assert_eq!(send(create("after")).await.status, 201);
    let list = send(format!(
        "GET /admin/v1/projects HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    ))
    .await;
    let names: Vec<String> = list.json()["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"before".to_string()) && names.contains(&"after".to_string()));
    assert!(!names.contains(&"during".to_string()), "{names:?}");
    db.drop_database().await;
}
