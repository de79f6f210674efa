//! Static routes over TCP: files with validators, conditional requests (304, 412), ranges
//! (206, 416), negotiation (406, precompressed siblings), and no way out of the root.
//! Every request is raw bytes, as curl would send them.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use portico_http::conditional::HttpDate;
use portico_testkit::{RawResponse, TestGateway, assert_error, parse_multipart};

/// 2021-06-01T00:00:00Z, the modification time given to every test file.
const MTIME: u64 = 1_622_505_600;
const MTIME_HTTP: &str = "Tue, 01 Jun 2021 00:00:00 GMT";

/// A root directory with files, next to a secret that must never be served.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET").unwrap();
        let site = Site { dir };
        site.file("alphabet.txt", b"abcdefghijklmnopqrstuvwxyz");
        site.file("data/items.json", b"{\"items\":[1,2,3]}");
        site
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    /// Writes a file under the root with the test modification time.
    fn file(&self, rel: &str, content: &[u8]) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        set_mtime(&path, MTIME);
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "routes:\n  - name: files\n    path: /files/{{*path}}\n    handler: static\n    root: {}\n    cache_control: \"public, max-age=60\"\n{extra}",
            self.root().display()
        )
    }

    async fn gateway(&self) -> TestGateway {
        TestGateway::start(&self.config("")).await
    }
}

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn get(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: a\r\n{headers}\r\n")
}

/// The entity tag a plain GET of `path` gets.
async fn etag_of(gw: &TestGateway, path: &str) -> String {
    let resp = gw.request(&get(path, "")).await;
    resp.header("etag").unwrap().to_string()
}

fn text(resp: &RawResponse) -> String {
    String::from_utf8(resp.body.clone()).unwrap()
}

