//! Signed requests (`auth: signature`) over real sockets: the Python client printed in
//! docs/signing.md and `portico sign` are accepted as they are; every failure is its own 401,
//! decided before `100 Continue` when the head can decide it, and a body is checked against
//! its signature before any of it reaches the upstream.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::{Duration, SystemTime};

use portico_policy::signature::{self, SignedRequest};
use portico_testkit::{MockUpstream, Reply, TestGateway, assert_error};

const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const AK: &str = "AKALICE0001";
const SK: &str = "alice-secret-key-0123456789";

fn config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
upstreams:
  - {{name: up, targets: ["http://{upstream}"]}}
projects:
  - id: {ACME}
    name: acme
    consumers:
      - {{name: alice, roles: [member], access_keys: [{{id: {AK}, secret: "{SK}"}}]}}
      - {{name: bob, enabled: false, access_keys: [{{id: AKBOB0001, secret: "bob-secret-key-0123456789"}}]}}
routes:
  - name: servers
    path: /v1/{{project_id}}/servers
    methods: [GET, POST]
    upstream: up
    auth: [signature]
"#
    )
}

async fn start() -> (TestGateway, MockUpstream) {
    let up = MockUpstream::start(|_| Reply::ok("fine")).await;
    let gw = TestGateway::start(&config(up.addr)).await;
    (gw, up)
}

