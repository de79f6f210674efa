//! The dashboard in a real browser: headless Chromium, driven over the Chrome DevTools
//! Protocol, signs in at `/admin/` of a running `portico serve`, sees traffic sent through the
//! data plane show up, and leaves a screenshot (`target/…/dashboard.png`; with
//! `PORTICO_BLESS=1`, also `docs/dashboard.png`, which docs/dashboard.md shows).
//!
//! The protocol client is the few lines below over tokio-tungstenite (a request is a JSON
//! message with an id, its answer the message with the same id, an event a message with a
//! method) rather than a CDP crate: those generate bindings for the whole protocol and would
//! add minutes to every build for the five commands used here.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::served;

use served::{Served, exchange, write_config};

const TOKEN: &str = "dashboard-admin-token-5e4d3c2b";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One page of the browser, over the DevTools protocol.
struct Page {
    socket: Socket,
    next: u64,
    /// Events that arrived while an answer was awaited.
    events: Vec<Value>,
}

impl Page {
    /// Sends `method` and waits for its answer.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(message)).await.unwrap();
        loop {
            let m = self.receive().await;
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
            self.events.push(m);
        }
    }

    async fn receive(&mut self) -> Value {
        loop {
            match self
                .socket
                .next()
                .await
                .expect("the browser went away")
                .unwrap()
            {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                _ => continue,
            }
        }
    }

    /// Waits for the event `method`.
    async fn event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i);
        }
        loop {
            let m = self.receive().await;
            if m["method"] == method {
                return m;
            }
        }
    }

    /// The value of a JavaScript expression in the page (a promise is awaited).
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits, in the page, until `condition` holds: it is checked each time the page's DOM
    /// changes (a MutationObserver: the page's own events, no clock).
    async fn until(&mut self, condition: &str) {
        let script = format!(
            "new Promise(done => {{
                const ok = () => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }};
                if (ok()) return done(true);
                const seen = new MutationObserver(() => {{ if (ok()) {{ seen.disconnect(); done(true); }} }});
                seen.observe(document, {{subtree: true, childList: true, attributes: true, characterData: true}});
            }})"
        );
        assert_eq!(self.eval(&script).await, true, "{condition}");
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.event("Page.loadEventFired").await;
    }

    /// Types `text` into the element `id`, as a keyboard would.
    async fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!("document.getElementById('{id}').focus(); true"))
            .await;
        self.call("Input.insertText", json!({"text": text})).await;
    }
}

