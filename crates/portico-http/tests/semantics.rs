//! Properties of the RFC 9110 decisions (preconditions, ranges, negotiation) over generated
//! input.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_http::Method;
use portico_http::coding::{self, ContentCoding};
use portico_http::conditional::{Conditions, EntityTag, HttpDate, Validators, evaluate};
use portico_http::negotiate::{self, MediaType};
use portico_http::range::{ByteRange, COALESCE_GAP, Multipart, RangeOutcome, parse_range, resolve};
use portico_http::representation::{Answer, Representation, decide};
use proptest::prelude::*;

/// A range-spec as a client might write it, possibly unsatisfiable.
fn spec() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..6000, 0u64..6000).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (0u64..6000).prop_map(|a| format!("{a}-")),
        (0u64..6000).prop_map(|n| format!("-{n}")),
    ]
}

/// The bytes of a representation of `len` bytes, different at each offset.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// What a spec asks of a representation of `len` bytes, by RFC 9110 §14.1.2, computed here
/// independently: `None` when unsatisfiable.
fn expected(spec: &str, len: u64) -> Option<(u64, u64)> {
    let (a, b) = spec.split_once('-').unwrap();
    if a.is_empty() {
        let n: u64 = b.parse().unwrap();
        return (n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1));
    }
    let first: u64 = a.parse().unwrap();
    if first >= len {
        return None;
    }
    let last = if b.is_empty() {
        len - 1
    } else {
        b.parse::<u64>().unwrap().min(len - 1)
    };
    Some((first, last))
}

/// Splits a multipart/byteranges body back into (Content-Range, data), independently of
/// `Multipart`.
fn parse_parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap();
    let text = body.to_vec();
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut at = 0;
    loop {
        let start = find(&text[at..], delim.as_bytes()).unwrap() + at + delim.len();
        if text[start..].starts_with(b"--") {
            return parts;
        }
        let head_end = find(&text[start..], b"\r\n\r\n").unwrap() + start;
        let head = String::from_utf8(text[start..head_end].to_vec()).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_string();
        let (_, rest) = range.split_once(' ').unwrap();
        let (pos, _) = rest.split_once('/').unwrap();
        let (first, last) = pos.split_once('-').unwrap();
        let n = last.parse::<usize>().unwrap() - first.parse::<usize>().unwrap() + 1;
        let data_start = head_end + 4;
        parts.push((range, text[data_start..data_start + n].to_vec()));
        // The data is followed by CRLF and the next delimiter.
        assert_eq!(&text[data_start + n..data_start + n + 2], b"\r\n");
        at = data_start + n;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Conditional fields a request might carry, with values that match the representation below,
/// do not, or are not valid at all.
fn conditional_field() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        Just("If-Match"),
        Just("If-None-Match"),
        Just("If-Modified-Since"),
        Just("If-Unmodified-Since"),
        Just("If-Range"),
        Just("Range"),
        Just("Accept"),
    ];
    let value = prop_oneof![
        Just("\"v1\""),
        Just("W/\"v1\""),
        Just("\"v2\", \"v1\""),
        Just("\"v2\""),
        Just("*"),
        Just("Sun, 06 Nov 1994 08:49:37 GMT"),
        Just("Sat, 05 Nov 1994 08:49:37 GMT"),
        Just("Mon, 07 Nov 1994 08:49:37 GMT"),
        Just("bytes=0-9"),
        Just("garbage"),
        Just(""),
    ];
    (name, value).prop_map(|(n, v)| (n.to_string(), v.to_string()))
}

