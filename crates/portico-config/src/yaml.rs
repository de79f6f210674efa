//! YAML text to a tree of nodes that remember where they came from.
//!
//! serde stops at the first error it meets; `check-config` must report every problem at once,
//! with its line and column. So the YAML is first loaded into this small tree (from
//! `saphyr-parser`'s events), and the reader in `read.rs` walks it, collecting problems as it
//! goes. Scalars stay strings until the reader knows what type a key wants, so there is no
//! guessing (`no` is not a boolean unless a boolean is expected, and then only `true`/`false`).

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::Problem;

/// A position in the source: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Loc {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl Loc {
    fn of(span: &Span) -> Loc {
        Loc {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// A YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: Kind,
    /// Where it starts.
    pub loc: Loc,
}

/// The shape of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `null`, `~` or nothing.
    Null,
    /// Any other scalar; `plain` is false when it was quoted or a block scalar.
    Scalar {
        /// The text.
        value: String,
        /// Written without quotes.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with scalar keys, in document order.
    Map(Vec<(String, Node, Node)>),
}

enum Frame {
    Seq(Loc, Vec<Node>),
    Map(Loc, Vec<(String, Node, Node)>, Option<(String, Node)>),
}

/// `${NAME}` references in the text, shielded from YAML's flow syntax.
///
/// A secret may be written `${NAME}` (an environment variable) wherever a scalar may stand.
/// In flow context (`[…]`, `{…}`) YAML ends a plain scalar at `{`, so `[${KEY}]` would not
/// parse. Before parsing, each reference is rewritten `$(NAME)`, which has the same length (no
/// line or column moves) and is a plain scalar in every context; the scalars that held one get
/// their `${NAME}` back. Nothing else in the text changes.
struct Shielded<'a> {
    text: std::borrow::Cow<'a, str>,
    /// Where each reference starts (in characters, as the parser counts) and its name.
    refs: Vec<(usize, &'a str)>,
}

fn shield(src: &str) -> Shielded<'_> {
    let mut refs = Vec::new();
    let mut out: Option<String> = None;
    let mut chars = 0;
    let mut rest = src;
    let mut done = 0;
    while let Some(at) = rest.find("${") {
        chars += rest[..at].chars().count();
        let after = &rest[at + 2..];
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let name = &after[..len];
        let starts_well = name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
        let consumed = if starts_well && after.as_bytes().get(len) == Some(&b'}') {
            let start = done + at;
            let o = out.get_or_insert_with(String::new);
            o.push_str(&src[o.len()..start]);
            o.push_str("$(");
            o.push_str(name);
            o.push(')');
            refs.push((chars, name));
            len + 3
        } else {
            2
        };
        chars += consumed;
        done += at + consumed;
        rest = &src[done..];
    }
    let text = match out {
        Some(mut o) => {
            o.push_str(&src[o.len()..]);
            std::borrow::Cow::Owned(o)
        }
        None => std::borrow::Cow::Borrowed(src),
    };
    Shielded { text, refs }
}

impl Shielded<'_> {
    /// A scalar's text with the references that stood in its span given back.
    fn restore(&self, value: String, span: &Span) -> String {
        let inside = self
            .refs
            .iter()
            .filter(|(at, _)| (span.start.index()..span.end.index()).contains(at));
        let mut value = value;
        for (_, name) in inside {
            value = value.replace(&format!("$({name})"), &format!("${{{name}}}"));
        }
        value
    }
}

/// Loads one YAML document. An empty document is `Null`.
pub fn load(src: &str) -> Result<Node, Problem> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    let shielded = shield(src);
    for event in Parser::new_from_str(&shielded.text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            Problem::at(
                Loc {
                    line: m.line(),
                    col: m.col() + 1,
                },
                "",
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        let loc = Loc::of(&span);
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Problem::at(loc, "", "only one YAML document is allowed"));
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(Problem::at(
                    loc,
                    "",
                    "YAML aliases are not supported; write the value out",
                ));
            }
            Event::Scalar(_, _, _, Some(_))
            | Event::SequenceStart(_, Some(_))
            | Event::MappingStart(_, Some(_)) => {
                return Err(Problem::at(loc, "", "YAML tags are not supported"));
            }
            Event::Scalar(value, style, _, None) => {
                let plain = style == ScalarStyle::Plain;
                let value = if shielded.refs.is_empty() {
                    value
                } else {
                    shielded.restore(value.into_owned(), &span).into()
                };
                let kind = if plain && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Kind::Null
                } else {
                    Kind::Scalar {
                        value: value.into_owned(),
                        plain,
                    }
                };
                Node { kind, loc }
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(loc, Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(loc, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(loc, items)) => Node {
                    kind: Kind::Seq(items),
                    loc,
                },
                _ => return Err(Problem::at(loc, "", "invalid YAML structure")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(loc, entries, None)) => Node {
                    kind: Kind::Map(entries),
                    loc,
                },
                _ => return Err(Problem::at(loc, "", "invalid YAML structure")),
            },
            _ => continue,
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                None => {
                    let key = match &node.kind {
                        Kind::Scalar { value, .. } => value.clone(),
                        _ => {
                            return Err(Problem::at(
                                node.loc,
                                "",
                                "mapping keys must be plain strings",
                            ));
                        }
                    };
                    if entries.iter().any(|(k, _, _)| *k == key) {
                        return Err(Problem::at(node.loc, &key, "duplicate key"));
                    }
                    *pending = Some((key, node));
                }
                Some((key, key_node)) => entries.push((key, key_node, node)),
            },
        }
    }
    Ok(root.unwrap_or(Node {
        kind: Kind::Null,
        loc: Loc { line: 1, col: 1 },
    }))
}

