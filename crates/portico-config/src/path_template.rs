//! Route path templates: `/v1/{project_id}/items/{*rest}`, checked once and turned into the
//! patterns the router takes.

/// A route path template: `/v1/{project_id}/items/{*rest}`.
///
/// `{name}` matches one segment; `{*name}` (last segment only) matches the rest of the path,
/// including nothing, so `/files/{*rest}` matches `/files/` as well as `/files/a/b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate {
    /// The template as written.
    pub source: String,
    /// The patterns to register with the router (the template, and for a catch-all also its
    /// empty form).
    pub patterns: Vec<String>,
    /// The name of the `{*name}` parameter, when the template ends with one.
    pub catch_all: Option<String>,
    /// The names of all its parameters, in order.
    pub params: Vec<String>,
}

impl PathTemplate {
    /// Checks a template's syntax.
    pub fn parse(source: &str) -> Result<PathTemplate, String> {
        if !source.starts_with('/') {
            return Err("a path must start with `/`".into());
        }
        let mut names: Vec<&str> = Vec::new();
        let segments: Vec<&str> = source[1..].split('/').collect();
        let mut patterns = vec![source.to_string()];
        let mut catch_all_name = None;
        for (i, seg) in segments.iter().enumerate() {
            if *seg == "." || *seg == ".." {
                return Err(
                    "a path cannot contain `.` or `..` segments (requests are normalised)".into(),
                );
            }
            if let Some(bad) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%{}".contains(*c)))
            {
                return Err(format!("`{bad}` is not allowed in a path"));
            }
            let opens = seg.matches('{').count();
            if opens != seg.matches('}').count() || opens > 1 {
                return Err(format!(
                    "segment `{seg}`: use at most one `{{name}}` per segment"
                ));
            }
            if opens == 0 {
                continue;
            }
            let (Some(open), Some(close)) = (seg.find('{'), seg.find('}')) else {
                return Err(format!("segment `{seg}`: unbalanced braces"));
            };
            if close < open {
                return Err(format!("segment `{seg}`: `}}` before `{{`"));
            }
            let inner = &seg[open + 1..close];
            let (name, catch_all) = match inner.strip_prefix('*') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if catch_all && (i + 1 != segments.len() || open != 0 || close + 1 != seg.len()) {
                return Err("`{*name}` must be the whole last segment".into());
            }
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`{name}` is not a valid parameter name (letters, digits, _)"
                ));
            }
            if names.contains(&name) {
                return Err(format!("parameter `{name}` appears twice"));
            }
            names.push(name);
            if catch_all {
                let prefix_len = source.len() - seg.len();
                patterns.push(source[..prefix_len].to_string());
                catch_all_name = Some(name.to_string());
            }
        }
        Ok(PathTemplate {
            source: source.to_string(),
            patterns,
            catch_all: catch_all_name,
            params: names.iter().map(|n| n.to_string()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = PathTemplate::parse("/v1/{project_id}/items/{*rest}").unwrap();
        assert_eq!(
            t.patterns,
            vec!["/v1/{project_id}/items/{*rest}", "/v1/{project_id}/items/"]
        );
        assert_eq!(
            PathTemplate::parse("/{*path}").unwrap().patterns,
            vec!["/{*path}", "/"]
        );
        assert_eq!(
            PathTemplate::parse("/a/{id}").unwrap().patterns,
            vec!["/a/{id}"]
        );
        for bad in [
            "a",
            "/a/{*rest}/b",
            "/a/{x}/{x}",
            "/a/{1x}",
            "/a/{x",
            "/a/../b",
            "/a b",
            "/a?x",
            "/a/x{*r}",
            "/{a}{b}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
