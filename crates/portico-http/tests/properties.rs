//! Properties of the parsers, over generated input.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use bytes::Bytes;
use portico_http::chunked::{ChunkedDecoder, LAST_CHUNK, encode_chunk_head};
use portico_http::{HeadLimits, HeadScanner, RequestHead, RequestInfo, Scan};
use proptest::prelude::*;

fn limits() -> HeadLimits {
    HeadLimits {
        max_uri_bytes: 512,
        max_header_bytes: 2048,
        max_headers: 32,
    }
}

/// Scans `input` fed in pieces of `step` bytes, then parses the head if one completed.
fn scan_in_steps(
    input: &[u8],
    step: usize,
) -> Option<Result<RequestHead, portico_http::ErrorCode>> {
    let mut scanner = HeadScanner::new();
    let l = limits();
    let mut n = 0;
    loop {
        n = (n + step).min(input.len());
        match scanner.scan(&input[..n], &l) {
            Ok(Scan::Complete { start, end }) => {
                return Some(RequestHead::parse(
                    Bytes::copy_from_slice(&input[start..end]),
                    &l,
                ));
            }
            Ok(Scan::Partial) if n == input.len() => return None,
            Ok(Scan::Partial) => {}
            Err(code) => return Some(Err(code)),
        }
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}"
}

fn value() -> impl Strategy<Value = String> {
    "[ -~]{0,40}".prop_map(|v| v.trim().to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..600), step in 1usize..64) {
        if let Some(Ok(head)) = scan_in_steps(&input, step) {
            let _ = RequestInfo::analyze(&head);
        }
    }

    #[test]
    fn arbitrary_text_heads_never_panic(text in "[ -~\r\n\t]{0,400}", step in 1usize..64) {
        if let Some(Ok(head)) = scan_in_steps(text.as_bytes(), step) {
            let _ = RequestInfo::analyze(&head);
        }
    }

    #[test]
    fn valid_heads_parse_to_their_fields_however_they_are_split(
        path in "(/[a-z0-9._~-]{1,8}){1,5}",
        fields in proptest::collection::vec((token(), value()), 0..10),
        step in 1usize..50,
    ) {
        let mut raw = format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n");
        for (n, v) in &fields {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let head = scan_in_steps(raw.as_bytes(), step).expect("complete").expect("valid");
        prop_assert_eq!(head.path(), path.as_bytes());
        let parsed: Vec<(Vec<u8>, Vec<u8>)> = head.fields().skip(1).map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = fields.iter().map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes())).collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn chunked_bodies_decode_to_their_data(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(1usize..500, 1..20),
        step in 1usize..300,
    ) {
        // Encode `data` in chunks of the sizes in `cuts` (cycled).
        let mut wire = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < data.len() {
            let n = cuts[i % cuts.len()].min(data.len() - pos);
            encode_chunk_head(n, &mut wire);
            wire.extend_from_slice(&data[pos..pos + n]);
            wire.extend_from_slice(b"\r\n");
            pos += n;
            i += 1;
        }
        wire.extend_from_slice(LAST_CHUNK);
        wire.extend_from_slice(b"NEXT");
        // Decode it fed `step` bytes at a time.
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut avail = step.min(wire.len());
        while !d.is_done() {
            let s = d.decode(&wire[at..avail]).expect("valid framing");
            out.extend_from_slice(&wire[at + s.skip..at + s.skip + s.data]);
            at += s.skip + s.data;
            if at == avail && !d.is_done() {
                prop_assert!(avail < wire.len(), "ran out of input");
                avail = (avail + step).min(wire.len());
            }
        }
        prop_assert_eq!(out, data);
        prop_assert_eq!(&wire[at..], b"NEXT");
    }

    #[test]
    fn the_chunked_decoder_never_panics(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut d = ChunkedDecoder::new();
        let mut at = 0;
        while at < input.len() && !d.is_done() {
            match d.decode(&input[at..]) {
                Ok(s) if s.skip + s.data == 0 => break,
                Ok(s) => at += s.skip + s.data,
                Err(_) => break,
            }
        }
    }
}