/// Whether a node nests deeper than `max` levels (checked without recursion, before anything
/// walks it recursively).
pub fn depth_over(node: &Node, max: usize) -> bool {
    let mut stack = vec![(node, 0usize)];
    while let Some((n, depth)) = stack.pop() {
        if depth > max {
            return true;
        }
        match &n.kind {
            Kind::Seq(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Kind::Map(entries) => stack.extend(entries.iter().map(|(_, _, v)| (v, depth + 1))),
            _ => {}
        }
    }
    false
}

/// A node as JSON, for files that hold documents (`portico apply`): a plain scalar that reads
/// as a JSON number, `true`, `false` or `null` is that; every other scalar is a string. A
/// document written as JSON comes back exactly as it was.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.kind {
        Kind::Null => Value::Null,
        Kind::Scalar { value, plain } => {
            if *plain
                && let Ok(v) = serde_json::from_str::<Value>(value)
                && !v.is_string()
                && !v.is_array()
                && !v.is_object()
            {
                return v;
            }
            Value::String(value.clone())
        }
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, _, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_maps_sequences_and_scalars_with_locations() {
        let n = load("a: 1\nb:\n  - x\n  - 'y'\nc: ~\n").unwrap();
        let Kind::Map(entries) = &n.kind else {
            panic!()
        };
        assert_eq!(entries[0].0, "a");
        assert_eq!(
            entries[0].2.kind,
            Kind::Scalar {
                value: "1".into(),
                plain: true
            }
        );
        assert_eq!(entries[0].2.loc, Loc { line: 1, col: 4 });
        let Kind::Seq(items) = &entries[1].2.kind else {
            panic!()
        };
        assert_eq!(
            items[1].kind,
            Kind::Scalar {
                value: "y".into(),
                plain: false
            }
        );
        assert_eq!(items[1].loc.line, 4);
        assert_eq!(entries[2].2.kind, Kind::Null);
    }

    #[test]
    fn refuses_duplicates_aliases_tags_and_bad_syntax() {
        assert!(
            load("a: 1\na: 2\n")
                .unwrap_err()
                .message
                .contains("duplicate")
        );
        assert!(
            load("a: &x 1\nb: *x\n")
                .unwrap_err()
                .message
                .contains("aliases")
        );
        assert!(load("a: !!str 1\n").unwrap_err().message.contains("tags"));
        let e = load("a: [1, 2\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e:?}");
        assert!(e.loc.is_some());
        assert_eq!(load("").unwrap().kind, Kind::Null);
    }

    #[test]
    fn references_stand_wherever_a_scalar_may() {
        // Plain in block and flow context, quoted, in a block scalar, as a key: each reads
        // back as written, and lines and columns do not move.
        let text = "a: ${A}\nb: [${B}, x]\nc: {k: ${C_1}}\nd: \"${D}\"\ne: |\n  ${E}\n${F}: 1\ng: $(G) ${H\n";
        let n = load(text).unwrap();
        let json = to_json(&n);
        assert_eq!(json["a"], "${A}");
        assert_eq!(json["b"], serde_json::json!(["${B}", "x"]));
        assert_eq!(json["c"]["k"], "${C_1}");
        assert_eq!(json["d"], "${D}");
        assert_eq!(json["e"], "${E}\n");
        assert_eq!(json["${F}"], 1);
        // Not references: left as they are.
        assert_eq!(json["g"], "$(G) ${H");
        let Kind::Map(entries) = &n.kind else {
            panic!()
        };
        assert_eq!(entries[2].2.loc, Loc { line: 3, col: 4 });
        // Text before a reference that is not ASCII keeps its place too.
        let n = load("é: [${A}, ${B}]\n").unwrap();
        assert_eq!(to_json(&n)["é"], serde_json::json!(["${A}", "${B}"]));
    }

    #[test]
    fn json_comes_back_as_it_was_written() {
        let text = r#"{"a": 1, "b": "1", "c": [true, "true", null, 1.5], "d": {"e": "x y"}}"#;
        let want: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(to_json(&load(text).unwrap()), want);
        let block = "a: 1\nb: '1'\nc: [true, 'true', ~, 1.5]\nd:\n  e: x y\n";
        assert_eq!(to_json(&load(block).unwrap()), want);
    }
}
