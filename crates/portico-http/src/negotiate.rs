//! Media-type negotiation (RFC 9110 §12, §8.3): which of the types a route produces the
//! client's `Accept` prefers (or none: 406), and whether a request's `Content-Type` is one a
//! route consumes (or not: 415).
//!
//! Portico also negotiates the type of its own error bodies (`application/json` or
//! `application/problem+json`) with the same parsing.
//!
//! An `Accept` field that holds no valid media range at all is treated as absent (RFC 9110
//! §12.5.1 lets a server disregard it), so garbage never turns into a 406; elements that
//! cannot be parsed are skipped. Parsing is a forward scan, repeated per candidate type
//! rather than collected, so it allocates nothing.

use std::fmt;

use crate::syntax::{is_token, parameter, split_unquoted, weight};

/// One media range of an `Accept` field with its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaRange<'a> {
    /// Type, e.g. `application` or `*`.
    pub kind: &'a [u8],
    /// Subtype, e.g. `json` or `*`.
    pub subtype: &'a [u8],
    /// The parameters between the subtype and the weight, as written (`;`-separated).
    pub params: &'a [u8],
    /// The `q` weight in thousandths (RFC 9110 §12.4.2).
    pub q: u16,
}

impl<'a> MediaRange<'a> {
    /// Parses one element of an `Accept` list; `None` if it is not `type/subtype *(; param)
    /// [weight]`.
    pub fn parse(element: &'a [u8]) -> Option<MediaRange<'a>> {
        let (essence, params) = match element.iter().position(|&b| b == b';') {
            Some(i) => (&element[..i], &element[i + 1..]),
            None => (element, &b""[..]),
        };
        let (kind, subtype) = split_essence(crate::request::trim_ows(essence))?;
        if kind == b"*" && subtype != b"*" {
            return None;
        }
        // Parameters run up to the weight; what follows a weight is ignored (the old
        // accept-ext of RFC 7231 that RFC 9110 dropped).
        let mut q = 1000;
        let mut params_end = params.len();
        let mut pieces = split_unquoted(params, b';');
        loop {
            let start = pieces.position();
            let Some(p) = pieces.next() else { break };
            if let Some(w) = weight(p) {
                q = w?;
                params_end = start;
                break;
            }
            parameter(p)?;
        }
        Some(MediaRange {
            kind,
            subtype,
            params: trim_params(&params[..params_end]),
            q,
        })
    }

    /// How specifically this range matches `mt`, or `None` if it does not: `*/*` 0,
    /// `type/*` 1, `type/subtype` 2, plus one per parameter (§12.5.1: "media ranges can be
    /// overridden by more specific media ranges or specific media types").
    fn specificity(&self, mt: &MediaType) -> Option<usize> {
        if self.kind == b"*" {
            return Some(0);
        }
        if !self.kind.eq_ignore_ascii_case(mt.kind.as_bytes()) {
            return None;
        }
        if self.subtype == b"*" {
            return Some(1);
        }
        if !self.subtype.eq_ignore_ascii_case(mt.subtype.as_bytes()) {
            return None;
        }
        let mut n = 2;
        for p in split_unquoted(self.params, b';') {
            let (name, value) = parameter(p)?;
            if !mt.has_param(name, value) {
                return None;
            }
            n += 1;
        }
        Some(n)
    }
}

/// Parameters without the separators and whitespace that preceded a weight.
fn trim_params(p: &[u8]) -> &[u8] {
    let end = p
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t' | b';'))
        .map_or(0, |e| e + 1);
    &p[..end]
}

/// `type "/" subtype`, both tokens.
fn split_essence(v: &[u8]) -> Option<(&[u8], &[u8])> {
    let slash = v.iter().position(|&b| b == b'/')?;
    let (kind, subtype) = (&v[..slash], &v[slash + 1..]);
    (is_token(kind) && is_token(subtype)).then_some((kind, subtype))
}

/// The valid media ranges of an `Accept` value, malformed elements skipped.
pub fn accept_ranges(v: &[u8]) -> impl Iterator<Item = MediaRange<'_>> {
    split_unquoted(v, b',').filter_map(MediaRange::parse)
}

