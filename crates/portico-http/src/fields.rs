//! Header fields Portico composes (an upstream request's), kept in order and in the form
//! HTTP/1.1 writes them (`name: value` CRLF), with where each name and value lies, so the
//! same list is written to an HTTP/1.1 upstream as one copy and mapped field by field for an
//! HTTP/2 one.
//!
//! Only fields both protocols can carry get in: a name is a token (RFC 9110 §5.1) and a value
//! holds no control byte but HTAB (§5.5), which is what the `http` crate's `HeaderName` and
//! `HeaderValue` accept, so mapping the list to them never fails. Fields copied from a request
//! head that Portico parsed always pass; a value Portico composed from configuration that
//! does not (a CR in a role name) is refused here rather than written.

use crate::head::{ParsedField, is_tchar};

/// A field that no protocol may carry as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidField;

impl std::fmt::Display for InvalidField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a header field name that is not a token, or a value with a control byte")
    }
}

impl std::error::Error for InvalidField {}

/// Header fields in order, as HTTP/1.1 writes them. Only the bytes are kept: a name ends at
/// its line's first `:` (names are tokens) and a value at its CR (values hold none), so the
/// fields are found again by reading the lines, which only an HTTP/2 target needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    wire: Vec<u8>,
    count: usize,
}

impl Fields {
    /// An empty list with room for `bytes` of fields.
    pub fn with_capacity(bytes: usize) -> Fields {
        Fields {
            wire: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// Adds a field at the end.
    pub fn push(&mut self, name: &[u8], value: &[u8]) -> Result<(), InvalidField> {
        self.push_with(name, |out| out.extend_from_slice(value))
    }

    /// Adds a field whose value `write` appends in place (a list joined from several parts
    /// without collecting them first). A value that breaks the rules leaves the list as it
    /// was.
    pub fn push_with(
        &mut self,
        name: &[u8],
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), InvalidField> {
        // Both checks look at every byte without stopping early, which the compiler turns into
        // straight-line (for values, vector) code: they run on every field Portico composes.
        if name.is_empty() || !name.iter().fold(true, |ok, &b| ok & is_tchar(b)) {
            return Err(InvalidField);
        }
        let start = self.wire.len();
        self.wire.extend_from_slice(name);
        self.wire.extend_from_slice(b": ");
        let value_start = self.wire.len();
        write(&mut self.wire);
        let valid = |b: u8| (b == b'\t') | ((b >= 0x20) & (b != 0x7f));
        if !self.wire[value_start..]
            .iter()
            .fold(true, |ok, &b| ok & valid(b))
        {
            self.wire.truncate(start);
            return Err(InvalidField);
        }
        self.wire.extend_from_slice(b"\r\n");
        self.count += 1;
        Ok(())
    }

    /// Adds a field of a head Portico parsed. The parser held its name and value to the rules
    /// `push` checks (the same byte tables), so it goes in without another look.
    pub fn push_parsed(&mut self, field: ParsedField<'_>) {
        self.wire.extend_from_slice(field.name());
        self.wire.extend_from_slice(b": ");
        self.wire.extend_from_slice(field.value());
        self.wire.extend_from_slice(b"\r\n");
        self.count += 1;
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.wire
            .split(|&b| b == b'\n')
            .filter_map(|line| line.strip_suffix(b"\r"))
            .filter_map(|line| {
                let colon = line.iter().position(|&b| b == b':')?;
                Some((&line[..colon], line.get(colon + 2..).unwrap_or_default()))
            })
    }

    /// The first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The fields as HTTP/1.1 writes them: each `name: value` CRLF, no empty line after.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_order_and_their_wire_form() {
        let mut f = Fields::default();
        f.push(b"Host", b"example.com").unwrap();
        f.push_with(b"X-Forwarded-For", |out| out.extend_from_slice(b"a, b"))
            .unwrap();
        f.push(b"X-Empty", b"").unwrap();
        assert_eq!(
            f.wire(),
            b"Host: example.com\r\nX-Forwarded-For: a, b\r\nX-Empty: \r\n"
        );
        let all: Vec<_> = f.iter().collect();
        assert_eq!(
            all,
            [
                (&b"Host"[..], &b"example.com"[..]),
                (b"X-Forwarded-For", b"a, b"),
                (b"X-Empty", b"")
            ]
        );
        assert_eq!(f.get("host"), Some(&b"example.com"[..]));
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn what_no_protocol_may_carry_is_refused_and_leaves_nothing() {
        let mut f = Fields::default();
        f.push(b"A", b"1").unwrap();
        for (name, value) in [
            (&b"X-Roles"[..], &b"admin\r\nX-Injected: 1"[..]),
            (b"X-A", b"a\nb"),
            (b"X-A", b"a\0b"),
            (b"X A", b"v"),
            (b"", b"v"),
            (b"X:A", b"v"),
        ] {
            assert_eq!(f.push(name, value), Err(InvalidField), "{name:?} {value:?}");
        }
        assert_eq!(f.wire(), b"A: 1\r\n");
        assert_eq!(f.len(), 1);
        // HTAB and obs-text are field-value bytes.
        f.push(b"X-T", b"a\tb \xff").unwrap();
    }

    #[test]
    fn parsed_fields_go_in_as_the_parser_read_them() {
        let head = crate::RequestHead::parse(
            bytes::Bytes::from_static(b"GET / HTTP/1.1\r\nHost: a\r\nX-A:  b \r\n\r\n"),
            &crate::HeadLimits::default(),
        )
        .unwrap();
        let mut f = Fields::default();
        head.parsed_fields().for_each(|p| f.push_parsed(p));
        assert_eq!(f.wire(), b"Host: a\r\nX-A: b\r\n");
        assert_eq!(f.get("x-a"), Some(&b"b"[..]));
    }
}
