//! An HTTP/2 request head, read as the HTTP/1.1 head it stands for.
//!
//! Portico's request rules are written once, against HTTP/1.1 syntax (`portico-http`). An
//! HTTP/2 head is written out in that syntax and parsed by the same parser, so it meets every
//! rule and limit an HTTP/1.1 head does: the same 400s, the same 414, the same field limits.
//! What HTTP/2 itself forbids (connection-specific fields, bad or missing pseudo-header
//! fields, upper-case names) never gets here: the `h2` library refuses the stream with
//! `RST_STREAM(PROTOCOL_ERROR)`, as RFC 9113 §8.1.1 requires of a malformed request.

use bytes::{BufMut, BytesMut};
use http::request::Parts;
use portico_http::{BodyFraming, ErrorCode, HeadLimits, RequestHead, RequestInfo};

/// The head and framing of an HTTP/2 request. `end_stream` says whether the HEADERS frame
/// ended the stream (the request has no body).
pub(crate) fn translate(
    parts: &Parts,
    end_stream: bool,
    limits: &HeadLimits,
) -> Result<(RequestHead, RequestInfo), ErrorCode> {
    let authority = parts.uri.authority().map(|a| a.as_str());
    let target = if parts.method == http::Method::CONNECT {
        authority.unwrap_or_default()
    } else {
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    };

    // Sizes first, so a head far over the limits is refused before it is copied.
    let mut field_bytes = 0usize;
    let mut fields = 0usize;
    for (name, value) in &parts.headers {
        field_bytes += name.as_str().len() + value.len() + 4;
        fields += 1;
    }
    if fields > limits.max_headers + 1 {
        return Err(ErrorCode::TooManyHeaders);
    }
    let host_bytes = authority.map_or(0, |a| a.len() + 8);
    if field_bytes > limits.max_header_bytes + host_bytes + 2 {
        return Err(ErrorCode::HeaderSectionTooLarge);
    }

    let mut head = BytesMut::with_capacity(
        parts.method.as_str().len() + target.len() + 16 + host_bytes + field_bytes,
    );
    head.put_slice(parts.method.as_str().as_bytes());
    head.put_u8(b' ');
    head.put_slice(target.as_bytes());
    head.put_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = authority {
        // RFC 9113 §8.3.1: `:authority` is the Host; a Host field naming another is malformed.
        for host in parts.headers.get_all(http::header::HOST) {
            if !host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()) {
                return Err(ErrorCode::HostMismatch);
            }
        }
        push_field(&mut head, b"host", authority.as_bytes());
    }
    // RFC 9113 §8.2.3: cookie crumbs travel as separate fields and are joined for HTTP/1.1.
    let mut cookies = parts.headers.get_all(http::header::COOKIE).iter();
    if let Some(first) = cookies.next() {
        head.put_slice(b"cookie: ");
        head.put_slice(first.as_bytes());
        for crumb in cookies {
            head.put_slice(b"; ");
            head.put_slice(crumb.as_bytes());
        }
        head.put_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if (authority.is_some() && name == http::header::HOST) || name == http::header::COOKIE {
            continue;
        }
        push_field(&mut head, name.as_str().as_bytes(), value.as_bytes());
    }
    head.put_slice(b"\r\n");

    let head = RequestHead::parse_http2(head.freeze(), limits)?;
    let mut info = RequestInfo::analyze(&head)?;
    if info.framing == BodyFraming::None && !end_stream && head.field("content-length").is_none() {
        // A body of unannounced length: it ends with the stream. For everything that reads
        // the framing (limits, 411, the upstream request) that is what chunked means.
        info.framing = BodyFraming::Chunked;
        info.expect_continue = head.field("expect").is_some();
    }
    Ok((head, info))
}

fn push_field(head: &mut BytesMut, name: &[u8], value: &[u8]) {
    head.put_slice(name);
    head.put_slice(b": ");
    head.put_slice(value);
    head.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_http::{Method, Version};

    fn parts(method: &str, uri: &str, fields: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in fields {
            b = b.header(*n, *v);
        }
        b.body(()).expect("a valid request").into_parts().0
    }

    #[test]
    fn a_head_reads_as_its_http1_form() {
        let p = parts(
            "POST",
            "https://api.example/v1/items?x=1",
            &[
                ("content-type", "application/json"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("content-length", "5"),
            ],
        );
        let (head, info) = translate(&p, false, &HeadLimits::default()).expect("valid");
        assert_eq!(head.version(), Version::Http2);
        assert_eq!(head.method(), Method::Post);
        assert_eq!(head.path(), b"/v1/items");
        assert_eq!(head.query(), Some(&b"x=1"[..]));
        assert_eq!(head.field("host"), Some(&b"api.example"[..]));
        assert_eq!(head.field("cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(head.fields_named("cookie").count(), 1);
        assert_eq!(info.framing, BodyFraming::Length(5));
    }

    #[test]
    fn a_body_without_content_length_ends_with_its_stream() {
        let p = parts("PUT", "http://h/x", &[("expect", "100-continue")]);
        let (_, info) = translate(&p, false, &HeadLimits::default()).expect("valid");
        assert_eq!(info.framing, BodyFraming::Chunked);
        assert!(info.expect_continue);
        let p = parts("GET", "http://h/x", &[]);
        let (_, info) = translate(&p, true, &HeadLimits::default()).expect("valid");
        assert_eq!(info.framing, BodyFraming::None);
        assert!(!info.expect_continue);
    }

    #[test]
    fn heads_break_the_same_rules_as_on_http1() {
        let limits = HeadLimits {
            max_uri_bytes: 64,
            max_header_bytes: 256,
            max_headers: 4,
        };
        let long = format!("http://h/{}", "a".repeat(100));
        let cases: Vec<(Parts, ErrorCode)> = vec![
            (parts("GET", &long, &[]), ErrorCode::UriTooLong),
            (
                parts("GET", "http://h/", &[("x-big", &"v".repeat(300))]),
                ErrorCode::HeaderSectionTooLarge,
            ),
            (
                parts(
                    "GET",
                    "http://h/",
                    &[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")],
                ),
                ErrorCode::TooManyHeaders,
            ),
            (
                parts("GET", "http://h/", &[("host", "other")]),
                ErrorCode::HostMismatch,
            ),
            (parts("GET", "http://user@h/", &[]), ErrorCode::HostInvalid),
            (
                parts("GET", "http://h/", &[("content-length", "1, 1")]),
                ErrorCode::ContentLengthMultiple,
            ),
            (
                parts("GET", "http://h/", &[("expect", "nothing")]),
                ErrorCode::ExpectationFailed,
            ),
            (
                parts("GET", "http://h/", &[("content_length", "1")]),
                ErrorCode::HeaderNameAmbiguous,
            ),
        ];
        for (p, code) in cases {
            let got = translate(&p, true, &limits).map(|_| ());
            assert_eq!(got, Err(code), "{:?} {:?}", p.uri, p.headers);
        }
    }
}