/// Bytes that are different at every offset of a large file (so a misplaced range shows).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn static_file_is_200_with_validators() {
    let site = Site::new();
    let gw = site.gateway().await;
    let resp = gw.request(&get("/files/alphabet.txt", "")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(text(&resp), "abcdefghijklmnopqrstuvwxyz");
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.header("content-length"), Some("26"));
    assert_eq!(resp.header("last-modified"), Some(MTIME_HTTP));
    assert_eq!(resp.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(resp.header("accept-ranges"), Some("bytes"));
    // A strong entity tag (RFC 9110 §8.8.3): quoted, no W/ prefix.
    let etag = resp.header("etag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    // The same file gets the same tag; another file another one.
    let again = gw.request(&get("/files/alphabet.txt", "")).await;
    assert_eq!(again.header("etag"), Some(etag));
    let other = gw.request(&get("/files/data/items.json", "")).await;
    assert_eq!(other.header("content-type"), Some("application/json"));
    assert_ne!(other.header("etag"), Some(etag));
    // No Vary without precompressed siblings: nothing is negotiated.
    assert!(resp.header("vary").is_none());
    // A query (cache busting: app.js?v=123) does not change which file is served.
    let busted = gw.request(&get("/files/alphabet.txt?v=123", "")).await;
    assert_eq!((busted.status, busted.header("etag")), (200, Some(etag)));
}

#[tokio::test]
async fn changing_a_file_changes_its_entity_tag() {
    let site = Site::new();
    let gw = site.gateway().await;
    let before = gw.request(&get("/files/alphabet.txt", "")).await;
    // Same length, same second: only the content and the nanoseconds differ.
    let path = site.root().join("alphabet.txt");
    std::fs::write(&path, "ABCDEFGHIJKLMNOPQRSTUVWXYZ").unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::new(MTIME, 5))
        .unwrap();
    let after = gw.request(&get("/files/alphabet.txt", "")).await;
    assert_eq!(text(&after), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    assert_ne!(before.header("etag"), after.header("etag"));
}

#[tokio::test]
async fn a_file_replaced_with_the_same_size_and_time_gets_a_new_tag() {
    let site = Site::new();
    let gw = site.gateway().await;
    let before = etag_of(&gw, "/files/alphabet.txt").await;
    // A deploy that preserves modification times (rsync -a, a reproducible build): new bytes,
    // same length, the very same mtime, moved into place.
    site.file("alphabet.new", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    std::fs::rename(
        site.root().join("alphabet.new"),
        site.root().join("alphabet.txt"),
    )
    .unwrap();
    let resp = gw.request(&get("/files/alphabet.txt", "")).await;
    assert_eq!(text(&resp), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    assert_eq!(resp.header("last-modified"), Some(MTIME_HTTP));
    assert_ne!(resp.header("etag"), Some(before.as_str()));
    // So a client holding the old tag gets the new bytes, not a 304.
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            &format!("If-None-Match: {before}\r\n"),
        ))
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn a_modification_time_in_the_future_is_never_sent() {
    let site = Site::new();
    // 2100-01-01: a clock that was wrong when the file was written.
    set_mtime(&site.root().join("alphabet.txt"), 4_102_444_800);
    let gw = site.gateway().await;
    let resp = gw.request(&get("/files/alphabet.txt", "")).await;
    let parse = |name: &str| HttpDate::parse(resp.header(name).unwrap().as_bytes()).unwrap();
    // RFC 9110 §8.8.2.1: Last-Modified is never later than Date.
    assert!(parse("last-modified") <= parse("date"));
    assert!(parse("last-modified") < HttpDate(4_102_444_800));
}

#[tokio::test]
async fn head_has_the_fields_of_get_and_no_body() {
    let site = Site::new();
    let gw = site.gateway().await;
    let get_resp = gw.request(&get("/files/alphabet.txt", "")).await;
    let mut c = gw.connect().await;
    c.send("HEAD /files/alphabet.txt HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let head = c.response_to("HEAD").await;
    assert_eq!(head.status, 200);
    for field in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
    ] {
        assert_eq!(head.header(field), get_resp.header(field), "{field}");
    }
    // Nothing followed the head: the next response on the connection starts cleanly.
    c.send(get("/files/alphabet.txt", "")).await;
    assert_eq!(text(&c.response().await), "abcdefghijklmnopqrstuvwxyz");
}

#[tokio::test]
async fn if_none_match_is_304_with_the_fields_of_the_200() {
    let site = Site::new();
    let gw = TestGateway::start(&site.config("    precompressed: [gzip]\n")).await;
    let etag = etag_of(&gw, "/files/alphabet.txt").await;
    let mut c = gw.connect().await;
    c.send(get(
        "/files/alphabet.txt",
        &format!("If-None-Match: \"other\", {etag}\r\n"),
    ))
    .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());
    // RFC 9110 §15.4.5: ETag, Cache-Control, Vary and Date as the 200 would have them.
    assert_eq!(resp.header("etag"), Some(etag.as_str()));
    assert_eq!(resp.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(resp.header("vary"), Some("Accept-Encoding"));
    assert!(resp.header("date").is_some());
    assert!(resp.header("content-length").is_none());
    assert!(!resp.closes());
    // The weak form of the tag matches too (weak comparison, §13.1.2), and "*" does.
    c.send(get(
        "/files/alphabet.txt",
        &format!("If-None-Match: W/{etag}\r\n"),
    ))
    .await;
    assert_eq!(c.response().await.status, 304);
    c.send(get("/files/alphabet.txt", "If-None-Match: *\r\n"))
        .await;
    assert_eq!(c.response().await.status, 304);
    // HEAD too.
    c.send(format!(
        "HEAD /files/alphabet.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: {etag}\r\n\r\n"
    ))
    .await;
    assert_eq!(c.response_to("HEAD").await.status, 304);
    // A tag that does not match: the full representation.
    c.send(get("/files/alphabet.txt", "If-None-Match: \"stale\"\r\n"))
        .await;
    assert_eq!(c.response().await.status, 200);
}

#[tokio::test]
async fn if_modified_since_is_304_until_the_file_changes() {
    let site = Site::new();
    let gw = site.gateway().await;
    let ims = format!("If-Modified-Since: {MTIME_HTTP}\r\n");
    let resp = gw.request(&get("/files/alphabet.txt", &ims)).await;
    assert_eq!(resp.status, 304);
    let earlier = "If-Modified-Since: Mon, 31 May 2021 23:59:59 GMT\r\n";
    assert_eq!(
        gw.request(&get("/files/alphabet.txt", earlier))
            .await
            .status,
        200
    );
    // An invalid date is ignored (§13.1.3), and so is If-Modified-Since next to If-None-Match.
    let bad = "If-Modified-Since: yesterday\r\n";
    assert_eq!(
        gw.request(&get("/files/alphabet.txt", bad)).await.status,
        200
    );
    let both = format!("If-None-Match: \"other\"\r\n{ims}");
    assert_eq!(
        gw.request(&get("/files/alphabet.txt", &both)).await.status,
        200
    );
    // The file changes: the same request now gets the file.
    site.file("alphabet.txt", b"new content");
    set_mtime(&site.root().join("alphabet.txt"), MTIME + 3600);
    let resp = gw.request(&get("/files/alphabet.txt", &ims)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(text(&resp), "new content");
}

#[tokio::test]
async fn failed_if_match_is_412() {
    let site = Site::new();
    let gw = site.gateway().await;
    let resp = gw
        .request(&get("/files/alphabet.txt", "If-Match: \"not-the-tag\"\r\n"))
        .await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");
    // A weak tag never satisfies If-Match (strong comparison, §13.1.1).
    let etag = etag_of(&gw, "/files/alphabet.txt").await;
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            &format!("If-Match: W/{etag}\r\n"),
        ))
        .await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");
    // The right tag, or "*", proceeds.
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            &format!("If-Match: {etag}\r\n"),
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        gw.request(&get("/files/alphabet.txt", "If-Match: *\r\n"))
            .await
            .status,
        200
    );
    // A value that is not an entity-tag list matches nothing.
    let resp = gw
        .request(&get("/files/alphabet.txt", "If-Match: garbage\r\n"))
        .await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");
}