/// The browser's process, ended when dropped (a failing test leaves none behind).
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the browser with remote debugging on a free port; its page's protocol socket.
async fn browser(binary: &str, profile: &std::path::Path) -> (Browser, Page) {
    let mut child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,1100",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (port, stderr) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(lines.read_line(&mut line).unwrap() > 0, "Chromium ended");
            if let Some(rest) = line
                .trim()
                .strip_prefix("DevTools listening on ws://127.0.0.1:")
            {
                let port = rest.split('/').next().unwrap().to_string();
                return (port, lines);
            }
        }
    })
    .await
    .unwrap();
    // Whatever else Chromium says is read and dropped, so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr.into_inner(), &mut std::io::sink()));
    // The page's socket, from the target list (the DevTools server keeps the connection
    // open: the answer is read by its Content-Length).
    let targets = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        write!(
            s,
            "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        )
        .unwrap();
        let mut r = std::io::BufReader::new(s);
        let mut length = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).unwrap();
        serde_json::from_slice::<Value>(&body).unwrap()
    })
    .await
    .unwrap();
    let url = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .unwrap()["webSocketDebuggerUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut page = Page {
        socket,
        next: 0,
        events: Vec::new(),
    };
    page.call("Page.enable", json!({})).await;
    (Browser(child), page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_and_shows_live_traffic_in_a_real_browser() {
    let Some(binary) = served::chromium("the dashboard test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let path = write_config(
        &dir,
        "portico.yaml",
        &format!(
            "listen: 127.0.0.1:0
access_log: off
admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}
storage: sqlite://{db}
upstreams:
  - {{name: inventory, targets: ['http://{gone}'], passive: {{failures: 2, eject: 1h}}}}
apis:
  - name: compute
    base_path: /compute
    versions:
      - {{id: v2, status: published}}
      - {{id: v1, status: deprecated, deprecated_at: '2026-01-01T00:00:00Z', sunset: '2027-06-01T00:00:00Z'}}
routes:
  - {{name: orders, path: /orders, methods: [GET], handler: echo}}
  - {{name: limited, path: /limited, methods: [GET], handler: echo, rate_limit: {{key: route, rate: 1/h, name: hourly}}}}
  - {{name: servers, path: '/compute/v2/{{*rest}}', methods: [GET], upstream: inventory}}
",
            db = dir.path().join("portico.db").display()
        ),
    );
    let mut served = Served::start(&path, Stdio::null());
    let data = served.address("portico listening");
    let admin = served.address("admin API listening");
    served.drain();

    // The page is served without the token, under a strict policy.
    let page = exchange(
        &admin,
        "GET /admin/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    assert!(
        page.contains("Content-Security-Policy: default-src 'none'; script-src 'self'"),
        "{page}"
    );
    assert!(page.contains("X-Content-Type-Options: nosniff"));
    let overview = exchange(
        &admin,
        "GET /admin/v1/overview HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert!(overview.starts_with("HTTP/1.1 401 "), "{overview}");

    let profile = dir.path().join("profile");
    let run = async {
        let (chrome, mut tab) = browser(binary, &profile).await;
        tab.navigate(&format!("http://{admin}/admin/?refresh=300"))
            .await;
        tab.eval(
            "window.violations = []; document.addEventListener('securitypolicyviolation', e => window.violations.push(e.violatedDirective)); true",
        )
        .await;
        // A wrong token is refused, and nothing is kept.
        tab.type_into("token", "not-the-admin-token").await;
        tab.eval("document.getElementById('go').click(); true")
            .await;
        tab.until("!document.getElementById('refused').hidden")
            .await;
        assert_eq!(
            tab.eval("document.getElementById('refused').textContent")
                .await,
            "The token was refused."
        );
        assert_eq!(tab.eval("sessionStorage.length").await, 0);

        // The right one: kept in this tab's session, never in the URL.
        tab.type_into("token", TOKEN).await;
        tab.eval("document.getElementById('go').click(); true")
            .await;
        tab.until("document.body.dataset.refreshes >= 1").await;
        assert_eq!(
            tab.eval("sessionStorage.getItem('portico.admin.token')")
                .await,
            TOKEN
        );
        assert!(
            !tab.eval("location.href")
                .await
                .as_str()
                .unwrap()
                .contains(TOKEN)
        );
        // Routes and APIs, with each version's state.
        tab.until("document.querySelector('[data-route=\"orders\"]')")
            .await;
        let versions = tab
            .eval("document.querySelector('[data-api=\"compute\"]').textContent")
            .await;
        let versions = versions.as_str().unwrap();
        assert!(
            versions.contains("v2 published")
                && versions.contains("v1 deprecated (sunset 2027-06-01)"),
            "{versions}"
        );

        // Traffic through the data plane.
        for _ in 0..30 {
            let ok = exchange(
                &data,
                "GET /orders HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            );
            assert!(ok.starts_with("HTTP/1.1 200 "));
        }
        for _ in 0..3 {
            exchange(
                &data,
                "GET /limited HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            );
            exchange(
                &data,
                "GET /compute/v2/servers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            );
        }

        // It shows up: counts, the status mix, latency, the limit, the target left out.
        tab.until(
            "Number(document.querySelector('[data-route=\"orders\"] .total').textContent) >= 30",
        )
        .await;
        let orders = tab
            .eval("document.querySelector('[data-route=\"orders\"]').textContent")
            .await;
        assert!(orders.as_str().unwrap().contains("2xx 30"), "{orders}");
        let p50 = tab
            .eval("document.querySelector('[data-route=\"orders\"] .p50').textContent")
            .await;
        assert!(p50.as_str().unwrap().ends_with("ms"), "{p50}");
        tab.until("document.querySelector('[data-route=\"limited\"] .total').textContent === '3'")
            .await;
        let limited = tab
            .eval("document.querySelector('[data-route=\"limited\"]').textContent")
            .await;
        assert!(
            limited.as_str().unwrap().contains("2xx 1 · 4xx 2"),
            "{limited}"
        );
        tab.until("document.querySelector('[data-limit=\"hourly\"]')")
            .await;
        tab.until(&format!(
            "document.querySelector('[data-target=\"{gone}\"]').textContent.includes('down')"
        ))
        .await;
        tab.until("document.getElementById('reloads').textContent.includes('success')")
            .await;
        assert_eq!(tab.eval("window.violations.length").await, 0);

        let shot = tab
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        drop(chrome);
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    };
    let png = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the dashboard did not show what it should within two minutes");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());
    if std::env::var_os("PORTICO_BLESS").is_some() {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::write(docs, &png).unwrap();
    }
    served.stop();
}
