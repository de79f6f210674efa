//! Range requests (RFC 9110 §14): parsing `Range: bytes=...`, deciding what a request for a
//! representation of a given length gets, and laying out `multipart/byteranges`.
//!
//! The decision is an enum, [`RangeOutcome`]: the whole representation (the field is absent,
//! ignored or unusable), one range (206 with `Content-Range`), several (206 multipart), or
//! none satisfiable (416).
//!
//! A range request must never cost more than sending the whole representation once. So
//! overlapping ranges, and ranges separated by less than the cost of a part header, are
//! coalesced (§14.2 allows it in any order); a field with more than [`MAX_RANGE_SPECS`]
//! ranges is ignored without looking further, and one that still has more than [`MAX_PARTS`]
//! parts after coalescing is ignored too. Both are what §14.2 and §17.15 allow ("MAY ignore
//! or reject"); ignoring serves the whole representation, which is what a client gets from a
//! server without range support. Parsing is one scan of the field.

use crate::request::trim_ows;
use crate::syntax::{decimal, split_unquoted};

/// Most range-specs read from one field; a field with more is ignored (§17.15).
pub const MAX_RANGE_SPECS: usize = 100;
/// Most parts a multipart answer has after coalescing; more and the field is ignored.
pub const MAX_PARTS: usize = 32;
/// Ranges separated by fewer bytes than this are sent as one part: a part's header costs
/// about as much (§14.2, "a gap that is smaller than the overhead of sending multiple parts").
pub const COALESCE_GAP: u64 = 80;

/// One `range-spec` of the `bytes` unit (§14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` or `first-` (an open end is `None`).
    FromTo(u64, Option<u64>),
    /// `-length`: the last `length` bytes.
    Suffix(u64),
}

/// A satisfiable byte range, first and last positions inclusive (as `Content-Range` writes
/// them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteRange {
    /// First byte position.
    pub first: u64,
    /// Last byte position (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never true: a satisfiable range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value for this range of a representation of `complete` bytes.
    pub fn content_range(&self, complete: u64) -> String {
        format!("bytes {}-{}/{}", self.first, self.last, complete)
    }
}

/// `Content-Range` of a 416: `bytes */LENGTH` (§14.4).
pub fn unsatisfied_range(complete: u64) -> String {
    format!("bytes */{complete}")
}

/// What a GET with these ranges gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// The whole representation: 200.
    Full,
    /// One range: 206 with `Content-Range`.
    Single(ByteRange),
    /// Several ranges, in the order the client asked for them: 206 `multipart/byteranges`.
    Multi(Vec<ByteRange>),
    /// No range overlaps the representation: 416 with `Content-Range: bytes */LENGTH`.
    NotSatisfiable,
}

/// Parses one `Range` field value (§14.2). `None` means the field is ignored: a unit other
/// than `bytes` (§14.2: "MUST ignore ... a range unit it does not understand"), an invalid
/// ranges-specifier (§14.2: "MAY ignore"), or more than [`MAX_RANGE_SPECS`] ranges.
pub fn parse_range(v: &[u8]) -> Option<Vec<RangeSpec>> {
    let eq = v.iter().position(|&b| b == b'=')?;
    // The range unit is case-insensitive (§14.1); no whitespace around "=" in the grammar.
    if !v[..eq].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for element in split_unquoted(&v[eq + 1..], b',') {
        if specs.len() == MAX_RANGE_SPECS {
            return None;
        }
        specs.push(parse_spec(element)?);
    }
    // §14.1.1: range-set = 1#range-spec.
    (!specs.is_empty()).then_some(specs)
}

/// One range-spec; `None` when invalid (§14.1.2: `last-pos` below `first-pos` is invalid).
fn parse_spec(s: &[u8]) -> Option<RangeSpec> {
    let s = trim_ows(s);
    let dash = s.iter().position(|&b| b == b'-')?;
    let (first, last) = (&s[..dash], &s[dash + 1..]);
    if first.is_empty() {
        return Some(RangeSpec::Suffix(decimal(last, true)?));
    }
    let first = decimal(first, true)?;
    if last.is_empty() {
        return Some(RangeSpec::FromTo(first, None));
    }
    let last = decimal(last, true)?;
    (last >= first).then_some(RangeSpec::FromTo(first, Some(last)))
}

impl RangeSpec {
    /// The range this spec selects from `complete` bytes, if it is satisfiable (§14.1.2):
    /// `first-pos` below the length, or a non-zero suffix length; positions past the end are
    /// clamped to it.
    pub fn resolve(self, complete: u64) -> Option<ByteRange> {
        if complete == 0 {
            return None;
        }
        match self {
            RangeSpec::FromTo(first, _) if first >= complete => None,
            RangeSpec::FromTo(first, last) => Some(ByteRange {
                first,
                last: last.map_or(complete - 1, |l| l.min(complete - 1)),
            }),
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(n) => Some(ByteRange {
                first: complete.saturating_sub(n),
                last: complete - 1,
            }),
        }
    }
}

