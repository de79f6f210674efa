//! Field-value syntax shared by the header parsers (RFC 9110 §5.6): lists whose elements may
//! hold quoted strings, parameters, tokens, weights.
//!
//! Every function here is a single forward scan: a hostile value costs time linear in its
//! length and allocates nothing.

use crate::head::is_tchar;
use crate::request::trim_ows;

/// Splits `v` at `delim`, except inside a quoted string (RFC 9110 §5.6.4, with `\` escapes),
/// trimming OWS and skipping empty pieces (the list rule of §5.6.1 allows them).
pub fn split_unquoted(v: &[u8], delim: u8) -> SplitUnquoted<'_> {
    SplitUnquoted { v, pos: 0, delim }
}

/// Iterator returned by [`split_unquoted`].
pub struct SplitUnquoted<'a> {
    v: &'a [u8],
    pos: usize,
    delim: u8,
}

impl SplitUnquoted<'_> {
    /// Where the next piece starts (at most the length of the input).
    pub fn position(&self) -> usize {
        self.pos.min(self.v.len())
    }
}

impl<'a> Iterator for SplitUnquoted<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.v.len() {
            let start = self.pos;
            let mut quoted = false;
            let mut escaped = false;
            let mut end = self.v.len();
            let mut i = start;
            while i < self.v.len() {
                let b = self.v[i];
                if escaped {
                    escaped = false;
                } else if quoted && b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    quoted = !quoted;
                } else if !quoted && b == self.delim {
                    end = i;
                    break;
                }
                i += 1;
            }
            self.pos = end + 1;
            let piece = trim_ows(&self.v[start..end]);
            if !piece.is_empty() {
                return Some(piece);
            }
        }
        None
    }
}

/// Whether `v` is a non-empty `token` (RFC 9110 §5.6.2).
pub fn is_token(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(|&b| is_tchar(b))
}

/// The value of a parameter without its quotes, when it is a `token` or a well-formed
/// `quoted-string`; escapes are left as they are (values are only compared).
pub fn param_value(v: &[u8]) -> Option<&[u8]> {
    if let Some(inner) = v.strip_prefix(b"\"") {
        let inner = inner.strip_suffix(b"\"")?;
        // A trailing backslash would have escaped the closing quote.
        let mut escaped = false;
        for &b in inner {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                return None;
            }
        }
        (!escaped).then_some(inner)
    } else {
        is_token(v).then_some(v)
    }
}

/// One `name=value` parameter (RFC 9110 §5.6.6), name checked as a token and value unquoted.
pub fn parameter(p: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = p.iter().position(|&b| b == b'=')?;
    let name = &p[..eq];
    // RFC 9110 §5.6.6 allows OWS around ";", not around "=".
    if !is_token(name) {
        return None;
    }
    Some((name, param_value(&p[eq + 1..])?))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in
/// thousandths.
pub fn qvalue(v: &[u8]) -> Option<u16> {
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

/// If `p` is a weight parameter (`q=...`, name case-insensitive), its value: `Some(None)` when
/// the value is malformed.
pub fn weight(p: &[u8]) -> Option<Option<u16>> {
    let rest = p
        .get(..2)
        .filter(|n| n.eq_ignore_ascii_case(b"q="))
        .map(|_| &p[2..])?;
    Some(qvalue(rest))
}

/// Whether a field name is `canonical` (lower case) when case is ignored and `_` is read as
/// `-`, as CGI-style servers read names (`Transfer_Encoding` and `Transfer-Encoding` both
/// become `HTTP_TRANSFER_ENCODING`).
pub fn same_field_loosely(name: &[u8], canonical: &str) -> bool {
    name.len() == canonical.len()
        && name.iter().zip(canonical.bytes()).all(|(&a, b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

/// The value of a hexadecimal digit.
pub fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a decimal number of up to 19 digits; `None` if empty, not all digits, or longer.
/// Larger values saturate to `u64::MAX` when `saturate` is set (a range position beyond any
/// representation means the same as a very large one).
pub fn decimal(v: &[u8], saturate: bool) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n = 0u64;
    for &d in v {
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(next) => n = next,
            None if saturate => return Some(u64::MAX),
            None => return None,
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(v: &str, d: u8) -> Vec<String> {
        split_unquoted(v.as_bytes(), d)
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn lists_split_outside_quotes_only() {
        // RFC 9110 §5.6.1: empty elements are skipped; §5.6.4: a comma in a quoted string is
        // part of the string.
        assert_eq!(pieces(" a , ,b,, ", b','), ["a", "b"]);
        assert_eq!(
            pieces(r#"text/plain; x="a,b", */*"#, b','),
            [r#"text/plain; x="a,b""#, "*/*"]
        );
        assert_eq!(pieces(r#""a\",b", c"#, b','), [r#""a\",b""#, "c"]);
        assert!(pieces("", b',').is_empty());
    }

    #[test]
    fn parameters_and_values() {
        // RFC 9110 §5.6.6.
        assert_eq!(
            parameter(b"charset=utf-8"),
            Some((&b"charset"[..], &b"utf-8"[..]))
        );
        assert_eq!(
            parameter(br#"charset="utf-8""#),
            Some((&b"charset"[..], &b"utf-8"[..]))
        );
        assert_eq!(parameter(b"charset = utf-8"), None);
        assert_eq!(parameter(b"=x"), None);
        assert_eq!(parameter(br#"a="x"y""#), None);
        assert_eq!(parameter(br#"a="x\""#), None);
        assert_eq!(param_value(br#""a\"b""#), Some(&br#"a\"b"#[..]));
    }

    #[test]
    fn qvalues_follow_rfc9110_12_4_2() {
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0.001"), Some(1));
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"0."), Some(0));
        assert_eq!(qvalue(b"1.5"), None);
        assert_eq!(qvalue(b"0.0001"), None);
        assert_eq!(qvalue(b"2"), None);
        assert_eq!(qvalue(b""), None);
        assert_eq!(weight(b"Q=0.2"), Some(Some(200)));
        assert_eq!(weight(b"q=x"), Some(None));
        assert_eq!(weight(b"level=1"), None);
    }

    #[test]
    fn field_names_compare_as_cgi_reads_them() {
        assert!(same_field_loosely(
            b"Transfer_Encoding",
            "transfer-encoding"
        ));
        assert!(same_field_loosely(b"CONTENT-LENGTH", "content-length"));
        assert!(same_field_loosely(b"x_forwarded_FOR", "x-forwarded-for"));
        assert!(!same_field_loosely(
            b"Transfer-Encodings",
            "transfer-encoding"
        ));
        assert!(!same_field_loosely(b"Content.Length", "content-length"));
    }

    #[test]
    fn decimals_saturate_only_when_asked() {
        assert_eq!(decimal(b"0", false), Some(0));
        assert_eq!(decimal(b"18446744073709551615", false), Some(u64::MAX));
        assert_eq!(decimal(b"18446744073709551616", false), None);
        assert_eq!(decimal(b"99999999999999999999999", true), Some(u64::MAX));
        assert_eq!(decimal(b"", true), None);
        assert_eq!(decimal(b"1a", true), None);
        assert_eq!(decimal(b"-1", true), None);
    }
}
