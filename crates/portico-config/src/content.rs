//! What a route serves and takes: `produces`, `consumes`, `consumes_encodings`, and the
//! settings of `handler: static` (`root`, `cache_control`, `precompressed`).

use portico_http::coding::ContentCoding;
use portico_http::negotiate::MediaType;
use portico_http::{Method, MethodSet};

use std::path::PathBuf;

use crate::path_template::PathTemplate;
use crate::read::{Fields, Reader, join};
use crate::yaml::{Kind, Node};

/// A `handler: static` route's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticFiles {
    /// The directory served (absolute, or relative to the working directory when the
    /// configuration did not come from a file).
    pub root: PathBuf,
    /// `Cache-Control` sent with every file (and its 304s), when set.
    pub cache_control: Option<String>,
    /// Precompressed siblings looked for (`FILE.br`, `FILE.zst`, `FILE.gz`), in order of
    /// preference.
    pub precompressed: Vec<ContentCoding>,
}

/// Keys that only a static route may have.
const STATIC_KEYS: &[&str] = &["root", "cache_control", "precompressed"];

/// Codings a static route can find precompressed siblings for, with their file suffixes.
pub const PRECOMPRESSED: &[(&str, &str)] = &[("br", ".br"), ("zstd", ".zst"), ("gzip", ".gz")];

/// Reports static-only keys on a route that is not static.
pub(crate) fn refuse_static_keys(r: &mut Reader, path: &str, f: &Fields<'_>) {
    for key in STATIC_KEYS {
        if let Some(n) = f.get(key) {
            r.problem(
                n,
                &join(path, key),
                format!("`{key}` is only for `handler: static`"),
            );
        }
    }
}

/// Reads a static route's settings and checks the rest of the route suits one: it serves
/// GET and HEAD only, and its path ends with `{*name}` (the file's path under `root`).
pub(crate) fn read_static(
    r: &mut Reader,
    node: &Node,
    path: &str,
    f: &Fields<'_>,
    template: Option<&PathTemplate>,
    methods: Option<MethodSet>,
) -> Option<StaticFiles> {
    let mut ok = true;
    if let Some(methods) = methods
        && methods
            .allowed()
            .any(|m| !matches!(m, Method::Get | Method::Head | Method::Options))
    {
        let at = f.get("methods").unwrap_or(node);
        r.problem(
            at,
            &join(path, "methods"),
            "a static route serves GET and HEAD only",
        );
        ok = false;
    }
    if let Some(t) = template
        && t.catch_all.is_none()
    {
        let at = f.get("path").unwrap_or(node);
        r.problem(
            at,
            &join(path, "path"),
            format!(
                "a static route's path ends with `{{*name}}`, the file's path under `root` (e.g. `{}/{{*file}}`)",
                t.source.trim_end_matches('/')
            ),
        );
        ok = false;
    }
    let root = match f.get("root") {
        None => {
            r.missing(node, path, "root");
            None
        }
        Some(n) => {
            let rpath = join(path, "root");
            r.string(n, &rpath).and_then(|s| {
                let dir = r.resolve_path(s);
                match std::fs::metadata(&dir) {
                    Ok(m) if m.is_dir() => Some(dir),
                    Ok(_) => {
                        r.problem(n, &rpath, format!("`{}` is not a directory", dir.display()));
                        None
                    }
                    Err(e) => {
                        r.problem(n, &rpath, format!("cannot use `{}`: {e}", dir.display()));
                        None
                    }
                }
            })
        }
    };
    let cache_control = match f.get("cache_control") {
        None => Some(None),
        Some(n) => {
            let cpath = join(path, "cache_control");
            r.string(n, &cpath).and_then(|s| {
                let valid = !s.trim().is_empty()
                    && s.bytes()
                        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic());
                if valid {
                    Some(Some(s.trim().to_string()))
                } else {
                    r.problem(
                        n,
                        &cpath,
                        "a Cache-Control value is visible ASCII, e.g. `public, max-age=3600`",
                    );
                    None
                }
            })
        }
    };
    let precompressed = match f.get("precompressed") {
        None => Some(Vec::new()),
        Some(n) => read_precompressed(r, n, &join(path, "precompressed")),
    };
    let settings = StaticFiles {
        root: root?,
        cache_control: cache_control?,
        precompressed: precompressed?,
    };
    ok.then_some(settings)
}

fn read_precompressed(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<ContentCoding>> {
    read_list(r, node, path, |s| {
        if PRECOMPRESSED.iter().any(|(name, _)| *name == s) {
            ContentCoding::parse(s)
        } else {
            let names: Vec<&str> = PRECOMPRESSED.iter().map(|(n, _)| *n).collect();
            Err(format!(
                "`{s}`: precompressed codings are {}",
                names.join(", ")
            ))
        }
    })
}

/// A list of media types (`produces` when `wildcards` is false, `consumes` when true); an
/// empty list when absent.
pub(crate) fn read_media_types(
    r: &mut Reader,
    node: Option<&Node>,
    path: &str,
    wildcards: bool,
) -> Option<Vec<MediaType>> {
    let Some(node) = node else {
        return Some(Vec::new());
    };
    if matches!(&node.kind, Kind::Seq(items) if items.is_empty()) {
        r.problem(
            node,
            path,
            "list at least one media type, or leave the key out",
        );
        return None;
    }
    read_list(r, node, path, |s| match MediaType::parse(s) {
        Ok(mt) if mt.is_wildcard() && !wildcards => Err(format!(
            "`{s}`: a route produces concrete types, not wildcards"
        )),
        other => other,
    })
}

/// `consumes_encodings`: `Some(None)` when absent.
pub(crate) fn read_codings(
    r: &mut Reader,
    node: Option<&Node>,
    path: &str,
) -> Option<Option<Vec<ContentCoding>>> {
    match node {
        None => Some(None),
        Some(node) => read_list(r, node, path, ContentCoding::parse).map(Some),
    }
}

/// A list of strings, each parsed by `parse` (which names its own problem) and listed once;
/// every problem in it is reported.
fn read_list<T: PartialEq>(
    r: &mut Reader,
    node: &Node,
    path: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let items = r.seq(node, path)?;
    let mut out: Vec<T> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let ipath = format!("{path}[{i}]");
        let Some(s) = r.string(item, &ipath) else {
            ok = false;
            continue;
        };
        match parse(s) {
            Ok(v) if out.contains(&v) => {
                r.problem(item, &ipath, format!("`{s}` is listed twice"));
                ok = false;
            }
            Ok(v) => out.push(v),
            Err(msg) => {
                r.problem(item, &ipath, msg);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