#[tokio::test]
async fn failed_if_unmodified_since_is_412() {
    let site = Site::new();
    let gw = site.gateway().await;
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            "If-Unmodified-Since: Mon, 31 May 2021 00:00:00 GMT\r\n",
        ))
        .await;
    assert_error(&resp, 412, "PTC.PRECONDITION_FAILED");
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            &format!("If-Unmodified-Since: {MTIME_HTTP}\r\n"),
        ))
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn single_range_is_206_with_content_range() {
    let site = Site::new();
    let gw = site.gateway().await;
    for (range, body, content_range) in [
        ("bytes=0-4", "abcde", "bytes 0-4/26"),
        ("bytes=23-", "xyz", "bytes 23-25/26"),
        ("bytes=-2", "yz", "bytes 24-25/26"),
        ("bytes=20-1000", "uvwxyz", "bytes 20-25/26"),
        ("BYTES=1-1", "b", "bytes 1-1/26"),
    ] {
        let resp = gw
            .request(&get("/files/alphabet.txt", &format!("Range: {range}\r\n")))
            .await;
        assert_eq!(resp.status, 206, "{range}");
        assert_eq!(text(&resp), body, "{range}");
        assert_eq!(resp.header("content-range"), Some(content_range), "{range}");
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(resp.header("etag").is_some());
    }
    // HEAD ignores Range (§14.2): the fields of the whole file.
    let mut c = gw.connect().await;
    c.send("HEAD /files/alphabet.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=0-4\r\n\r\n")
        .await;
    let head = c.response_to("HEAD").await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("26"))
    );
}

