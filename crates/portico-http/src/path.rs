//! Request paths as routing sees them.
//!
//! Dot-segments are removed before a path is matched against routes or forwarded (RFC 3986
//! §5.2.4), so `/public/../private` is routed, and forwarded, as `/private`: a route cannot be
//! reached through another route's prefix, whatever the upstream does with dots. `%2e` counts
//! as a dot, because many upstreams decode it before resolving the path.

use crate::syntax::hex_digit;

/// Decodes `%XX` escapes (RFC 3986 §2.1); `None` for a `%` not followed by two hex digits.
pub fn percent_decode(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hi = hex_digit(*v.get(i + 1)?)?;
            let lo = hex_digit(*v.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether `seg` is `.` (possibly percent-encoded).
fn is_dot(seg: &[u8]) -> bool {
    seg == b"." || seg.eq_ignore_ascii_case(b"%2e")
}

/// Whether `seg` is `..` (possibly with either dot percent-encoded).
fn is_dot_dot(seg: &[u8]) -> bool {
    match seg.len() {
        2 => seg == b"..",
        4 => seg.eq_ignore_ascii_case(b".%2e") || seg.eq_ignore_ascii_case(b"%2e."),
        6 => seg.eq_ignore_ascii_case(b"%2e%2e"),
        _ => false,
    }
}

/// The path with its dot-segments removed, or `None` when it has none (the usual case, which
/// then costs no allocation). `path` starts with `/`.
pub fn remove_dot_segments(path: &[u8]) -> Option<Vec<u8>> {
    let body = path.strip_prefix(b"/")?;
    if !body
        .split(|&b| b == b'/')
        .any(|s| is_dot(s) || is_dot_dot(s))
    {
        return None;
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for seg in body.split(|&b| b == b'/') {
        trailing_slash = false;
        if is_dot(seg) {
            trailing_slash = true;
        } else if is_dot_dot(seg) {
            out.pop();
            trailing_slash = true;
        } else {
            out.push(seg);
        }
    }
    let mut result = Vec::with_capacity(path.len());
    for seg in &out {
        result.push(b'/');
        result.extend_from_slice(seg);
    }
    if trailing_slash || result.is_empty() {
        result.push(b'/');
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        String::from_utf8(
            remove_dot_segments(p.as_bytes()).unwrap_or_else(|| p.as_bytes().to_vec()),
        )
        .unwrap()
    }

    #[test]
    fn removes_dot_segments_as_rfc3986_5_2_4() {
        assert_eq!(norm("/a/b/c/./../../g"), "/a/g");
        assert_eq!(norm("/a/b/../c"), "/a/c");
        assert_eq!(norm("/a/.."), "/");
        assert_eq!(norm("/a/./"), "/a/");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(norm("/a/%2e%2E/b"), "/b");
        assert_eq!(norm("/a/.%2e/b"), "/b");
        assert_eq!(norm("/a/%2e/b"), "/a/b");
        assert_eq!(norm("/a//b"), "/a//b");
        assert_eq!(norm("/a/..b/c"), "/a/..b/c");
        assert_eq!(norm("/"), "/");
        assert!(remove_dot_segments(b"/plain/path").is_none());
    }

    #[test]
    fn percent_decoding_rfc3986_2_1() {
        assert_eq!(percent_decode(b"a%20b%2F%2f").unwrap(), b"a b//");
        assert_eq!(percent_decode(b"caf%C3%A9").unwrap(), "café".as_bytes());
        assert_eq!(percent_decode(b"plain").unwrap(), b"plain");
        for bad in [&b"%"[..], b"%2", b"%zz", b"a%g0"] {
            assert!(percent_decode(bad).is_none());
        }
    }
}
