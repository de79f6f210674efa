//! Request methods: the ones Portico knows, and the `Allow` header built from a set of them.
//!
//! Methods are case-sensitive (RFC 9110 §9.1): `get` is a valid token but an unknown method,
//! which is answered 501 like any other method Portico does not implement.

use std::fmt;

/// A method Portico knows. Any other token is answered 501.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// TRACE
    Trace,
    /// CONNECT
    Connect,
}

impl Method {
    /// Every known method, in the order `Allow` lists them.
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
        Method::Trace,
        Method::Connect,
    ];

    /// The method for an exact, case-sensitive token.
    pub fn from_bytes(token: &[u8]) -> Option<Method> {
        Some(match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"PATCH" => Method::Patch,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => return None,
        })
    }

    /// The method's token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
        }
    }

    /// Idempotent per RFC 9110 §9.2.2: safe to repeat on a fresh connection.
    pub const fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch | Method::Connect)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of methods, as a route declares them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodSet(u16);

impl MethodSet {
    /// The empty set.
    pub const EMPTY: MethodSet = MethodSet(0);

    /// Adds a method.
    pub fn insert(&mut self, m: Method) {
        self.0 |= m.bit();
    }

    /// The union of two sets.
    pub fn union(self, other: MethodSet) -> MethodSet {
        MethodSet(self.0 | other.0)
    }

    /// Whether `m` is in the set. HEAD is allowed wherever GET is (RFC 9110 §9.3.2).
    pub fn allows(self, m: Method) -> bool {
        self.0 & m.bit() != 0 || (m == Method::Head && self.0 & Method::Get.bit() != 0)
    }

    /// Whether the set holds `m` itself (no HEAD-from-GET rule).
    pub fn contains(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }

    /// The methods allowed, with HEAD when GET is present and OPTIONS always (Portico answers
    /// OPTIONS itself on every route), in canonical order.
    pub fn allowed(self) -> impl Iterator<Item = Method> {
        Method::ALL
            .into_iter()
            .filter(move |m| *m == Method::Options || self.allows(*m))
    }

    /// The value of an `Allow` header for this set.
    pub fn allow_header(self) -> String {
        let names: Vec<&str> = self.allowed().map(Method::as_str).collect();
        names.join(", ")
    }
}

impl FromIterator<Method> for MethodSet {
    fn from_iter<I: IntoIterator<Item = Method>>(iter: I) -> Self {
        let mut set = MethodSet::EMPTY;
        for m in iter {
            set.insert(m);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        // RFC 9110 §9.1: "The method token is case-sensitive".
        assert_eq!(Method::from_bytes(b"GET"), Some(Method::Get));
        assert_eq!(Method::from_bytes(b"get"), None);
        assert_eq!(Method::from_bytes(b"BREW"), None);
        for m in Method::ALL {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), Some(m));
        }
    }

    #[test]
    fn head_is_allowed_where_get_is_and_allow_lists_options() {
        // RFC 9110 §9.3.2: HEAD is GET without content.
        let set: MethodSet = [Method::Get, Method::Post].into_iter().collect();
        assert!(set.allows(Method::Head));
        assert!(!set.allows(Method::Put));
        assert_eq!(set.allow_header(), "GET, HEAD, POST, OPTIONS");
        let put: MethodSet = [Method::Put].into_iter().collect();
        assert!(!put.allows(Method::Head));
        assert_eq!(put.allow_header(), "PUT, OPTIONS");
    }
}
