//! Conditional requests (RFC 9110 §13): `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since` and `If-Range`, evaluated against the validators of the selected
//! representation (§8.8: `ETag`, `Last-Modified`).
//!
//! [`evaluate`] is §13.2.2 step by step. The fields are gathered first ([`Conditions`]), so the
//! outcome depends on which fields a request carries and never on their order.
//!
//! What malformed values do, where the RFC leaves it open, is chosen so that a broken
//! precondition can only make Portico more careful: an `If-Match` that cannot be parsed
//! matches nothing (412, no change made); an `If-None-Match` that cannot be parsed is ignored
//! (a full 200 instead of a 304); an `If-Range` that cannot be parsed is false (the whole
//! representation instead of a part). Dates that are not HTTP-dates are ignored, as §13.1.3
//! and §13.1.4 require.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::method::Method;
use crate::request::trim_ows;

/// An entity tag (RFC 9110 §8.8.3): `W/"opaque"` or `"opaque"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// Marked weak with `W/`.
    pub weak: bool,
    /// The characters between the quotes.
    pub opaque: &'a [u8],
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3).
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

impl<'a> EntityTag<'a> {
    /// Parses one whole entity tag; `None` unless `v` is exactly one.
    pub fn parse(v: &'a [u8]) -> Option<EntityTag<'a>> {
        match EntityTag::parse_prefix(v) {
            Some((tag, [])) => Some(tag),
            _ => None,
        }
    }

    /// Parses an entity tag at the start of `v`; returns it and what follows.
    fn parse_prefix(v: &'a [u8]) -> Option<(EntityTag<'a>, &'a [u8])> {
        // "W/" is case-sensitive (%s"W/" in §8.8.3).
        let (weak, rest) = match v.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        let rest = rest.strip_prefix(b"\"")?;
        let close = rest.iter().position(|&b| b == b'"')?;
        let opaque = &rest[..close];
        if !opaque.iter().all(|&b| is_etagc(b)) {
            return None;
        }
        Some((EntityTag { weak, opaque }, &rest[close + 1..]))
    }

    /// Strong comparison (§8.8.3.2): neither is weak and the opaque tags are identical.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison (§8.8.3.2): the opaque tags are identical, weak or not.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

impl std::fmt::Display for EntityTag<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", String::from_utf8_lossy(self.opaque))
    }
}

/// An HTTP-date (RFC 9110 §5.6.7) in whole seconds since the Unix epoch: the resolution of
/// `Last-Modified` and of every date precondition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpDate(pub u64);

impl HttpDate {
    /// Parses any of the three formats a recipient must accept (IMF-fixdate, RFC 850,
    /// asctime); `None` for anything else.
    pub fn parse(v: &[u8]) -> Option<HttpDate> {
        let s = std::str::from_utf8(v).ok()?;
        let t = httpdate::parse_http_date(s).ok()?;
        Some(HttpDate(t.duration_since(UNIX_EPOCH).ok()?.as_secs()))
    }

    /// A time truncated to whole seconds; times before 1970 become the epoch.
    pub fn from_system_time(t: SystemTime) -> HttpDate {
        HttpDate(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// The IMF-fixdate form, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn to_imf_fixdate(self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.0))
    }
}

/// The validators of the selected representation (RFC 9110 §8.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Validators<'a> {
    /// Its `ETag`, if it has one.
    pub etag: Option<EntityTag<'a>>,
    /// Its `Last-Modified`, if it has one.
    pub last_modified: Option<HttpDate>,
}

/// The outcome of evaluating a request's preconditions (RFC 9110 §13.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Perform the method (and go on to consider `Range`, §13.2.2 step 5).
    Proceed,
    /// 304 Not Modified: `If-None-Match` or `If-Modified-Since` is false on GET or HEAD.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The fields that make a request conditional (and `Range`, which `If-Range` qualifies),
/// gathered from its header in one pass. A field sent on several lines is one list (RFC 9110
/// §5.3), kept as its lines.
#[derive(Clone, Debug, Default)]
pub struct Conditions<'a> {
    if_match: Vec<&'a [u8]>,
    if_none_match: Vec<&'a [u8]>,
    if_modified_since: Vec<&'a [u8]>,
    if_unmodified_since: Vec<&'a [u8]>,
    if_range: Vec<&'a [u8]>,
    range: Vec<&'a [u8]>,
}

