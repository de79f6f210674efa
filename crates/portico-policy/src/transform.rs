//! A route's `transform`: field projection and masking of an upstream's JSON body, the
//! mechanism behind 203 Non-Authoritative Information.
//!
//! Pointers are RFC 6901 JSON pointers in which a `*` token stands for every item of an
//! array (`/items/*/secret`). The steps run in a fixed order: `keep` (project the body down
//! to the members named; their ancestors stay), then `remove`, `rename`, `add`. Written by
//! hand because it is the policy's own logic; `serde_json` does the JSON.

use serde_json::{Map, Value};

/// One token of a pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A member name (or an array index, when it reads as one).
    Key(String),
    /// `*`: every item of an array.
    Each,
}

/// A JSON pointer with `*` for every array item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    tokens: Vec<Token>,
    text: String,
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Pointer {
    /// Parses `/a/b~1c/*/d`; the whole document (``) is not a pointer a transform may use.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "`{text}`: a pointer starts with `/` (RFC 6901), e.g. /items/*/secret"
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                tokens.push(Token::Each);
                continue;
            }
            let mut out = String::new();
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, true) => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("`{text}`: `~` is written `~0`, `/` is `~1`")),
                    },
                    (c, false) => out.push(c),
                }
            }
            tokens.push(Token::Key(out));
        }
        Ok(Pointer {
            tokens,
            text: text.to_string(),
        })
    }

    /// Whether the pointer ends with a member name (what `rename` and `add` need).
    pub fn ends_with_name(&self) -> bool {
        matches!(self.tokens.last(), Some(Token::Key(_)))
    }
}

/// A body transformation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transform {
    /// Only these members (and their ancestors) stay, when not empty.
    pub keep: Vec<Pointer>,
    /// These members go.
    pub remove: Vec<Pointer>,
    /// These members get a new name (in the same object).
    pub rename: Vec<(Pointer, String)>,
    /// These members are set to a value (their parent must exist).
    pub add: Vec<(Pointer, Value)>,
}

impl Transform {
    /// Applies the transformation; true when the value changed.
    pub fn apply(&self, value: &mut Value) -> bool {
        let before = value.clone();
        if !self.keep.is_empty() {
            let lists: Vec<&[Token]> = self.keep.iter().map(|p| p.tokens.as_slice()).collect();
            *value = keep(value, &lists).unwrap_or_else(|| match value {
                Value::Array(_) => Value::Array(Vec::new()),
                _ => Value::Object(Map::new()),
            });
        }
        for p in &self.remove {
            parents(value, &p.tokens, &mut |parent, last| match (parent, last) {
                (Value::Object(m), Token::Key(k)) => {
                    m.remove(k);
                }
                (Value::Array(items), Token::Key(k)) => {
                    if let Some(i) = index(k, items.len()) {
                        items.remove(i);
                    }
                }
                (Value::Array(items), Token::Each) => items.clear(),
                _ => {}
            });
        }
        for (p, name) in &self.rename {
            parents(value, &p.tokens, &mut |parent, last| {
                if let (Value::Object(m), Token::Key(k)) = (parent, last)
                    && let Some(v) = m.remove(k)
                {
                    m.insert(name.clone(), v);
                }
            });
        }
        for (p, v) in &self.add {
            parents(value, &p.tokens, &mut |parent, last| {
                if let (Value::Object(m), Token::Key(k)) = (parent, last) {
                    m.insert(k.clone(), v.clone());
                }
            });
        }
        *value != before
    }
}

/// An array index token: digits without a leading zero, within the array.
fn index(token: &str, len: usize) -> Option<usize> {
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    token.parse::<usize>().ok().filter(|i| *i < len)
}

/// Calls `f` with each parent the pointer's last token is in, and that token.
fn parents(value: &mut Value, tokens: &[Token], f: &mut dyn FnMut(&mut Value, &Token)) {
    match tokens {
        [] => {}
        [last] => f(value, last),
        [first, rest @ ..] => match (value, first) {
            (Value::Object(m), Token::Key(k)) => {
                if let Some(v) = m.get_mut(k) {
                    parents(v, rest, f);
                }
            }
            (Value::Array(items), Token::Key(k)) => {
                let len = items.len();
                if let Some(v) = index(k, len).and_then(|i| items.get_mut(i)) {
                    parents(v, rest, f);
                }
            }
            (Value::Array(items), Token::Each) => {
                for v in items {
                    parents(v, rest, f);
                }
            }
            _ => {}
        },
    }
}

/// The part of `value` the pointers reach (a pointer that ends here keeps all of it);
/// `None` when none reaches into it.
fn keep(value: &Value, pointers: &[&[Token]]) -> Option<Value> {
    if pointers.iter().any(|p| p.is_empty()) {
        return Some(value.clone());
    }
    match value {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let rests: Vec<&[Token]> = pointers
                    .iter()
                    .filter(|p| p[0] == Token::Key(k.clone()))
                    .map(|p| &p[1..])
                    .collect();
                if !rests.is_empty()
                    && let Some(kept) = keep(v, &rests)
                {
                    out.insert(k.clone(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, v) in items.iter().enumerate() {
                let rests: Vec<&[Token]> = pointers
                    .iter()
                    .filter(|p| match &p[0] {
                        Token::Each => true,
                        Token::Key(k) => index(k, items.len()) == Some(i),
                    })
                    .map(|p| &p[1..])
                    .collect();
                if !rests.is_empty()
                    && let Some(kept) = keep(v, &rests)
                {
                    out.push(kept);
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Pointer {
        Pointer::parse(s).unwrap()
    }

    #[test]
    fn pointers_follow_rfc_6901_with_a_star_for_every_item() {
        assert_eq!(p("/a~1b/~0c/*").tokens.len(), 3);
        assert!(Pointer::parse("").is_err());
        assert!(Pointer::parse("a").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert!(p("/a/b").ends_with_name());
        assert!(!p("/a/*").ends_with_name());
    }

    #[test]
    fn remove_rename_and_add_in_that_order() {
        let t = Transform {
            remove: vec![p("/items/*/secret"), p("/internal")],
            rename: vec![(p("/items/*/nm"), "name".into())],
            add: vec![
                (p("/source"), json!("portico")),
                (p("/items/*/seen"), json!(true)),
            ],
            ..Transform::default()
        };
        let mut v = json!({
            "internal": 1,
            "items": [{"nm": "a", "secret": "s1"}, {"nm": "b", "secret": "s2"}, 3]
        });
        assert!(t.apply(&mut v));
        assert_eq!(
            v,
            json!({
                "items": [{"name": "a", "seen": true}, {"name": "b", "seen": true}, 3],
                "source": "portico"
            })
        );
        // Pointers that reach nothing change nothing.
        let mut other = json!({"x": [1, 2]});
        assert!(
            !Transform {
                remove: vec![p("/y/z")],
                ..Transform::default()
            }
            .apply(&mut other)
        );
    }

    #[test]
    fn keep_projects_down_to_the_members_named() {
        let t = Transform {
            keep: vec![p("/items/*/id"), p("/total"), p("/meta/0")],
            ..Transform::default()
        };
        let mut v = json!({
            "items": [{"id": 1, "x": 1}, {"id": 2, "y": 2}, {"z": 3}],
            "total": 3,
            "meta": ["a", "b"],
            "other": {"deep": true}
        });
        assert!(t.apply(&mut v));
        assert_eq!(
            v,
            json!({"items": [{"id": 1}, {"id": 2}], "total": 3, "meta": ["a"]})
        );
        let mut none = json!({"a": 1});
        assert!(t.apply(&mut none));
        assert_eq!(none, json!({}));
    }
}
