//! Portico's response-head parser against httparse's, on heads made of the pieces where
//! parsers differ. They must agree on what is a head, where it ends, its status and its
//! fields; the one difference allowed is the reason phrase, which httparse empties when it
//! holds obs-text and Portico keeps as sent.

use bytes::Bytes;
use portico_http::response_head::{MAX_RESPONSE_FIELDS, ResponseHead, ResponseScanner};
use proptest::prelude::*;

const PIECES: &[&[u8]] = &[
    b"HTTP/1.1 ",
    b"HTTP/1.0 ",
    b"HTTP/1.2 ",
    b"HTTP/2 ",
    b"200",
    b"099",
    b"2x0",
    b"1000",
    b" ",
    b"  ",
    b"OK",
    b"\xe9t\xe9",
    b"\r\n",
    b"\n",
    b"\r",
    b"X-A",
    b"Content-Length",
    b":",
    b": ",
    b" v",
    b"\t",
    b"\0",
    b"\x7f",
    b"\xff",
    b"  folded",
    b"5",
    b"A B",
    b"(",
    b"@",
    b"x",
];

#[derive(Debug, PartialEq)]
enum Seen {
    Partial,
    Refused,
    Head {
        start: usize,
        end: usize,
        status: u16,
        reason: Option<Vec<u8>>,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

fn httparse_reads(raw: &[u8]) -> Seen {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(raw) {
        Ok(httparse::Status::Partial) => Seen::Partial,
        Err(_) => Seen::Refused,
        Ok(httparse::Status::Complete(end)) => {
            let status = resp.code.unwrap_or(0);
            if !(100..=599).contains(&status) {
                return Seen::Refused;
            }
            // httparse says where the head ends, not where it began: the leading empty lines
            // are what comes before the version.
            let start = raw
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(0);
            let reason = resp.reason.map(|r| r.as_bytes().to_vec());
            Seen::Head {
                start,
                end,
                status,
                reason: reason.filter(|r| !r.is_empty()),
                fields: resp
                    .headers
                    .iter()
                    .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                    .collect(),
            }
        }
    }
}

fn portico_reads(raw: &[u8]) -> Seen {
    match ResponseScanner::new().scan(raw) {
        Err(_) => Seen::Refused,
        Ok(None) => Seen::Partial,
        Ok(Some(span)) => {
            match ResponseHead::parse(Bytes::copy_from_slice(&raw[span.start..span.end])) {
                Err(_) => Seen::Refused,
                Ok(h) => {
                    let reason = h.reason().to_vec();
                    Seen::Head {
                        start: span.start,
                        end: span.end,
                        status: h.status(),
                        // What httparse gives for a reason with obs-text: nothing.
                        reason: Some(reason).filter(|r| !r.is_empty() && r.is_ascii()),
                        fields: h.fields().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn portico_and_httparse_read_heads_alike(
        pieces in prop::collection::vec(0..PIECES.len(), 0..24),
        status_first in any::<bool>(),
    ) {
        let mut raw: Vec<u8> = if status_first { b"HTTP/1.1 200 OK\r\n".to_vec() } else { Vec::new() };
        for p in pieces {
            raw.extend_from_slice(PIECES[p]);
        }
        raw.extend_from_slice(b"\r\n\r\n");
        let (theirs, ours) = (httparse_reads(&raw), portico_reads(&raw));
        match (&theirs, &ours) {
            // Portico decides a bad status line once the line is whole, httparse at the first
            // byte that breaks it: a head refused either way.
            (Seen::Refused, Seen::Partial) | (Seen::Partial, Seen::Refused) => {}
            _ => prop_assert_eq!(theirs, ours, "{}", String::from_utf8_lossy(&raw)),
        }
    }
}