#[tokio::test]
async fn multiple_ranges_are_multipart_byteranges() {
    let site = Site::new();
    let content = pattern(10_000);
    site.file("blob.bin", &content);
    let gw = site.gateway().await;
    let resp = gw
        .request(&get(
            "/files/blob.bin",
            "Range: bytes=9000-9099, 0-99, 5000-5009\r\n",
        ))
        .await;
    assert_eq!(resp.status, 206);
    assert!(resp.header("content-range").is_none());
    let ct = resp.header("content-type").unwrap();
    let parts = parse_multipart(ct, &resp.body);
    // In the order asked for (§14.6), each with its Content-Range and the file's bytes.
    let expected = [(9000, 9099), (0, 99), (5000, 5009)];
    assert_eq!(parts.len(), expected.len());
    for (part, (first, last)) in parts.iter().zip(expected) {
        assert_eq!(
            part.headers.get("content-range"),
            Some(format!("bytes {first}-{last}/10000").as_str())
        );
        assert_eq!(
            part.headers.get("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(part.data, content[first..=last]);
    }
    // Two requests get two different boundaries.
    let again = gw
        .request(&get("/files/blob.bin", "Range: bytes=0-0,9999-9999\r\n"))
        .await;
    assert_ne!(again.header("content-type"), Some(ct));
}

#[tokio::test]
async fn overlapping_ranges_are_coalesced_not_amplified() {
    let site = Site::new();
    let content = pattern(4096);
    site.file("blob.bin", &content);
    let gw = site.gateway().await;
    // A hundred copies of the whole file ask for 100x the bytes: one part is sent.
    let many = vec!["0-4095"; 100].join(",");
    let resp = gw
        .request(&get("/files/blob.bin", &format!("Range: bytes={many}\r\n")))
        .await;
    assert_eq!(resp.status, 206);
    assert_eq!(resp.header("content-range"), Some("bytes 0-4095/4096"));
    assert_eq!(resp.body, content);
    // More specs than Portico reads: the field is ignored, the file sent once.
    let too_many = vec!["0-0"; 101].join(",");
    let resp = gw
        .request(&get(
            "/files/blob.bin",
            &format!("Range: bytes={too_many}\r\n"),
        ))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 4096);
}

#[tokio::test]
async fn unsatisfiable_range_is_416_with_content_range() {
    let site = Site::new();
    let gw = site.gateway().await;
    for range in ["bytes=26-", "bytes=100-200, 300-", "bytes=-0"] {
        let resp = gw
            .request(&get("/files/alphabet.txt", &format!("Range: {range}\r\n")))
            .await;
        assert_error(&resp, 416, "PTC.RANGE_NOT_SATISFIABLE");
        assert_eq!(resp.header("content-range"), Some("bytes */26"), "{range}");
    }
    // Not a 416: an unknown unit or a malformed value is ignored (§14.2).
    for range in ["items=0-1", "bytes=5-1", "bytes=x-y", "bytes"] {
        let resp = gw
            .request(&get("/files/alphabet.txt", &format!("Range: {range}\r\n")))
            .await;
        assert_eq!(resp.status, 200, "{range}");
        assert_eq!(resp.body.len(), 26);
    }
}

#[tokio::test]
async fn if_range_decides_between_the_range_and_the_whole_file() {
    let site = Site::new();
    let gw = site.gateway().await;
    let etag = etag_of(&gw, "/files/alphabet.txt").await;
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            &format!("Range: bytes=0-2\r\nIf-Range: {etag}\r\n"),
        ))
        .await;
    assert_eq!((resp.status, text(&resp)), (206, "abc".to_string()));
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            &format!("Range: bytes=0-2\r\nIf-Range: {MTIME_HTTP}\r\n"),
        ))
        .await;
    assert_eq!(resp.status, 206);
    // A stale validator: the whole (changed) file, never a mix of versions.
    for stale in [
        "\"old\"",
        "Mon, 31 May 2021 00:00:00 GMT",
        "W/\"x\"",
        "nonsense",
    ] {
        let resp = gw
            .request(&get(
                "/files/alphabet.txt",
                &format!("Range: bytes=0-2\r\nIf-Range: {stale}\r\n"),
            ))
            .await;
        assert_eq!(resp.status, 200, "{stale}");
        assert_eq!(resp.body.len(), 26);
    }
}