/// Parses an `Accept` value; malformed elements are skipped.
pub fn parse_accept(v: &[u8]) -> Vec<MediaRange<'_>> {
    accept_ranges(v).collect()
}

/// The weight `accept` gives to `mt`: that of the most specific matching range (RFC 9110
/// §12.5.1); 0 when none matches; 1000 when `accept` is absent or holds no valid range.
pub fn quality_of(accept: Option<&[u8]>, mt: &MediaType) -> u16 {
    let Some(accept) = accept else { return 1000 };
    let mut any = false;
    let mut best: Option<(usize, u16)> = None;
    for range in accept_ranges(accept) {
        any = true;
        if let Some(s) = range.specificity(mt)
            && best.is_none_or(|(b, _)| s > b)
        {
            best = Some((s, range.q));
        }
    }
    if !any {
        return 1000;
    }
    best.map_or(0, |(_, q)| q)
}

/// The weight `ranges` give to `kind/subtype` (no parameters).
pub fn quality(ranges: &[MediaRange<'_>], kind: &[u8], subtype: &[u8]) -> u16 {
    let (Ok(kind), Ok(subtype)) = (std::str::from_utf8(kind), std::str::from_utf8(subtype)) else {
        return 0;
    };
    let mt = MediaType {
        kind: kind.to_ascii_lowercase(),
        subtype: subtype.to_ascii_lowercase(),
        params: Vec::new(),
    };
    let mut best: Option<(usize, u16)> = None;
    for r in ranges {
        if let Some(s) = r.specificity(&mt)
            && best.is_none_or(|(b, _)| s > b)
        {
            best = Some((s, r.q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// Chooses among `available` (in the route's order of preference) the type `accept` likes
/// best: the highest weight above zero, ties going to the earlier type. `None` when every type
/// has weight 0: the answer is 406. Without an `Accept`, the first type.
pub fn choose<'m>(accept: Option<&[u8]>, available: &'m [MediaType]) -> Option<&'m MediaType> {
    let mut best: Option<(&MediaType, u16)> = None;
    for mt in available {
        let q = quality_of(accept, mt);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((mt, q));
        }
    }
    best.map(|(mt, _)| mt)
}

/// Whether an error body should be `application/problem+json` rather than `application/json`:
/// only when the client's `Accept` strictly prefers it.
pub fn prefers_problem_json(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept else { return false };
    let ranges = parse_accept(accept);
    quality(&ranges, b"application", b"problem+json") > quality(&ranges, b"application", b"json")
}

/// A media type as a route declares it (`produces`, `consumes`): lower-case type, subtype
/// and parameter names. In `consumes`, `*` may stand for the subtype or for both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MediaType {
    /// `application`
    pub kind: String,
    /// `json`
    pub subtype: String,
    /// `(name, value)`, names lower-case.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parses `type/subtype *( ";" name=value )` (RFC 9110 §8.3.1); wildcards are accepted
    /// here and refused by callers where they make no sense.
    pub fn parse(s: &str) -> Result<MediaType, String> {
        let b = s.as_bytes();
        let (essence, params) = match b.iter().position(|&c| c == b';') {
            Some(i) => (&b[..i], &b[i + 1..]),
            None => (b, &b""[..]),
        };
        let (kind, subtype) = split_essence(crate::request::trim_ows(essence))
            .ok_or_else(|| format!("`{s}` is not a media type (type/subtype)"))?;
        if kind == b"*" && subtype != b"*" {
            return Err(format!("`{s}`: `*` as the type needs `*` as the subtype"));
        }
        let mut out = Vec::new();
        for p in split_unquoted(params, b';') {
            let (name, value) =
                parameter(p).ok_or_else(|| format!("`{s}`: malformed parameter"))?;
            out.push((
                String::from_utf8_lossy(name).to_ascii_lowercase(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        Ok(MediaType {
            kind: String::from_utf8_lossy(kind).to_ascii_lowercase(),
            subtype: String::from_utf8_lossy(subtype).to_ascii_lowercase(),
            params: out,
        })
    }

    /// `application/octet-stream`.
    pub fn octet_stream() -> MediaType {
        MediaType {
            kind: "application".into(),
            subtype: "octet-stream".into(),
            params: Vec::new(),
        }
    }

    /// Whether the type or subtype is a wildcard (`*`, or `*+suffix`).
    pub fn is_wildcard(&self) -> bool {
        self.kind == "*" || self.subtype.starts_with('*')
    }

    /// Whether a declared subtype matches `subtype`: equal, `*`, or `*+suffix` for any
    /// subtype with that structured-syntax suffix (RFC 6838 §4.2.8).
    fn subtype_matches(&self, subtype: &[u8]) -> bool {
        if self.subtype == "*" || subtype.eq_ignore_ascii_case(self.subtype.as_bytes()) {
            return true;
        }
        match self.subtype.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('+') => {
                subtype.len() > suffix.len()
                    && subtype[subtype.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
            _ => false,
        }
    }

    /// Whether this type has parameter `name` with `value` (both compared case-insensitively:
    /// the common parameters, like `charset`, are case-insensitive).
    fn has_param(&self, name: &[u8], value: &[u8]) -> bool {
        self.params.iter().any(|(n, v)| {
            n.as_bytes().eq_ignore_ascii_case(name) && v.as_bytes().eq_ignore_ascii_case(value)
        })
    }

    /// Whether a request body of type `content_type` (a `Content-Type` value) is one this
    /// declared type accepts: type and subtype equal (or `*`), and every declared parameter
    /// present with the same value. Extra parameters on the request are fine.
    pub fn accepts(&self, content_type: &[u8]) -> bool {
        let (essence, params) = match content_type.iter().position(|&c| c == b';') {
            Some(i) => (&content_type[..i], &content_type[i + 1..]),
            None => (content_type, &b""[..]),
        };
        let Some((kind, subtype)) = split_essence(crate::request::trim_ows(essence)) else {
            return false;
        };
        if self.kind != "*" && !kind.eq_ignore_ascii_case(self.kind.as_bytes()) {
            return false;
        }
        if !self.subtype_matches(subtype) {
            return false;
        }
        self.params.iter().all(|(n, v)| {
            split_unquoted(params, b';').any(|p| {
                parameter(p).is_some_and(|(name, value)| {
                    name.eq_ignore_ascii_case(n.as_bytes())
                        && value.eq_ignore_ascii_case(v.as_bytes())
                })
            })
        })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.subtype)?;
        for (n, v) in &self.params {
            if is_token(v.as_bytes()) {
                write!(f, "; {n}={v}")?;
            } else {
                write!(f, "; {n}=\"{v}\"")?;
            }
        }
        Ok(())
    }
}

/// `application/octet-stream`, what a body without a usable `Content-Type` is taken to be
/// (RFC 9110 §8.3: a recipient "MAY ... assume a media type of application/octet-stream").
pub const OCTET_STREAM: &[u8] = b"application/octet-stream";

/// Whether a request body with these `Content-Type` field lines may be sent to a route that
/// consumes `consumes`. A missing `Content-Type`, or more than one, counts as
/// `application/octet-stream`.
pub fn consumes(content_type: &[&[u8]], consumes: &[MediaType]) -> bool {
    let ct = match content_type {
        [one] => *one,
        _ => OCTET_STREAM,
    };
    consumes.iter().any(|c| c.accepts(ct))
}

/// The comma-separated list of `types`, for an `Accept` response field or an error detail.
pub fn list(types: &[MediaType]) -> String {
    let names: Vec<String> = types.iter().map(ToString::to_string).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mt(s: &str) -> MediaType {
        MediaType::parse(s).unwrap()
    }

    #[test]
    fn most_specific_range_wins_12_5_1() {
        // RFC 9110 §12.5.1's example, weights included.
        let accept = b"text/*;q=0.3, text/plain;q=0.7, text/plain;format=flowed, text/plain;format=fixed;q=0.4, */*;q=0.5";
        let q = |t: &str| quality_of(Some(accept), &mt(t));
        assert_eq!(q("text/plain;format=flowed"), 1000);
        assert_eq!(q("text/plain"), 700);
        assert_eq!(q("text/html"), 300);
        assert_eq!(q("image/jpeg"), 500);
        assert_eq!(q("text/plain;format=fixed"), 400);
        assert_eq!(q("text/html;level=3"), 300);
    }

    #[test]
    fn accept_elements_parse_with_parameters_and_weights() {
        let r = parse_accept(b"text/html;level=1;q=0.5, */*, bad, */json, a/b;q=2, x/y;q=0;ext=1");
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].params, r[0].q), (&b"level=1"[..], 500));
        assert_eq!((r[1].kind, r[1].q), (&b"*"[..], 1000));
        assert_eq!((r[2].subtype, r[2].q), (&b"y"[..], 0));
        // A quoted comma does not split an element.
        let r = parse_accept(br#"text/plain; x="a,b"; q=0.2, text/html"#);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].q, 200);
    }

    #[test]
    fn choose_prefers_weight_then_route_order_12_5_1() {
        let avail = [mt("application/json"), mt("text/csv")];
        assert_eq!(choose(None, &avail), Some(&avail[0]));
        assert_eq!(choose(Some(b"text/csv"), &avail), Some(&avail[1]));
        assert_eq!(choose(Some(b"*/*"), &avail), Some(&avail[0]));
        assert_eq!(
            choose(Some(b"text/*, application/json;q=0.5"), &avail),
            Some(&avail[1])
        );
        assert_eq!(choose(Some(b"text/html"), &avail), None);
        assert_eq!(choose(Some(b"*/*;q=0"), &avail), None);
        assert_eq!(
            choose(Some(b"application/json;q=0, */*"), &avail),
            Some(&avail[1])
        );
        // A parameter the representation lacks does not match it.
        assert_eq!(choose(Some(b"application/json;v=2"), &avail), None);
        // Garbage is disregarded, not a 406.
        assert_eq!(choose(Some(b";;, /, a/"), &avail), Some(&avail[0]));
        assert_eq!(choose(Some(b""), &avail), Some(&avail[0]));
    }

    #[test]
    fn media_types_parse_as_8_3_1() {
        assert_eq!(mt("Application/JSON").to_string(), "application/json");
        assert_eq!(
            mt("text/plain; Charset=\"utf-8\"").to_string(),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            mt("text/plain; x=\"a b\"").to_string(),
            "text/plain; x=\"a b\""
        );
        assert!(mt("application/*").is_wildcard());
        for bad in ["json", "*/json", "a/b c", "a/b; x", "a/b; =y", "/b", "a/"] {
            assert!(MediaType::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_type_against_consumes_8_3() {
        let json = [mt("application/json")];
        assert!(consumes(&[b"application/json"], &json));
        assert!(consumes(&[b"Application/Json; charset=utf-8"], &json));
        assert!(!consumes(&[b"text/plain"], &json));
        // Missing or doubled: application/octet-stream.
        assert!(!consumes(&[], &json));
        assert!(!consumes(
            &[b"application/json", b"application/json"],
            &json
        ));
        assert!(consumes(&[], &[mt("application/octet-stream")]));
        assert!(consumes(&[b"image/png"], &[mt("image/*")]));
        assert!(consumes(&[b"x/y"], &[mt("*/*")]));
        // A structured-syntax suffix wildcard (RFC 6838 §4.2.8).
        let plus_json = [mt("application/*+json")];
        assert!(consumes(&[b"application/merge-patch+json"], &plus_json));
        assert!(consumes(&[b"application/VND.API+JSON"], &plus_json));
        assert!(!consumes(&[b"application/json"], &plus_json));
        assert!(!consumes(&[b"application/+json"], &plus_json));
        assert!(mt("application/*+json").is_wildcard());
        // Declared parameters must be present with the same value.
        let utf8 = [mt("text/plain; charset=utf-8")];
        assert!(consumes(&[b"text/plain; charset=UTF-8"], &utf8));
        assert!(!consumes(&[b"text/plain"], &utf8));
        assert!(!consumes(&[b"text/plain; charset=latin1"], &utf8));
        assert!(!consumes(&[b"garbage"], &json));
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
