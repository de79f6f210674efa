#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_http::coding::{self, ContentCoding};
use portico_http::negotiate::{self, MediaType};

// The input is an Accept value and an Accept-Encoding value, split at the first NUL; also
// used as a Content-Type and a Content-Encoding. Whatever is chosen must be something that
// was offered, with a weight above zero.
fuzz_target!(|data: &[u8]| {
    let (accept, accept_encoding) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let offered: Vec<MediaType> = ["application/json", "text/csv; charset=utf-8", "image/png"]
        .iter()
        .filter_map(|t| MediaType::parse(t).ok())
        .collect();
    if let Some(mt) = negotiate::choose(Some(accept), &offered) {
        assert!(offered.contains(mt));
        assert!(negotiate::quality_of(Some(accept), mt) > 0);
    }
    let _ = negotiate::prefers_problem_json(Some(accept));
    let _ = negotiate::consumes(&[accept], &offered);
    let ranges = negotiate::parse_accept(accept);
    for r in &ranges {
        assert!(r.q <= 1000);
    }
    let codings: Vec<ContentCoding> = ["br", "gzip", "identity"]
        .iter()
        .filter_map(|c| ContentCoding::parse(c).ok())
        .collect();
    let ranked = coding::rank(Some(accept_encoding), &codings);
    assert!(ranked.len() <= codings.len());
    for c in ranked {
        assert!(coding::quality(Some(accept_encoding), c.as_str()) > 0);
    }
    let _ = coding::unsupported_coding(&[accept_encoding], &codings);
    if let Ok(s) = std::str::from_utf8(accept) {
        if let Ok(mt) = MediaType::parse(s) {
            // What Portico prints of a media type parses back to the same type.
            assert_eq!(MediaType::parse(&mt.to_string()).ok(), Some(mt));
        }
    }
});
