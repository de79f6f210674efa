//! The prober against real servers on ephemeral ports: Portico itself (which keeps every row
//! probed), and a small origin that keeps the contract but for one row it is told to break,
//! which the prober must report as that row's `fail` and nothing else.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portico_probe::{Options, Outcome, Target, Verdict, probe};
use portico_testkit::TestGateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn options(addr: &str, paths: &[&str]) -> Options {
    Options {
        base: Target::parse(&format!("http://{addr}")).unwrap(),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        rows: Vec::new(),
        unsafe_probes: true,
        max_requests: 200,
        timeout: Duration::from_secs(5),
        websocket: None,
        api_root: None,
        ca: None,
        openapi: None,
        http2: false,
    }
}

fn failed(verdicts: &[Verdict]) -> BTreeSet<&'static str> {
    verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Fail)
        .map(|v| v.check)
        .collect()
}

/// Routes that give the resource rows what they need: one that takes JSON bodies with a
/// length and is rate limited, one that declares what it produces, and static files with
/// validators and ranges (`a.txt`, written in `root`).
fn resource_routes(root: &std::path::Path) -> String {
    std::fs::write(root.join("a.txt"), "abcdefghij").unwrap();
    format!(
        r#"routes:
  - name: upload
    path: /upload
    methods: [GET, POST]
    handler: echo
    consumes: [application/json]
    require_content_length: true
    max_body_bytes: 1KiB
    rate_limit: {{key: ip, rate: 30/m}}
  - {{name: json, path: /json, methods: [GET], handler: echo, produces: [application/json]}}
  - {{name: files, path: "/files/{{*path}}", handler: static, root: {}}}
"#,
        root.display()
    )
}

#[tokio::test]
async fn portico_keeps_every_row_the_prober_checks() {
    let dir = tempfile::tempdir().unwrap();
    // The test origin, for the WebSocket route's upstream.
    let origin = origin(Broken::Nothing).await;
    let config = format!(
        r#"
limits: {{header_timeout: 1s}}
upstreams: [{{name: origin, targets: ["http://{origin}"]}}]
apis:
  - name: compute
    base_path: /compute
    versions: [{{id: v2, status: published}}, {{id: v1, status: published}}]
{}  - {{name: ws, path: /ws, methods: [GET], upstream: origin, websocket: true}}
"#,
        resource_routes(dir.path())
    );
    let gw = TestGateway::start(&config).await;
    let mut opts = options(&gw.addr.to_string(), &["/upload", "/json", "/files/a.txt"]);
    opts.websocket = Some("/ws".into());
    opts.api_root = Some("/compute".into());
    let verdicts = probe(&opts).await.unwrap();
    assert!(failed(&verdicts).is_empty(), "{verdicts:#?}");
    let passed = verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Pass)
        .count();
    // Every row passes but 503's, which no probe here provokes.
    assert_eq!(passed, verdicts.len() - 1, "{verdicts:#?}");
    assert!(
        verdicts
            .iter()
            .any(|v| v.code == 503 && v.outcome == Outcome::NotApplicable),
        "{verdicts:#?}"
    );
    assert_eq!(verdicts.len(), portico_probe::Row::ALL.len());
    assert_eq!(portico_probe::exit_status(&verdicts), 0);
}

/// What the test origin does wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Broken {
    Nothing,
    OptionsIs200,
    IgnoresExpect,
    KnownMethodIs501,
    AcceptsClAndTe,
}

/// A small HTTP/1.1 origin that keeps the probed rows of the contract (one request a
/// connection), except what `broken` says.
async fn origin(broken: Broken) -> String {
    counted_origin(broken).await.0
}

/// The same, with the count of connections it accepted.
async fn counted_origin(broken: Broken) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let mut slow = false;
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
                // A head that does not end within 300 ms is 408 (the test's header timeout).
                match tokio::time::timeout(Duration::from_millis(300), s.read(&mut chunk)).await {
                    Err(_) => {
                        slow = true;
                        break;
                    }
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            let answer = if slow {
                respond_error(408, "Request Timeout", "", n)
            } else {
                respond(&buf, broken, n)
            };
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (addr, count)
}

