//! Schemas compiled once, when a document is loaded, and what a value's violations of one are.
//!
//! Validation is the `jsonschema` crate's (draft 2020-12; OpenAPI 3.0's dialect is rewritten
//! into it as the document loads, see `walk.rs`). What is Portico's own is bounding it against
//! a hostile document: patterns are compiled by the `regex` crate, which matches in linear
//! time, under a size limit; `format: regex` values are checked the same way; a value is
//! checked against at most [`MAX_VIOLATIONS`] problems; and the two markers that `walk.rs`
//! puts where a property is `readOnly` (in requests) or `writeOnly` (in responses) are
//! keywords of ours that refuse any value, so their violations say where such a property was
//! sent.

use std::sync::Arc;

use jsonschema::{Draft, Keyword, PatternOptions, Registry, ValidationError, Validator};
use serde_json::{Map, Value};

/// At most this many violations are reported for one value; past that, a client learns
/// enough, and a hostile value cannot make Portico write a long answer.
pub const MAX_VIOLATIONS: usize = 100;

/// The largest compiled form of a `pattern` (and of a `format: regex` value), in bytes: a
/// pattern that needs more is refused when the document is loaded.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The longest `format: regex` value that is compiled to be checked.
const REGEX_FORMAT_MAX_LEN: usize = 1024;

/// The keyword `walk.rs` puts in place of a `readOnly` property's schema in requests.
pub(crate) const READ_ONLY: &str = "x-portico-read-only";
/// The keyword `walk.rs` puts in place of a `writeOnly` property's schema in responses.
pub(crate) const WRITE_ONLY: &str = "x-portico-write-only";

/// A schema, compiled.
#[derive(Clone)]
pub struct Schema {
    validator: Arc<Validator>,
    /// Where the schema is: `FILE#POINTER`.
    pub location: String,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("location", &self.location)
            .finish()
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Schema) -> bool {
        self.location == other.location
    }
}

/// One way a value breaks a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Where in the value (an RFC 6901 JSON pointer, `` for the whole value).
    pub pointer: String,
    /// The keyword's place in the document: `FILE#POINTER`.
    pub schema: String,
    /// The keyword that failed (`type`, `required`, `readOnly`, …).
    pub keyword: String,
    /// What is wrong, without the value itself.
    pub detail: String,
}

impl Schema {
    /// Whether `value` is valid (no violation).
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }

    /// The violations of `value` (at most [`MAX_VIOLATIONS`]), `writeOnly` markers left out.
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        // Most values are valid: the yes-or-no check stops at the first problem and makes no
        // error values, so it answers them faster than collecting every violation would.
        if self.validator.is_valid(value) {
            return Vec::new();
        }
        self.collect(value, |k| k != WRITE_ONLY)
    }

    /// Removes from `value` every property a response may not carry (`writeOnly`); true when
    /// something was removed.
    pub fn strip_write_only(&self, value: &mut Value) -> bool {
        let found = self.collect(value, |k| k == WRITE_ONLY);
        let mut removed = false;
        // Deepest first, so that removing one never moves another.
        for v in found.iter().rev() {
            removed |= remove_at(value, &v.pointer);
        }
        removed
    }

    fn collect(&self, value: &Value, keep: impl Fn(&str) -> bool) -> Vec<Violation> {
        let mut out = Vec::new();
        for e in self.validator.iter_errors(value) {
            let keyword = e.kind().keyword().to_string();
            if !keep(&keyword) {
                continue;
            }
            if out.len() == MAX_VIOLATIONS {
                break;
            }
            let schema = e
                .absolute_keyword_location()
                .map(|u| display_location(u.as_str()))
                .unwrap_or_else(|| format!("{}{}", self.location, e.schema_path().as_str()));
            let keyword = match keyword.as_str() {
                READ_ONLY => "readOnly".to_string(),
                WRITE_ONLY => "writeOnly".to_string(),
                _ => keyword,
            };
            let at = e.instance_path().as_str().to_string();
            // A property the schema does not allow is pointed at itself, one by one.
            if let jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } =
                e.kind()
            {
                for name in unexpected {
                    out.push(Violation {
                        pointer: format!("{at}/{}", name.replace('~', "~0").replace('/', "~1")),
                        schema: schema.clone(),
                        keyword: keyword.clone(),
                        detail: "the property is not allowed here".to_string(),
                    });
                }
                continue;
            }
            out.push(Violation {
                pointer: at,
                schema,
                keyword,
                detail: e.masked().to_string(),
            });
        }
        out
    }
}

/// Removes the member or item at `pointer`; false when there was none.
fn remove_at(value: &mut Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(m)) => m.remove(&last).is_some(),
        _ => false,
    }
}

/// The base of the URIs documents are registered under (never fetched: validation is
/// offline). `request/` and `response/` hold each file's two views.
pub(crate) const BASE: &str = "https://openapi.portico.invalid/";