/// A raw request signed at `at` with `secret`; `digest` adds a signed `X-Sdk-Content-Sha256`.
fn signed(
    method: &str,
    target: &str,
    body: &[u8],
    access: &str,
    secret: &str,
    at: SystemTime,
    digest: bool,
) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.as_bytes())),
        None => (target, None),
    };
    let date = signature::format_date(at);
    let hash = signature::payload_hash(body);
    let mut fields = vec![("host", "gw.example".to_string()), ("x-sdk-date", date)];
    if digest {
        fields.push(("x-sdk-content-sha256", hash.clone()));
    }
    fields.sort();
    let names: Vec<String> = fields.iter().map(|(n, _)| n.to_string()).collect();
    let lookup = |name: &str| {
        fields
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
            .collect::<Vec<_>>()
    };
    let request = SignedRequest {
        method,
        path: path.as_bytes(),
        query,
        headers: &lookup,
        signed_headers: &names.join(";"),
        payload_hash: &hash,
    };
    let (_, authorization) = signature::sign_request(access, secret.as_bytes(), &request, at);
    let mut raw = format!("{method} {target} HTTP/1.1\r\nAuthorization: {authorization}\r\n");
    for (n, v) in &fields {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_in_the_docs_is_accepted_as_printed() {
    let (gw, mut up) = start().await;
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/signing.md"
    ))
    .unwrap();
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let script = format!(
        "{code}\nimport http.client, sys\nhost = sys.argv[1]\nbody = b'{{\"name\": \"vm-1\"}}'\npath = '/v1/{ACME}/servers'\nquery = 'b=2&a=1'\nheaders = sign('POST', path, query, {{'host': host}}, body, '{AK}', '{SK}')\nc = http.client.HTTPConnection(host)\nc.request('POST', path + '?' + query, body, dict(headers, Host=host))\nprint(c.getresponse().status)\n"
    );
    let addr = gw.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(addr)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "200",
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = up.next().await;
    assert_eq!(seen.body, br#"{"name": "vm-1"}"#);
    assert_eq!(seen.header("x-portico-consumer"), Some("alice"));
    // The signature stays at the gateway.
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn portico_sign_prints_headers_the_gateway_accepts() {
    let (gw, mut up) = start().await;
    let url = format!("http://gw.example/v1/{ACME}/servers?limit=5");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args([
            "sign",
            "--access-key",
            AK,
            "-X",
            "POST",
            "-d",
            "hello",
            "--content-sha256",
            &url,
        ])
        .env("PORTICO_SECRET_KEY", SK)
        .output()
        .unwrap();
    assert!(out.status.success());
    let headers = String::from_utf8(out.stdout).unwrap();
    assert!(!headers.contains(SK));
    let raw = format!(
        "POST /v1/{ACME}/servers?limit=5 HTTP/1.1\r\nHost: gw.example\r\n{}\r\nContent-Length: 5\r\n\r\nhello",
        headers.trim_end().replace('\n', "\r\n")
    );
    let resp = gw.request(&raw).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(up.next().await.body, b"hello");
}

#[tokio::test]
async fn every_signature_failure_is_its_own_401() {
    let (gw, mut up) = start().await;
    let now = SystemTime::now();
    let target = format!("/v1/{ACME}/servers?limit=5");
    let good = signed("GET", &target, b"", AK, SK, now, false);
    let cases = [
        (
            signed("GET", &target, b"", "AKNOBODY01", SK, now, false),
            "PTC.ACCESS_KEY_UNKNOWN",
        ),
        (
            signed(
                "GET",
                &target,
                b"",
                "AKBOB0001",
                "bob-secret-key-0123456789",
                now,
                false,
            ),
            "PTC.CREDENTIAL_REVOKED",
        ),
        (
            signed("GET", &target, b"", AK, "not-the-secret-key-00", now, false),
            "PTC.SIGNATURE_MISMATCH",
        ),
        (
            signed(
                "GET",
                &target,
                b"",
                AK,
                SK,
                now - Duration::from_secs(16 * 60),
                false,
            ),
            "PTC.SIGNATURE_SKEWED",
        ),
        (
            signed(
                "GET",
                &target,
                b"",
                AK,
                SK,
                now + Duration::from_secs(16 * 60),
                false,
            ),
            "PTC.SIGNATURE_SKEWED",
        ),
        // Signed for one query, sent with another.
        (good.replace("limit=5", "limit=6"), "PTC.SIGNATURE_MISMATCH"),
        // A signed header changed on the way.
        (
            good.replace("host: gw.example", "host: evil.example"),
            "PTC.SIGNATURE_MISMATCH",
        ),
        (
            good.replace("SignedHeaders=host;x-sdk-date", "SignedHeaders=x-sdk-date"),
            "PTC.SIGNATURE_MALFORMED",
        ),
        (
            good.lines()
                .filter(|l| !l.starts_with("x-sdk-date"))
                .collect::<Vec<_>>()
                .join("\r\n")
                + "\r\n",
            "PTC.SIGNATURE_MALFORMED",
        ),
        (
            good.replace("Signature=", "Signature=00"),
            "PTC.SIGNATURE_MALFORMED",
        ),
    ];
    for (raw, code) in cases {
        let resp = gw.request(&raw).await;
        assert_error(&resp, 401, code);
        assert_eq!(
            resp.header("www-authenticate"),
            Some("SDK-HMAC-SHA256 realm=\"portico\""),
            "{code}"
        );
    }
    // A request with no credentials at all.
    let resp = gw
        .request(&format!(
            "GET {target} HTTP/1.1\r\nHost: gw.example\r\n\r\n"
        ))
        .await;
    assert_error(&resp, 401, "PTC.CREDENTIALS_MISSING");
    // The good one passes; nothing else reached the upstream.
    assert_eq!(gw.request(&good).await.status, 200);
    assert_eq!(up.next().await.header("x-portico-consumer"), Some("alice"));
    assert!(up.received.try_recv().is_err());
}

#[tokio::test]
async fn a_signed_digest_is_checked_before_100_continue_and_the_body_before_the_upstream() {
    let (gw, mut up) = start().await;
    let now = SystemTime::now();
    let target = format!("/v1/{ACME}/servers");
    // A bad signature over a digest: refused before 100 Continue, body unread.
    let raw = signed(
        "POST",
        &target,
        b"hello",
        AK,
        "wrong-secret-key-000",
        now,
        true,
    )
    .replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    let mut c = gw.connect().await;
    c.send(raw).await;
    assert_error(&c.response().await, 401, "PTC.SIGNATURE_MISMATCH");

    // A good signature over the digest of `hello`, and another body of the same length.
    let raw = signed("POST", &target, b"hello", AK, SK, now, true);
    let resp = gw.request(&format!("{raw}jello")).await;
    assert_error(&resp, 401, "PTC.BODY_DIGEST_MISMATCH");
    let resp = gw.request(&format!("{raw}hello")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.body, b"hello");
    assert!(up.received.try_recv().is_err());
}

#[tokio::test]
async fn a_body_signed_without_a_digest_header_is_checked_once_read() {
    let (gw, mut up) = start().await;
    let raw = signed(
        "POST",
        &format!("/v1/{ACME}/servers"),
        b"hello",
        AK,
        SK,
        SystemTime::now(),
        false,
    );
    let resp = gw.request(&format!("{raw}jello")).await;
    assert_error(&resp, 401, "PTC.SIGNATURE_MISMATCH");
    let resp = gw.request(&format!("{raw}hello")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.next().await.body, b"hello");
    assert!(up.received.try_recv().is_err());
}
