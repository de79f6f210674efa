//! Content negotiation (RFC 9110 §12): how well an `Accept` header likes a media type.
//!
//! For now Portico negotiates one thing, the type of its own error bodies
//! (`application/json` or `application/problem+json`); routes' `produces`/`consumes` build on the
//! same parsing.

use crate::request::{list_elements, trim_ows};

/// One media range of an `Accept` header with its weight (0..=1000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaRange<'a> {
    /// Type, e.g. `application` or `*`.
    pub kind: &'a [u8],
    /// Subtype, e.g. `json` or `*`.
    pub subtype: &'a [u8],
    /// The `q` weight in thousandths (RFC 9110 §12.4.2).
    pub q: u16,
}

/// Parses an `Accept` value; malformed elements are skipped (RFC 9110 §12.5.1 lets a server
/// ignore what it cannot parse).
pub fn parse_accept(v: &[u8]) -> Vec<MediaRange<'_>> {
    let mut out = Vec::new();
    for element in list_elements(v) {
        let mut parts = element.split(|&b| b == b';');
        let Some(range) = parts.next().map(trim_ows) else {
            continue;
        };
        let Some(slash) = range.iter().position(|&b| b == b'/') else {
            continue;
        };
        let (kind, subtype) = (&range[..slash], &range[slash + 1..]);
        if kind.is_empty() || subtype.is_empty() || (kind == b"*" && subtype != b"*") {
            continue;
        }
        let mut q = 1000;
        for param in parts {
            let param = trim_ows(param);
            if param.len() >= 2 && param[..2].eq_ignore_ascii_case(b"q=") {
                match parse_qvalue(&param[2..]) {
                    Some(v) => q = v,
                    None => continue,
                }
            }
        }
        out.push(MediaRange { kind, subtype, q });
    }
    out
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The weight `ranges` give to `kind/subtype`: that of the most specific matching range
/// (RFC 9110 §12.5.1), 0 when none matches.
pub fn quality(ranges: &[MediaRange<'_>], kind: &[u8], subtype: &[u8]) -> u16 {
    let mut best: Option<(u8, u16)> = None;
    for r in ranges {
        let specificity = if r.kind == b"*" {
            0
        } else if !r.kind.eq_ignore_ascii_case(kind) {
            continue;
        } else if r.subtype == b"*" {
            1
        } else if r.subtype.eq_ignore_ascii_case(subtype) {
            2
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, r.q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// Whether an error body should be `application/problem+json` rather than `application/json`:
/// only when the client's `Accept` strictly prefers it.
pub fn prefers_problem_json(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept else { return false };
    let ranges = parse_accept(accept);
    quality(&ranges, b"application", b"problem+json") > quality(&ranges, b"application", b"json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues() {
        // RFC 9110 §12.4.2 grammar.
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"0.5"), Some(500));
        assert_eq!(parse_qvalue(b"0.001"), Some(1));
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"1.5"), None);
        assert_eq!(parse_qvalue(b"0.0001"), None);
        assert_eq!(parse_qvalue(b"2"), None);
    }

    #[test]
    fn most_specific_range_wins() {
        // RFC 9110 §12.5.1: "media ranges can be overridden by more specific media ranges".
        let r = parse_accept(b"text/*;q=0.3, text/plain;q=0.7, */*;q=0.5");
        assert_eq!(quality(&r, b"text", b"plain"), 700);
        assert_eq!(quality(&r, b"text", b"html"), 300);
        assert_eq!(quality(&r, b"image", b"png"), 500);
        assert_eq!(quality(&parse_accept(b"text/plain"), b"image", b"png"), 0);
    }

    #[test]
    fn problem_json_only_when_preferred() {
        assert!(!prefers_problem_json(None));
        assert!(!prefers_problem_json(Some(b"*/*")));
        assert!(!prefers_problem_json(Some(
            b"application/json, application/problem+json"
        )));
        assert!(prefers_problem_json(Some(b"application/problem+json")));
        assert!(prefers_problem_json(Some(
            b"application/json;q=0.5, application/problem+json"
        )));
        assert!(prefers_problem_json(Some(
            b"application/problem+json, */*;q=0.1"
        )));
        assert!(!prefers_problem_json(Some(b"garbage, ;;, /")));
    }
}
