//! Answering GET and HEAD for a representation Portico serves itself (static files now; the
//! admin API, job results and the cache later): preconditions first, then ranges, in the
//! order of RFC 9110 §13.2.2.
//!
//! The caller has already chosen the representation (negotiation, 406) and knows the request
//! would otherwise succeed: preconditions are evaluated only then (§13.2.1).

use crate::conditional::{Conditions, Precondition, Validators, evaluate, if_range_holds};
use crate::method::Method;
use crate::range::{ByteRange, RangeOutcome, parse_range, resolve};

/// What the selected representation is, as far as conditions and ranges care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Representation<'a> {
    /// Its validators.
    pub validators: Validators<'a>,
    /// Its length in bytes (after any content coding).
    pub length: u64,
}

/// How to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 304, with the fields a 200 would carry and no body (§15.4.5).
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 200 with the whole representation.
    Full,
    /// 206 with one range and `Content-Range`.
    Partial(ByteRange),
    /// 206 `multipart/byteranges`, parts in this order.
    Multipart(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */LENGTH`.
    RangeNotSatisfiable,
}

/// Decides the answer to `method` (GET or HEAD, in practice) for `rep`, given the request's
/// conditional fields and `Range`.
pub fn decide(method: Method, conditions: &Conditions<'_>, rep: &Representation<'_>) -> Answer {
    // §13.2.2 steps 1-4.
    match evaluate(method, conditions, Some(&rep.validators)) {
        Precondition::NotModified => return Answer::NotModified,
        Precondition::Failed => return Answer::PreconditionFailed,
        Precondition::Proceed => {}
    }
    // §14.2: "GET is the only method for which range handling is defined"; a HEAD with a
    // Range gets the fields of the whole representation.
    if method != Method::Get {
        return Answer::Full;
    }
    let Some(range) = conditions.range() else {
        return Answer::Full;
    };
    // §13.2.2 step 5: a false If-Range means the whole representation.
    if !if_range_holds(conditions, &rep.validators) {
        return Answer::Full;
    }
    let Some(specs) = parse_range(range) else {
        return Answer::Full;
    };
    match resolve(&specs, rep.length) {
        RangeOutcome::Full => Answer::Full,
        RangeOutcome::Single(r) => Answer::Partial(r),
        RangeOutcome::Multi(rs) => Answer::Multipart(rs),
        RangeOutcome::NotSatisfiable => Answer::RangeNotSatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditional::{EntityTag, HttpDate};

    fn rep() -> Representation<'static> {
        Representation {
            validators: Validators {
                etag: EntityTag::parse(b"\"v1\""),
                last_modified: Some(HttpDate(784111777)),
            },
            length: 1000,
        }
    }

    fn answer(method: Method, fields: &[(&str, &str)]) -> Answer {
        let c = Conditions::from_fields(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        decide(method, &c, &rep())
    }

    #[test]
    fn preconditions_come_before_ranges_13_2_2() {
        let r = ("Range", "bytes=0-9");
        assert_eq!(
            answer(Method::Get, &[r]),
            Answer::Partial(ByteRange { first: 0, last: 9 })
        );
        assert_eq!(
            answer(Method::Get, &[r, ("If-None-Match", "\"v1\"")]),
            Answer::NotModified
        );
        assert_eq!(
            answer(Method::Get, &[r, ("If-Match", "\"v0\"")]),
            Answer::PreconditionFailed
        );
        assert_eq!(
            answer(
                Method::Get,
                &[("Range", "bytes=5000-"), ("If-Match", "\"v1\"")]
            ),
            Answer::RangeNotSatisfiable
        );
    }

    #[test]
    fn if_range_gates_the_range_13_2_2_step_5() {
        let r = ("Range", "bytes=0-9");
        assert_eq!(
            answer(Method::Get, &[r, ("If-Range", "\"v1\"")]),
            Answer::Partial(ByteRange { first: 0, last: 9 })
        );
        assert_eq!(
            answer(Method::Get, &[r, ("If-Range", "\"v0\"")]),
            Answer::Full
        );
        // Not even a 416 when If-Range is false: the whole representation.
        assert_eq!(
            answer(
                Method::Get,
                &[("Range", "bytes=5000-"), ("If-Range", "\"v0\"")]
            ),
            Answer::Full
        );
        // If-Range without Range is ignored (§13.1.5).
        assert_eq!(answer(Method::Get, &[("If-Range", "\"v0\"")]), Answer::Full);
    }

    #[test]
    fn only_get_has_ranges_14_2() {
        assert_eq!(
            answer(Method::Head, &[("Range", "bytes=0-9")]),
            Answer::Full
        );
        assert_eq!(
            answer(Method::Head, &[("If-None-Match", "*")]),
            Answer::NotModified
        );
        // Two Range lines are no ranges-specifier.
        assert_eq!(
            answer(
                Method::Get,
                &[("Range", "bytes=0-9"), ("Range", "bytes=20-29")]
            ),
            Answer::Full
        );
        assert_eq!(
            answer(Method::Get, &[("Range", "bytes=0-9,500-509")]),
            Answer::Multipart(vec![
                ByteRange { first: 0, last: 9 },
                ByteRange {
                    first: 500,
                    last: 509
                }
            ])
        );
    }
}
