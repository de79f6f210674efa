//! The `portico` binary itself: check-config, codes, and serve with its access log on stdout.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::served;

use served::{BIN, Served, exchange, from_ci, write_config};

#[test]
fn check_config_is_silent_and_exits_0_on_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "ok.yaml",
        "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn check_config_prints_every_problem_with_its_location_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "bad.yaml",
        "listen: nowhere\nlimits:\n  max_body_byte: 1MiB\nroutes:\n  - {name: e, path: /e, methods: [GET], upstream: missing}\n",
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    let shown = path.display().to_string();
    assert!(text.contains(&format!("{shown}:1:9: listen:")), "{text}");
    assert!(
        text.contains(&format!("{shown}:3:3: limits.max_body_byte: unknown key")),
        "{text}"
    );
    assert!(text.contains("did you mean `max_body_bytes`?"), "{text}");
    assert!(
        text.contains("routes[0].upstream: unknown upstream `missing`"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "{text}");
    let missing = Command::new(BIN)
        .arg("check-config")
        .arg(dir.path().join("none.yaml"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn codes_prints_the_contract_table() {
    let out = Command::new(BIN).arg("codes").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "100 Continue",
        "306 Unused [never generated]",
        "400 BadRequest [implemented]",
        "504 ServerTimeout",
        "505 HTTP Version not supported",
    ] {
        assert!(text.contains(line), "{line} missing");
    }
    assert!(text.contains("error codes: PTC.REQUEST_LINE_MALFORMED"));
    let rows = text
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .count();
    assert_eq!(rows, 42, "41 table rows and 200");
}

#[test]
fn serve_answers_and_writes_a_json_access_log_line_per_request_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "serve.yaml",
        "listen: 127.0.0.1:0\nroutes:\n  - {name: e, path: '/v1/{project_id}/items', methods: [GET], handler: echo}\n",
    );
    let mut served = Served::start(&path, Stdio::piped());
    let addr = served.address("listening");
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /v1/p1/items HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let id = response
        .lines()
        .find_map(|l| l.strip_prefix("X-Request-Id: "))
        .unwrap()
        .to_string();
    drop(conn);

    let mut stdout = BufReader::new(served.child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["request_id"], id);
    assert_eq!(v["status"], 200);
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/v1/p1/items");
    served.stop();
}

#[test]
fn serve_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "bad.yaml", "routes: []\n");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one route"));
}

#[cfg(target_os = "linux")]
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let mut numbers = line.split_whitespace().skip(3);
    (
        numbers.next().unwrap().to_string(),
        numbers.next().unwrap().to_string(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn serve_raises_its_open_files_limit_and_warns_when_it_is_too_low() {
    let dir = tempfile::tempdir().unwrap();
    // Under sh with a soft limit of 256 open files; sh execs portico, so the pid is its.
    let with_low_limit = |config: &std::path::Path| {
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!(
            "ulimit -Sn 256 && exec '{BIN}' serve --config '{}'",
            config.display()
        ));
        command.stdout(Stdio::null());
        Served::spawn(command)
    };
    let fits = write_config(
        &dir,
        "fits.yaml",
        "listen: 127.0.0.1:0\nlimits: {max_connections: 100}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
    );
    let served = with_low_limit(&fits);
    let (soft, hard) = open_files_limits(served.child.id());
    assert_eq!(soft, hard, "the soft limit was not raised to the hard one");
    assert!(
        !served.logged.contains("limit on open files"),
        "{}",
        served.logged
    );
    served.stop();

    // More connections than any limit allows: said at start.
    let too_many = write_config(
        &dir,
        "many.yaml",
        "listen: 127.0.0.1:0\nlimits: {max_connections: 1000000000}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
    );
    let served = with_low_limit(&too_many);
    assert!(
        served.logged.contains("limit on open files"),
        "{}",
        served.logged
    );
    served.stop();
}

/// The route name the echo handler reports for one request.
#[cfg(unix)]
fn route_answering(addr: &str) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["route"].as_str().unwrap().to_string()
}

#[cfg(unix)]
#[test]
fn sighup_reloads_a_valid_file_and_keeps_serving_the_old_one_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = |route: &str, extra: &str| {
        format!(
            "listen: 127.0.0.1:0\naccess_log: off\n{extra}routes:\n  - {{name: {route}, path: /echo, methods: [GET], handler: echo}}\n"
        )
    };
    let path = write_config(&dir, "portico.yaml", &config("first", ""));
    let mut served = Served::start(&path, Stdio::null());
    let addr = served.address("listening");
    assert_eq!(route_answering(&addr), "first");

    // A valid file: reloaded. A setting that needs a restart is named.
    std::fs::write(&path, config("second", "workers: 3\n")).unwrap();
    served.signal("HUP");
    let logged = served.read_until("configuration reloaded");
    assert!(
        logged.contains("workers") && logged.contains("after a restart"),
        "{logged}"
    );
    assert_eq!(route_answering(&addr), "second");

    // A file with problems: each is logged, and the previous configuration keeps serving.
    std::fs::write(
        &path,
        "routes:\n  - {name: x, path: nope, methods: [GET], handler: echo}\n",
    )
    .unwrap();
    served.signal("HUP");
    let logged = served.read_until("previous configuration keeps serving");
    assert!(logged.contains("routes[0].path"), "{logged}");
    assert_eq!(route_answering(&addr), "second");
    served.stop();
}

/// A document with a `/echo` path, as an OpenAPI 3.1 file; `version` names its operation.
fn echo_document(operation: &str) -> String {
    format!(
        "openapi: 3.1.0\ninfo: {{title: t, version: '1'}}\npaths:\n  /echo:\n    get:\n      operationId: {operation}\n      parameters: [{{name: n, in: query, schema: {{type: integer}}}}]\n      responses: {{'200': {{description: ok}}}}\n"
    )
}

#[cfg(unix)]
#[test]
fn a_reload_keeps_the_old_openapi_document_when_the_new_one_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.yaml"), echo_document("first")).unwrap();
    let path = write_config(
        &dir,
        "portico.yaml",
        "listen: 127.0.0.1:0\naccess_log: off\nroutes:\n  - {name: api, path: /, openapi: api.yaml, handler: echo}\n",
    );
    let mut served = Served::start(&path, Stdio::null());
    let addr = served.address("listening");
    assert_eq!(route_answering(&addr), "api.first");
    std::fs::write(dir.path().join("api.yaml"), echo_document("second")).unwrap();
    served.signal("HUP");
    served.read_until("configuration reloaded");
    assert_eq!(route_answering(&addr), "api.second");
    // A document that cannot be used: named with its pointer, and the old one keeps serving.
    std::fs::write(
        dir.path().join("api.yaml"),
        echo_document("third").replace("type: integer", "type: integr"),
    )
    .unwrap();
    served.signal("HUP");
    let logged = served.read_until("previous configuration keeps serving");
    assert!(logged.contains("api.yaml"), "{logged}");
    assert!(
        logged.contains("#/paths/~1echo/get/parameters/0/schema"),
        "{logged}"
    );
    assert_eq!(route_answering(&addr), "api.second");
    served.stop();
}

