//! Content codings (RFC 9110 §8.4, §12.5.3): which encodings of a representation a client's
//! `Accept-Encoding` accepts, and whether a request's `Content-Encoding` is one a route takes.
//!
//! Rules of §12.5.3 as Portico applies them:
//!
//! - a coding's weight is that of its own element, else that of `*`, else 0;
//! - `identity` is acceptable unless refused explicitly (`identity;q=0`, or `*;q=0` without
//!   an `identity` element), and when only implied it ranks below every coding the client
//!   named;
//! - `x-gzip` is `gzip` and `x-compress` is `compress` (§8.4.1);
//! - a request without `Accept-Encoding`, with an empty one, or with one that holds no valid
//!   element gets `identity` (the RFC lets a server send any coding to a client that did not
//!   say, but a client that did not say may not be able to decode one).

use std::fmt;

use crate::syntax::{is_token, split_unquoted, weight};

/// A content-coding name, lower case, aliases resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContentCoding(String);

impl ContentCoding {
    /// Parses a coding name (a token); aliases become their canonical names.
    pub fn parse(s: &str) -> Result<ContentCoding, String> {
        if !is_token(s.as_bytes()) || s == "*" {
            return Err(format!("`{s}` is not a content-coding name"));
        }
        Ok(ContentCoding(canonical(s.as_bytes()).to_string()))
    }

    /// `identity`.
    pub fn identity() -> ContentCoding {
        ContentCoding("identity".to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `identity` (no coding).
    pub fn is_identity(&self) -> bool {
        self.0 == "identity"
    }
}

impl fmt::Display for ContentCoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The canonical lower-case name of a coding token (§8.4.1: `x-gzip` is `gzip`).
fn canonical(token: &[u8]) -> String {
    let lower = String::from_utf8_lossy(token).to_ascii_lowercase();
    match lower.as_str() {
        "x-gzip" => "gzip".to_string(),
        "x-compress" => "compress".to_string(),
        _ => lower,
    }
}

fn same_coding(token: &[u8], name: &str) -> bool {
    token.eq_ignore_ascii_case(name.as_bytes())
        || (name == "gzip" && token.eq_ignore_ascii_case(b"x-gzip"))
        || (name == "compress" && token.eq_ignore_ascii_case(b"x-compress"))
}

/// One element of `Accept-Encoding`: `( coding / "identity" / "*" ) [ weight ]`.
fn element(e: &[u8]) -> Option<(&[u8], u16)> {
    let mut pieces = split_unquoted(e, b';');
    let name = pieces.next()?;
    if !is_token(name) {
        return None;
    }
    let q = match pieces.next() {
        None => 1000,
        Some(p) => weight(p)??,
    };
    pieces.next().is_none().then_some((name, q))
}

/// The weight `accept_encoding` gives to `coding` (a canonical name, or `identity`), in
/// thousandths; implied `identity` gets 1 so that it ranks below every named coding.
pub fn quality(accept_encoding: Option<&[u8]>, coding: &str) -> u16 {
    let identity = coding == "identity";
    let Some(v) = accept_encoding else {
        return if identity { 1000 } else { 0 };
    };
    let mut any = false;
    let mut own: Option<u16> = None;
    let mut star: Option<u16> = None;
    for (name, q) in split_unquoted(v, b',').filter_map(element) {
        any = true;
        if name == b"*" {
            star.get_or_insert(q);
        } else if same_coding(name, coding) {
            own.get_or_insert(q);
        }
    }
    if !any {
        return if identity { 1000 } else { 0 };
    }
    match (own, star) {
        (Some(q), _) => q,
        (None, Some(q)) => q,
        (None, None) if identity => 1,
        (None, None) => 0,
    }
}

/// The codings of `available` (in the server's order of preference) that `accept_encoding`
/// accepts, best first: by weight, ties in `available` order. Empty means 406 when the
/// representation cannot be sent otherwise.
pub fn rank<'c>(
    accept_encoding: Option<&[u8]>,
    available: &'c [ContentCoding],
) -> Vec<&'c ContentCoding> {
    let mut weighted: Vec<(usize, u16)> = available
        .iter()
        .enumerate()
        .map(|(i, c)| (i, quality(accept_encoding, c.as_str())))
        .filter(|(_, q)| *q > 0)
        .collect();
    // Stable: equal weights keep the server's order.
    weighted.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    weighted.into_iter().map(|(i, _)| &available[i]).collect()
}

/// Whether a body with these `Content-Encoding` field lines uses only codings in `supported`
/// (`identity` is always supported). Returns the first coding that is not.
pub fn unsupported_coding<'a>(
    content_encoding: &[&'a [u8]],
    supported: &[ContentCoding],
) -> Option<&'a [u8]> {
    content_encoding
        .iter()
        .flat_map(|line| split_unquoted(line, b','))
        .find(|c| {
            !c.eq_ignore_ascii_case(b"identity")
                && !supported.iter().any(|s| same_coding(c, s.as_str()))
        })
}