/// Decides what a GET for a representation of `complete` bytes gets for these range-specs.
///
/// An empty representation is sent whole (§14.2: a server "MAY ignore a Range header field
/// when the selected representation has no content").
pub fn resolve(specs: &[RangeSpec], complete: u64) -> RangeOutcome {
    if complete == 0 {
        return RangeOutcome::Full;
    }
    // (range, position of the first spec it covers)
    let mut ranges: Vec<(ByteRange, usize)> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.resolve(complete).map(|r| (r, i)))
        .collect();
    if ranges.is_empty() {
        return RangeOutcome::NotSatisfiable;
    }
    // Coalesce overlapping and nearly adjacent ranges (§14.2), whatever their order.
    ranges.sort_unstable_by_key(|(r, _)| r.first);
    let mut merged: Vec<(ByteRange, usize)> = Vec::with_capacity(ranges.len());
    for (r, i) in ranges {
        match merged.last_mut() {
            Some((m, mi)) if r.first <= m.last.saturating_add(COALESCE_GAP + 1) => {
                m.last = m.last.max(r.last);
                *mi = (*mi).min(i);
            }
            _ => merged.push((r, i)),
        }
    }
    if merged.len() > MAX_PARTS {
        return RangeOutcome::Full;
    }
    // One range, even one covering everything, is a 206: the client asked for a range and
    // gets one, with its `Content-Range`.
    if let [(only, _)] = merged.as_slice() {
        return RangeOutcome::Single(*only);
    }
    // §14.6: parts SHOULD follow the order in which the client listed the ranges.
    merged.sort_unstable_by_key(|(_, i)| *i);
    RangeOutcome::Multi(merged.into_iter().map(|(r, _)| r).collect())
}

/// The framing of a `multipart/byteranges` body (§14.6): each part's header, and the closing
/// delimiter. The data of each part is the representation's bytes in its range; whoever sends
/// the body interleaves them: `header[0] data[0] header[1] data[1] ... closing`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    /// The `Content-Type` of the response: `multipart/byteranges; boundary=...`.
    pub content_type: String,
    /// Each part: its header (delimiter, `Content-Type`, `Content-Range`, blank line) and
    /// its range.
    pub parts: Vec<(Vec<u8>, ByteRange)>,
    /// The close delimiter.
    pub closing: Vec<u8>,
}

