//! Reading typed values out of the node tree, collecting every problem instead of stopping.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Problem;
use crate::yaml::{Kind, Node};

/// Where `${NAME}` secrets are looked up.
pub(crate) type Env = Box<dyn Fn(&str) -> Option<String>>;

/// Walks nodes and gathers problems.
#[derive(Default)]
pub(crate) struct Reader {
    pub(crate) problems: Vec<Problem>,
    /// Directory that relative paths in the configuration are relative to (the file's own);
    /// the working directory when `None`.
    pub(crate) base: Option<PathBuf>,
    /// Where `${NAME}` secrets come from; the process environment when `None`.
    pub(crate) env: Option<Env>,
    /// OpenAPI documents read so far, each compiled once.
    pub(crate) documents: crate::openapi::Documents,
}

/// Where a route came from: its place in the file and its key path (`routes[2]`, or
/// `routes[2](listPets)` for a route an OpenAPI operation made).
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) loc: crate::yaml::Loc,
    pub(crate) label: String,
}

/// The entries of a mapping whose keys have been checked against what is allowed.
pub(crate) struct Fields<'a> {
    entries: &'a [(String, Node, Node)],
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, v)| k == key && v.kind != Kind::Null)
            .map(|(_, _, v)| v)
    }
}

/// `path.key`, or `key` at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Reader {
    /// The environment variable `name`.
    pub(crate) fn env(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(lookup) => lookup(name),
            None => std::env::var(name).ok(),
        }
    }

    /// A path from the configuration, made relative to the configuration file's directory.
    pub(crate) fn resolve_path(&self, p: &str) -> PathBuf {
        match &self.base {
            Some(base) if Path::new(p).is_relative() => base.join(p),
            _ => PathBuf::from(p),
        }
    }

    pub(crate) fn problem(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::at(node.loc, path, message));
    }

    /// A problem at a route (its place, and its key path).
    pub(crate) fn problem_at(&mut self, at: &Origin, key: &str, message: impl Into<String>) {
        self.problems
            .push(Problem::at(at.loc, &join(&at.label, key), message));
    }

    /// A mapping whose keys must all be in `allowed` (a typo must never switch a protection
    /// off silently, so unknown keys are errors).
    pub(crate) fn map<'a>(
        &mut self,
        node: &'a Node,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'a>> {
        match &node.kind {
            Kind::Map(entries) => {
                for (key, key_node, _) in entries {
                    if !allowed.contains(&key.as_str()) {
                        let hint = closest(key, allowed)
                            .map(|k| format!(" (did you mean `{k}`?)"))
                            .unwrap_or_default();
                        self.problem(
                            key_node,
                            &join(path, key),
                            format!("unknown key `{key}`{hint}; allowed: {}", allowed.join(", ")),
                        );
                    }
                }
                Some(Fields { entries })
            }
            Kind::Null => Some(Fields { entries: &[] }),
            _ => {
                self.problem(node, path, "expected a mapping");
                None
            }
        }
    }

    pub(crate) fn seq<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.problem(node, path, "expected a list");
                None
            }
        }
    }

    pub(crate) fn string<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a str> {
        match &node.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => {
                self.problem(node, path, "expected a string");
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.kind {
            Kind::Scalar { value, plain: true } if value == "true" => Some(true),
            Kind::Scalar { value, plain: true } if value == "false" => Some(false),
            _ => {
                self.problem(node, path, "expected `true` or `false`");
                None
            }
        }
    }

    pub(crate) fn uint(&mut self, node: &Node, path: &str) -> Option<u64> {
        match &node.kind {
            Kind::Scalar { value, plain: true } => match value.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.problem(
                        node,
                        path,
                        format!("expected a whole number, found `{value}`"),
                    );
                    None
                }
            },
            _ => {
                self.problem(node, path, "expected a whole number");
                None
            }
        }
    }

    pub(crate) fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = self.string(node, path)?;
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.problem(node, path, "a duration must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(msg) => {
                self.problem(node, path, msg);
                None
            }
        }
    }

    pub(crate) fn size(&mut self, node: &Node, path: &str) -> Option<u64> {
        let text = self.string(node, path)?;
        match parse_size(text) {
            Ok(n) => Some(n),
            Err(msg) => {
                self.problem(node, path, msg);
                None
            }
        }
    }

    pub(crate) fn missing(&mut self, node: &Node, path: &str, key: &str) {
        self.problem(
            node,
            &join(path, key),
            format!("missing required key `{key}`"),
        );
    }
}

/// `250ms`, `10s`, `5m`, `1h`, `7d`: a whole number and a unit, nothing else.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let err = || {
        format!(
            "invalid duration `{text}`: write a whole number and a unit, e.g. 250ms, 10s, 5m, 1h, 7d"
        )
    };
    let n: u64 = number.parse().map_err(|_| err())?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(err()),
    };
    ms.map(Duration::from_millis).ok_or_else(err)
}

/// `512KiB`, `1MiB`, `2GiB`, or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let err = || {
        format!(
            "invalid size `{text}`: write a number of bytes or a number with KiB, MiB or GiB, e.g. 512KiB"
        )
    };
    let n: u64 = number.parse().map_err(|_| err())?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

/// The allowed key closest to a misspelt one, when it is close enough to be a typo.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A path to an existing regular file (relative paths are taken from the config file's
/// directory).
pub(crate) fn read_file(r: &mut Reader, n: &Node, path: &str) -> Option<PathBuf> {
    let s = r.string(n, path)?;
    let file = r.resolve_path(s);
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => Some(file),
        Ok(_) => {
            r.problem(n, path, format!("`{}` is not a file", file.display()));
            None
        }
        Err(e) => {
            r.problem(n, path, format!("cannot use `{}`: {e}", file.display()));
            None
        }
    }
}

/// A resource's `name`: letters, digits, `-`, `_` and `.`.
pub(crate) fn read_name(
    r: &mut Reader,
    node: &Node,
    path: &str,
    n: Option<&Node>,
) -> Option<String> {
    let Some(n) = n else {
        r.missing(node, path, "name");
        return None;
    };
    let npath = join(path, "name");
    let s = r.string(n, &npath)?;
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        r.problem(
            n,
            &npath,
            format!("`{s}`: names use letters, digits, `-`, `_` and `.`"),
        );
        return None;
    }
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in [
            "10",
            "s",
            "1.5s",
            "10 s",
            "-1s",
            "10sec",
            "",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        for bad in [
            "1MB",
            "1 MiB",
            "MiB",
            "-1",
            "1.5MiB",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggests_close_keys() {
        assert_eq!(
            closest("upstreem", &["upstream", "handler"]),
            Some("upstream")
        );
        assert_eq!(closest("zzz", &["upstream", "handler"]), None);
    }
}