#[test]
fn openapi_routes_prints_a_file_that_check_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("openapi")).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/openapi/petstore.yaml"
        ),
        dir.path().join("openapi/petstore.yaml"),
    )
    .unwrap();
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/openapi.yaml"
    ))
    .unwrap();
    let path = write_config(&dir, "portico.yaml", &config);
    let out = Command::new(BIN)
        .args(["openapi", "routes"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "pets.listPets",
        "pets.createPet",
        "pets.showPet",
        "pets.deletePet",
    ] {
        assert!(text.contains(&format!("\"name\": \"{name}\"")), "{text}");
    }
    let expanded = write_config(&dir, "expanded.yaml", &text);
    let check = Command::new(BIN)
        .arg("check-config")
        .arg(&expanded)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&check.stderr)
    );
    // A file with problems gives its problems, not routes.
    let bad = write_config(
        &dir,
        "bad.yaml",
        &config.replace("openapi/petstore.yaml", "missing.yaml"),
    );
    let out = Command::new(BIN)
        .args(["openapi", "routes"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
}

#[test]
fn check_config_refuses_a_tls_key_that_is_not_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), a.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), b.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("right.pem"), a.signing_key.serialize_pem()).unwrap();
    let config = |key: &str| {
        format!(
            "tls: {{listen: 127.0.0.1:8443, cert: cert.pem, key: {key}}}\nroutes:\n  - {{name: e, path: /e, methods: [GET], handler: echo}}\n"
        )
    };
    let wrong = write_config(&dir, "wrong.yaml", &config("key.pem"));
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(
        text.contains("tls: the certificate and key do not go together"),
        "{text}"
    );
    let right = write_config(&dir, "right.yaml", &config("right.pem"));
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&right)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The certificate a TLS server at `addr` presents (a blocking rustls client that trusts
/// `trusted`), after a request over the session was answered 200.
fn tls_certificate_at(addr: &str, trusted: &rcgen::CertifiedKey<rcgen::KeyPair>) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let session = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(session, TcpStream::connect(addr).unwrap());
    tls.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

#[cfg(unix)]
#[test]
fn sighup_takes_a_new_tls_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let write = |c: &rcgen::CertifiedKey<rcgen::KeyPair>| {
        std::fs::write(dir.path().join("cert.pem"), c.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), c.signing_key.serialize_pem()).unwrap();
    };
    write(&first);
    let path = write_config(
        &dir,
        "portico.yaml",
        "listen: 127.0.0.1:0\naccess_log: off\ntls: {listen: 127.0.0.1:0, cert: cert.pem, key: key.pem}\nroutes:\n  - {name: e, path: /echo, methods: [GET], handler: echo}\n",
    );
    let mut served = Served::start(&path, Stdio::null());
    let addr = served.address("(TLS)");
    assert_eq!(tls_certificate_at(&addr, &first), first.cert.der().to_vec());

    write(&second);
    served.signal("HUP");
    served.read_until("configuration reloaded");
    assert_eq!(
        tls_certificate_at(&addr, &second),
        second.cert.der().to_vec()
    );
    served.stop();
}

/// One HTTP/1.1 request over a blocking socket; the whole answer, as text.
#[test]
fn the_admin_api_listens_apart_with_the_token_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("admin.db");
    let path = write_config(
        &dir,
        "admin.yaml",
        &format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\nstorage: sqlite://{}\nroutes:\n  - {{name: e, path: /e, methods: [GET], handler: echo}}\n",
            db.display()
        ),
    );
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&path)
        .env("PORTICO_ADMIN_TOKEN", "token-from-the-environment")
        .stdout(Stdio::null());
    let mut served = Served::spawn(command);
    let admin = served.address("admin API listening");
    let data = served.address("portico listening");
    assert_ne!(admin, data);
    let created = exchange(
        &admin,
        "POST /admin/v1/projects HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer token-from-the-environment\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"name\": \"one\"}",
    );
    assert!(created.starts_with("HTTP/1.1 201 "), "{created}");
    // The data plane does not serve the admin API.
    let answer = exchange(
        &data,
        "GET /admin/v1/projects HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    served.stop();
    // What was acknowledged is in the store the file named.
    assert!(db.exists());
}

#[test]
fn the_admin_api_will_not_start_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "admin.yaml",
        &format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\nstorage: sqlite://{}\nroutes:\n  - {{name: e, path: /e, methods: [GET], handler: echo}}\n",
            dir.path().join("x.db").display()
        ),
    );
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("PORTICO_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PORTICO_ADMIN_TOKEN"), "{stderr}");
}

const ADMIN_TOKEN: &str = "token-from-the-environment";

/// `portico serve` with the admin API on `storage`, a data-plane echo route, and the token in
/// the environment; its data-plane and admin addresses.
fn serve_with_admin(
    dir: &tempfile::TempDir,
    name: &str,
    storage: &str,
) -> (Served, String, String) {
    serve_with_admin_and(
        dir,
        name,
        storage,
        "routes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
    )
}

/// `portico serve` with the admin API on `storage`, the token in the environment, and the
/// rest of the file (`model`: upstreams, routes); its data-plane and admin addresses.
fn serve_with_admin_and(
    dir: &tempfile::TempDir,
    name: &str,
    storage: &str,
    model: &str,
) -> (Served, String, String) {
    let path = write_config(
        dir,
        name,
        &format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\nstorage: {storage}\naccess_log: off\n{model}"
        ),
    );
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&path)
        .env("PORTICO_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null());
    let mut served = Served::spawn(command);
    let admin = served.address("admin API listening");
    let data = served.address("portico listening");
    (served, data, admin)
}

fn admin_post(admin: &str, path: &str, json: &str) -> String {
    admin_send(admin, "POST", path, json)
}

/// An admin request with the token and, when `json` is not empty, a JSON body.
fn admin_send(admin: &str, method: &str, path: &str, json: &str) -> String {
    exchange(
        admin,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        ),
    )
}

/// Waits until the data plane has rebuilt itself from the store as it is now (the revision a
/// list's ETag names), reading the node's log, never a timer.
fn wait_for_store(served: &mut Served, admin: &str) {
    let list = admin_send(admin, "GET", "/admin/v1/projects?limit=1", "");
    let now: u64 = list
        .split("ETag: \"r")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    loop {
        let seen = served.read_until("data plane follows the store");
        let line = seen.lines().last().unwrap_or_default();
        let revision: u64 = line
            .split("revision=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        if revision >= now {
            return;
        }
    }
}

