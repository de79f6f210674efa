#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_http::Method;
use portico_http::conditional::{Conditions, EntityTag, HttpDate, Validators, evaluate};
use portico_http::representation::{Answer, Representation, decide};

// The input is split at NUL bytes into field values for If-Match, If-None-Match,
// If-Modified-Since, If-Unmodified-Since, If-Range and Range, in turn; the first byte picks
// the method. The same fields in reverse order must give the same answer.
fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else { return };
    let method = [Method::Get, Method::Head, Method::Put, Method::Delete, Method::Post][usize::from(m) % 5];
    const NAMES: [&[u8]; 6] = [
        b"If-Match",
        b"If-None-Match",
        b"If-Modified-Since",
        b"If-Unmodified-Since",
        b"If-Range",
        b"Range",
    ];
    let fields: Vec<(&[u8], &[u8])> = rest
        .split(|&b| b == 0)
        .enumerate()
        .map(|(i, v)| (NAMES[i % NAMES.len()], v))
        .collect();
    let rep = Representation {
        validators: Validators {
            etag: EntityTag::parse(b"\"v1\""),
            last_modified: Some(HttpDate(784111777)),
        },
        length: 10_000,
    };
    let forward = Conditions::from_fields(fields.iter().copied());
    let backward = Conditions::from_fields(fields.iter().rev().copied());
    let a = decide(method, &forward, &rep);
    assert_eq!(a, decide(method, &backward, &rep));
    assert_eq!(
        evaluate(method, &forward, Some(&rep.validators)),
        evaluate(method, &backward, Some(&rep.validators))
    );
    if a == Answer::NotModified {
        assert!(matches!(method, Method::Get | Method::Head));
    }
    for (_, v) in &fields {
        if let Some(tag) = EntityTag::parse(v) {
            assert!(!tag.opaque.contains(&b'"'));
        }
        let _ = HttpDate::parse(v);
    }
});
