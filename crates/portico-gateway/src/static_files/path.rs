//! From the routed path to a file path under the root, refusing every way out of it.
//!
//! The request path reaching here has had its dot-segments removed (`portico_http::path`),
//! but that works on the encoded form. Here each segment is percent-decoded on its own, and
//! any segment that decodes to something a file system could read as more than one name is
//! refused: empty (`a//b`, a trailing `/`), `.` or `..` (including `%2e%2e`), an encoded `/`
//! (`%2f`), a `\` (a separator on some systems), a NUL, a broken escape, or bytes that are not
//! UTF-8. A refused path is a 404, never a file outside the root.

use std::path::PathBuf;

use portico_http::path::percent_decode;

/// The relative path of the file a request names, as validated segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelPath(Vec<String>);

impl RelPath {
    /// Validates the catch-all part of a routed path (still percent-encoded).
    pub(crate) fn parse(raw: &str) -> Option<RelPath> {
        let mut segments = Vec::new();
        for seg in raw.split('/') {
            let decoded = percent_decode(seg.as_bytes())?;
            if decoded.is_empty()
                || decoded == b"."
                || decoded == b".."
                || decoded.iter().any(|&b| matches!(b, b'/' | b'\\' | 0))
            {
                return None;
            }
            segments.push(String::from_utf8(decoded).ok()?);
        }
        Some(RelPath(segments))
    }

    /// The path under `root`.
    pub(crate) fn under(&self, root: &std::path::Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for seg in &self.0 {
            p.push(seg);
        }
        p
    }

    /// The directories on the way to the file (every segment but the last).
    pub(crate) fn directories(&self) -> impl Iterator<Item = &str> {
        self.0[..self.0.len().saturating_sub(1)]
            .iter()
            .map(String::as_str)
    }

    /// The file name (the last segment).
    pub(crate) fn file_name(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }
}

impl std::fmt::Display for RelPath {
    /// The segments joined by `/`: a relative path, with no `.`, `..` or empty segment.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Vec<String> {
        RelPath::parse(raw)
            .unwrap_or_else(|| panic!("{raw} refused"))
            .0
    }

    #[test]
    fn ordinary_paths_decode_per_segment() {
        assert_eq!(ok("a/b.txt"), ["a", "b.txt"]);
        assert_eq!(ok("my%20file.txt"), ["my file.txt"]);
        assert_eq!(ok("caf%C3%A9"), ["café"]);
        assert_eq!(ok(".well-known/x"), [".well-known", "x"]);
        assert_eq!(ok("..a"), ["..a"]);
    }

    #[test]
    fn every_way_out_is_refused() {
        for raw in [
            "",
            "/",
            "a/",
            "a//b",
            "/etc/passwd",
            ".",
            "..",
            "a/../b",
            "%2e%2e",
            "%2E%2e/x",
            "a/%2e",
            "..%2fetc",
            "a%2fb",
            "a%2Fb",
            "a%5cb",
            "a\\b",
            "a%00b",
            "%",
            "%2",
            "%zz",
            "%ff",
            "a/%c3",
        ] {
            assert!(RelPath::parse(raw).is_none(), "{raw:?} accepted");
        }
    }

    #[test]
    fn joins_under_the_root() {
        let p = RelPath::parse("a/b").unwrap();
        assert_eq!(
            p.under(std::path::Path::new("/srv")),
            PathBuf::from("/srv/a/b")
        );
        assert_eq!(p.file_name(), "b");
        assert_eq!(p.directories().collect::<Vec<_>>(), ["a"]);
        assert_eq!(p.to_string(), "a/b");
    }
}