fn rep() -> Representation<'static> {
    Representation {
        validators: Validators {
            etag: EntityTag::parse(b"\"v1\""),
            last_modified: Some(HttpDate(784111777)),
        },
        length: 1000,
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Get),
        Just(Method::Head),
        Just(Method::Put),
        Just(Method::Delete),
        Just(Method::Post),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A 206 body is exactly the bytes of the ranges: every part lies in the representation,
    /// carries the representation's bytes at its offsets, covers every satisfiable range the
    /// client asked for, and the parts never overlap (so never more than the whole).
    #[test]
    fn a_206_body_is_exactly_the_bytes_of_the_ranges(
        len in 1u64..5000,
        specs in proptest::collection::vec(spec(), 1..12),
    ) {
        let field = format!("bytes={}", specs.join(","));
        let parsed = parse_range(field.as_bytes()).unwrap();
        let data = content(len as usize);
        let asked: Vec<(u64, u64)> = specs.iter().filter_map(|s| expected(s, len)).collect();
        let parts: Vec<ByteRange> = match resolve(&parsed, len) {
            RangeOutcome::NotSatisfiable => {
                prop_assert!(asked.is_empty());
                return Ok(());
            }
            RangeOutcome::Single(r) => vec![r],
            RangeOutcome::Multi(rs) => rs,
            RangeOutcome::Full => {
                // Only when there are too many distant parts to send.
                prop_assert!(asked.len() > portico_http::range::MAX_PARTS);
                return Ok(());
            }
        };
        prop_assert!(!asked.is_empty());
        for r in &parts {
            prop_assert!(r.first <= r.last && r.last < len);
        }
        for (first, last) in &asked {
            prop_assert!(parts.iter().any(|p| p.first <= *first && *last <= p.last),
                "{first}-{last} not covered by {parts:?}");
        }
        let mut sorted = parts.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            prop_assert!(w[0].last + COALESCE_GAP < w[1].first, "{sorted:?}");
        }
        prop_assert!(parts.iter().map(ByteRange::len).sum::<u64>() <= len);
        // Laid out as multipart, the body parses back into the same ranges and bytes.
        if parts.len() > 1 {
            let m = Multipart::new(&parts, len, "application/octet-stream", "b0undary");
            let mut body = Vec::new();
            for (head, r) in &m.parts {
                body.extend_from_slice(head);
                body.extend_from_slice(&data[r.first as usize..=r.last as usize]);
            }
            body.extend_from_slice(&m.closing);
            prop_assert_eq!(body.len() as u64, m.content_length());
            let back = parse_parts(&m.content_type, &body);
            prop_assert_eq!(back.len(), parts.len());
            for ((range, bytes), r) in back.iter().zip(&parts) {
                prop_assert_eq!(range, &r.content_range(len));
                prop_assert_eq!(bytes.as_slice(), &data[r.first as usize..=r.last as usize]);
            }
        }
    }

    /// The outcome depends on which fields a request carries, never on their order.
    #[test]
    fn the_outcome_never_depends_on_field_order(
        fields in proptest::collection::vec(conditional_field(), 0..8),
        method in method(),
        seed in any::<u64>(),
    ) {
        let mut shuffled = fields.clone();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        // Even the lines of one field may be reordered: each is an unordered list (a match
        // of any member counts), a date field on two lines is ignored, and so is a Range.
        let as_bytes = |f: &[(String, String)]| -> Vec<(Vec<u8>, Vec<u8>)> {
            f.iter().map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes())).collect()
        };
        let a = as_bytes(&fields);
        let b = as_bytes(&shuffled);
        let ca = Conditions::from_fields(a.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        let cb = Conditions::from_fields(b.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        prop_assert_eq!(decide(method, &ca, &rep()), decide(method, &cb, &rep()));
        prop_assert_eq!(
            evaluate(method, &ca, Some(&rep().validators)),
            evaluate(method, &cb, Some(&rep().validators))
        );
        // 304 only ever answers GET or HEAD (RFC 9110 §15.4.5).
        if decide(method, &ca, &rep()) == Answer::NotModified {
            prop_assert!(matches!(method, Method::Get | Method::Head));
        }
    }

    /// A valid first-last range inside the representation is served exactly.
    #[test]
    fn a_valid_range_is_served_as_asked(len in 1u64..100_000, a in 0u64..100_000, b in 0u64..100_000) {
        let (first, last) = (a.min(b) % len, a.max(b) % len);
        let (first, last) = (first.min(last), first.max(last));
        let specs = parse_range(format!("bytes={first}-{last}").as_bytes()).unwrap();
        prop_assert_eq!(resolve(&specs, len), RangeOutcome::Single(ByteRange { first, last }));
    }

    /// No input makes a parser panic.
    #[test]
    fn arbitrary_field_values_never_panic(v in proptest::collection::vec(any::<u8>(), 0..300), method in method()) {
        if let Some(specs) = parse_range(&v) {
            let _ = resolve(&specs, 1234);
            prop_assert!(specs.len() <= portico_http::range::MAX_RANGE_SPECS);
        }
        for name in ["If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range"] {
            let c = Conditions::from_fields([(name.as_bytes(), v.as_slice())]);
            let _ = decide(method, &c, &rep());
        }
        let _ = EntityTag::parse(&v);
        let _ = HttpDate::parse(&v);
        let available = [MediaType::parse("application/json").unwrap(), MediaType::parse("text/csv; charset=utf-8").unwrap()];
        let _ = negotiate::choose(Some(&v), &available);
        let _ = negotiate::consumes(&[v.as_slice()], &available);
        let _ = negotiate::prefers_problem_json(Some(&v));
        let offers = [ContentCoding::parse("br").unwrap(), ContentCoding::identity()];
        let ranked = coding::rank(Some(&v), &offers);
        prop_assert!(ranked.len() <= offers.len());
        let _ = coding::unsupported_coding(&[v.as_slice()], &offers);
    }

    /// Negotiation picks a type the client gave a weight above zero, and the best one.
    #[test]
    fn the_chosen_type_is_acceptable_and_best(qa in 0u16..=1000, qb in 0u16..=1000) {
        let accept = format!("application/json;q={}, text/csv;q={}", fmt_q(qa), fmt_q(qb));
        let available = [MediaType::parse("application/json").unwrap(), MediaType::parse("text/csv").unwrap()];
        match negotiate::choose(Some(accept.as_bytes()), &available) {
            None => prop_assert!(qa == 0 && qb == 0),
            Some(mt) if mt.subtype == "json" => prop_assert!(qa > 0 && qa >= qb),
            Some(_) => prop_assert!(qb > 0 && qb > qa),
        }
    }
}

fn fmt_q(q: u16) -> String {
    if q == 1000 {
        "1".to_string()
    } else {
        format!("0.{q:03}")
    }
}