#[tokio::test]
async fn precompressed_sibling_is_chosen_by_accept_encoding() {
    let site = Site::new();
    site.file("app.js", b"console.log('identity')");
    site.file("app.js.gz", b"GZIP-BYTES");
    site.file("app.js.br", b"BROTLI-BYTES");
    let gw = TestGateway::start(&site.config("    precompressed: [br, gzip]\n")).await;
    let cases = [
        (
            "Accept-Encoding: gzip, deflate, br\r\n",
            "BROTLI-BYTES",
            Some("br"),
        ),
        ("Accept-Encoding: gzip\r\n", "GZIP-BYTES", Some("gzip")),
        (
            "Accept-Encoding: br;q=0.5, gzip\r\n",
            "GZIP-BYTES",
            Some("gzip"),
        ),
        ("Accept-Encoding: x-gzip\r\n", "GZIP-BYTES", Some("gzip")),
        ("Accept-Encoding: zstd\r\n", "console.log('identity')", None),
        ("", "console.log('identity')", None),
        (
            "Accept-Encoding: br;q=0, gzip;q=0\r\n",
            "console.log('identity')",
            None,
        ),
    ];
    let mut tags = Vec::new();
    for (ae, body, coding) in cases {
        let resp = gw.request(&get("/files/app.js", ae)).await;
        assert_eq!(resp.status, 200, "{ae}");
        assert_eq!(text(&resp), body, "{ae}");
        assert_eq!(resp.header("content-encoding"), coding, "{ae}");
        assert_eq!(resp.header("vary"), Some("Accept-Encoding"), "{ae}");
        // The type is the file's, whatever the coding.
        assert_eq!(
            resp.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        tags.push((coding, resp.header("etag").unwrap().to_string()));
    }
    // Each coding has its own strong tag (the bytes differ).
    let br = tags.iter().find(|(c, _)| *c == Some("br")).unwrap();
    let gz = tags.iter().find(|(c, _)| *c == Some("gzip")).unwrap();
    let id = tags.iter().find(|(c, _)| c.is_none()).unwrap();
    assert!(br.1 != gz.1 && gz.1 != id.1 && br.1 != id.1);
    // Ranges apply to the encoded bytes.
    let resp = gw
        .request(&get(
            "/files/app.js",
            "Accept-Encoding: br\r\nRange: bytes=0-5\r\n",
        ))
        .await;
    assert_eq!((resp.status, text(&resp)), (206, "BROTLI".to_string()));
}

#[tokio::test]
async fn identity_refused_without_an_acceptable_sibling_is_406() {
    let site = Site::new();
    site.file("app.js", b"console.log(1)");
    site.file("app.js.gz", b"GZIP");
    let gw = TestGateway::start(&site.config("    precompressed: [br, gzip]\n")).await;
    let resp = gw
        .request(&get(
            "/files/app.js",
            "Accept-Encoding: br, identity;q=0\r\n",
        ))
        .await;
    assert_error(&resp, 406, "PTC.ENCODING_NOT_ACCEPTABLE");
    // The body lists what exists.
    assert_eq!(
        resp.json()["available"],
        serde_json::json!(["identity", "gzip"])
    );
    let resp = gw
        .request(&get("/files/app.js", "Accept-Encoding: *;q=0\r\n"))
        .await;
    assert_error(&resp, 406, "PTC.ENCODING_NOT_ACCEPTABLE");
    // Refusing identity is fine when an accepted sibling exists.
    let resp = gw
        .request(&get(
            "/files/app.js",
            "Accept-Encoding: gzip, identity;q=0\r\n",
        ))
        .await;
    assert_eq!((resp.status, text(&resp)), (200, "GZIP".to_string()));
    // Without precompressed siblings configured, identity refused is a 406 too.
    let plain = site.gateway().await;
    let resp = plain
        .request(&get(
            "/files/alphabet.txt",
            "Accept-Encoding: identity;q=0\r\n",
        ))
        .await;
    assert_error(&resp, 406, "PTC.ENCODING_NOT_ACCEPTABLE");
    assert_eq!(resp.json()["available"], serde_json::json!(["identity"]));
}

#[tokio::test]
async fn accept_that_excludes_the_files_type_is_406() {
    let site = Site::new();
    let gw = site.gateway().await;
    let resp = gw
        .request(&get("/files/alphabet.txt", "Accept: application/json\r\n"))
        .await;
    assert_error(&resp, 406, "PTC.NOT_ACCEPTABLE");
    assert_eq!(
        resp.json()["available"],
        serde_json::json!(["text/plain; charset=utf-8"])
    );
    for ok in [
        "text/*",
        "*/*",
        "text/plain",
        "application/json, text/plain;q=0.1",
        "nonsense",
    ] {
        let resp = gw
            .request(&get("/files/alphabet.txt", &format!("Accept: {ok}\r\n")))
            .await;
        assert_eq!(resp.status, 200, "{ok}");
    }
    // The type is judged before the codings, and a missing file before either.
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            "Accept: image/png\r\nAccept-Encoding: identity;q=0\r\n",
        ))
        .await;
    assert_error(&resp, 406, "PTC.NOT_ACCEPTABLE");
    let resp = gw
        .request(&get("/files/nope.txt", "Accept: image/png\r\n"))
        .await;
    assert_error(&resp, 404, "PTC.FILE_NOT_FOUND");
    // 406 comes before preconditions (§13.2.1): they are for a response that would be 2xx.
    let resp = gw
        .request(&get(
            "/files/alphabet.txt",
            "Accept: image/png\r\nIf-Match: \"x\"\r\n",
        ))
        .await;
    assert_eq!(resp.status, 406);
}

