//! What `portico serve` writes: no secret it was given or gave out ever appears in any line
//! (access log or diagnostics, at debug level), and a flood of failing requests writes a
//! bounded number of diagnostic lines.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::served;

use served::{BIN, Served, exchange, write_config};

const ADMIN_TOKEN: &str = "admin-token-4f1c0a9b7e5d3c2a";
const API_KEY: &str = "apikey-7d41e0f2a9c8b6d5e4f3";
const PASSWORD: &str = "password-b3a9c7e1d5f2";
const SECRET_KEY: &str = "secretkey-e8d7c6b5a4f3e2d1c0b9";
const COOKIE: &str = "cookie-5a4b3c2d1e0f";
const PROJECT: &str = "0123456789abcdef0123456789abcdef";

/// Whoever finds a secret in `text` says where.
fn assert_absent(text: &str, secrets: &[String]) {
    for secret in secrets {
        if let Some(at) = text.find(secret.as_str()) {
            let line = text[..at].lines().count() + 1;
            panic!(
                "secret {secret:?} logged at line {line}: {}",
                text.lines().nth(line - 1).unwrap_or_default()
            );
        }
    }
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v.trim_end())
    })
}

#[test]
fn no_secret_used_in_a_run_reaches_any_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let access_log = dir.path().join("access.log");
    let path = write_config(
        &dir,
        "portico.yaml",
        &format!(
            "listen: 127.0.0.1:0
access_log: {log}
admin: {{listen: 127.0.0.1:0, token: {ADMIN_TOKEN}}}
storage: sqlite://{db}
upstreams:
  - {{name: backend, targets: ['http://{gone}']}}
projects:
  - id: {PROJECT}
    name: demo
    consumers:
      - name: alice
        api_keys: [{API_KEY}]
        password: {PASSWORD}
        access_keys: [{{id: AKLOGTEST0001, secret: {SECRET_KEY}}}]
routes:
  - {{name: keyed, path: '/v1/{{project_id}}/keyed', methods: [GET], upstream: backend, auth: [api_key], api_key: {{header: X-Api-Key}}}}
  - {{name: query, path: '/v1/{{project_id}}/query', methods: [GET], handler: echo, auth: [api_key], api_key: {{query: api_key}}}}
  - {{name: tokens, path: /v3/auth/tokens, methods: [POST], handler: tokens, token_ttl: 1h}}
  - {{name: tokened, path: '/v1/{{project_id}}/tokened', methods: [GET], handler: echo, auth: token}}
  - {{name: signed, path: '/v1/{{project_id}}/signed', methods: [GET], handler: echo, auth: [signature]}}
",
            log = access_log.display(),
            db = dir.path().join("portico.db").display()
        ),
    );
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null());
    let mut served = Served::spawn(command);
    let data = served.address("portico listening");
    let admin = served.address("admin API listening");
    let mut secrets: Vec<String> = [ADMIN_TOKEN, API_KEY, PASSWORD, SECRET_KEY, COOKIE]
        .map(str::to_string)
        .to_vec();

    let project = PROJECT;
    let send = |addr: &str, request: String| exchange(addr, &request);

    // API keys: right and wrong, in a field and in the query; a cookie and a proxy
    // credential beside them.
    let wrong_key = "apikey-wrong-0a1b2c3d4e5f6a7b".to_string();
    for key in [API_KEY, &wrong_key] {
        send(
            &data,
            format!(
                "GET /v1/{project}/keyed HTTP/1.1\r\nHost: a\r\nX-Api-Key: {key}\r\nCookie: session={COOKIE}\r\nProxy-Authorization: Basic {COOKIE}\r\nConnection: close\r\n\r\n"
            ),
        );
        send(
            &data,
            format!(
                "GET /v1/{project}/query?api_key={key}&x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            ),
        );
    }
    secrets.push(wrong_key);

    // The token service: a wrong password, then the right one, then the token issued.
    let wrong_password = "password-wrong-9f8e7d".to_string();
    let mut issued = None;
    for password in [wrong_password.as_str(), PASSWORD] {
        let body = format!(
            r#"{{"auth": {{"identity": {{"methods": ["password"], "password": {{"user": {{"name": "alice", "password": "{password}"}}}}}}, "scope": {{"project": {{"id": "{project}"}}}}}}}}"#
        );
        let answer = send(
            &data,
            format!(
                "POST /v3/auth/tokens HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        issued = header(&answer, "X-Subject-Token")
            .map(str::to_string)
            .or(issued);
    }
    let token = issued.expect("a token was issued");
    let used = send(
        &data,
        format!(
            "GET /v1/{project}/tokened HTTP/1.1\r\nHost: a\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(used.starts_with("HTTP/1.1 200 "), "{used}");
    secrets.push(token);
    secrets.push(wrong_password);

    // A signed request, and the same signature replayed on another path.
    let url = format!("http://{data}/v1/{project}/signed");
    let signed = Command::new(BIN)
        .args(["sign", "--access-key", "AKLOGTEST0001", &url])
        .env("PORTICO_SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    let headers = String::from_utf8(signed.stdout).unwrap();
    let signature = headers
        .split("Signature=")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_hexdigit())
        .next()
        .unwrap()
        .to_string();
    assert!(signature.len() >= 32, "{headers}");
    for path in ["signed", "keyed"] {
        send(
            &data,
            format!(
                "GET /v1/{project}/{path} HTTP/1.1\r\nHost: {data}\r\n{}\r\nConnection: close\r\n\r\n",
                headers.trim_end().replace('\n', "\r\n")
            ),
        );
    }
    secrets.push(signature);

    // The admin API: a wrong token, and a credential whose secret is shown once.
    let wrong_admin = "admin-wrong-77aa66bb55cc".to_string();
    send(
        &admin,
        format!(
            "GET /admin/v1/projects HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {wrong_admin}\r\nConnection: close\r\n\r\n"
        ),
    );
    secrets.push(wrong_admin);
    let post = |path: &str, json: &str| {
        send(
            &admin,
            format!(
                "POST {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            ),
        )
    };
    let location = |created: &str| header(created, "Location").unwrap().to_string();
    let made = post("/admin/v1/projects", r#"{"name": "stored"}"#);
    let made = post(
        &format!("{}/consumers", location(&made)),
        r#"{"name": "bob"}"#,
    );
    let admin_password = "password-admin-set-1c2d3e".to_string();
    let set = post(
        &format!("{}/credentials", location(&made)),
        &format!(r#"{{"type": "password", "password": "{admin_password}"}}"#),
    );
    assert!(set.starts_with("HTTP/1.1 201 "), "{set}");
    secrets.push(admin_password);
    // A body the admin API refuses: its violations name places, never values.
    let misplaced = "password-misplaced-4e5f6a".to_string();
    let refused = post(
        &format!("{}/credentials", location(&made)),
        &format!(r#"{{"type": "password", "secret": "{misplaced}"}}"#),
    );
    assert!(refused.starts_with("HTTP/1.1 422 "), "{refused}");
    assert!(!refused.contains(&misplaced), "{refused}");
    secrets.push(misplaced);
    let created = post(
        &format!("{}/credentials", location(&made)),
        r#"{"type": "api_key", "description": "for the log test"}"#,
    );
    assert!(created.starts_with("HTTP/1.1 201 "), "{created}");
    let body: serde_json::Value =
        serde_json::from_str(created.split_once("\r\n\r\n").unwrap().1).unwrap();
    secrets.push(body["secret"].as_str().unwrap().to_string());

    let diagnostics = served.finish();
    assert!(
        diagnostics.contains("DEBUG"),
        "the run logged at debug level"
    );
    assert_absent(&diagnostics, &secrets);
    let access = std::fs::read_to_string(&access_log).unwrap();
    assert_eq!(access.lines().count(), 9, "{access}");
    assert_absent(&access, &secrets);
}

#[test]
fn a_flood_of_failing_requests_writes_a_bounded_number_of_diagnostic_lines() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let path = write_config(
        &dir,
        "portico.yaml",
        &format!(
            "listen: 127.0.0.1:0\naccess_log: off\nmetrics: {{listen: 127.0.0.1:0}}\nupstreams:\n  - {{name: backend, targets: ['http://{gone}']}}\nroutes:\n  - {{name: down, path: /down, methods: [GET], upstream: backend}}\n"
        ),
    );
    let mut served = Served::start(&path, Stdio::null());
    let data = served.address("portico listening");
    let scrape = served.address("metrics listening");
    let started = std::time::Instant::now();
    // 2,000 requests whose upstream refuses the connection: each 502 has a cause to log.
    let n = 2_000;
    let mut conn = TcpStream::connect(&data).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let mut all = String::new();
        for i in 0..n {
            let close = if i == n - 1 {
                "Connection: close\r\n"
            } else {
                ""
            };
            all.push_str(&format!("GET /down HTTP/1.1\r\nHost: a\r\n{close}\r\n"));
        }
        writer.write_all(all.as_bytes()).unwrap();
    });
    let mut answers = String::new();
    conn.read_to_string(&mut answers).unwrap();
    sending.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(answers.matches("HTTP/1.1 502 ").count(), n);
    let metrics = exchange(
        &scrape,
        "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let suppressed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portico_log_lines_suppressed_total "))
        .unwrap()
        .parse()
        .unwrap();
    let logged = served.finish();
    let lines = logged.matches("request failed").count();
    // A burst, then the rate, for as long as the flood lasted (and the moment it took to stop).
    let bound = portico_telemetry::throttle::BURST
        + portico_telemetry::throttle::PER_SECOND * (elapsed + 1.0);
    assert!(lines >= 1, "the first failures are logged");
    assert!(
        (lines as f64) <= bound,
        "{lines} lines in {elapsed:.1}s (bound {bound})"
    );
    assert!(
        suppressed >= (n - lines) as f64 - 1.0,
        "{suppressed} suppressed, {lines} written of {n}"
    );
}
