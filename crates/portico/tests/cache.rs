//! The response cache over TCP (RFC 9111): fresh hits that never reach the upstream, 304,
//! 206, 412 and 416 answered from a stored response, revalidation with the stored
//! validators, what is never stored, `Vary`, invalidation by unsafe methods,
//! `only-if-cached`, collapsed misses, `stale-while-revalidate`, `stale-if-error`, `Age` and
//! `Cache-Status`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portico_cache::{Cache, ManualClock};
use portico_testkit::{MockUpstream, RawResponse, Received, Reply, TestGateway, assert_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

fn config(upstream: SocketAddr, cache: &str) -> String {
    format!(
        r#"
upstreams:
  - name: api
    targets: ["http://{upstream}"]
routes:
  - name: items
    path: /items/{{*rest}}
    methods: [GET, POST, PUT, DELETE]
    upstream: api
    cache: {cache}
"#
    )
}

/// A 200 with `fields` (lines ending in CRLF) and `body`.
fn reply(fields: &str, body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{fields}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn get(path: &str, fields: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: a\r\n{fields}\r\n")
}

fn text(resp: &RawResponse) -> String {
    String::from_utf8(resp.body.clone()).unwrap()
}

fn status_of(resp: &RawResponse) -> String {
    resp.header("cache-status").unwrap_or_default().to_string()
}

/// How many requests reached the upstream so far (those already received).
fn drain(up: &mut MockUpstream) -> Vec<Received> {
    let mut out = Vec::new();
    while let Ok(r) = up.received.try_recv() {
        out.push(r);
    }
    out
}

async fn upstream_with(fields: &'static str, body: &'static str) -> MockUpstream {
    MockUpstream::start(move |_| reply(fields, body)).await
}

#[tokio::test]
async fn a_fresh_response_is_served_from_the_cache_with_age_and_cache_status() {
    let mut up = upstream_with("Cache-Control: max-age=60\r\nETag: \"v1\"\r\n", "hello").await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let first = gw.request(&get("/items/a", "")).await;
    assert_eq!((first.status, text(&first).as_str()), (200, "hello"));
    assert_eq!(
        status_of(&first),
        "Portico; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    );
    let second = gw.request(&get("/items/a", "")).await;
    assert_eq!((second.status, text(&second).as_str()), (200, "hello"));
    assert!(
        status_of(&second).starts_with("Portico; hit; ttl="),
        "{}",
        status_of(&second)
    );
    assert!(second.header("age").is_some());
    assert_eq!(second.header("etag"), Some("\"v1\""));
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    assert_eq!(
        drain(&mut up).len(),
        1,
        "the hit never reached the upstream"
    );
    // HEAD is answered from the GET's entry: its fields, no body.
    let mut c = gw.connect().await;
    c.send("HEAD /items/a HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let head = c.response_to("HEAD").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("5"));
    assert!(status_of(&head).contains("hit"));
    assert!(drain(&mut up).is_empty());
}

#[tokio::test]
async fn age_is_the_time_since_the_response_was_stored() {
    let up = upstream_with("Cache-Control: max-age=60\r\nAge: 5\r\n", "x").await;
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let cache = Arc::new(Cache::new(1 << 20, clock.clone()));
    let gw = TestGateway::start_with(&config(up.addr, "true"), |g| g.with_cache(cache)).await;
    gw.request(&get("/items/a", "")).await;
    clock.advance(Duration::from_secs(30));
    let hit = gw.request(&get("/items/a", "")).await;
    // The upstream's Age (5) plus the 30 seconds it was kept.
    assert_eq!(hit.header("age"), Some("35"));
    assert!(status_of(&hit).contains("ttl=25"), "{}", status_of(&hit));
    clock.advance(Duration::from_secs(30));
    let stale = gw.request(&get("/items/a", "")).await;
    assert_eq!(
        status_of(&stale),
        "Portico; fwd=stale; fwd-status=200; ttl=55; stored"
    );
}

#[tokio::test]
async fn conditional_and_range_requests_are_answered_from_a_stored_200() {
    let body: &'static str = "abcdefghijklmnopqrstuvwxyz".repeat(40).leak();
    let mut up = upstream_with(
        "Cache-Control: public, max-age=60\r\nETag: \"abc\"\r\nLast-Modified: Tue, 01 Jun 2021 00:00:00 GMT\r\nExpires: Wed, 01 Jun 2050 00:00:00 GMT\r\n",
        body,
    )
    .await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    // The first request is conditional: the fill goes upstream without its conditions, and
    // the client's If-None-Match is answered from what was stored.
    let first = gw
        .request(&get("/items/a", "If-None-Match: \"abc\"\r\n"))
        .await;
    assert_eq!(first.status, 304);
    let sent = drain(&mut up);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("if-none-match"), None);
    let not_modified = gw
        .request(&get("/items/a", "If-None-Match: W/\"abc\"\r\n"))
        .await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some("\"abc\""));
    assert_eq!(
        not_modified.header("cache-control"),
        Some("public, max-age=60")
    );
    assert_eq!(
        not_modified.header("expires"),
        Some("Wed, 01 Jun 2050 00:00:00 GMT")
    );
    let since = gw
        .request(&get(
            "/items/a",
            "If-Modified-Since: Tue, 01 Jun 2021 00:00:00 GMT\r\n",
        ))
        .await;
    assert_eq!(since.status, 304);
    let failed = gw
        .request(&get("/items/a", "If-Match: \"other\"\r\n"))
        .await;
    assert_error(&failed, 412, "PTC.PRECONDITION_FAILED");
    assert!(status_of(&failed).contains("hit"));
    let part = gw.request(&get("/items/a", "Range: bytes=2-4\r\n")).await;
    assert_eq!(part.status, 206);
    assert_eq!(text(&part), "cde");
    assert_eq!(part.header("content-range"), Some("bytes 2-4/1040"));
    let multi = gw
        .request(&get("/items/a", "Range: bytes=0-0,-1\r\n"))
        .await;
    assert_eq!(multi.status, 206);
    assert!(
        multi
            .header("content-type")
            .unwrap()
            .starts_with("multipart/byteranges; boundary=")
    );
    let other = gw
        .request(&get(
            "/items/a",
            "Range: bytes=0-0\r\nIf-Range: \"old\"\r\n",
        ))
        .await;
    assert_eq!((other.status, text(&other).as_str()), (200, body));
    let beyond = gw.request(&get("/items/a", "Range: bytes=2000-\r\n")).await;
    assert_error(&beyond, 416, "PTC.RANGE_NOT_SATISFIABLE");
    assert_eq!(beyond.header("content-range"), Some("bytes */1040"));
    assert!(drain(&mut up).is_empty(), "all answered from the cache");
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_with_its_validators_and_a_304_refreshes_it() {
    let mut up = MockUpstream::start(|r: &Received| {
        if r.header("if-none-match") == Some("\"v1\"") {
            Reply::Bytes(
                b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\nX-Fresh: yes\r\n\r\n"
                    .to_vec(),
            )
        } else {
            reply(
                "Cache-Control: max-age=0\r\nETag: \"v1\"\r\nLast-Modified: Tue, 01 Jun 2021 00:00:00 GMT\r\n",
                "body-1",
            )
        }
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let first = gw.request(&get("/items/a", "")).await;
    assert!(status_of(&first).contains("stored"));
    let second = gw.request(&get("/items/a", "")).await;
    assert_eq!((second.status, text(&second).as_str()), (200, "body-1"));
    assert_eq!(
        status_of(&second),
        "Portico; fwd=stale; fwd-status=304; ttl=60; stored"
    );
    assert_eq!(second.header("x-fresh"), Some("yes"));
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    let sent = drain(&mut up);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(
        sent[1].header("if-modified-since"),
        Some("Tue, 01 Jun 2021 00:00:00 GMT")
    );
    let third = gw.request(&get("/items/a", "")).await;
    assert!(status_of(&third).contains("hit"));
    assert!(drain(&mut up).is_empty());
}

#[tokio::test]
async fn what_is_never_stored() {
    for (fields, detail) in [
        ("Cache-Control: no-store, max-age=60\r\n", "no-store"),
        ("Cache-Control: private, max-age=60\r\n", "private"),
        (
            "Cache-Control: max-age=60\r\nSet-Cookie: s=1\r\n",
            "set-cookie",
        ),
        ("Cache-Control: max-age=60\r\nVary: *\r\n", "vary"),
    ] {
        let mut up = upstream_with(fields, "x").await;
        let gw = TestGateway::start(&config(up.addr, "true")).await;
        for _ in 0..2 {
            let resp = gw.request(&get("/items/a", "")).await;
            assert_eq!(resp.status, 200);
            assert_eq!(
                status_of(&resp),
                format!("Portico; fwd=uri-miss; fwd-status=200; detail={detail}"),
                "{fields}"
            );
        }
        assert_eq!(drain(&mut up).len(), 2, "{fields}");
    }
}

#[tokio::test]
async fn a_response_that_sets_cookies_is_shared_only_when_the_route_says_so() {
    let mut up = upstream_with("Cache-Control: max-age=60\r\nSet-Cookie: s=1\r\n", "x").await;
    let gw = TestGateway::start(&config(up.addr, "{share_cookies: true}")).await;
    gw.request(&get("/items/a", "")).await;
    let hit = gw.request(&get("/items/a", "")).await;
    assert_eq!(hit.header("set-cookie"), Some("s=1"));
    assert_eq!(drain(&mut up).len(), 1);
}

#[tokio::test]
async fn a_request_with_authorization_is_stored_only_when_the_response_allows_sharing() {
    for (cc, stored) in [
        ("max-age=60", false),
        ("public, max-age=60", true),
        ("s-maxage=60", true),
    ] {
        let fields = format!("Cache-Control: {cc}\r\n").leak();
        let mut up = upstream_with(fields, "x").await;
        let gw = TestGateway::start(&config(up.addr, "true")).await;
        for _ in 0..2 {
            gw.request(&get("/items/a", "Authorization: Bearer t\r\n"))
                .await;
        }
        assert_eq!(drain(&mut up).len(), if stored { 1 } else { 2 }, "{cc}");
    }
}

#[tokio::test]
async fn a_body_larger_than_max_entry_bytes_is_relayed_uncached() {
    let big = "y".repeat(5000);
    let body: &'static str = big.leak();
    let mut up = upstream_with("Cache-Control: max-age=60\r\n", body).await;
    let gw = TestGateway::start(&config(up.addr, "{max_entry_bytes: 4KiB}")).await;
    for _ in 0..2 {
        let resp = gw.request(&get("/items/a", "")).await;
        assert_eq!(resp.body.len(), 5000);
        assert!(
            status_of(&resp).ends_with("detail=too-large"),
            "{}",
            status_of(&resp)
        );
    }
    assert_eq!(drain(&mut up).len(), 2);
}

#[tokio::test]
async fn variants_are_kept_apart_by_the_fields_vary_names() {
    let mut up = MockUpstream::start(|r: &Received| {
        let lang = r.header("accept-language").unwrap_or("none").to_string();
        reply(
            "Cache-Control: max-age=60\r\nVary: Accept-Language\r\n",
            lang.leak(),
        )
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let en = gw
        .request(&get("/items/a", "Accept-Language: en\r\n"))
        .await;
    let fr = gw
        .request(&get("/items/a", "Accept-Language: fr\r\n"))
        .await;
    assert_eq!((text(&en).as_str(), text(&fr).as_str()), ("en", "fr"));
    assert!(
        status_of(&fr).contains("fwd=vary-miss"),
        "{}",
        status_of(&fr)
    );
    let en_again = gw
        .request(&get("/items/a", "Accept-Language: en\r\n"))
        .await;
    assert_eq!(text(&en_again), "en");
    assert!(status_of(&en_again).contains("hit"));
    let none = gw.request(&get("/items/a", "")).await;
    assert_eq!(text(&none), "none");
    assert_eq!(drain(&mut up).len(), 3);
}

#[tokio::test]
async fn an_unsafe_method_that_succeeds_invalidates_the_target_and_its_location() {
    let mut up = MockUpstream::start(|r: &Received| {
        if r.line.starts_with("POST") {
            Reply::Bytes(
                b"HTTP/1.1 201 Created\r\nLocation: /items/b\r\nContent-Length: 0\r\n\r\n".to_vec(),
            )
        } else {
            reply("Cache-Control: max-age=60\r\n", "x")
        }
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    gw.request(&get("/items/a", "")).await;
    gw.request(&get("/items/b", "")).await;
    assert!(status_of(&gw.request(&get("/items/a", "")).await).contains("hit"));
    let post = gw
        .request("POST /items/a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
        .await;
    assert_eq!(post.status, 201);
    assert_eq!(status_of(&post), "Portico; fwd=method; fwd-status=201");
    assert!(status_of(&gw.request(&get("/items/a", "")).await).contains("fwd=uri-miss"));
    assert!(status_of(&gw.request(&get("/items/b", "")).await).contains("fwd=uri-miss"));
    assert_eq!(drain(&mut up).len(), 5);
}

#[tokio::test]
async fn only_if_cached_with_nothing_stored_is_504_and_nothing_is_sent() {
    let mut up = upstream_with("Cache-Control: max-age=60\r\n", "x").await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let resp = gw
        .request(&get("/items/a", "Cache-Control: only-if-cached\r\n"))
        .await;
    assert_error(&resp, 504, "PTC.NOT_CACHED");
    assert!(drain(&mut up).is_empty());
    gw.request(&get("/items/a", "")).await;
    let hit = gw
        .request(&get("/items/a", "Cache-Control: only-if-cached\r\n"))
        .await;
    assert_eq!(hit.status, 200);
}

#[tokio::test]
async fn the_requests_own_directives_send_it_to_the_upstream() {
    let mut up = upstream_with("Cache-Control: max-age=60\r\nAge: 10\r\n", "x").await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    gw.request(&get("/items/a", "")).await;
    for cc in [
        "Cache-Control: no-cache\r\n",
        "Cache-Control: max-age=5\r\n",
        "Pragma: no-cache\r\n",
    ] {
        let resp = gw.request(&get("/items/a", cc)).await;
        assert!(
            status_of(&resp).contains("fwd=request"),
            "{cc}: {}",
            status_of(&resp)
        );
    }
    let stale_ok = gw
        .request(&get("/items/a", "Cache-Control: max-stale=100\r\n"))
        .await;
    assert!(status_of(&stale_ok).contains("hit"));
    assert_eq!(drain(&mut up).len(), 4);
}

#[tokio::test]
async fn a_stale_entry_answers_when_the_upstream_fails_within_stale_if_error() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fail = failing.clone();
    let up = MockUpstream::start(move |_| {
        if fail.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            reply(
                "Cache-Control: max-age=1, stale-if-error=600\r\nAge: 5\r\n",
                "kept",
            )
        }
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    gw.request(&get("/items/a", "")).await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let resp = gw.request(&get("/items/a", "")).await;
    assert_eq!((resp.status, text(&resp).as_str()), (200, "kept"));
    let status = status_of(&resp);
    assert!(
        status.starts_with("Portico; fwd=stale; fwd-status=503; ttl=-")
            && status.ends_with("detail=stale-if-error"),
        "{status}"
    );
    // Without stale-if-error the failure is relayed.
    let up2 = MockUpstream::start(move |r: &Received| {
        if r.header("if-none-match").is_some() || r.connection > 0 {
            Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_vec())
        } else {
            reply(
                "Cache-Control: max-age=1\r\nAge: 5\r\nETag: \"e\"\r\n",
                "kept",
            )
        }
    })
    .await;
    let gw2 = TestGateway::start(&config(up2.addr, "true")).await;
    gw2.request(&get("/items/a", "")).await;
    let relayed = gw2.request(&get("/items/a", "")).await;
    assert_eq!(relayed.status, 503);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_behind() {
    let mut up = MockUpstream::start(|r: &Received| {
        if r.header("if-none-match").is_some() {
            Reply::Bytes(
                b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\nETag: \"s\"\r\n\r\n"
                    .to_vec(),
            )
        } else {
            reply(
                "Cache-Control: max-age=1, stale-while-revalidate=600\r\nAge: 5\r\nETag: \"s\"\r\n",
                "swr",
            )
        }
    })
    .await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    gw.request(&get("/items/a", "")).await;
    up.received.recv().await.unwrap();
    let stale = gw.request(&get("/items/a", "")).await;
    assert_eq!(text(&stale), "swr");
    assert!(
        status_of(&stale).starts_with("Portico; hit; ttl=-"),
        "{}",
        status_of(&stale)
    );
    // The refresh reaches the upstream after the answer, as a conditional request.
    let refresh = up.received.recv().await.unwrap();
    assert_eq!(refresh.header("if-none-match"), Some("\"s\""));
}

/// An upstream that answers only when told to, counting the requests it got.
async fn gated_upstream() -> (SocketAddr, Arc<Notify>, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(Notify::new());
    let (tx, rx) = mpsc::unbounded_channel();
    let open = gate.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (open, tx) = (open.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let _ = tx.send(());
                open.notified().await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\nonce")
                    .await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    (addr, gate, rx)
}

#[tokio::test]
async fn concurrent_misses_send_one_request_upstream() {
    let (addr, gate, mut arrived) = gated_upstream().await;
    let cache = Arc::new(Cache::new(1 << 20, Arc::new(portico_cache::SystemClock)));
    let shared = cache.clone();
    let gw = TestGateway::start_with(&config(addr, "true"), |g| g.with_cache(shared)).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = gw.connect().await;
        c.send(get("/items/a", "")).await;
        clients.push(c);
    }
    // One request reaches the upstream; the others join its fill.
    arrived.recv().await.unwrap();
    while cache.followers("a/items/a") < 2 {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    let mut collapsed = 0;
    for c in &mut clients {
        let resp = c.response().await;
        assert_eq!(text(&resp), "once");
        collapsed += usize::from(status_of(&resp).contains("collapsed"));
    }
    assert_eq!(collapsed, 2);
    assert!(arrived.try_recv().is_err(), "one request went upstream");
}

#[tokio::test]
async fn a_vary_of_a_thousand_fields_is_answered_and_not_stored() {
    let names: Vec<String> = (0..1000).map(|i| format!("x-f{i}")).collect();
    let vary: &'static str = format!(
        "Cache-Control: max-age=60\r\nVary: {}\r\n",
        names.join(", ")
    )
    .leak();
    let mut up = upstream_with(vary, "v").await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    for _ in 0..2 {
        let resp = gw.request(&get("/items/a", "")).await;
        assert_eq!((resp.status, text(&resp).as_str()), (200, "v"));
        assert!(
            status_of(&resp).ends_with("detail=vary"),
            "{}",
            status_of(&resp)
        );
    }
    assert_eq!(drain(&mut up).len(), 2);
}

/// The upstream client takes at most `MAX_RESPONSE_FIELDS` fields in a response head (a
/// documented bound of its parser): a response with 10,000 is the upstream's fault, answered
/// 502 and never stored, and the next request goes upstream again.
#[tokio::test]
async fn a_response_with_ten_thousand_fields_is_answered_and_not_stored() {
    let many: &'static str =
        format!("Cache-Control: max-age=60\r\n{}", "x:1\r\n".repeat(10_000)).leak();
    let mut up = upstream_with(many, "many").await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    for _ in 0..2 {
        let resp = gw.request(&get("/items/a", "")).await;
        assert_error(&resp, 502, "PTC.UPSTREAM_INVALID_RESPONSE");
        assert_eq!(status_of(&resp), "Portico; fwd=uri-miss");
    }
    assert_eq!(drain(&mut up).len(), 2);
}

#[tokio::test]
async fn the_cache_holds_to_its_byte_bound_whatever_is_stored() {
    let body: &'static str = "z".repeat(100_000).leak();
    let up = upstream_with("Cache-Control: max-age=60\r\n", body).await;
    let cache = Arc::new(Cache::new(1 << 20, Arc::new(portico_cache::SystemClock)));
    let shared = cache.clone();
    let gw = TestGateway::start_with(&config(up.addr, "true"), |g| g.with_cache(shared)).await;
    for i in 0..40 {
        let resp = gw.request(&get(&format!("/items/{i}"), "")).await;
        assert_eq!(resp.body.len(), 100_000);
    }
    // Forty 100 KB responses were stored one after the other in a 1 MiB cache.
    assert!(
        cache.weighted_size() <= 1 << 20,
        "{}",
        cache.weighted_size()
    );
    assert!(cache.entry_count() >= 5);
}

#[tokio::test]
async fn responses_spilled_to_disk_are_served_after_a_restart() {
    let body: &'static str = "d".repeat(100_000).leak();
    let mut up = upstream_with("Cache-Control: max-age=600\r\nETag: \"d\"\r\n", body).await;
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Arc::new(
            Cache::with_disk(
                256 << 10,
                Arc::new(portico_cache::SystemClock),
                dir.path(),
                16 << 20,
            )
            .unwrap(),
        )
    };
    let cache = open();
    let shared = cache.clone();
    let gw = TestGateway::start_with(&config(up.addr, "true"), |g| g.with_cache(shared)).await;
    for i in 0..20 {
        let resp = gw.request(&get(&format!("/items/{i}"), "")).await;
        assert!(status_of(&resp).contains("stored"));
    }
    assert_eq!(drain(&mut up).len(), 20);
    // Memory holds two or three of them; the rest went to disk.
    cache.flush();
    assert!(cache.disk_bytes() > 1_000_000, "{}", cache.disk_bytes());
    gw.shutdown().await;
    drop(cache);
    // A new gateway with a new cache on the same directory: every response is a hit, read
    // back from disk, and the upstream sees nothing.
    let cache = open();
    let shared = cache.clone();
    let gw = TestGateway::start_with(&config(up.addr, "true"), |g| g.with_cache(shared)).await;
    let mut hits = 0;
    for i in 0..20 {
        let resp = gw
            .request(&get(&format!("/items/{i}"), "Range: bytes=0-1\r\n"))
            .await;
        if status_of(&resp).contains("hit") {
            hits += 1;
            assert_eq!((resp.status, text(&resp).as_str()), (206, "dd"));
        }
    }
    assert!(hits >= 15, "{hits} hits");
    assert_eq!(drain(&mut up).len(), 20 - hits);
}

#[tokio::test]
async fn a_request_refused_before_the_cache_says_it_bypassed_it() {
    let mut up = upstream_with("Cache-Control: max-age=60\r\n", "x").await;
    let gw = TestGateway::start(&config(up.addr, "true\n    consumes: [application/json]")).await;
    let refused = gw
        .request("POST /items/a HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx")
        .await;
    assert_error(&refused, 415, "PTC.UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(status_of(&refused), "Portico; fwd=bypass");
    assert!(drain(&mut up).is_empty());
}

#[tokio::test]
async fn a_request_waiting_on_another_fill_gets_its_504_when_its_deadline_passes() {
    let (addr, gate, mut arrived) = gated_upstream().await;
    let cache = Arc::new(Cache::new(1 << 20, Arc::new(portico_cache::SystemClock)));
    let shared = cache.clone();
    let gw = TestGateway::start_with(&config(addr, "true\n    max_timeout: 30s"), |g| {
        g.with_cache(shared)
    })
    .await;
    let mut leader = gw.connect().await;
    leader.send(get("/items/a", "")).await;
    arrived.recv().await.unwrap();
    // The follower's deadline, 100 ms, passes while it waits on the leader's fill.
    let follower = gw.request(&get("/items/a", "Timeout: 0.1\r\n")).await;
    assert_error(&follower, 504, "PTC.DEADLINE_EXCEEDED");
    assert_eq!(status_of(&follower), "Portico; fwd=uri-miss");
    assert!(
        arrived.try_recv().is_err(),
        "the follower sent nothing upstream"
    );
    gate.notify_one();
    let led = leader.response().await;
    assert_eq!((led.status, text(&led).as_str()), (200, "once"));
}

#[tokio::test]
async fn hits_are_served_over_http2_too() {
    use portico_testkit::h2 as h2t;
    let mut up = upstream_with("Cache-Control: max-age=60\r\nETag: \"h\"\r\n", "over h2").await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    let mut client = h2t::client(gw.addr).await;
    let first = h2t::send(
        &mut client,
        h2t::request("GET", "http://a/items/a", &[]),
        None,
    )
    .await;
    assert_eq!((first.status(), &first.body[..]), (200, &b"over h2"[..]));
    let hit = h2t::send(
        &mut client,
        h2t::request("GET", "http://a/items/a", &[]),
        None,
    )
    .await;
    assert!(hit.header("cache-status").unwrap().contains("hit"));
    let not_modified = h2t::send(
        &mut client,
        h2t::request("GET", "http://a/items/a", &[("if-none-match", "\"h\"")]),
        None,
    )
    .await;
    assert_eq!(not_modified.status(), 304);
    let part = h2t::send(
        &mut client,
        h2t::request("GET", "http://a/items/a", &[("range", "bytes=0-3")]),
        None,
    )
    .await;
    assert_eq!((part.status(), &part.body[..]), (206, &b"over"[..]));
    assert_eq!(drain(&mut up).len(), 1);
}

#[tokio::test]
async fn equivalent_spellings_of_a_target_share_one_entry() {
    let mut up = upstream_with("Cache-Control: max-age=60\r\n", "x").await;
    let gw = TestGateway::start(&config(up.addr, "true")).await;
    gw.request(&get("/items/%61b?q=%7e", "")).await;
    for spelling in ["/items/ab?q=~", "/items/%61%62?q=%7E", "/items/x/../ab?q=~"] {
        let resp = gw.request(&get(spelling, "")).await;
        assert!(
            status_of(&resp).contains("hit"),
            "{spelling}: {}",
            status_of(&resp)
        );
    }
    assert_eq!(drain(&mut up).len(), 1);
}