#[tokio::test]
async fn paths_never_leave_the_root() {
    let site = Site::new();
    std::fs::create_dir(site.root().join("dir")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(
            site.dir.path().join("secret.txt"),
            site.root().join("leak.txt"),
        )
        .unwrap();
        symlink(site.dir.path(), site.root().join("up")).unwrap();
        symlink(
            site.root().join("alphabet.txt"),
            site.root().join("inside.txt"),
        )
        .unwrap();
        symlink(site.root().join("data"), site.root().join("alias")).unwrap();
    }
    let gw = site.gateway().await;
    for target in [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2e/secret.txt",
        "/files/..%2fsecret.txt",
        "/files/..%2Fsecret.txt",
        "/files/dir/..%2f..%2fsecret.txt",
        "/files/%2fetc%2fpasswd",
        "/files//etc/passwd",
        "/files/..%5csecret.txt",
        "/files/alphabet.txt%00.png",
        "/files/dir",
        "/files/dir/",
        "/files/",
        "/files/leak.txt",
        "/files/up/secret.txt",
        "/files/nope.txt",
        "/files/alphabet.txt/",
    ] {
        let resp = gw.request(&get(target, "")).await;
        assert_eq!(resp.status, 404, "{target}");
        assert!(!text(&resp).contains("TOP-SECRET"), "{target}");
        assert!(
            ["PTC.FILE_NOT_FOUND", "PTC.ROUTE_NOT_FOUND"]
                .contains(&resp.json()["error_code"].as_str().unwrap()),
            "{target}"
        );
    }
    // A broken escape never reaches the handler: the request target itself is invalid.
    let resp = gw.request(&get("/files/%", "")).await;
    assert_error(&resp, 400, "PTC.TARGET_INVALID");
    // A symlink that stays inside the root is followed.
    #[cfg(unix)]
    {
        let resp = gw.request(&get("/files/inside.txt", "")).await;
        assert_eq!(text(&resp), "abcdefghijklmnopqrstuvwxyz");
        let resp = gw.request(&get("/files/alias/items.json", "")).await;
        assert_eq!(text(&resp), "{\"items\":[1,2,3]}");
    }
    // Encoded characters that are not separators are fine.
    site.file("with space.txt", b"spaced");
    let resp = gw.request(&get("/files/with%20space.txt", "")).await;
    assert_eq!(text(&resp), "spaced");
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_in_the_root_is_404_not_a_hang() {
    let site = Site::new();
    let fifo = site.root().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let gw = site.gateway().await;
    let resp = gw.request(&get("/files/pipe", "")).await;
    assert_error(&resp, 404, "PTC.FILE_NOT_FOUND");
}

#[tokio::test]
async fn large_files_are_streamed_exactly() {
    let site = Site::new();
    let content = pattern(3 * 1024 * 1024 + 17);
    site.file("big.bin", &content);
    let gw = site.gateway().await;
    let mut c = gw.connect().await;
    c.send(get("/files/big.bin", "")).await;
    let resp = c.response().await;
    assert_eq!(resp.status, 200);
    assert!(!resp.chunked);
    assert_eq!(resp.body.len(), content.len());
    assert!(resp.body == content);
    // A range across read boundaries, then several, on the same connection.
    c.send(get("/files/big.bin", "Range: bytes=65530-200000\r\n"))
        .await;
    let resp = c.response().await;
    assert_eq!(resp.status, 206);
    assert!(resp.body == content[65530..=200000]);
    c.send(get(
        "/files/big.bin",
        "Range: bytes=-100000, 1000000-1200000\r\n",
    ))
    .await;
    let resp = c.response().await;
    let parts = parse_multipart(resp.header("content-type").unwrap(), &resp.body);
    let n = content.len();
    assert!(parts[0].data == content[n - 100_000..]);
    assert!(parts[1].data == content[1_000_000..=1_200_000]);
    assert!(!resp.closes());
}

#[tokio::test]
async fn empty_files_are_200_even_with_a_range() {
    let site = Site::new();
    site.file("empty.txt", b"");
    let gw = site.gateway().await;
    for headers in ["", "Range: bytes=0-0\r\n", "Range: bytes=-5\r\n"] {
        let resp = gw.request(&get("/files/empty.txt", headers)).await;
        assert_eq!(resp.status, 200, "{headers}");
        assert_eq!(resp.header("content-length"), Some("0"));
    }
}

#[tokio::test]
async fn route_level_produces_and_consumes_apply_to_static_routes_too() {
    let site = Site::new();
    let gw = TestGateway::start(&site.config(
        "    produces: [\"text/plain; charset=utf-8\"]\n    consumes: [application/json]\n",
    ))
    .await;
    // A body of another type: 415 from the content phase, before the handler looks for a file.
    let resp = gw
        .request(
            "GET /files/nope.txt HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
        )
        .await;
    assert_error(&resp, 415, "PTC.UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(resp.header("accept"), Some("application/json"));
    // An Accept matching nothing the route produces: 406, also before the file lookup.
    let resp = gw
        .request(&get("/files/nope.txt", "Accept: image/png\r\n"))
        .await;
    assert_error(&resp, 406, "PTC.NOT_ACCEPTABLE");
    let resp = gw
        .request(&get("/files/alphabet.txt", "Accept: text/plain\r\n"))
        .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn only_get_and_head_are_served() {
    let site = Site::new();
    let gw = site.gateway().await;
    let resp = gw
        .request("POST /files/alphabet.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_error(&resp, 405, "PTC.METHOD_NOT_ALLOWED");
    assert_eq!(resp.header("allow"), Some("GET, HEAD, OPTIONS"));
    let resp = gw
        .request("OPTIONS /files/alphabet.txt HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(
        (resp.status, resp.header("allow")),
        (204, Some("GET, HEAD, OPTIONS"))
    );
}

#[tokio::test]
async fn hostile_conditional_and_range_fields_never_cost_a_500() {
    let site = Site::new();
    let gw = site.gateway().await;
    let long = "0-1,".repeat(4000);
    let tags = "\"a\", ".repeat(2000);
    for headers in [
        format!("Range: bytes={long}\r\n"),
        format!("If-None-Match: {tags}\r\n"),
        format!("If-Match: {tags}\r\n"),
        "If-Match: \"\r\n".to_string(),
        "If-None-Match: ,,,\r\n".to_string(),
        "If-Range: \"unterminated\r\nRange: bytes=0-1\r\n".to_string(),
        "Range: bytes=99999999999999999999999999-\r\n".to_string(),
        "Range: bytes=-99999999999999999999999999\r\n".to_string(),
        "Accept: ;;;,,,/;q=5\r\nAccept-Encoding: ;q=,,*;q=9\r\n".to_string(),
        "If-Modified-Since: \u{7f}\r\n".to_string(),
    ] {
        let resp = gw.request(&get("/files/alphabet.txt", &headers)).await;
        assert!(
            [200, 206, 304, 400, 412, 416].contains(&resp.status),
            "{} for {headers:.60}",
            resp.status
        );
    }
    // The server still answers.
    assert_eq!(
        gw.request(&get("/files/alphabet.txt", "")).await.status,
        200
    );
}

#[tokio::test]
async fn the_shipped_static_example_serves_its_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let config = portico_config::load(&dir.join("static.yaml")).unwrap();
    let portico_config::Answer::BuiltIn(portico_config::BuiltIn::Static(s)) =
        &config.routes[0].answer
    else {
        panic!("the example's first route is static")
    };
    let yaml = format!(
        "routes:\n  - {{name: site, path: \"/site/{{*file}}\", handler: static, root: \"{}\", precompressed: [br, zstd, gzip]}}\n",
        s.root.display()
    );
    let gw = TestGateway::start(&yaml).await;
    let resp = gw.request(&get("/site/index.html", "")).await;
    assert_eq!(resp.status, 200);
    assert!(text(&resp).contains("Served by Portico"));
    let resp = gw
        .request(&get("/site/docs/codes.json", "Accept-Encoding: gzip\r\n"))
        .await;
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
}