/// `FILE#POINTER` for a URI under [`BASE`].
fn display_location(uri: &str) -> String {
    let rest = uri.strip_prefix(BASE).unwrap_or(uri);
    let rest = rest
        .strip_prefix("request/")
        .or_else(|| rest.strip_prefix("response/"))
        .unwrap_or(rest);
    match rest.split_once('#') {
        Some((file, pointer)) => format!(
            "{file}#{}",
            percent_encoding::percent_decode_str(pointer).decode_utf8_lossy()
        ),
        None => rest.to_string(),
    }
}

/// A value that a custom keyword always refuses: it stands where a property may not be.
struct Refuse(&'static str);

impl<'i> Keyword<'i> for Refuse {
    fn validate(&self, _instance: &'i Value) -> Result<(), ValidationError<'i>> {
        Err(ValidationError::custom(self.0))
    }

    fn is_valid(&self, _instance: &'i Value) -> bool {
        false
    }
}

/// A `format: regex` value: compiled under the size limit, and not too long to compile.
fn is_regex(s: &str) -> bool {
    s.len() <= REGEX_FORMAT_MAX_LEN
        && regex::RegexBuilder::new(s)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .is_ok()
}

/// Whether `pattern` compiles within the limits (what `pattern` keywords must do).
pub(crate) fn pattern_problem(pattern: &str) -> Option<String> {
    match regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(_) => None,
        Err(regex::Error::CompiledTooBig(_)) => Some(format!(
            "the pattern compiles to more than {REGEX_SIZE_LIMIT} bytes"
        )),
        Err(e) => Some(format!(
            "the pattern is not one Portico runs (regular expressions without look-around or back-references): {}",
            e.to_string().lines().last().unwrap_or_default()
        )),
    }
}

/// Compiles the schema at `uri` (a document's URI and a JSON pointer fragment) against the
/// documents in `registry`.
pub(crate) fn compile(
    registry: &Registry<'_>,
    uri: &str,
    location: String,
) -> Result<Schema, String> {
    let root = Value::Object(Map::from_iter([(
        "$ref".to_string(),
        Value::String(uri.to_string()),
    )]));
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(registry)
        .offline()
        .with_pattern_options(
            PatternOptions::regex()
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT),
        )
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .with_format("regex", is_regex)
        .with_keyword(READ_ONLY, |_, _, _| {
            Ok(Box::new(Refuse(
                "the property is readOnly: a request may not set it",
            )))
        })
        .with_keyword(WRITE_ONLY, |_, _, _| {
            Ok(Box::new(Refuse(
                "the property is writeOnly: a response may not carry it",
            )))
        })
        .build(&root)
        .map_err(|e| e.masked().to_string())?;
    Ok(Schema {
        validator: Arc::new(validator),
        location,
    })
}

/// Compiles a schema that stands alone (its `$ref`s local to it): for schemas Portico writes
/// itself, such as the admin API's.
pub fn compile_value(schema: &Value, location: &str) -> Result<Schema, String> {
    let uri = format!("{BASE}request/{location}");
    let registry = Registry::new()
        .add(&uri, Draft::Draft202012.create_resource(schema.clone()))
        .and_then(|b| b.prepare())
        .map_err(|e| e.to_string())?;
    compile(&registry, &format!("{uri}#"), format!("{location}#"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_carry_pointers_keywords_and_no_values() {
        let s = compile_value(
            &json!({
                "type": "object",
                "required": ["name"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
                    "secret": {"type": "integer"}
                },
                "$defs": {"item": {"type": "object", "properties": {"name": {"type": "string"}}}}
            }),
            "t.json",
        )
        .unwrap();
        let v = s.violations(&json!({"items": [{"name": 5}], "secret": "hunter2"}));
        let found: Vec<(&str, &str)> = v
            .iter()
            .map(|v| (v.pointer.as_str(), v.keyword.as_str()))
            .collect();
        assert!(found.contains(&("", "required")), "{v:?}");
        assert!(found.contains(&("/items/0/name", "type")), "{v:?}");
        assert!(found.contains(&("/secret", "type")), "{v:?}");
        let item = v.iter().find(|v| v.pointer == "/items/0/name").unwrap();
        assert_eq!(item.schema, "t.json#/$defs/item/properties/name/type");
        assert!(v.iter().all(|v| !v.detail.contains("hunter2")), "{v:?}");
    }

    #[test]
    fn patterns_are_linear_and_bounded() {
        assert!(pattern_problem("^[a-z]+$").is_none());
        // Look-around and back-references are not regular: refused.
        assert!(pattern_problem("(a)\\1").is_some());
        assert!(pattern_problem("(?=a)").is_some());
        // A pattern that would compile to a huge automaton.
        assert!(pattern_problem("\\w{1000}\\w{1000}\\w{1000}").is_some());
        assert!(is_regex("^a+$"));
        assert!(!is_regex("(?=a)"));
        assert!(!is_regex(&"a".repeat(REGEX_FORMAT_MAX_LEN + 1)));
    }

    #[test]
    fn many_violations_are_capped() {
        let s = compile_value(
            &json!({"type": "array", "items": {"type": "string"}}),
            "t.json",
        )
        .unwrap();
        let many = Value::Array((0..1000).map(|i| json!(i)).collect());
        assert_eq!(s.violations(&many).len(), MAX_VIOLATIONS);
    }
}