impl<'a> Conditions<'a> {
    /// Picks the conditional fields out of a request's fields.
    pub fn from_fields(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Conditions<'a> {
        let mut c = Conditions::default();
        for (name, value) in fields {
            if name.eq_ignore_ascii_case(b"range") {
                c.range.push(value);
                continue;
            }
            // Every conditional field name starts with "if-"; most requests have none.
            if name.len() < 3 || !name[..3].eq_ignore_ascii_case(b"if-") {
                continue;
            }
            let slot = match &name[3..] {
                n if n.eq_ignore_ascii_case(b"match") => &mut c.if_match,
                n if n.eq_ignore_ascii_case(b"none-match") => &mut c.if_none_match,
                n if n.eq_ignore_ascii_case(b"modified-since") => &mut c.if_modified_since,
                n if n.eq_ignore_ascii_case(b"unmodified-since") => &mut c.if_unmodified_since,
                n if n.eq_ignore_ascii_case(b"range") => &mut c.if_range,
                _ => continue,
            };
            slot.push(value);
        }
        c
    }

    /// Whether the request carries no conditional field and no `Range`.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
            && self.if_match.is_empty()
            && self.if_none_match.is_empty()
            && self.if_modified_since.is_empty()
            && self.if_unmodified_since.is_empty()
            && self.if_range.is_empty()
    }

    /// The `Range` field, when there is exactly one (a list of two ranges-specifiers is not
    /// a ranges-specifier, so two lines are as good as none).
    pub fn range(&self) -> Option<&'a [u8]> {
        match self.range.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// The comparison function a precondition uses (§8.8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// What an `If-Match` / `If-None-Match` list says about the current entity tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListMatch {
    /// The list is `*`.
    Any,
    /// One of the listed tags matches.
    Match,
    /// None does.
    NoMatch,
    /// The list is not `"*" / #entity-tag`.
    Malformed,
}

/// Matches an `If-Match` / `If-None-Match` field (`"*" / #entity-tag`, over all its lines)
/// against `current` with the given comparison. One forward scan; no allocation.
fn match_list(lines: &[&[u8]], current: Option<&EntityTag<'_>>, cmp: Comparison) -> ListMatch {
    if lines.len() == 1 && trim_ows(lines[0]) == b"*" {
        return ListMatch::Any;
    }
    let mut matched = false;
    let mut any_tag = false;
    for line in lines {
        let mut rest = *line;
        loop {
            // Skip separators and empty elements (RFC 9110 §5.6.1).
            let skip = rest
                .iter()
                .position(|&b| !matches!(b, b' ' | b'\t' | b','))
                .unwrap_or(rest.len());
            rest = &rest[skip..];
            if rest.is_empty() {
                break;
            }
            let Some((tag, after)) = EntityTag::parse_prefix(rest) else {
                return ListMatch::Malformed;
            };
            any_tag = true;
            matched |= current.is_some_and(|c| match cmp {
                Comparison::Strong => tag.strong_eq(c),
                Comparison::Weak => tag.weak_eq(c),
            });
            // After a tag: OWS, then a comma or the end of the line.
            let after = trim_start_ows(after);
            if !(after.is_empty() || after[0] == b',') {
                return ListMatch::Malformed;
            }
            rest = after;
        }
    }
    match (any_tag, matched) {
        (false, _) => ListMatch::Malformed,
        (true, true) => ListMatch::Match,
        (true, false) => ListMatch::NoMatch,
    }
}

fn trim_start_ows(v: &[u8]) -> &[u8] {
    let n = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    &v[n..]
}