/// A project `acme` made through the admin API, a consumer in it (`consumer_json`) and an API
/// key for it: the project's id, the consumer's 201, the key's 201, and the key.
fn consumer_with_key(admin: &str, consumer_json: &str) -> (String, String, String, String) {
    let project = admin_post(admin, "/admin/v1/projects", r#"{"name": "acme"}"#);
    let project_id = location(&project).rsplit('/').next().unwrap().to_string();
    let consumer = admin_post(
        admin,
        &format!("{}/consumers", location(&project)),
        consumer_json,
    );
    let credential = admin_post(admin, &format!("{}/credentials", location(&consumer)), "{}");
    let key = secret_of(&credential);
    (project_id, consumer, credential, key)
}

/// The secret a credential's 201 shows (once).
fn secret_of(created: &str) -> String {
    created
        .split("\"secret\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

/// The `Location` of a 201.
fn location(created: &str) -> &str {
    created
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap()
}

#[test]
fn a_route_created_through_the_admin_api_serves_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (mut served, data, admin) =
        serve_with_admin(&dir, "live.yaml", &format!("sqlite://{}", db.display()));
    let get = "GET /dynamic HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    assert!(exchange(&data, get).starts_with("HTTP/1.1 404 "));
    // Invalid by the file's rules: refused with where and why, nothing changes.
    let refused = admin_post(
        &admin,
        "/admin/v1/routes",
        r#"{"name": "bad", "path": "dynamic", "methods": ["GET"], "handler": "echo"}"#,
    );
    assert!(refused.starts_with("HTTP/1.1 422 "), "{refused}");
    assert!(refused.contains("\"pointer\":\"/path\""), "{refused}");
    let created = admin_post(
        &admin,
        "/admin/v1/routes",
        r#"{"name": "dynamic", "path": "/dynamic", "methods": ["GET"], "handler": "echo"}"#,
    );
    assert!(created.starts_with("HTTP/1.1 201 "), "{created}");
    // The data plane says when it has taken the change; the route serves from then on.
    served.read_until("data plane follows the store");
    let answer = exchange(&data, get);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // The route's responses are counted by status; a reset is 205 and starts again.
    let stats = format!("{}/stats", location(&created));
    let counted = admin_send(&admin, "GET", &stats, "");
    assert!(counted.ends_with(r#""statuses":{"200":1}}"#), "{counted}");
    let reset = admin_send(&admin, "POST", &format!("{stats}/reset"), "");
    assert!(reset.starts_with("HTTP/1.1 205 "), "{reset}");
    assert!(reset.ends_with("\r\n\r\n"), "a 205 has no body: {reset}");
    let counted = admin_send(&admin, "GET", &stats, "");
    assert!(counted.ends_with(r#""statuses":{}}"#), "{counted}");

    // An API's lifecycle from the store: its retired version answers 410.
    let created = admin_post(
        &admin,
        "/admin/v1/apis",
        r#"{"name": "old", "base_path": "/old", "versions": [{"id": "v2", "status": "published"}, {"id": "v1", "status": "retired"}]}"#,
    );
    assert!(created.starts_with("HTTP/1.1 201 "), "{created}");
    served.read_until("data plane follows the store");
    let answer = exchange(
        &data,
        "GET /old/v1/servers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 410 "), "{answer}");
    served.stop();
}

#[test]
fn the_egress_proxy_listens_on_its_own_port_and_stops_with_portico() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "egress.yaml",
        "listen: 127.0.0.1:0\naccess_log: off\nprojects:\n  - {name: acme, consumers: [{name: alice, password: \"${EGRESS_PASSWORD}\"}]}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\negress: {listen: 127.0.0.1:0, allow_hosts: [127.0.0.1], auth: basic}\n",
    );
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&path)
        .env("EGRESS_PASSWORD", "egress-password-0123")
        .stdout(Stdio::null());
    let mut served = Served::spawn(command);
    let egress = served.address("egress proxy listening");
    let data = served.address("portico listening");
    let get = |auth: &str| {
        format!("GET http://{data}/e HTTP/1.1\r\nHost: {data}\r\n{auth}Connection: close\r\n\r\n")
    };
    let refused = exchange(&egress, &get(""));
    assert!(refused.starts_with("HTTP/1.1 407 "), "{refused}");
    assert!(refused.contains("Proxy-Authenticate: Basic"), "{refused}");
    // Through the proxy to the data plane's echo route, which shows what arrived.
    let auth = "Proxy-Authorization: Basic YWNtZS9hbGljZTplZ3Jlc3MtcGFzc3dvcmQtMDEyMw==\r\n";
    let answer = exchange(&egress, &get(auth));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer.contains("1.1 portico"),
        "the request went through Portico: {answer}"
    );
    assert!(
        !answer.to_ascii_lowercase().contains("proxy-authorization"),
        "{answer}"
    );
    served.stop();
}

#[test]
fn two_nodes_on_one_redis_admit_no_more_than_the_limit_at_five_times_its_rate() {
    let Some(redis) = from_ci("PORTICO_TEST_REDIS_URL", "the cluster-wide limit test") else {
        return;
    };
    let redis = redis.to_string_lossy().into_owned();
    const RATE: f64 = 20.0;
    const BURST: f64 = 20.0;
    let dir = tempfile::tempdir().unwrap();
    // A route of this run's own: no earlier run's state in Redis.
    let route = format!("cluster-{}", &portico_store::new_id()[..12]);
    let node = |name: &str| {
        let path = write_config(
            &dir,
            name,
            &format!(
                "listen: 127.0.0.1:0\naccess_log: off\ncluster: {{redis: \"{redis}\", budget: 500ms}}\nroutes:\n  - {{name: {route}, path: /limited, methods: [GET], handler: echo, rate_limit: {{key: route, rate: 20/s, burst: 20, on_store_failure: deny}}}}\n"
            ),
        );
        let mut served = Served::start(&path, Stdio::null());
        let address = served.address("portico listening");
        (served, address)
    };
    let (a, address_a) = node("a.yaml");
    let (b, address_b) = node("b.yaml");
    let get = "GET /limited HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    // Five times the rate, alternating nodes, for 30 s. The pause between requests paces the
    // load (open loop); nothing waits on it.
    let every = std::time::Duration::from_secs_f64(1.0 / (5.0 * RATE));
    let start = std::time::Instant::now();
    let (mut admitted, mut refused) = (0u32, 0u32);
    let mut sent = 0u32;
    while start.elapsed() < std::time::Duration::from_secs(30) {
        let due = start + every * sent;
        if let Some(ahead) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(ahead);
        }
        let answer = exchange(
            if sent.is_multiple_of(2) {
                &address_a
            } else {
                &address_b
            },
            get,
        );
        match &answer[9..12] {
            "200" => admitted += 1,
            "429" => refused += 1,
            _ => panic!("{answer}"),
        }
        sent += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ceiling = (RATE * elapsed + BURST) * 1.01;
    assert!(
        f64::from(admitted) <= ceiling,
        "{admitted} admitted in {elapsed:.1} s; at most {ceiling:.0}"
    );
    // And the limit is not simply refusing: close to the rate was admitted.
    assert!(
        f64::from(admitted) >= RATE * elapsed * 0.9,
        "{admitted} admitted in {elapsed:.1} s ({refused} refused)"
    );
    a.stop();
    b.stop();
}

/// A PostgreSQL database of its own on the machine's server (dropped with the guard), or
/// `None` outside CI when `PORTICO_TEST_DATABASE_URL` is not set: the test kit's scratch
/// database, driven from these synchronous tests by a runtime of its own.
fn pg_database(tag: &str) -> Option<PgDatabase> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = rt.block_on(portico_testkit::pg::Scratch::create(tag))?;
    Some(PgDatabase {
        rt,
        scratch: Some(scratch),
    })
}

struct PgDatabase {
    rt: tokio::runtime::Runtime,
    scratch: Option<portico_testkit::pg::Scratch>,
}

impl PgDatabase {
    fn url(&self) -> String {
        self.scratch
            .as_ref()
            .map(|s| s.url.clone())
            .unwrap_or_default()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Some(s) = self.scratch.take() {
            self.rt.block_on(s.drop_database());
        }
    }
}

#[test]
fn two_nodes_on_one_postgresql_see_each_others_changes() {
    let Some(db) = pg_database("nodes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, _, admin_a) = serve_with_admin(&dir, "a.yaml", &db.url());
    let (mut b, data_b, _) = serve_with_admin(&dir, "b.yaml", &db.url());
    let created = admin_post(
        &admin_a,
        "/admin/v1/routes",
        r#"{"name": "shared", "path": "/shared", "methods": ["GET"], "handler": "echo"}"#,
    );
    assert!(created.starts_with("HTTP/1.1 201 "), "{created}");
    b.read_until("data plane follows the store");
    let answer = exchange(
        &data_b,
        "GET /shared HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    a.stop();
    b.stop();
}

#[test]
fn a_prepaid_quota_is_counted_once_across_two_nodes() {
    let Some(db) = pg_database("quota") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut a, data_a, admin) = serve_with_admin(&dir, "a.yaml", &db.url());
    let (mut b, data_b, _) = serve_with_admin(&dir, "b.yaml", &db.url());
    let plan = admin_post(
        &admin,
        "/admin/v1/plans",
        r#"{"name": "trial", "quota": {"requests": 7, "period": "month"}}"#,
    );
    assert!(plan.starts_with("HTTP/1.1 201 "), "{plan}");
    let project = admin_post(
        &admin,
        "/admin/v1/projects",
        r#"{"name": "metered", "plan": "trial"}"#,
    );
    let project_id = location(&project).rsplit('/').next().unwrap().to_string();
    let route = admin_post(
        &admin,
        "/admin/v1/routes",
        r#"{"name": "m", "path": "/m/{project_id}", "methods": ["GET"], "handler": "echo"}"#,
    );
    assert!(route.starts_with("HTTP/1.1 201 "), "{route}");
    wait_for_store(&mut a, &admin);
    wait_for_store(&mut b, &admin);
    let get = format!("GET /m/{project_id} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    // Both nodes in turn: seven answered in all, then 402 on either.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let node = if i % 2 == 0 { &data_a } else { &data_b };
        let answer = exchange(node, &get);
        statuses.push(answer[9..12].to_string());
    }
    let served = statuses.iter().filter(|s| *s == "200").count();
    assert_eq!(served, 7, "{statuses:?}");
    assert!(statuses[7..].iter().all(|s| s == "402"), "{statuses:?}");
    a.stop();
    b.stop();
}

/// An upstream on threads that holds each request until the test answers it: what arrives
/// (request line and body) comes out of the first receiver, answers go into the sender (one
/// per request, in order).
fn held_upstream() -> (
    String,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Sender<String>,
) {
    use std::sync::{Arc, Mutex, mpsc};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (seen_tx, seen) = mpsc::channel();
    let (answer, answers) = mpsc::channel::<String>();
    let answers = Arc::new(Mutex::new(answers));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let (Ok(conn), seen_tx, answers) = (conn, seen_tx.clone(), answers.clone()) else {
                return;
            };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut field = String::new();
                        reader.read_line(&mut field).unwrap();
                        if field == "\r\n" {
                            break;
                        }
                        if let Some(v) = field.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    seen_tx
                        .send(format!(
                            "{}{}",
                            line.trim_end(),
                            String::from_utf8_lossy(&body)
                        ))
                        .unwrap();
                    let reply = answers.lock().unwrap().recv().unwrap();
                    conn.write_all(reply.as_bytes()).unwrap();
                }
            });
        }
    });
    (addr, seen, answer)
}

