#![no_main]

//! Upstream response heads: the scanner in pieces of every size, then the parser, then the
//! framing rules. The scanner finds the same end however the bytes arrive; a parsed head's
//! fields are slices of it; a close-delimited body never leaves the connection reusable.

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portico_http::response::{ResponseFraming, response_info};
use portico_http::response_head::{ResponseHead, ResponseScanner};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else { return };
    let whole = ResponseScanner::new().scan(raw);
    // The same answer in pieces of `piece` bytes.
    let piece = usize::from(flags >> 2).max(1);
    let mut scanner = ResponseScanner::new();
    let mut in_pieces = Ok(None);
    let mut seen = 0;
    while seen < raw.len() {
        seen = (seen + piece).min(raw.len());
        in_pieces = scanner.scan(&raw[..seen]);
        if !matches!(in_pieces, Ok(None)) {
            break;
        }
    }
    match (&whole, &in_pieces) {
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Ok(Some(_)), _) | (_, Ok(Some(_))) => panic!("{whole:?} whole, {in_pieces:?} in pieces"),
        _ => {}
    }
    let Ok(Some(span)) = whole else { return };
    assert!(span.start <= span.end && span.end <= raw.len());
    let Ok(head) = ResponseHead::parse(Bytes::copy_from_slice(&raw[span.start..span.end])) else {
        return;
    };
    assert!((100..=599).contains(&head.status()));
    for (name, value) in head.fields() {
        assert!(!name.is_empty() && !name.contains(&b':'));
        assert!(!value.contains(&b'\r') && !value.contains(&b'\n'));
    }
    if let Ok(info) = response_info(head.status(), head.is_http10(), flags & 1 == 1, head.fields())
        && info.framing == ResponseFraming::Close
    {
        assert!(!info.reusable, "a close-delimited body cannot leave the connection reusable");
    }
});