/// An error with the contract's envelope.
fn respond_error(status: u16, reason: &str, extra: &str, id: u64) -> String {
    let body =
        format!(r#"{{"error_code":"E{status}","error_msg":"{reason}","request_id":"r{id}"}}"#);
    format!(
        "HTTP/1.1 {status} {reason}\r\nX-Request-Id: r{id}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn respond(raw: &[u8], broken: Broken, id: u64) -> String {
    let error = |status: u16, reason: &str, extra: &str| respond_error(status, reason, extra, id);
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("");
    if line.len() > 8192 {
        return error(414, "URI Too Long", "");
    }
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return error(400, "Bad Request", "");
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return error(505, "HTTP Version Not Supported", "");
    }
    let mut fields = Vec::new();
    for l in lines {
        if l.starts_with(' ') || l.starts_with('\t') {
            return error(400, "Bad Request", "");
        }
        let Some((n, v)) = l.split_once(':') else {
            return error(400, "Bad Request", "");
        };
        fields.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let all = |name: &str| {
        fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let lengths = all("content-length");
    if lengths.len() > 1 && lengths.iter().any(|l| *l != lengths[0]) {
        return error(400, "Bad Request", "");
    }
    if !lengths.is_empty()
        && !all("transfer-encoding").is_empty()
        && broken != Broken::AcceptsClAndTe
    {
        return error(400, "Bad Request", "");
    }
    if all("expect")
        .iter()
        .any(|e| !e.eq_ignore_ascii_case("100-continue"))
        && broken != Broken::IgnoresExpect
    {
        return error(417, "Expectation Failed", "");
    }
    const KNOWN: [&str; 11] = [
        "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "QUERY", "SEARCH",
        "PROPFIND",
    ];
    if !KNOWN.contains(&method) {
        return error(501, "Not Implemented", "");
    }
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_string();
    if target == "/ws"
        && fields
            .iter()
            .any(|(n, v)| n == "upgrade" && v.eq_ignore_ascii_case("websocket"))
    {
        return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".into();
    }
    if target == "/api" && method == "GET" {
        return "HTTP/1.1 300 Multiple Choices\r\nLocation: /api/v2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into();
    }
    if target != "/known" {
        return error(404, "Not Found", "");
    }
    match method {
        "OPTIONS" if broken == Broken::OptionsIs200 => ok,
        "OPTIONS" => {
            "HTTP/1.1 204 No Content\r\nAllow: GET, HEAD, OPTIONS\r\nConnection: close\r\n\r\n"
                .into()
        }
        "GET" | "HEAD" => ok,
        // A registered method the path does not take. A server that says 501 for it breaks
        // the 405 row.
        _ if broken == Broken::KnownMethodIs501 => error(501, "Not Implemented", ""),
        _ => error(405, "Method Not Allowed", "Allow: GET, HEAD, OPTIONS\r\n"),
    }
}

#[tokio::test]
async fn an_origin_that_breaks_one_row_fails_exactly_that_row() {
    for (broken, row) in [
        (Broken::Nothing, None),
        (
            Broken::OptionsIs200,
            Some("OPTIONS on a known path is 204 with Allow"),
        ),
        (
            Broken::IgnoresExpect,
            Some("an Expect other than 100-continue is 417"),
        ),
        (
            Broken::KnownMethodIs501,
            Some("a method a known path does not take is 405 with Allow"),
        ),
        (
            Broken::AcceptsClAndTe,
            Some("CL+TE, conflicting Content-Length and obs-fold are refused (400)"),
        ),
    ] {
        let addr = origin(broken).await;
        let mut opts = options(&addr, &["/known"]);
        opts.websocket = Some("/ws".into());
        opts.api_root = Some("/api".into());
        let verdicts = probe(&opts).await.unwrap();
        let want: BTreeSet<&str> = row.into_iter().collect();
        assert_eq!(failed(&verdicts), want, "{broken:?}: {verdicts:#?}");
        assert_eq!(
            portico_probe::exit_status(&verdicts),
            u8::from(row.is_some())
        );
        // The failing row carries its evidence.
        if let Some(v) = verdicts.iter().find(|v| v.outcome == Outcome::Fail) {
            assert!(v.request.is_some() && v.response.is_some(), "{v:?}");
        }
    }
}

#[tokio::test]
async fn what_cannot_be_probed_is_said_in_one_line() {
    // Nothing listens here once the listener is gone.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let e = probe(&options(&addr, &[])).await.unwrap_err();
    assert!(e.0.starts_with("cannot connect to "), "{e}");
    assert!(!e.0.contains('\n'));
}

#[tokio::test]
async fn a_server_that_never_answers_or_floods_headers_is_unknown_within_the_timeout() {
    // One that accepts and says nothing.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut opts = options(&silent_addr, &[]);
    opts.timeout = Duration::from_millis(200);
    opts.rows = vec![404];
    let verdicts = probe(&opts).await.unwrap();
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].outcome, Outcome::Unknown);
    assert!(
        verdicts[0].why.contains("within the timeout"),
        "{:?}",
        verdicts[0]
    );
    // One that sends endless header fields.
    let flood = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flood_addr = flood.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = flood.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
                let line = b"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                    .repeat(64);
                for _ in 0..2_800 {
                    if s.write_all(&line).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut opts = options(&flood_addr, &[]);
    opts.rows = vec![404];
    let verdicts = probe(&opts).await.unwrap();
    assert_eq!(verdicts[0].outcome, Outcome::Unknown, "{:?}", verdicts[0]);
    assert!(
        verdicts[0].why.contains("over") || verdicts[0].why.contains("not valid"),
        "{:?}",
        verdicts[0]
    );
}

#[tokio::test]
async fn the_request_budget_is_never_exceeded() {
    let (addr, count) = counted_origin(Broken::Nothing).await;
    let mut opts = options(&addr, &["/known"]);
    opts.max_requests = 3;
    let verdicts = probe(&opts).await.unwrap();
    // Three requests; the reachability check is a connection without one.
    assert!(
        count.load(Ordering::SeqCst) <= 4,
        "{}",
        count.load(Ordering::SeqCst)
    );
    let unknown = verdicts
        .iter()
        .filter(|v| v.why.contains("--max-requests"))
        .count();
    assert!(unknown >= 5, "{verdicts:#?}");
}

#[tokio::test]
async fn https_targets_are_probed_over_tls_and_a_certificate_not_trusted_is_unprobeable() {
    let dir = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let gw = TestGateway::start(&format!(
        "tls: {{listen: 127.0.0.1:0, cert: {}, key: {}}}\nroutes:\n  - {{name: echo, path: /echo, methods: [GET], handler: echo}}\n",
        cert.display(),
        key.display()
    ))
    .await;
    let port = gw.tls_addr.unwrap().port();
    let mut opts = options("127.0.0.1:1", &["/echo"]);
    opts.base = Target::parse(&format!("https://localhost:{port}")).unwrap();
    opts.ca = Some(cert.clone());
    opts.rows = vec![204, 404, 405, 501, 0];
    let verdicts = probe(&opts).await.unwrap();
    assert_eq!(verdicts.len(), 5, "{verdicts:#?}");
    assert!(
        verdicts.iter().all(|v| v.outcome == Outcome::Pass),
        "{verdicts:#?}"
    );
    // The same over HTTP/2, `h2` chosen by ALPN.
    let mut h2 = opts.clone();
    h2.base = Target::parse(&format!("h2://localhost:{port}")).unwrap();
    h2.rows = vec![404, 501, 0];
    let verdicts = probe(&h2).await.unwrap();
    assert!(
        verdicts.iter().all(|v| v.outcome == Outcome::Pass
            && v.response
                .as_deref()
                .is_none_or(|r| r.starts_with("HTTP/2 "))),
        "{verdicts:#?}"
    );
    // Another certificate as the only trusted one: the handshake fails, said in one line.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, other.cert.pem()).unwrap();
    opts.ca = Some(other_path);
    let e = probe(&opts).await.unwrap_err();
    assert!(e.0.contains("TLS handshake failed"), "{e}");
    assert!(!e.0.contains('\n'));
}

#[tokio::test]
async fn an_apis_openapi_document_gives_rows_per_operation() {
    let petstore = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/openapi/petstore.yaml"
    );
    let origin = origin(Broken::Nothing).await;
    let gw = TestGateway::start(&format!(
        "limits: {{header_timeout: 1s}}\nupstreams: [{{name: pets, targets: [\"http://{origin}\"]}}]\nroutes:\n  - {{name: pets, path: /api, openapi: {petstore}, upstream: pets}}\n"
    ))
    .await;
    let spec = portico_config::load_openapi(std::path::Path::new(petstore)).unwrap();
    let mut opts = options(&format!("{}/api", gw.addr), &["/api/pets"]);
    opts.base = Target::parse(&format!("http://{}/api", gw.addr)).unwrap();
    opts.openapi = Some(Arc::new(spec));
    let verdicts = probe(&opts).await.unwrap();
    assert!(failed(&verdicts).is_empty(), "{verdicts:#?}");
    let per_op: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.check.starts_with("per operation"))
        .collect();
    // 405 on both paths; 400 for listPets, showPet and deletePet; 415 and 422 for createPet.
    let codes: Vec<u16> = per_op.iter().map(|v| v.code).collect();
    assert_eq!(codes, [405, 405, 400, 415, 422, 400, 400], "{per_op:#?}");
    assert!(
        per_op.iter().all(|v| v.outcome == Outcome::Pass),
        "{per_op:#?}"
    );
}