impl Multipart {
    /// Lays out the parts for `ranges` of a representation of `complete` bytes whose type is
    /// `part_type`. `boundary` must not occur in the representation: the caller makes it
    /// random (RFC 2046 §5.1.1: 1 to 70 characters).
    pub fn new(ranges: &[ByteRange], complete: u64, part_type: &str, boundary: &str) -> Multipart {
        let parts = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let head = format!(
                    "{}--{boundary}\r\nContent-Type: {part_type}\r\nContent-Range: {}\r\n\r\n",
                    if i == 0 { "" } else { "\r\n" },
                    r.content_range(complete),
                );
                (head.into_bytes(), *r)
            })
            .collect();
        Multipart {
            content_type: format!("multipart/byteranges; boundary={boundary}"),
            parts,
            closing: format!("\r\n--{boundary}--\r\n").into_bytes(),
        }
    }

    /// The exact length of the body.
    pub fn content_length(&self) -> u64 {
        let framing: usize =
            self.parts.iter().map(|(h, _)| h.len()).sum::<usize>() + self.closing.len();
        framing as u64 + self.parts.iter().map(|(_, r)| r.len()).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    fn outcome(v: &str, len: u64) -> RangeOutcome {
        match parse_range(v.as_bytes()) {
            Some(specs) => resolve(&specs, len),
            None => RangeOutcome::Full,
        }
    }

    #[test]
    fn the_examples_of_rfc9110_14_1_2() {
        // The first 500 bytes, the second 500, the final 500 (twice), first and last bytes.
        assert_eq!(
            outcome("bytes=0-499", 10000),
            RangeOutcome::Single(r(0, 499))
        );
        assert_eq!(
            outcome("bytes=500-999", 10000),
            RangeOutcome::Single(r(500, 999))
        );
        assert_eq!(
            outcome("bytes=-500", 10000),
            RangeOutcome::Single(r(9500, 9999))
        );
        assert_eq!(
            outcome("bytes=9500-", 10000),
            RangeOutcome::Single(r(9500, 9999))
        );
        assert_eq!(
            outcome("bytes=0-0,-1", 10000),
            RangeOutcome::Multi(vec![r(0, 0), r(9999, 9999)])
        );
        // Overlapping and unordered but valid: coalesced into one.
        assert_eq!(
            outcome("bytes=500-600,601-999", 10000),
            RangeOutcome::Single(r(500, 999))
        );
        assert_eq!(
            outcome("bytes=500-700,601-999", 10000),
            RangeOutcome::Single(r(500, 999))
        );
    }

    #[test]
    fn positions_past_the_end_are_clamped_14_1_2() {
        assert_eq!(
            outcome("bytes=0-99999", 100),
            RangeOutcome::Single(r(0, 99))
        );
        assert_eq!(outcome("bytes=-99999", 100), RangeOutcome::Single(r(0, 99)));
        assert_eq!(
            outcome("bytes=90-99999999999999999999999999", 100),
            RangeOutcome::Single(r(90, 99))
        );
    }

    #[test]
    fn unsatisfiable_sets_are_416_14_1_1() {
        assert_eq!(outcome("bytes=100-", 100), RangeOutcome::NotSatisfiable);
        assert_eq!(
            outcome("bytes=100-200,300-400", 100),
            RangeOutcome::NotSatisfiable
        );
        assert_eq!(outcome("bytes=-0", 100), RangeOutcome::NotSatisfiable);
        // One satisfiable range is enough.
        assert_eq!(
            outcome("bytes=100-200,0-0", 100),
            RangeOutcome::Single(r(0, 0))
        );
        assert_eq!(unsatisfied_range(100), "bytes */100");
    }

    #[test]
    fn unusable_fields_are_ignored_14_2() {
        for v in [
            "items=0-1",     // unknown unit: MUST ignore
            "bytes=1-0",     // last below first: invalid
            "bytes=",        // empty range-set
            "bytes=,",       // still empty
            "bytes=a-b",     // not numbers
            "bytes = 0-1",   // no whitespace around "="
            "bytes=0 - 1",   // nor inside a spec
            "bytes=0-1;x",   // junk
            "bytes=--1",     // not a suffix
            "0-1",           // no unit
            "bytes=0-1,2-1", // one invalid spec makes the whole specifier invalid
        ] {
            assert_eq!(parse_range(v.as_bytes()), None, "{v}");
        }
        // The unit is case-insensitive; OWS around commas is fine (0-1 and 5-6 are closer
        // than COALESCE_GAP, so they are sent as one part).
        assert_eq!(
            outcome("Bytes=0-1 , 5-6", 100),
            RangeOutcome::Single(r(0, 6))
        );
        assert_eq!(
            outcome("bytes=0-1 , 500-501", 1000),
            RangeOutcome::Multi(vec![r(0, 1), r(500, 501)])
        );
        // An empty representation is sent whole.
        assert_eq!(outcome("bytes=0-0", 0), RangeOutcome::Full);
        assert_eq!(outcome("bytes=-5", 0), RangeOutcome::Full);
    }

    #[test]
    fn parts_keep_the_clients_order_14_6() {
        assert_eq!(
            outcome("bytes=5000-5099,0-99,2000-2099", 10000),
            RangeOutcome::Multi(vec![r(5000, 5099), r(0, 99), r(2000, 2099)])
        );
    }

    #[test]
    fn hostile_range_sets_cannot_amplify_17_15() {
        // Hundreds of overlapping ranges collapse into one.
        let many: Vec<String> = (0..MAX_RANGE_SPECS).map(|_| "0-9999".to_string()).collect();
        assert_eq!(
            outcome(&format!("bytes={}", many.join(",")), 10000),
            RangeOutcome::Single(r(0, 9999))
        );
        // Many small ranges close together collapse too.
        let close: Vec<String> = (0..90)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect();
        assert_eq!(
            outcome(&format!("bytes={}", close.join(",")), 10000),
            RangeOutcome::Single(r(0, 891))
        );
        // More than MAX_PARTS distant ranges: ignored (the whole representation, once).
        let far: Vec<String> = (0..MAX_PARTS + 1)
            .map(|i| format!("{}-{}", i * 1000, i * 1000))
            .collect();
        assert_eq!(
            outcome(&format!("bytes={}", far.join(",")), 100_000),
            RangeOutcome::Full
        );
        // More than MAX_RANGE_SPECS specs: not even parsed to the end.
        let too_many: Vec<String> = (0..=MAX_RANGE_SPECS).map(|_| "0-0".to_string()).collect();
        assert_eq!(
            parse_range(format!("bytes={}", too_many.join(",")).as_bytes()),
            None
        );
    }

    #[test]
    fn multipart_layout_14_6() {
        let m = Multipart::new(&[r(0, 1), r(8, 9)], 10, "text/plain", "XyZ");
        assert_eq!(m.content_type, "multipart/byteranges; boundary=XyZ");
        let data = b"0123456789";
        let mut body = Vec::new();
        for (head, range) in &m.parts {
            body.extend_from_slice(head);
            body.extend_from_slice(&data[range.first as usize..=range.last as usize]);
        }
        body.extend_from_slice(&m.closing);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            "--XyZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
             \r\n--XyZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\
             \r\n--XyZ--\r\n"
        );
        assert_eq!(m.content_length(), body.len() as u64);
    }
}
