//! `redirect` routes: Portico answers with a redirect (RFC 9110 §15.4) whose `Location` is built
//! from the route's path parameters, the request's query kept.
//!
//! ```yaml
//! - name: v1-moved
//!   path: /v1/{*rest}
//!   methods: [GET, HEAD]
//!   redirect: {to: "/v2/{*rest}", status: 301}
//! ```

use crate::path_template::PathTemplate;
use crate::read::{Reader, join};
use crate::yaml::Node;

/// The statuses a redirect route may answer with: 301 and 308 permanent, 302 and 307
/// temporary (307 and 308 keep the method and body), 303 "see other" (a GET follows).
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

const REDIRECT_KEYS: &[&str] = &["to", "status"];

/// A redirect route's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// One of [`REDIRECT_STATUSES`].
    pub status: u16,
    /// The target as written: an absolute path or an `http://` / `https://` URL, with
    /// `{name}` (or `{*name}`) where a path parameter of the route goes.
    pub to: String,
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

impl Redirect {
    /// Checks `to` against the route's path template: its form, its characters, and that each
    /// parameter it names is one of the route's.
    pub fn parse(to: &str, status: u16, template: &PathTemplate) -> Result<Redirect, String> {
        if !REDIRECT_STATUSES.contains(&status) {
            return Err(format!(
                "{status} is not a redirect status; use 301, 302, 303, 307 or 308"
            ));
        }
        // The host of an absolute target is fixed: a parameter there would let the request
        // choose where its client is sent.
        let authority = ["http://", "https://"]
            .iter()
            .find_map(|s| to.strip_prefix(s))
            .map(|rest| &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())]);
        match authority {
            Some("") => return Err(format!("`{to}` has no host")),
            Some(a) if a.contains(['{', '}']) => {
                return Err(format!(
                    "`{to}`: the host of a redirect target cannot be a parameter"
                ));
            }
            Some(_) => {}
            None if to.starts_with('/') && !to.starts_with("//") => {}
            None => {
                return Err(format!(
                    "`{to}`: a redirect goes to a path starting with `/` or to an http:// or https:// URL"
                ));
            }
        }
        if let Some(bad) = to
            .chars()
            .find(|c| !c.is_ascii_graphic() || "\"<>\\^`|".contains(*c))
        {
            return Err(format!("`{bad:?}` is not allowed in a redirect target"));
        }
        let mut pieces = Vec::new();
        let mut rest = to;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                return Err(format!("`{to}`: unbalanced braces"));
            };
            if rest[..open].contains('}') {
                return Err(format!("`{to}`: `}}` before `{{`"));
            }
            let inner = &rest[open + 1..close];
            let name = inner.strip_prefix('*').unwrap_or(inner);
            if !template.params.iter().any(|p| p == name) {
                return Err(format!(
                    "`{{{inner}}}` is not a parameter of the route's path `{}`",
                    template.source
                ));
            }
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            pieces.push(Piece::Param(name.to_string()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{to}`: unbalanced braces"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Redirect {
            status,
            to: to.to_string(),
            pieces,
        })
    }

    /// The `Location` for a request: each parameter replaced by its value (`param` gives the
    /// value a name matched, as it appeared in the request's path), and the request's query
    /// appended to the target's own (before any fragment).
    pub fn location<'a>(
        &self,
        param: impl Fn(&str) -> Option<&'a str>,
        query: Option<&str>,
    ) -> String {
        let mut out = String::with_capacity(self.to.len() + 32);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Param(name) => out.push_str(param(name).unwrap_or("")),
            }
        }
        let Some(query) = query.filter(|q| !q.is_empty()) else {
            return out;
        };
        let fragment = out.find('#').map(|i| out.split_off(i));
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(query);
        if let Some(fragment) = fragment {
            out.push_str(&fragment);
        }
        out
    }
}

/// Reads a route's `redirect: {to, status}` (`status` 301 when not given).
pub(crate) fn read(
    r: &mut Reader,
    node: &Node,
    path: &str,
    template: Option<&PathTemplate>,
) -> Option<Redirect> {
    let f = r.map(node, path, REDIRECT_KEYS)?;
    let to = match f.get("to") {
        None => {
            r.missing(node, path, "to");
            None
        }
        Some(n) => r.string(n, &join(path, "to")).map(|s| (n, s)),
    };
    let status = match f.get("status") {
        None => Some(301),
        Some(n) => {
            let spath = join(path, "status");
            match r.uint(n, &spath).map(u16::try_from) {
                Some(Ok(s)) if REDIRECT_STATUSES.contains(&s) => Some(s),
                Some(_) => {
                    r.problem(n, &spath, "a redirect status is 301, 302, 303, 307 or 308");
                    None
                }
                None => None,
            }
        }
    };
    let ((n, to), status, template) = (to?, status?, template?);
    match Redirect::parse(to, status, template) {
        Ok(redirect) => Some(redirect),
        Err(msg) => {
            r.problem(n, &join(path, "to"), msg);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    fn redirect(to: &str, path: &str) -> Result<Redirect, String> {
        Redirect::parse(to, 301, &PathTemplate::parse(path).unwrap())
    }

    #[test]
    fn parameters_are_substituted_and_the_query_kept() {
        let r = redirect("/v2/{project}/items/{*rest}", "/v1/{project}/items/{*rest}").unwrap();
        let value = |name: &str| match name {
            "project" => Some("p1"),
            "rest" => Some("a/b%20c"),
            _ => None,
        };
        assert_eq!(r.location(value, None), "/v2/p1/items/a/b%20c");
        assert_eq!(
            r.location(value, Some("x=1&y")),
            "/v2/p1/items/a/b%20c?x=1&y"
        );
        assert_eq!(r.location(value, Some("")), "/v2/p1/items/a/b%20c");
        // `{rest}` and `{*rest}` name the same parameter.
        let r = redirect("https://new.example/{rest}?from=old#top", "/{*rest}").unwrap();
        assert_eq!(
            r.location(|_| Some("x"), Some("q=2")),
            "https://new.example/x?from=old&q=2#top"
        );
        let r = redirect("/fixed", "/a/{id}").unwrap();
        assert_eq!(r.location(|_| Some("7"), None), "/fixed");
    }

    #[test]
    fn bad_targets_and_statuses_are_refused() {
        for (to, path) in [
            ("v2/x", "/a"),
            ("//evil.example/x", "/a"),
            ("ftp://h/x", "/a"),
            ("https:///x", "/a"),
            ("https://{host}/x", "/{host}"),
            ("https://api.{region}.example/x", "/{region}"),
            ("/x/{id}", "/a/{other}"),
            ("/x/{id", "/a/{id}"),
            ("/x/}id{", "/a/{id}"),
            ("/x y", "/a"),
            ("/x\r\nSet-Cookie: a=b", "/a"),
            ("/x\"", "/a"),
        ] {
            assert!(redirect(to, path).is_err(), "{to:?} accepted");
        }
        let t = PathTemplate::parse("/a").unwrap();
        for status in [300, 304, 200, 306] {
            assert!(Redirect::parse("/b", status, &t).is_err(), "{status}");
        }
        for status in REDIRECT_STATUSES {
            assert_eq!(Redirect::parse("/b", status, &t).unwrap().status, status);
        }
    }
}
