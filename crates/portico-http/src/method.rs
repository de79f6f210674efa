//! Request methods: the ones Portico knows, and the `Allow` header built from a set of them.
//!
//! Methods are case-sensitive (RFC 9110 §9.1): `get` is a valid token but an unknown method,
//! which is answered 501 like any other method Portico does not implement.

use std::fmt;

/// A method of the IANA HTTP Method Registry. Any other token is answered 501; a registered
/// method that a path does not take is 405 with `Allow` (RFC 9110 §15.5.6), like any other.
/// Routes take only [`Method::ROUTABLE`] ones.
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
    /// ACL
    Acl,
    /// BASELINE-CONTROL
    BaselineControl,
    /// BIND
    Bind,
    /// CHECKIN
    Checkin,
    /// CHECKOUT
    Checkout,
    /// COPY
    Copy,
    /// LABEL
    Label,
    /// LINK
    Link,
    /// LOCK
    Lock,
    /// MERGE
    Merge,
    /// MKACTIVITY
    MkActivity,
    /// MKCALENDAR
    MkCalendar,
    /// MKCOL
    MkCol,
    /// MKREDIRECTREF
    MkRedirectRef,
    /// MKWORKSPACE
    MkWorkspace,
    /// MOVE
    Move,
    /// ORDERPATCH
    OrderPatch,
    /// PRI
    Pri,
    /// PROPFIND
    PropFind,
    /// PROPPATCH
    PropPatch,
    /// QUERY
    Query,
    /// REBIND
    Rebind,
    /// REPORT
    Report,
    /// SEARCH
    Search,
    /// UNBIND
    Unbind,
    /// UNCHECKOUT
    Uncheckout,
    /// UNLINK
    Unlink,
    /// UNLOCK
    Unlock,
    /// UPDATE
    Update,
    /// UPDATEREDIRECTREF
    UpdateRedirectRef,
    /// VERSION-CONTROL
    VersionControl,
}

impl Method {
    /// Every registered method, in the order `Allow` lists them (RFC 9110's first).
    pub const ALL: [Method; 40] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
        Method::Trace,
        Method::Connect,
        Method::Acl,
        Method::BaselineControl,
        Method::Bind,
        Method::Checkin,
        Method::Checkout,
        Method::Copy,
        Method::Label,
        Method::Link,
        Method::Lock,
        Method::Merge,
        Method::MkActivity,
        Method::MkCalendar,
        Method::MkCol,
        Method::MkRedirectRef,
        Method::MkWorkspace,
        Method::Move,
        Method::OrderPatch,
        Method::Pri,
        Method::PropFind,
        Method::PropPatch,
        Method::Query,
        Method::Rebind,
        Method::Report,
        Method::Search,
        Method::Unbind,
        Method::Uncheckout,
        Method::Unlink,
        Method::Unlock,
        Method::Update,
        Method::UpdateRedirectRef,
        Method::VersionControl,
    ];

    /// The methods a route may take (`CONNECT` is the egress proxy's; the other registered
    /// methods belong to WebDAV and its kin, which Portico does not route).
    pub const ROUTABLE: [Method; 8] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Options,
        Method::Trace,
    ];

    /// The registered method for an exact, case-sensitive token.
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
            b"ACL" => Method::Acl,
            b"BASELINE-CONTROL" => Method::BaselineControl,
            b"BIND" => Method::Bind,
            b"CHECKIN" => Method::Checkin,
            b"CHECKOUT" => Method::Checkout,
            b"COPY" => Method::Copy,
            b"LABEL" => Method::Label,
            b"LINK" => Method::Link,
            b"LOCK" => Method::Lock,
            b"MERGE" => Method::Merge,
            b"MKACTIVITY" => Method::MkActivity,
            b"MKCALENDAR" => Method::MkCalendar,
            b"MKCOL" => Method::MkCol,
            b"MKREDIRECTREF" => Method::MkRedirectRef,
            b"MKWORKSPACE" => Method::MkWorkspace,
            b"MOVE" => Method::Move,
            b"ORDERPATCH" => Method::OrderPatch,
            b"PRI" => Method::Pri,
            b"PROPFIND" => Method::PropFind,
            b"PROPPATCH" => Method::PropPatch,
            b"QUERY" => Method::Query,
            b"REBIND" => Method::Rebind,
            b"REPORT" => Method::Report,
            b"SEARCH" => Method::Search,
            b"UNBIND" => Method::Unbind,
            b"UNCHECKOUT" => Method::Uncheckout,
            b"UNLINK" => Method::Unlink,
            b"UNLOCK" => Method::Unlock,
            b"UPDATE" => Method::Update,
            b"UPDATEREDIRECTREF" => Method::UpdateRedirectRef,
            b"VERSION-CONTROL" => Method::VersionControl,
            _ => return None,
        })
    }

    /// A method a route may take, for an exact, case-sensitive token.
    pub fn routable(token: &[u8]) -> Option<Method> {
        Method::from_bytes(token).filter(|m| Method::ROUTABLE.contains(m))
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
            Method::Acl => "ACL",
            Method::BaselineControl => "BASELINE-CONTROL",
            Method::Bind => "BIND",
            Method::Checkin => "CHECKIN",
            Method::Checkout => "CHECKOUT",
            Method::Copy => "COPY",
            Method::Label => "LABEL",
            Method::Link => "LINK",
            Method::Lock => "LOCK",
            Method::Merge => "MERGE",
            Method::MkActivity => "MKACTIVITY",
            Method::MkCalendar => "MKCALENDAR",
            Method::MkCol => "MKCOL",
            Method::MkRedirectRef => "MKREDIRECTREF",
            Method::MkWorkspace => "MKWORKSPACE",
            Method::Move => "MOVE",
            Method::OrderPatch => "ORDERPATCH",
            Method::Pri => "PRI",
            Method::PropFind => "PROPFIND",
            Method::PropPatch => "PROPPATCH",
            Method::Query => "QUERY",
            Method::Rebind => "REBIND",
            Method::Report => "REPORT",
            Method::Search => "SEARCH",
            Method::Unbind => "UNBIND",
            Method::Uncheckout => "UNCHECKOUT",
            Method::Unlink => "UNLINK",
            Method::Unlock => "UNLOCK",
            Method::Update => "UPDATE",
            Method::UpdateRedirectRef => "UPDATEREDIRECTREF",
            Method::VersionControl => "VERSION-CONTROL",
        }
    }

    /// Idempotent per RFC 9110 §9.2.2 (and the registry, for the others): safe to repeat on a
    /// fresh connection.
    pub const fn is_idempotent(self) -> bool {
        !matches!(
            self,
            Method::Post | Method::Patch | Method::Connect | Method::Lock
        )
    }

    /// Safe per RFC 9110 §9.2.1 and the registry's "Safe" column: a request with it changes
    /// nothing at the origin, so a cache need not invalidate (RFC 9111 §4.4).
    pub const fn is_safe(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Options
                | Method::Trace
                | Method::Pri
                | Method::PropFind
                | Method::Query
                | Method::Report
                | Method::Search
        )
    }

    const fn bit(self) -> u64 {
        1 << self as u64
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of methods, as a route declares them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodSet(u64);

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
        assert_eq!(Method::from_bytes(b"query"), None);
        for m in Method::ALL {
            assert_eq!(Method::from_bytes(m.as_str().as_bytes()), Some(m));
        }
        assert_eq!(Method::routable(b"QUERY"), None);
        assert_eq!(Method::routable(b"CONNECT"), None);
        assert_eq!(Method::routable(b"PATCH"), Some(Method::Patch));
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
