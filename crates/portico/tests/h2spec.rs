//! h2spec, the HTTP/2 conformance suite (RFC 9113 and HPACK, 146 cases), run from outside
//! against the `portico` binary: a handler route and a route proxied to an HTTP/1.1 upstream,
//! over cleartext (prior knowledge, on a plain listener that also takes HTTP/1.1 and on one
//! for HTTP/2 only) and over TLS (ALPN `h2`). `.ci/run` builds the suite
//! (`tools/h2spec/build.sh`) and names it in `PORTICO_H2SPEC`; elsewhere the test says so and
//! checks nothing. Each case it once failed has its own test in `http2.rs` as well.

use std::process::{Command, Stdio};

use portico_testkit::{MockUpstream, Reply};

use crate::served::{Served, from_ci, write_config};

/// Cases that fail today, each with why; the test fails on any other, and on one of these
/// that passes (so the list only shrinks).
const KNOWN: &[(&str, &str, &str)] = &[(
    // The default plain listener takes HTTP/1.1 and HTTP/2 by prior knowledge alike. Bytes
    // that are not the preface are an HTTP/1.1 request, and `INVALID CONNECTION PREFACE` is
    // one with a malformed version: 400 `PTC.VERSION_MALFORMED`, as the contract's 400 row
    // says, where h2spec (written for HTTP/2-only ports) wants a GOAWAY. On a plain listener
    // for HTTP/2 only (`http2: {cleartext: only}`) and over TLS, where ALPN said h2, the
    // connection ends as it asks.
    "cleartext",
    "http2/3.5",
    "Sends invalid connection preface",
)];

/// The cases of a JUnit report (h2spec's) that did not pass: `(package, case)`.
fn failures(report: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_string())
    };
    report
        .split("<testcase ")
        .skip(1)
        .filter_map(|case| {
            let body = &case[..case.find("</testcase>").unwrap_or(case.len())];
            (body.contains("<failure") || body.contains("<error")).then(|| {
                (
                    attr(case, "package").unwrap_or_default(),
                    attr(case, "classname").unwrap_or_default(),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2spec_finds_nothing_on_handler_and_proxied_routes_over_cleartext_and_tls() {
    let Some(tool) = from_ci("PORTICO_H2SPEC", "h2spec") else {
        return;
    };
    let up = MockUpstream::start(|_| Reply::ok("an upstream's answer, some bytes long")).await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let config = write_config(
        &dir,
        "portico.yaml",
        &format!(
            "listen: 127.0.0.1:0\ntls: {{listen: 127.0.0.1:0, cert: cert.pem, key: key.pem}}\naccess_log: off\nupstreams:\n  - {{name: up, targets: ['http://{}']}}\nroutes:\n  - {{name: handler, path: /handler, methods: [GET, HEAD, POST], handler: echo}}\n  - {{name: proxied, path: '/proxied/{{*rest}}', methods: [GET, HEAD, POST], upstream: up}}\n",
            up.addr
        ),
    );
    let mut served = Served::start(&config, Stdio::null());
    let cleartext = served.address("portico listening address=");
    let tls = served.address("portico listening (TLS) address=");
    served.drain();
    let text = std::fs::read_to_string(&config).unwrap();
    let only = write_config(
        &dir,
        "only.yaml",
        &format!("http2: {{cleartext: only}}\n{text}"),
    );
    let mut served_only = Served::start(&only, Stdio::null());
    let cleartext_only = served_only.address("portico listening address=");
    served_only.drain();

    // The six runs at once: each spends most of its time waiting out cases that expect
    // silence.
    let runs: Vec<_> = [
        ("cleartext", &cleartext),
        ("cleartext-only", &cleartext_only),
        ("tls", &tls),
    ]
    .into_iter()
    .flat_map(|(transport, address)| {
        ["/handler", "/proxied/x"].map(|path| (transport, address.clone(), path))
    })
    .map(|(transport, address, path)| {
        let tool = tool.clone();
        let report = dir
            .path()
            .join(format!("{transport}{}.xml", path.replace('/', "-")));
        tokio::task::spawn_blocking(move || {
            let (host, port) = address.rsplit_once(':').unwrap();
            let mut command = Command::new(tool);
            command
                .args(["-host", host, "-port", port, "-path", path, "-junit"])
                .arg(&report)
                .stdout(Stdio::piped());
            if transport == "tls" {
                command.args(["-tls", "-insecure"]);
            }
            let out = command.output().unwrap();
            let report = std::fs::read_to_string(&report).unwrap_or_default();
            (transport, path, out, report)
        })
    })
    .collect();
    let mut unexpected = Vec::new();
    for run in runs {
        let (transport, path, out, report) = run.await.unwrap();
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            summary.contains("146 tests"),
            "h2spec did not run on {transport} {path}: {summary}"
        );
        let failed = failures(&report);
        for (package, case) in &failed {
            if !KNOWN.contains(&(transport, package.as_str(), case.as_str())) {
                unexpected.push(format!("{transport} {path}: {package} {case}"));
            }
        }
        for &(known_transport, package, case) in KNOWN {
            if known_transport == transport
                && !failed.iter().any(|(p, c)| p == package && c == case)
            {
                unexpected.push(format!(
                    "{transport} {path}: {package} {case} passes now: take it off KNOWN"
                ));
            }
        }
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

#[test]
fn failures_are_read_from_the_junit_report() {
    let report = r#"<testsuites><testsuite>
    <testcase package="http2/3.5" classname="Sends client connection preface" time="0.0003"></testcase>
    <testcase package="http2/3.5" classname="Sends invalid connection preface" time="0.0104">
      <error>GOAWAY Frame</error>
    </testcase>
    <testcase package="http2/6.9.1" classname="Sends SETTINGS frame" time="0.1"><failure>DATA</failure></testcase>
    </testsuite></testsuites>"#;
    assert_eq!(
        failures(report),
        vec![
            (
                "http2/3.5".to_string(),
                "Sends invalid connection preface".to_string()
            ),
            (
                "http2/6.9.1".to_string(),
                "Sends SETTINGS frame".to_string()
            ),
        ]
    );
}