/// A date field usable as a precondition: exactly one member that is a valid HTTP-date
/// (§13.1.3, §13.1.4: otherwise the field is ignored).
fn single_date(lines: &[&[u8]]) -> Option<HttpDate> {
    match lines {
        [one] => HttpDate::parse(one),
        _ => None,
    }
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and `If-Modified-Since` in the
/// order of RFC 9110 §13.2.2 (steps 1-4). `current` is `None` when the target has no current
/// representation. `If-Range` (step 5) belongs to range handling: see [`if_range_holds`].
///
/// The caller evaluates preconditions only where it is the origin of the representation and
/// only when the response without them would be 2xx (§13.2.1).
pub fn evaluate(
    method: Method,
    conditions: &Conditions<'_>,
    current: Option<&Validators<'_>>,
) -> Precondition {
    // §13.2.1: methods that do not select or modify a representation ignore preconditions.
    if matches!(method, Method::Connect | Method::Options | Method::Trace) {
        return Precondition::Proceed;
    }
    let etag = current.and_then(|v| v.etag.as_ref());
    let last_modified = current.and_then(|v| v.last_modified);
    let get_or_head = matches!(method, Method::Get | Method::Head);

    // Step 1: If-Match (§13.1.1), strong comparison.
    if !conditions.if_match.is_empty() {
        let holds = match match_list(&conditions.if_match, etag, Comparison::Strong) {
            ListMatch::Any => current.is_some(),
            ListMatch::Match => true,
            ListMatch::NoMatch | ListMatch::Malformed => false,
        };
        if !holds {
            return Precondition::Failed;
        }
    } else if let Some(date) = single_date(&conditions.if_unmodified_since) {
        // Step 2: If-Unmodified-Since (§13.1.4), only without If-Match; ignored when the
        // representation has no modification date.
        if last_modified.is_some_and(|lm| lm > date) {
            return Precondition::Failed;
        }
    }

    // Step 3: If-None-Match (§13.1.2), weak comparison.
    if !conditions.if_none_match.is_empty() {
        let holds = match match_list(&conditions.if_none_match, etag, Comparison::Weak) {
            ListMatch::Any => current.is_none(),
            ListMatch::Match => false,
            ListMatch::NoMatch | ListMatch::Malformed => true,
        };
        if !holds {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head && let Some(date) = single_date(&conditions.if_modified_since) {
        // Step 4: If-Modified-Since (§13.1.3), only on GET/HEAD without If-None-Match; false
        // when the last modification is no later than the date.
        if last_modified.is_some_and(|lm| lm <= date) {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// §13.1.5: whether the `If-Range` precondition holds, so that `Range` is honoured (step 5 of
/// §13.2.2). True when there is no `If-Range`. An entity tag must match strongly; a date must
/// equal `Last-Modified` exactly; anything else (several values, a weak tag, garbage) is
/// false, which serves the whole representation.
pub fn if_range_holds(conditions: &Conditions<'_>, current: &Validators<'_>) -> bool {
    let value = match conditions.if_range.as_slice() {
        [] => return true,
        [one] => *one,
        _ => return false,
    };
    // §13.1.5: a valid entity tag is told from an HTTP-date by its first characters.
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (EntityTag::parse(value), &current.etag) {
            (Some(tag), Some(etag)) => tag.strong_eq(etag),
            _ => false,
        };
    }
    match (HttpDate::parse(value), current.last_modified) {
        (Some(date), Some(lm)) => date == lm,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn rep() -> Validators<'static> {
        Validators {
            etag: EntityTag::parse(b"\"v1\""),
            last_modified: HttpDate::parse(LM.as_bytes()),
        }
    }

    fn eval_with(
        method: Method,
        fields: &[(&str, &str)],
        current: Option<&Validators<'_>>,
    ) -> Precondition {
        let c = Conditions::from_fields(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        evaluate(method, &c, current)
    }

    fn eval(method: Method, fields: &[(&str, &str)]) -> Precondition {
        eval_with(method, fields, Some(&rep()))
    }

    use Precondition::{Failed, NotModified, Proceed};

    #[test]
    fn entity_tags_parse_as_rfc9110_8_8_3() {
        assert_eq!(
            EntityTag::parse(b"\"xyzzy\""),
            Some(EntityTag {
                weak: false,
                opaque: b"xyzzy"
            })
        );
        assert_eq!(
            EntityTag::parse(b"W/\"xyzzy\""),
            Some(EntityTag {
                weak: true,
                opaque: b"xyzzy"
            })
        );
        assert_eq!(
            EntityTag::parse(b"\"\""),
            Some(EntityTag {
                weak: false,
                opaque: b""
            })
        );
        // "W/" is case-sensitive; no spaces; the tag must be quoted and whole.
        assert_eq!(EntityTag::parse(b"w/\"x\""), None);
        assert_eq!(EntityTag::parse(b"xyzzy"), None);
        assert_eq!(EntityTag::parse(b"\"a b\""), None);
        assert_eq!(EntityTag::parse(b"\"a\"b"), None);
        assert_eq!(EntityTag::parse(b"\"a"), None);
        // A comma is a legal etagc.
        assert_eq!(
            EntityTag::parse(b"\"a,b\"").map(|t| t.opaque),
            Some(&b"a,b"[..])
        );
        assert_eq!(EntityTag::parse(b"W/\"v\"").unwrap().to_string(), "W/\"v\"");
    }

    #[test]
    fn comparison_functions_follow_the_table_of_8_8_3_2() {
        let t = |s: &'static str| EntityTag::parse(s.as_bytes()).unwrap();
        // The four rows of the table in §8.8.3.2.
        assert!(!t("W/\"1\"").strong_eq(&t("W/\"1\"")));
        assert!(t("W/\"1\"").weak_eq(&t("W/\"1\"")));
        assert!(!t("W/\"1\"").strong_eq(&t("W/\"2\"")));
        assert!(!t("W/\"1\"").weak_eq(&t("W/\"2\"")));
        assert!(!t("W/\"1\"").strong_eq(&t("\"1\"")));
        assert!(t("W/\"1\"").weak_eq(&t("\"1\"")));
        assert!(t("\"1\"").strong_eq(&t("\"1\"")));
        assert!(t("\"1\"").weak_eq(&t("\"1\"")));
    }

    #[test]
    fn if_match_uses_strong_comparison_13_1_1() {
        assert_eq!(eval(Method::Get, &[("If-Match", "\"v1\"")]), Proceed);
        assert_eq!(
            eval(Method::Put, &[("If-Match", "\"v0\", \"v1\"")]),
            Proceed
        );
        assert_eq!(eval(Method::Put, &[("If-Match", "\"v0\"")]), Failed);
        assert_eq!(eval(Method::Put, &[("If-Match", "W/\"v1\"")]), Failed);
        assert_eq!(eval(Method::Get, &[("If-Match", "*")]), Proceed);
        // "*" is false when there is no current representation.
        assert_eq!(eval_with(Method::Put, &[("If-Match", "*")], None), Failed);
        // A list over several lines is one list (§5.3).
        assert_eq!(
            eval(
                Method::Put,
                &[("If-Match", "\"a\""), ("If-Match", "\"v1\"")]
            ),
            Proceed
        );
        // Unparseable: fails closed.
        assert_eq!(eval(Method::Put, &[("If-Match", "v1")]), Failed);
        assert_eq!(eval(Method::Put, &[("If-Match", "\"v1\" junk")]), Failed);
        assert_eq!(eval(Method::Put, &[("If-Match", "*, \"v1\"")]), Failed);
        assert_eq!(eval(Method::Put, &[("If-Match", "")]), Failed);
    }

    #[test]
    fn if_none_match_uses_weak_comparison_13_1_2() {
        assert_eq!(
            eval(Method::Get, &[("If-None-Match", "\"v1\"")]),
            NotModified
        );
        assert_eq!(
            eval(Method::Head, &[("If-None-Match", "W/\"v1\"")]),
            NotModified
        );
        assert_eq!(
            eval(Method::Get, &[("If-None-Match", "\"x\", W/\"v1\"")]),
            NotModified
        );
        assert_eq!(eval(Method::Get, &[("If-None-Match", "\"v2\"")]), Proceed);
        assert_eq!(eval(Method::Get, &[("If-None-Match", "*")]), NotModified);
        // Other methods get 412 instead of 304.
        assert_eq!(eval(Method::Put, &[("If-None-Match", "\"v1\"")]), Failed);
        assert_eq!(eval(Method::Put, &[("If-None-Match", "*")]), Failed);
        // "*" with no current representation: true (create-only PUT).
        assert_eq!(
            eval_with(Method::Put, &[("If-None-Match", "*")], None),
            Proceed
        );
        // Unparseable: ignored, so the full representation is sent.
        assert_eq!(eval(Method::Get, &[("If-None-Match", "v1")]), Proceed);
    }

    #[test]
    fn if_modified_since_13_1_3() {
        assert_eq!(eval(Method::Get, &[("If-Modified-Since", LM)]), NotModified);
        assert_eq!(
            eval(Method::Get, &[("If-Modified-Since", AFTER)]),
            NotModified
        );
        assert_eq!(eval(Method::Get, &[("If-Modified-Since", BEFORE)]), Proceed);
        // RFC 850 and asctime forms are accepted (§5.6.7).
        assert_eq!(
            eval(
                Method::Get,
                &[("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")]
            ),
            NotModified
        );
        assert_eq!(
            eval(
                Method::Get,
                &[("If-Modified-Since", "Sun Nov  6 08:49:37 1994")]
            ),
            NotModified
        );
        // Ignored: not GET/HEAD, an invalid date, more than one member, If-None-Match present,
        // no modification date.
        assert_eq!(eval(Method::Put, &[("If-Modified-Since", LM)]), Proceed);
        assert_eq!(
            eval(Method::Get, &[("If-Modified-Since", "yesterday")]),
            Proceed
        );
        assert_eq!(
            eval(
                Method::Get,
                &[("If-Modified-Since", LM), ("If-Modified-Since", LM)]
            ),
            Proceed
        );
        assert_eq!(
            eval(
                Method::Get,
                &[("If-None-Match", "\"v2\""), ("If-Modified-Since", LM)]
            ),
            Proceed
        );
        let no_date = Validators {
            etag: None,
            last_modified: None,
        };
        assert_eq!(
            eval_with(Method::Get, &[("If-Modified-Since", LM)], Some(&no_date)),
            Proceed
        );
    }

    #[test]
    fn if_unmodified_since_13_1_4() {
        assert_eq!(eval(Method::Put, &[("If-Unmodified-Since", LM)]), Proceed);
        assert_eq!(
            eval(Method::Put, &[("If-Unmodified-Since", AFTER)]),
            Proceed
        );
        assert_eq!(
            eval(Method::Put, &[("If-Unmodified-Since", BEFORE)]),
            Failed
        );
        assert_eq!(
            eval(Method::Get, &[("If-Unmodified-Since", BEFORE)]),
            Failed
        );
        // Ignored: an invalid date, a list of dates, If-Match present.
        assert_eq!(
            eval(Method::Put, &[("If-Unmodified-Since", "soon")]),
            Proceed
        );
        assert_eq!(
            eval(
                Method::Put,
                &[("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:36 GMT, x")]
            ),
            Proceed
        );
        assert_eq!(
            eval(
                Method::Put,
                &[("If-Match", "\"v1\""), ("If-Unmodified-Since", BEFORE)]
            ),
            Proceed
        );
    }

    #[test]
    fn precedence_follows_13_2_2() {
        // Step 1 before step 3: a failing If-Match is 412 even when If-None-Match would be 304.
        assert_eq!(
            eval(
                Method::Get,
                &[("If-None-Match", "\"v1\""), ("If-Match", "\"nope\"")]
            ),
            Failed
        );
        // Step 2 before step 4.
        assert_eq!(
            eval(
                Method::Get,
                &[("If-Modified-Since", LM), ("If-Unmodified-Since", BEFORE)]
            ),
            Failed
        );
        // Step 3 decides; step 4 is skipped.
        assert_eq!(
            eval(
                Method::Get,
                &[("If-Modified-Since", BEFORE), ("If-None-Match", "\"v1\"")]
            ),
            NotModified
        );
        // §13.2.1: OPTIONS, TRACE and CONNECT ignore preconditions.
        assert_eq!(eval(Method::Options, &[("If-Match", "\"nope\"")]), Proceed);
    }

    #[test]
    fn if_range_13_1_5() {
        let holds = |v: &str| {
            let c = Conditions::from_fields([(&b"If-Range"[..], v.as_bytes())]);
            if_range_holds(&c, &rep())
        };
        assert!(if_range_holds(&Conditions::default(), &rep()));
        assert!(holds("\"v1\""));
        assert!(!holds("\"v2\""));
        // Weak tags never match (strong comparison).
        assert!(!holds("W/\"v1\""));
        // A date must match Last-Modified exactly.
        assert!(holds(LM));
        assert!(!holds(AFTER));
        assert!(!holds(BEFORE));
        assert!(!holds("garbage"));
        assert!(!holds(""));
        let no_validators = Validators::default();
        let c = Conditions::from_fields([(&b"If-Range"[..], &b"\"v1\""[..])]);
        assert!(!if_range_holds(&c, &no_validators));
    }

    #[test]
    fn http_dates() {
        assert_eq!(HttpDate::parse(LM.as_bytes()), Some(HttpDate(784111777)));
        assert_eq!(HttpDate(784111777).to_imf_fixdate(), LM);
        assert_eq!(HttpDate::parse(b"Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(HttpDate::parse(&[0xff, 0xfe]), None);
    }
}