/// The comma-separated list of codings, `identity` last, for an `Accept-Encoding` response
/// field (RFC 9110 §12.5.3) or an error detail.
pub fn list(codings: &[ContentCoding]) -> String {
    let mut names: Vec<&str> = codings
        .iter()
        .filter(|c| !c.is_identity())
        .map(ContentCoding::as_str)
        .collect();
    names.push("identity");
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> ContentCoding {
        ContentCoding::parse(s).unwrap()
    }

    fn ranked(ae: Option<&str>, avail: &[&str]) -> Vec<String> {
        let avail: Vec<ContentCoding> = avail.iter().map(|s| c(s)).collect();
        rank(ae.map(str::as_bytes), &avail)
            .into_iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_examples_of_rfc9110_12_5_3() {
        assert_eq!(quality(Some(b"compress, gzip"), "gzip"), 1000);
        assert_eq!(quality(Some(b"compress, gzip"), "br"), 0);
        assert_eq!(quality(Some(b"*"), "br"), 1000);
        assert_eq!(
            quality(Some(b"compress;q=0.5, gzip;q=1.0"), "compress"),
            500
        );
        assert_eq!(
            quality(Some(b"gzip;q=1.0, identity; q=0.5, *;q=0"), "identity"),
            500
        );
        assert_eq!(
            quality(Some(b"gzip;q=1.0, identity; q=0.5, *;q=0"), "br"),
            0
        );
        // An empty field value: only identity.
        assert_eq!(quality(Some(b""), "identity"), 1000);
        assert_eq!(quality(Some(b""), "gzip"), 0);
    }

    #[test]
    fn identity_is_implied_unless_refused() {
        assert_eq!(quality(Some(b"gzip"), "identity"), 1);
        assert_eq!(quality(Some(b"identity;q=0"), "identity"), 0);
        assert_eq!(quality(Some(b"*;q=0"), "identity"), 0);
        assert_eq!(quality(Some(b"*;q=0, identity"), "identity"), 1000);
        assert_eq!(quality(Some(b"br, *;q=0"), "identity"), 0);
        // No field: identity only (Portico's choice, see the module docs).
        assert_eq!(quality(None, "identity"), 1000);
        assert_eq!(quality(None, "gzip"), 0);
        // Garbage is disregarded.
        assert_eq!(quality(Some(b";;, =, gzip;q=x"), "identity"), 1000);
    }

    #[test]
    fn aliases_and_case_8_4_1() {
        assert_eq!(quality(Some(b"X-GZIP"), "gzip"), 1000);
        assert_eq!(quality(Some(b"GZip;Q=0.3"), "gzip"), 300);
        assert_eq!(c("x-gzip").as_str(), "gzip");
        assert_eq!(c("BR").as_str(), "br");
        assert!(ContentCoding::parse("*").is_err());
        assert!(ContentCoding::parse("a b").is_err());
    }

    #[test]
    fn ranking_by_weight_then_server_order() {
        let avail = ["br", "zstd", "gzip", "identity"];
        assert_eq!(
            ranked(Some("gzip, deflate, br, zstd"), &avail),
            ["br", "zstd", "gzip", "identity"]
        );
        assert_eq!(
            ranked(Some("gzip, br;q=0.5"), &avail),
            ["gzip", "br", "identity"]
        );
        assert_eq!(ranked(None, &avail), ["identity"]);
        assert_eq!(ranked(Some("identity;q=0"), &avail), Vec::<String>::new());
        assert_eq!(ranked(Some("gzip, identity;q=0"), &avail), ["gzip"]);
        assert_eq!(
            ranked(Some("*;q=0.1, br;q=0"), &avail),
            ["zstd", "gzip", "identity"]
        );
    }

    #[test]
    fn content_encoding_against_supported() {
        let gzip = [c("gzip")];
        assert_eq!(unsupported_coding(&[], &gzip), None);
        assert_eq!(unsupported_coding(&[b"gzip"], &gzip), None);
        assert_eq!(unsupported_coding(&[b"x-gzip, identity"], &gzip), None);
        assert_eq!(unsupported_coding(&[b"gzip, br"], &gzip), Some(&b"br"[..]));
        assert_eq!(
            unsupported_coding(&[b"gzip", b"zstd"], &gzip),
            Some(&b"zstd"[..])
        );
        assert_eq!(unsupported_coding(&[b"br"], &[]), Some(&b"br"[..]));
        assert_eq!(list(&gzip), "gzip, identity");
        assert_eq!(list(&[]), "identity");
    }
}
