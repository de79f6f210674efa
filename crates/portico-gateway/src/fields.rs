//! Reading request fields that are lists.

use std::borrow::Cow;

use portico_http::RequestHead;

/// The value of a list field, with its lines joined by `", "` (RFC 9110 §5.3: several lines
/// of one field are one list); `None` when absent. One line, the usual case, is borrowed.
pub(crate) fn combined<'a>(head: &'a RequestHead, name: &'a str) -> Option<Cow<'a, [u8]>> {
    let mut lines = head.fields_named(name);
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = first.to_vec();
    for line in std::iter::once(second).chain(lines) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(line);
    }
    Some(Cow::Owned(joined))
}

/// Every line of a field.
pub(crate) fn lines<'a>(head: &'a RequestHead, name: &'a str) -> Vec<&'a [u8]> {
    head.fields_named(name).collect()
}
