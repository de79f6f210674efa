//! Request smuggling: a corpus of HTTP/1 desync vectors (`tests/smuggling/*.http`), each sent
//! through Portico to a real upstream. A vector Portico refuses must get its 400/501 and a
//! closed connection, and the upstream must receive exactly the valid requests sent before it
//! on the connection: never a second request hidden in the first. A vector Portico accepts
//! must reach the upstream as one request, framed by Portico.
//!
//! The corpus is data so it can grow. File format: `#` lines first (`# <description>`,
//! `# expect: STATUS [ERROR_CODE]`, and optionally `# before: N` valid requests sent first,
//! `# body: TEXT` the body the upstream must receive, `# absent: NAME` a header it must not);
//! then the bytes, where newlines in the file are ignored and `\r`, `\n`, `\t`, `\0`, `\\`
//! and `\xNN` are the bytes sent.
//!
//! Nothing waits on time: the upstream records each request before it answers, and Portico
//! handles a connection's requests in order, so once the client has read Portico's last
//! response and the close, every request Portico forwarded is already recorded.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use portico_testkit::{MockUpstream, Received, Reply, TestGateway, assert_error, proxy_config};

const VALID: &str = "GET /api/valid HTTP/1.1\r\nHost: a\r\n\r\n";

struct Vector {
    file: String,
    status: u16,
    code: Option<String>,
    before: usize,
    body: Option<String>,
    absent: Vec<String>,
    bytes: Vec<u8>,
}

fn corpus() -> Vec<Vector> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smuggling");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    files.sort();
    files.iter().map(|f| parse(f)).collect()
}

fn parse(path: &Path) -> Vector {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut v = Vector {
        file: file.clone(),
        status: 0,
        code: None,
        before: 0,
        body: None,
        absent: Vec::new(),
        bytes: Vec::new(),
    };
    let mut escaped = String::new();
    for line in text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            if let Some(e) = meta.strip_prefix("expect: ") {
                let mut parts = e.split_whitespace();
                v.status = parts.next().unwrap().parse().unwrap();
                v.code = parts.next().map(str::to_string);
            } else if let Some(n) = meta.strip_prefix("before: ") {
                v.before = n.parse().unwrap();
            } else if let Some(b) = meta.strip_prefix("body: ") {
                v.body = Some(b.to_string());
            } else if let Some(h) = meta.strip_prefix("absent: ") {
                v.absent.push(h.to_string());
            }
        } else {
            escaped.push_str(line);
        }
    }
    assert!(v.status != 0, "{file}: no `# expect:` line");
    v.bytes = unescape(&escaped, &file);
    v
}

fn unescape(s: &str, file: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, len) = match b.get(i + 1) {
            Some(b'r') => (b'\r', 2),
            Some(b'n') => (b'\n', 2),
            Some(b't') => (b'\t', 2),
            Some(b'0') => (0, 2),
            Some(b'\\') => (b'\\', 2),
            Some(b'x') => {
                let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                (u8::from_str_radix(hex, 16).unwrap(), 4)
            }
            other => panic!("{file}: unknown escape {other:?}"),
        };
        out.push(byte);
        i += len;
    }
    out
}

/// Sends one vector on a fresh connection; returns what went wrong, if anything.
async fn run(v: &Vector) -> Result<(), String> {
    let mut up = MockUpstream::start(|_| Reply::ok("upstream")).await;
    let gw = TestGateway::start(&proxy_config(up.addr)).await;
    let mut c = gw.connect().await;
    let mut bytes = VALID.repeat(v.before).into_bytes();
    bytes.extend_from_slice(&v.bytes);
    c.send(&bytes).await;
    for i in 0..v.before {
        let resp = c.response().await;
        if resp.status != 200 {
            return Err(format!(
                "valid request {i} before the vector got {}",
                resp.status
            ));
        }
    }
    let resp = c.response().await;
    if resp.status != v.status {
        return Err(format!(
            "expected {}, got {} {}",
            v.status,
            resp.status,
            String::from_utf8_lossy(&resp.body)
        ));
    }
    if let Some(code) = &v.code {
        let got = std::panic::catch_unwind(|| assert_error(&resp, v.status, code));
        if got.is_err() {
            return Err(format!(
                "expected {code}, got {}",
                String::from_utf8_lossy(&resp.body)
            ));
        }
    }
    let refused = v.status >= 400;
    if refused && !(resp.closes() && c.is_closed().await) {
        return Err("the connection was not closed after the refusal".into());
    }
    if !refused {
        // Close our side so Portico ends the connection; the forwarded request is recorded.
        drop(c);
    }
    // Everything the upstream received, in order.
    let expected = v.before + usize::from(!refused);
    let mut got: Vec<Received> = Vec::new();
    while got.len() < expected {
        got.push(up.next().await);
    }
    while let Ok(extra) = up.received.try_recv() {
        got.push(extra);
    }
    if got.len() != expected {
        let lines: Vec<&str> = got.iter().map(|r| r.line.as_str()).collect();
        return Err(format!(
            "the upstream received {lines:?}, expected {expected} request(s)"
        ));
    }
    for r in &got[..v.before] {
        if r.line != "GET /api/valid HTTP/1.1" {
            return Err(format!("the upstream received {:?}", r.line));
        }
    }
    if let Some(last) = got.get(v.before) {
        if let Some(body) = &v.body {
            if last.body != body.as_bytes() {
                return Err(format!(
                    "the upstream received body {:?}",
                    String::from_utf8_lossy(&last.body)
                ));
            }
            let framed = last.header("content-length") == Some(&body.len().to_string()[..])
                || (last.chunked && last.header("content-length").is_none());
            if !framed {
                return Err(format!(
                    "the forwarded body is not framed by Portico: {:?}",
                    last.headers
                ));
            }
        }
        for name in &v.absent {
            if last.header(name).is_some() {
                return Err(format!("`{name}` was forwarded"));
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_desync_vector_is_refused_or_neutralised() {
    let corpus = corpus();
    let refused = corpus.iter().filter(|v| v.status >= 400).count();
    assert!(
        refused >= 30,
        "the corpus has {refused} refused vectors; the issue asks for 30"
    );
    let mut failures = Vec::new();
    for v in &corpus {
        if let Err(why) = run(v).await {
            failures.push(format!("{}: {why}", v.file));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_format_reads_escapes() {
    assert_eq!(unescape(r"a\r\n\t\0\\\x7f", "t"), b"a\r\n\t\0\\\x7f");
}