#[tokio::test]
async fn http2_targets_are_probed_with_prior_knowledge() {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(&resource_routes(dir.path())).await;
    // The URL says HTTP/2 (prior knowledge), as `--http2` would.
    let mut opts = options(&gw.addr.to_string(), &["/upload", "/json", "/files/a.txt"]);
    opts.base = Target::parse(&format!("h2c://{}", gw.addr)).unwrap();
    let verdicts = probe(&opts).await.unwrap();
    assert!(failed(&verdicts).is_empty(), "{verdicts:#?}");
    let judged: BTreeSet<u16> = verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Pass)
        .map(|v| v.code)
        .collect();
    for code in [
        0, 204, 206, 304, 404, 405, 406, 412, 413, 414, 415, 416, 429, 501,
    ] {
        assert!(judged.contains(&code), "{code}: {verdicts:#?}");
    }
    // The evidence says which protocol answered.
    assert!(
        verdicts
            .iter()
            .filter_map(|v| v.response.as_deref())
            .all(|r| r.starts_with("HTTP/2 ")),
        "{verdicts:#?}"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_timeout_ends_the_probing() {
    // A server that is unavailable, and says for how long.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3600\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    let verdicts = probe(&options(&addr, &[])).await.unwrap();
    let asked: BTreeSet<&str> = verdicts
        .iter()
        .filter(|v| v.response.is_some())
        .filter_map(|v| v.request.as_deref())
        .collect();
    assert_eq!(asked.len(), 1, "one request, then nothing: {verdicts:#?}");
    assert!(
        verdicts
            .iter()
            .any(|v| v.why.contains("asked for 3600 s of quiet")),
        "{verdicts:#?}"
    );
    let unavailable = verdicts.iter().find(|v| v.code == 503).unwrap();
    assert_eq!(unavailable.outcome, Outcome::Pass, "{unavailable:?}");
}