#[test]
fn idempotency_keys_are_shared_by_two_nodes_on_one_postgresql() {
    let Some(db) = pg_database("idem") else {
        return;
    };
    let (upstream, seen, answer) = held_upstream();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen: 127.0.0.1:0\nstorage: {}\naccess_log: off\nupstreams:\n  - {{name: up, targets: [\"http://{upstream}\"]}}\nroutes:\n  - {{name: o, path: /orders, methods: [POST], upstream: up, idempotency: true}}\n",
        db.url()
    );
    let mut a = Served::start(&write_config(&dir, "a.yaml", &config), Stdio::null());
    let mut b = Served::start(&write_config(&dir, "b.yaml", &config), Stdio::null());
    let (data_a, data_b) = (a.address("listening"), b.address("listening"));
    let post = |body: &str| {
        format!(
            "POST /orders HTTP/1.1\r\nHost: a\r\nIdempotency-Key: \"order-7\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    // Node A's request is at the upstream...
    let first = {
        let (addr, req) = (data_a.clone(), post("{\"n\":7}"));
        std::thread::spawn(move || exchange(&addr, &req))
    };
    assert_eq!(seen.recv().unwrap(), "POST /orders HTTP/1.1{\"n\":7}");
    // ... so node B refuses the same key: in flight (409), or used for another payload (422).
    let in_flight = exchange(&data_b, &post("{\"n\":7}"));
    assert!(in_flight.starts_with("HTTP/1.1 409 "), "{in_flight}");
    assert!(
        in_flight.contains("PTC.IDEMPOTENCY_KEY_IN_FLIGHT"),
        "{in_flight}"
    );
    let other = exchange(&data_b, &post("{\"n\":8}"));
    assert!(other.starts_with("HTTP/1.1 422 "), "{other}");
    answer
        .send(
            "HTTP/1.1 201 Created\r\nLocation: /orders/7\r\nContent-Length: 8\r\n\r\n{\"id\":7}"
                .into(),
        )
        .unwrap();
    let created = first.join().unwrap();
    assert!(created.starts_with("HTTP/1.1 201 "), "{created}");
    // Node B replays what node A kept; the upstream saw one request.
    let replayed = exchange(&data_b, &post("{\"n\":7}"));
    assert!(replayed.starts_with("HTTP/1.1 201 "), "{replayed}");
    assert!(
        replayed.contains("Idempotent-Replayed: true\r\n"),
        "{replayed}"
    );
    assert!(replayed.contains("Location: /orders/7\r\n"), "{replayed}");
    assert!(replayed.ends_with("{\"id\":7}"), "{replayed}");
    assert!(seen.try_recv().is_err());
    a.stop();
    b.stop();
}

/// The config of a node with an async route to `upstream`, its jobs in `storage`.
fn async_node(storage: &str, upstream: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nstorage: {storage}\naccess_log: off\nupstreams:\n  - {{name: up, targets: [\"http://{upstream}\"]}}\nroutes:\n  - {{name: x, path: \"/v1/{{project_id}}/exports\", methods: [POST], upstream: up, async: {{sync_wait: 30s, lease: 2s}}}}\n"
    )
}

const RESPOND_ASYNC: &str = "POST /v1/p1/exports HTTP/1.1\r\nHost: a\r\nPrefer: respond-async\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

/// The value of a response's field.
fn field<'a>(response: &'a str, name: &str) -> &'a str {
    response
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

/// Polls the job at `location` on `node`, on one keep-alive connection, until it is over;
/// the 303 (head and body).
fn until_finished(node: &str, location: &str) -> String {
    let get = format!("GET {location} HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut conn = BufReader::new(TcpStream::connect(node).unwrap());
    for _ in 0..1_000_000 {
        conn.get_mut().write_all(get.as_bytes()).unwrap();
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert!(conn.read_line(&mut head).unwrap() > 0, "closed: {head}");
        }
        let length: usize = field(&head, "Content-Length").parse().unwrap();
        let mut body = vec![0; length];
        conn.read_exact(&mut body).unwrap();
        if !head.starts_with("HTTP/1.1 200 ") {
            return head + &String::from_utf8(body).unwrap();
        }
    }
    panic!("the job never finished");
}

#[test]
fn a_job_left_running_by_a_killed_node_fails_when_portico_starts_again() {
    let (upstream, seen, _answer) = held_upstream();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.db");
    let config = write_config(
        &dir,
        "jobs.yaml",
        &async_node(&format!("sqlite://{}", db.display()), &upstream),
    );
    let mut first = Served::start(&config, Stdio::null());
    let accepted = exchange(&first.address("listening"), RESPOND_ASYNC);
    assert!(accepted.starts_with("HTTP/1.1 202 "), "{accepted}");
    let location = field(&accepted, "Location").to_string();
    // The upstream has the request; the node dies before it answers (SIGKILL: no goodbye).
    assert_eq!(seen.recv().unwrap(), "POST /v1/p1/exports HTTP/1.1{}");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // The next run fails it at once, with a reason: never lost, never running forever.
    let mut second = Served::start(&config, Stdio::null());
    let node = second.address("listening");
    let done = until_finished(&node, &location);
    assert!(done.starts_with("HTTP/1.1 303 "), "{done}");
    assert!(done.contains("\"state\":\"failed\""), "{done}");
    assert!(done.contains("PTC.JOB_INTERRUPTED"), "{done}");
    let result = exchange(
        &node,
        &format!("GET {location}/result HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    );
    assert!(result.starts_with("HTTP/1.1 502 "), "{result}");
    assert!(result.contains("PTC.JOB_INTERRUPTED"), "{result}");
    second.stop();
}

#[test]
fn any_node_on_one_postgresql_answers_for_any_job() {
    let Some(db) = pg_database("jobs") else {
        return;
    };
    let (upstream, seen, answer) = held_upstream();
    let dir = tempfile::tempdir().unwrap();
    let text = async_node(&db.url(), &upstream);
    let mut a = Served::start(&write_config(&dir, "a.yaml", &text), Stdio::null());
    let mut b = Served::start(&write_config(&dir, "b.yaml", &text), Stdio::null());
    let (node_a, node_b) = (a.address("listening"), b.address("listening"));
    let accepted = exchange(&node_a, RESPOND_ASYNC);
    assert!(accepted.starts_with("HTTP/1.1 202 "), "{accepted}");
    let location = field(&accepted, "Location").to_string();
    seen.recv().unwrap();
    answer
        .send(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nexport".into(),
        )
        .unwrap();
    // Node B, which never saw the request, follows the job to its result.
    let done = until_finished(&node_b, &location);
    assert!(done.starts_with("HTTP/1.1 303 "), "{done}");
    let result = exchange(
        &node_b,
        &format!("GET {location}/result HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    );
    assert!(result.starts_with("HTTP/1.1 200 "), "{result}");
    assert!(result.ends_with("\r\n\r\nexport"), "{result}");
    // A node that dies mid-job: once its lease is over, the other node's sweep fails it.
    let accepted = exchange(&node_a, RESPOND_ASYNC);
    let location = field(&accepted, "Location").to_string();
    seen.recv().unwrap();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let done = until_finished(&node_b, &location);
    assert!(done.contains("PTC.JOB_INTERRUPTED"), "{done}");
    b.stop();
}

/// `portico <args>`: its exit status, stdout and stderr.
fn portico(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn apply_makes_the_store_match_the_file_and_export_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        &dir,
        "portico.yaml",
        "listen: 127.0.0.1:0\nstorage: sqlite://store.db\nupstreams:\n  - {name: file-up, targets: [\"http://127.0.0.1:9000\"]}\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
    );
    write_config(
        &dir,
        "model.yaml",
        "upstreams:\n  - name: backend\n    targets: [\"http://127.0.0.1:9001\"]\n    connect_timeout: 2s\nroutes:\n  - {name: orders, path: \"/v1/{project_id}/orders\", methods: [GET, POST], upstream: backend, max_body_bytes: 1024}\n  - {name: files, path: /f, methods: [GET], upstream: file-up}\napis:\n  - {name: orders, base_path: /v1x, versions: [{id: v1, status: published}]}\nplans:\n  - {name: pro, quota: {requests: 1000, period: month}}\nprojects:\n  - name: acme\n    plan: pro\n    consumers:\n      - {name: bot, roles: [reader]}\n",
    );
    let d = dir.path();
    let apply = |file: &str, dry: bool| {
        let mut args = vec!["apply", file, "--config", "portico.yaml"];
        if dry {
            args.push("--dry-run");
        }
        portico(&args, d)
    };
    let export = || {
        let (ok, out, err) = portico(&["export", "--config", "portico.yaml"], d);
        assert!(ok, "{err}");
        out
    };
    let created = [
        "create upstreams/backend",
        "create routes/files",
        "create routes/orders",
        "create apis/orders",
        "create plans/pro",
        "create projects/acme",
        "create projects/acme/consumers/bot",
    ];
    // A dry run says what it would do, and does nothing.
    let (ok, out, err) = apply("model.yaml", true);
    assert!(ok, "{err}");
    let would: Vec<String> = created.iter().map(|c| format!("would {c}")).collect();
    assert_eq!(out.lines().take(7).collect::<Vec<_>>(), would);
    assert!(
        out.ends_with("7 changes to make (dry run: none made)\n"),
        "{out}"
    );
    let empty = export();
    assert!(
        empty.contains("\nroutes: []\n") && empty.contains("\nprojects: []\n"),
        "{empty}"
    );

    let (ok, out, _) = apply("model.yaml", false);
    assert!(ok);
    assert_eq!(out.lines().take(7).collect::<Vec<_>>(), created);
    // Idempotent: the second time, nothing to do.
    let (ok, out, _) = apply("model.yaml", false);
    assert!(ok);
    assert_eq!(out, "no changes: the store matches the file\n");
    // What export writes, apply takes back unchanged, and export writes again.
    let exported = export();
    assert!(exported.contains(r#""name":"bot""#), "{exported}");
    std::fs::write(d.join("exported.yaml"), &exported).unwrap();
    let (ok, out, _) = apply("exported.yaml", false);
    assert!(ok);
    assert_eq!(out, "no changes: the store matches the file\n");
    assert_eq!(export(), exported);

    // Changes, by name: what differs is replaced, what is not in the file goes.
    write_config(
        &dir,
        "smaller.yaml",
        "upstreams:\n  - {name: backend, targets: [\"http://127.0.0.1:9002\"]}\nroutes:\n  - {name: orders, path: \"/v1/{project_id}/orders\", methods: [GET], upstream: backend}\nprojects:\n  - {name: acme}\n",
    );
    let (ok, out, _) = apply("smaller.yaml", false);
    assert!(ok);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "delete routes/files",
            "delete apis/orders",
            "update upstreams/backend",
            "update routes/orders",
            "delete plans/pro",
            "update projects/acme",
            "delete projects/acme/consumers/bot",
            "7 changes made",
        ]
    );

    // A file that breaks the rules changes nothing, and says every problem.
    write_config(
        &dir,
        "bad.yaml",
        "upstreams:\n  - {name: x, targets: [\"ftp://h\"]}\nroutes:\n  - {name: r, path: /r, methods: [GET], upstream: nowhere}\nplans:\n  - {name: p, quota: {requests: 0, period: month}}\nprojects:\n  - {name: \"a b\", consumers: [{name: c, roles: 1}]}\ncolour: blue\n",
    );
    let before = export();
    let (ok, out, err) = apply("bad.yaml", false);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    for problem in [
        "bad.yaml: /colour: unknown section",
        "bad.yaml: upstreams[0]/targets/0: ",
        "bad.yaml: routes[0]/upstream: unknown upstream `nowhere`",
        "bad.yaml: plans[0]/quota/requests: ",
        "bad.yaml: projects[0]/name: ",
        "bad.yaml: projects[0]/consumers/0/roles: ",
    ] {
        assert!(err.contains(problem), "{problem} not in {err}");
    }
    assert_eq!(export(), before);
}

#[test]
fn export_never_shows_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("secrets.db");
    let (served, _, admin) =
        serve_with_admin(&dir, "secrets.yaml", &format!("sqlite://{}", db.display()));
    let project = admin_post(&admin, "/admin/v1/projects", r#"{"name": "acme"}"#);
    let consumers = format!("{}/consumers", location(&project));
    let consumer = admin_post(&admin, &consumers, r#"{"name": "bot"}"#);
    let credential = admin_post(
        &admin,
        &format!("{}/credentials", location(&consumer)),
        r#"{"type": "api_key"}"#,
    );
    assert!(credential.starts_with("HTTP/1.1 201 "), "{credential}");
    let secret = secret_of(&credential);
    assert!(secret.starts_with("pk_"));
    served.stop();
    let (ok, exported, err) = portico(&["export", "--config", "secrets.yaml"], dir.path());
    assert!(ok, "{err}");
    assert!(exported.contains(r#""name":"bot""#), "{exported}");
    assert!(!exported.contains(&secret[3..]), "{exported}");
    assert!(
        !exported.contains("pk_") && !exported.contains("secret"),
        "{exported}"
    );
}

#[test]
fn keys_issued_through_the_admin_api_open_a_route_until_they_are_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.db");
    let (mut served, data, admin) =
        serve_with_admin(&dir, "keys.yaml", &format!("sqlite://{}", db.display()));
    let (project_id, consumer, credential, secret) =
        consumer_with_key(&admin, r#"{"name": "alice", "roles": ["member"]}"#);
    let route = admin_post(
        &admin,
        "/admin/v1/routes",
        r#"{"name": "things", "path": "/v1/{project_id}/things", "methods": ["GET"], "handler": "echo", "auth": ["api_key"]}"#,
    );
    assert!(route.starts_with("HTTP/1.1 201 "), "{route}");
    wait_for_store(&mut served, &admin);
    let get = |key: &str| {
        exchange(
            &data,
            &format!(
                "GET /v1/{project_id}/things HTTP/1.1\r\nHost: a\r\nX-Api-Key: {key}\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let answer = get(&secret);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // An access key issued the same way signs requests; its secret key is shown once.
    let access = admin_post(
        &admin,
        &format!("{}/credentials", location(&consumer)),
        r#"{"type": "access_key"}"#,
    );
    assert!(access.starts_with("HTTP/1.1 201 "), "{access}");
    let field = |name: &str| {
        access
            .split(&format!("\"{name}\":\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_string()
    };
    let (ak, sk) = (field("access_key_id"), field("secret"));
    let read = admin_send(&admin, "GET", location(&access), "");
    assert!(read.contains(&ak) && !read.contains(&sk), "{read}");
    let patched = admin_send(
        &admin,
        "PATCH",
        location(&route),
        r#"{"auth": ["api_key", "signature"]}"#,
    );
    assert!(patched.starts_with("HTTP/1.1 200 "), "{patched}");
    wait_for_store(&mut served, &admin);
    let url = format!("http://{data}/v1/{project_id}/things");
    let signed = Command::new(BIN)
        .args(["sign", "--access-key", &ak, &url])
        .env("PORTICO_SECRET_KEY", &sk)
        .output()
        .unwrap();
    let headers = String::from_utf8(signed.stdout).unwrap();
    let answer = exchange(
        &data,
        &format!(
            "GET /v1/{project_id}/things HTTP/1.1\r\nHost: {data}\r\n{}\r\nConnection: close\r\n\r\n",
            headers.trim_end().replace('\n', "\r\n")
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    // Revoked: the data plane follows the store, and the key no longer opens anything.
    let revoked = admin_send(&admin, "DELETE", location(&credential), "");
    assert!(revoked.starts_with("HTTP/1.1 204 "), "{revoked}");
    wait_for_store(&mut served, &admin);
    let answer = get(&secret);
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    assert!(answer.contains("PTC.API_KEY_UNKNOWN"), "{answer}");
    served.stop();
}

#[test]
fn a_limit_reset_through_the_admin_api_is_205_and_gives_the_burst_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("limits.db");
    let (mut served, data, admin) =
        serve_with_admin(&dir, "limits.yaml", &format!("sqlite://{}", db.display()));
    let (project_id, consumer, _, key) = consumer_with_key(&admin, r#"{"name": "alice"}"#);
    let route = admin_post(
        &admin,
        "/admin/v1/routes",
        r#"{"name": "hourly", "path": "/v1/{project_id}/hourly", "methods": ["GET"], "handler": "echo", "auth": ["api_key"], "rate_limit": {"key": "consumer", "rate": "1/h"}}"#,
    );
    assert!(route.starts_with("HTTP/1.1 201 "), "{route}");
    wait_for_store(&mut served, &admin);
    let get = || {
        let answer = exchange(
            &data,
            &format!(
                "GET /v1/{project_id}/hourly HTTP/1.1\r\nHost: a\r\nX-Api-Key: {key}\r\nConnection: close\r\n\r\n"
            ),
        );
        answer[9..12].to_string()
    };
    assert_eq!(get(), "200");
    assert_eq!(get(), "429");
    // The consumer's state, then the whole route's.
    for reset in [
        format!("{}/limits/reset", location(&consumer)),
        format!("{}/limits/reset", location(&route)),
    ] {
        let answer = admin_send(&admin, "POST", &reset, "");
        assert!(answer.starts_with("HTTP/1.1 205 "), "{answer}");
        assert!(answer.ends_with("\r\n\r\n"), "a 205 has no body: {answer}");
        assert_eq!(get(), "200");
        assert_eq!(get(), "429");
    }
    // The counters: no shared store here, so nothing failed.
    let metrics = admin_send(&admin, "GET", "/admin/v1/metrics", "");
    assert!(metrics.starts_with("HTTP/1.1 200 "), "{metrics}");
    let body: serde_json::Value =
        serde_json::from_str(metrics.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["rate_limit_store_failures"], 0, "{metrics}");
    assert_eq!(body["response_violations"], 0, "{metrics}");
    served.stop();
}

#[test]
fn no_secret_reaches_a_log_line_or_an_error_body() {
    const KEY: &str = "file-api-key-0123456789abcdef";
    const SK: &str = "file-secret-key-0123456789abcdef";
    const GUESS: &str = "guessed-key-0123456789abcdef";
    const WRONG_SK: &str = "wrong-secret-key-0123456789";
    const PASSWORD: &str = "file-password-0123456789";
    const WRONG_PASSWORD: &str = "wrong-password-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let project = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let path = write_config(
        &dir,
        "secrets.yaml",
        &format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\nstorage: sqlite://{}\naccess_log: stdout\nprojects:\n  - id: {project}\n    name: p\n    consumers:\n      - {{name: c, password: \"${{PW_FROM_ENV}}\", api_keys: [\"${{KEY_FROM_ENV}}\"], access_keys: [{{id: AKFILE01, secret: \"${{SK_FROM_ENV}}\"}}]}}\negress: {{listen: 127.0.0.1:0, allow_hosts: [127.0.0.1], auth: basic}}\nroutes:\n  - {{name: tokens, path: /v3/auth/tokens, methods: [POST], handler: tokens}}\n  - {{name: t, path: \"/v1/{{project_id}}/t\", methods: [GET], handler: echo, auth: token}}\n  - {{name: k, path: \"/v1/{{project_id}}/k\", methods: [GET], handler: echo, auth: api_key}}\n  - {{name: q, path: \"/q/{{project_id}}\", methods: [GET], handler: echo, auth: api_key, api_key: {{query: key}}}}\n  - {{name: s, path: \"/v1/{{project_id}}/s\", methods: [GET, POST], handler: echo, auth: signature}}\n",
            dir.path().join("s.db").display()
        ),
    );
    let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "debug")
        .env("PORTICO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("KEY_FROM_ENV", KEY)
        .env("SK_FROM_ENV", SK)
        .env("PW_FROM_ENV", PASSWORD)
        .stdout(stdout);
    let mut served = Served::spawn(command);
    let admin = served.address("admin API listening");
    let egress = served.address("egress proxy listening");
    let data = served.address("portico listening");
    let mut secrets: Vec<String> = vec![
        KEY.into(),
        SK.into(),
        GUESS.into(),
        WRONG_SK.into(),
        ADMIN_TOKEN.into(),
        PASSWORD.into(),
        WRONG_PASSWORD.into(),
    ];
    let mut answers = Vec::new();
    let mut send = |raw: String| {
        let answer = exchange(&data, &raw);
        answers.push(answer.clone());
        answer
    };
    // API keys: good, guessed, in the query.
    for key in [KEY, GUESS] {
        send(format!(
            "GET /v1/{project}/k HTTP/1.1\r\nHost: a\r\nX-Api-Key: {key}\r\nConnection: close\r\n\r\n"
        ));
        send(format!(
            "GET /q/{project}?key={key} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
    }
    // Signatures: good, made with a wrong secret, and over a tampered body.
    for (secret, body, sent) in [
        (SK, "hello", "hello"),
        (WRONG_SK, "hello", "hello"),
        (SK, "hello", "jello"),
    ] {
        let url = format!("http://{data}/v1/{project}/s");
        let signed = Command::new(BIN)
            .args([
                "sign",
                "--access-key",
                "AKFILE01",
                "-X",
                "POST",
                "-d",
                body,
                &url,
            ])
            .env("PORTICO_SECRET_KEY", secret)
            .output()
            .unwrap();
        let headers = String::from_utf8(signed.stdout).unwrap();
        let signature = headers
            .split("Signature=")
            .nth(1)
            .unwrap()
            .trim()
            .to_string();
        secrets.push(signature);
        send(format!(
            "POST /v1/{project}/s HTTP/1.1\r\nHost: {data}\r\n{}\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{sent}",
            headers.trim_end().replace('\n', "\r\n")
        ));
    }
    // Passwords at the token service, right and wrong; the token it issues, used. (The 201
    // that issues it is the one answer that shows it.)
    let login = |password: &str| {
        let body = format!(
            r#"{{"auth": {{"identity": {{"methods": ["password"], "password": {{"user": {{"name": "c", "password": "{password}"}}}}}}, "scope": {{"project": {{"id": "{project}"}}}}}}}}"#
        );
        exchange(
            &data,
            &format!(
                "POST /v3/auth/tokens HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let issued = login(PASSWORD);
    let token = issued
        .lines()
        .find_map(|l| l.strip_prefix("X-Subject-Token: "))
        .unwrap()
        .to_string();
    let refused = login(WRONG_PASSWORD);
    assert!(refused.starts_with("HTTP/1.1 401 "), "{refused}");
    secrets.push(token.clone());
    send(format!(
        "GET /v1/{project}/t HTTP/1.1\r\nHost: a\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    ));
    answers.push(refused);
    // The egress proxy's Basic credentials, right and wrong (as sent, base64).
    for password in [PASSWORD, WRONG_PASSWORD] {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("c:{password}"));
        secrets.push(basic.clone());
        answers.push(exchange(
            &egress,
            &format!(
                "GET http://{data}/v1/{project}/k HTTP/1.1\r\nHost: {data}\r\nProxy-Authorization: Basic {basic}\r\nX-Api-Key: {KEY}\r\nConnection: close\r\n\r\n"
            ),
        ));
    }
    let n = answers.len();
    assert!(
        answers[n - 2].starts_with("HTTP/1.1 200 "),
        "{}",
        answers[n - 2]
    );
    assert!(
        answers[n - 1].starts_with("HTTP/1.1 407 "),
        "{}",
        answers[n - 1]
    );
    // Secrets issued by the admin API, and used.
    let created = admin_post(&admin, "/admin/v1/projects", r#"{"name": "issued"}"#);
    let consumer = admin_post(
        &admin,
        &format!("{}/consumers", location(&created)),
        r#"{"name": "c"}"#,
    );
    for kind in ["api_key", "access_key"] {
        let credential = admin_post(
            &admin,
            &format!("{}/credentials", location(&consumer)),
            &format!(r#"{{"type": "{kind}"}}"#),
        );
        let secret = secret_of(&credential);
        secrets.push(secret);
        answers.push(admin_send(&admin, "GET", location(&credential), ""));
    }
    let logged = served.finish();
    let access_log = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    assert!(access_log.contains("\"consumer\":\"c\""), "{access_log}");
    assert!(
        logged.contains("DEBUG") || logged.contains("INFO"),
        "{logged}"
    );
    for secret in &secrets {
        assert!(
            !logged.contains(secret.as_str()),
            "{secret} is in the diagnostic log"
        );
        assert!(
            !access_log.contains(secret.as_str()),
            "{secret} is in the access log"
        );
        for a in &answers {
            assert!(
                !a.contains(secret.as_str()),
                "{secret} is in an answer: {a}"
            );
        }
    }
    // And the refusals were refusals.
    assert!(
        answers
            .iter()
            .filter(|a| a.starts_with("HTTP/1.1 401 "))
            .count()
            >= 4
    );
}

#[test]
fn tokens_live_in_the_store_as_digests_and_a_revocation_takes_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    let project = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let path = write_config(
        &dir,
        "tokens.yaml",
        &format!(
            "listen: 127.0.0.1:0\nadmin: {{listen: 127.0.0.1:0}}\nstorage: sqlite://{}\naccess_log: off\nprojects:\n  - {{id: {project}, name: acme, consumers: [{{name: alice, roles: [member], password: \"${{ALICE_PASSWORD}}\"}}]}}\nroutes:\n  - {{name: tokens, path: /v3/auth/tokens, methods: [POST], handler: tokens}}\n  - {{name: s, path: \"/v1/{{project_id}}/s\", methods: [GET], handler: echo, auth: token}}\n",
            db.display()
        ),
    );
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&path)
        .env("PORTICO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ALICE_PASSWORD", "alice-password-123")
        .stdout(Stdio::null());
    let mut served = Served::spawn(command);
    let admin = served.address("admin API listening");
    let data = served.address("portico listening");
    // A token for a user and password, scoped to a project by name.
    let issue = |user: &str, password: &str, project: &str| {
        let body = format!(
            r#"{{"auth": {{"identity": {{"methods": ["password"], "password": {{"user": {{"name": "{user}", "password": "{password}", "domain": {{"name": "Default"}}}}}}}}, "scope": {{"project": {{"name": "{project}"}}}}}}}}"#
        );
        let issued = exchange(
            &data,
            &format!(
                "POST /v3/auth/tokens HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(issued.starts_with("HTTP/1.1 201 "), "{issued}");
        issued
            .lines()
            .find_map(|l| l.strip_prefix("X-Subject-Token: "))
            .unwrap()
            .to_string()
    };
    let token = issue("alice", "alice-password-123", "acme");
    let get = || {
        exchange(
            &data,
            &format!(
                "GET /v1/{project}/s HTTP/1.1\r\nHost: a\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let answer = get();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // The store has the token's digest, never the token.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().contains("tokens.db") {
            stored.extend(std::fs::read(p).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(!stored.contains(&token[3..]), "the token is in the store");
    // Revoked through the admin API: refused at once on this node.
    let revoke = |t: &str| {
        exchange(
            &admin,
            &format!(
                "DELETE /admin/v1/tokens HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nX-Subject-Token: {t}\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    assert!(revoke(&token).starts_with("HTTP/1.1 204 "));
    let answer = get();
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    assert!(answer.contains("PTC.CREDENTIAL_REVOKED"), "{answer}");
    assert!(revoke(&token).starts_with("HTTP/1.1 404 "));

    // A consumer made through the admin API, with a password credential (kept hashed).
    let beta = admin_post(&admin, "/admin/v1/projects", r#"{"name": "beta"}"#);
    let beta_id = location(&beta).rsplit('/').next().unwrap().to_string();
    let bob = admin_post(
        &admin,
        &format!("{}/consumers", location(&beta)),
        r#"{"name": "bob"}"#,
    );
    let credential = admin_post(
        &admin,
        &format!("{}/credentials", location(&bob)),
        r#"{"type": "password", "password": "bob-password-123"}"#,
    );
    assert!(credential.starts_with("HTTP/1.1 201 "), "{credential}");
    assert!(
        !credential.contains("bob-password") && !credential.contains("pbkdf2"),
        "{credential}"
    );
    wait_for_store(&mut served, &admin);
    let bob_token = issue("bob", "bob-password-123", "beta");
    let answer = exchange(
        &data,
        &format!(
            "GET /v1/{beta_id}/s HTTP/1.1\r\nHost: a\r\nX-Auth-Token: {bob_token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    served.stop();
}

/// The admin API against its own OpenAPI document, by Schemathesis (`--checks all`, every
/// phase, the stateful one following the document's links): every response declared, every
/// schema-valid request accepted (or a conflict), every invalid one refused, 405 with `Allow`
/// for every method a path does not take. `.ci/run` installs the pinned Schemathesis and names
/// it in `PORTICO_SCHEMATHESIS`; elsewhere the test says so and checks nothing.
#[test]
fn schemathesis_finds_nothing_in_the_admin_api() {
    let Some(st) = from_ci("PORTICO_SCHEMATHESIS", "Schemathesis") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = "schemathesis-admin-token";
    let path = write_config(
        &dir,
        "portico.yaml",
        &format!(
            "listen: 127.0.0.1:0\naccess_log: off\nadmin: {{listen: 127.0.0.1:0, token: {token}}}\nstorage: sqlite://{}\nroutes:\n  - {{name: file-route, path: /file, methods: [GET], handler: echo}}\n",
            dir.path().join("portico.db").display()
        ),
    );
    let mut served = Served::start(&path, Stdio::null());
    let admin = served.address("admin API listening");
    served.drain();
    let settings = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/schemathesis.toml");
    let out = Command::new(st)
        .args(["--config-file", settings])
        .args(["run", &format!("http://{admin}/admin/v1/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-examples", "25", "--seed", "1"])
        .args(["--no-color", "--generation-database", "none"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    served.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The stateful phase ran, following links from what each create made.
    assert!(text.contains("Stateful"), "{text}");
    assert!(text.contains("API Links"), "{text}");
}

/// An upstream on a thread that answers every request with `reply`, counting them.
fn counting_upstream(
    reply: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let (Ok(conn), seen) = (conn, seen.clone()) else {
                return;
            };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    while line != "\r\n" {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if conn.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}

/// A node with the admin API on `storage` and a cached route `/c/{*rest}` to `upstream`.
fn cached_node(
    dir: &tempfile::TempDir,
    name: &str,
    storage: &str,
    upstream: &str,
) -> (Served, String, String) {
    serve_with_admin_and(
        dir,
        name,
        storage,
        &format!(
            "upstreams:\n  - {{name: u, targets: [\"http://{upstream}\"]}}\nroutes:\n  - {{name: cached, path: \"/c/{{*rest}}\", methods: [GET], upstream: u, cache: true}}\n"
        ),
    )
}

fn cache_status(data: &str, path: &str) -> String {
    let answer = exchange(
        data,
        &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Cache-Status: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_cache_purge_is_205_and_reaches_every_node_on_the_store() {
    let Some(db) = pg_database("purge") else {
        return;
    };
    let (upstream, count) = counting_upstream(
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 2\r\n\r\nok",
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut a, data_a, admin_a) = cached_node(&dir, "a.yaml", &db.url(), &upstream);
    let (mut b, data_b, _) = cached_node(&dir, "b.yaml", &db.url(), &upstream);
    for data in [&data_a, &data_b] {
        for path in ["/c/x", "/c/y"] {
            assert!(cache_status(data, path).contains("stored"));
            assert!(cache_status(data, path).contains("hit"));
        }
    }
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 4);
    // One URL, through A's admin API: A forgets it at once, B within a second.
    let purged = admin_post(&admin_a, "/admin/v1/cache/purge", r#"{"url": "/c/x"}"#);
    assert!(purged.starts_with("HTTP/1.1 205 "), "{purged}");
    assert!(purged.ends_with("\r\n\r\n"), "a 205 has no body: {purged}");
    assert!(cache_status(&data_a, "/c/x").contains("fwd=uri-miss"));
    b.read_until("cache purge applied");
    assert!(cache_status(&data_b, "/c/x").contains("fwd=uri-miss"));
    assert!(cache_status(&data_b, "/c/y").contains("hit"));
    // A bad purge is 422 and changes nothing.
    let bad = admin_post(&admin_a, "/admin/v1/cache/purge", r#"{"url": "c/y"}"#);
    assert!(bad.starts_with("HTTP/1.1 422 "), "{bad}");
    // The whole route, from the command line.
    let config = write_config(
        &dir,
        "cli.yaml",
        &format!(
            "storage: {}\nroutes:\n  - {{name: e, path: /e, methods: [GET], handler: echo}}\n",
            db.url()
        ),
    );
    let (ok, stdout, stderr) = portico(
        &[
            "purge",
            "--config",
            config.to_str().unwrap(),
            "--route",
            "cached",
        ],
        dir.path(),
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("recorded"), "{stdout}");
    // Each node applies it (purge 2) from the store.
    a.read_until("seq=2");
    b.read_until("seq=2");
    for data in [&data_a, &data_b] {
        assert!(cache_status(data, "/c/y").contains("fwd=uri-miss"));
    }
    a.stop();
    b.stop();
}

/// The required tests of the public HTTP caching test suite that docs/cache.md says Portico
/// fails (its table's first column).
fn documented_cache_failures() -> std::collections::BTreeSet<String> {
    let doc = include_str!("../../../docs/cache.md");
    let at = doc
        .find("### Required tests Portico fails")
        .expect("docs/cache.md lists the required tests Portico fails");
    doc[at..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .map(str::to_string)
        .collect()
}

/// The public HTTP caching test suite (http-cache-tests, pinned; `.ci/run` installs it and
/// names its directory in `PORTICO_HTTP_CACHE_TESTS`) against `portico serve` in front of the
/// suite's own origin: the required tests Portico fails are exactly those docs/cache.md lists,
/// so a regression fails, and so does a fix the page does not record.
#[test]
fn the_http_caching_test_suite_fails_only_what_docs_cache_md_lists() {
    let Some(pkg) = from_ci("PORTICO_HTTP_CACHE_TESTS", "the HTTP caching test suite") else {
        return;
    };
    let pkg = std::path::PathBuf::from(pkg);
    let dir = tempfile::tempdir().unwrap();
    /// The origin, stopped however the test ends.
    struct Origin(std::process::Child);
    impl Drop for Origin {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut origin = Origin(
        Command::new("node")
            .arg("server/server.mjs")
            .current_dir(&pkg)
            .env("npm_config_port", "0")
            .env("npm_config_protocol", "http")
            .env("npm_config_pidfile", dir.path().join("origin.pid"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // `Listening on http://[::]:PORT/`
    let mut line = String::new();
    BufReader::new(origin.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim_end()
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let path = write_config(
        &dir,
        "portico.yaml",
        &format!(
            "listen: 127.0.0.1:0\naccess_log: off\nupstreams:\n  - {{name: origin, targets: [\"http://127.0.0.1:{port}\"]}}\nroutes:\n  - {{name: all, path: \"/{{*rest}}\", methods: [GET, POST, PUT, DELETE, PATCH], upstream: origin, cache: true}}\n"
        ),
    );
    let mut served = Served::start(&path, Stdio::null());
    let addr = served.address("portico listening");
    served.drain();
    let run = Command::new("node")
        .args(["--no-warnings", "cli.mjs"])
        .current_dir(&pkg)
        .env("npm_config_base", format!("http://{addr}"))
        .env("npm_package_config_id", "")
        .output()
        .unwrap();
    served.stop();
    drop(origin);
    let results = dir.path().join("portico.json");
    std::fs::write(&results, &run.stdout).unwrap();
    let summarize = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/http-cache-tests/summarize.mjs"
    );
    let summary = Command::new("node")
        .arg(summarize)
        .arg(&pkg)
        .arg(format!("portico={}", results.display()))
        .output()
        .unwrap();
    assert!(
        summary.status.success(),
        "{}",
        String::from_utf8_lossy(&summary.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    let failed: std::collections::BTreeSet<String> = summary["portico"]["required_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // The suite ran: most of its tests passed.
    assert!(
        summary["portico"]["passed"].as_u64().unwrap() > 200,
        "{summary}"
    );
    assert_eq!(failed, documented_cache_failures(), "{summary}");
}

#[test]
fn probe_exits_0_1_or_2_and_says_why_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "p.yaml",
        "listen: 127.0.0.1:0\naccess_log: off\nroutes:\n  - {name: e, path: /e, methods: [GET], handler: echo}\n",
    );
    let served = Served::start(&path, Stdio::null());
    let mut served = served;
    let addr = served.address("portico listening");
    served.drain();
    let run = |args: &[&str]| Command::new(BIN).arg("probe").args(args).output().unwrap();
    // The rows that need no resource of their own (the probe crate's tests cover the rest).
    let ok = run(&[
        &format!("http://{addr}"),
        "--path",
        "/e",
        "--unsafe",
        "--rows",
        "100,204,400,404,405,414,417,501,505,0",
        "--format",
        "json",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let rows: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["outcome"], "pass", "{row}");
        for field in ["code", "check", "why", "request", "response"] {
            assert!(row.get(field).is_some(), "{field} in {row}");
        }
    }
    served.stop();
    for bad in [
        "http://u:p@127.0.0.1/",
        "not-a-url",
        &format!("http://{addr}/"),
    ] {
        let out = run(&[bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
    }
}
