//! Parameters as a request carries them, read back into JSON values by their `style` and
//! `explode` (OpenAPI 3.1 §4.8.12.4, the RFC 6570 forms) and then checked by their schema.
//!
//! Written by hand because this is the serialization table itself: no maintained crate reads
//! every style (simple, label, matrix, form, spaceDelimited, pipeDelimited, deepObject) for
//! every kind of value. Strings the schema wants as numbers or booleans are converted only
//! when they read as such; anything else stays a string, so the schema reports it with its
//! own words.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// Where a parameter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum In {
    /// A path segment.
    Path,
    /// The query string.
    Query,
    /// A header field.
    Header,
    /// A cookie.
    Cookie,
}

impl In {
    /// Its name in a document.
    pub fn as_str(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<In> {
        Some(match s {
            "path" => In::Path,
            "query" => In::Query,
            "header" => In::Header,
            "cookie" => In::Cookie,
            _ => return None,
        })
    }
}

/// How a parameter is serialized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `5`, `3,4,5`, `role,admin` (path, header).
    Simple,
    /// `.5`, `.3,4,5` or `.3.4.5` (path).
    Label,
    /// `;id=5`, `;id=3,4,5` or `;id=3;id=4` (path).
    Matrix,
    /// `id=5`, `id=3&id=4`, `id=3,4` (query, cookie).
    Form,
    /// `id=3%204%205` (query arrays).
    SpaceDelimited,
    /// `id=3|4|5` (query arrays).
    PipeDelimited,
    /// `id[role]=admin` (query objects).
    DeepObject,
}

impl Style {
    /// The style named `s`, if `location` may use it.
    pub(crate) fn parse(s: &str, location: In) -> Option<Style> {
        let style = match s {
            "simple" => Style::Simple,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            "form" => Style::Form,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            _ => return None,
        };
        let fits = match location {
            In::Path => matches!(style, Style::Simple | Style::Label | Style::Matrix),
            In::Query => matches!(
                style,
                Style::Form | Style::SpaceDelimited | Style::PipeDelimited | Style::DeepObject
            ),
            In::Header => style == Style::Simple,
            In::Cookie => style == Style::Form,
        };
        fits.then_some(style)
    }

    /// The style a location has when none is given.
    pub(crate) fn default_for(location: In) -> Style {
        match location {
            In::Path | In::Header => Style::Simple,
            In::Query | In::Cookie => Style::Form,
        }
    }
}

/// What JSON a string is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    /// Kept as a string.
    String,
    /// A whole number, when it reads as one.
    Integer,
    /// A number, when it reads as one.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// The shape of a parameter's value, from its schema: what the string is split into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One value.
    Primitive(Prim),
    /// A list of values.
    Array(Prim),
    /// Named values; `known` are the properties the schema names, `other` the rest.
    Object {
        /// Properties named by the schema, and how each reads.
        known: BTreeMap<String, Prim>,
        /// How other properties read.
        other: Prim,
    },
}

/// Reads a string as `prim` says, when it can.
pub(crate) fn typed(s: &str, prim: Prim) -> Value {
    match prim {
        Prim::Integer | Prim::Number => {
            if let Ok(n) = s.parse::<i64>() {
                return Value::Number(n.into());
            }
            if let Ok(n) = s.parse::<u64>() {
                return Value::Number(n.into());
            }
            if prim == Prim::Number
                && let Some(n) = s.parse::<f64>().ok().and_then(Number::from_f64)
            {
                return Value::Number(n);
            }
            Value::String(s.to_string())
        }
        Prim::Boolean => match s {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s.to_string()),
        },
        Prim::String => Value::String(s.to_string()),
    }
}

/// Percent-decodes one piece; `+` is a space in a query (as HTML forms send it).
pub(crate) fn decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    decode_cow(s, plus_is_space).map(Cow::into_owned)
}

/// As [`decode`], without a copy when there is nothing to decode.
fn decode_cow(s: &str, plus_is_space: bool) -> Result<Cow<'_, str>, String> {
    let plus = plus_is_space && s.contains('+');
    if !plus && !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let s = if plus {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .map(|d| Cow::Owned(d.into_owned()))
        .map_err(|_| "percent-encoded bytes that are not UTF-8".to_string())
}

fn split_list(s: &str, sep: char, prim: Prim) -> Value {
    if s.is_empty() {
        return Value::Array(Vec::new());
    }
    Value::Array(s.split(sep).map(|p| typed(p, prim)).collect())
}

/// `k1,v1,k2,v2` (`pairs`), or `k1=v1<sep>k2=v2` (exploded).
fn object(items: &[&str], exploded: bool, known: &BTreeMap<String, Prim>, other: Prim) -> Value {
    let prim = |k: &str| known.get(k).copied().unwrap_or(other);
    let mut m = Map::new();
    if exploded {
        for item in items {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            m.insert(k.to_string(), typed(v, prim(k)));
        }
    } else {
        for pair in items.chunks(2) {
            let k = pair[0];
            let v = pair.get(1).copied().unwrap_or("");
            m.insert(k.to_string(), typed(v, prim(k)));
        }
    }
    Value::Object(m)
}

/// A path parameter's value from its (still percent-encoded) segment.
pub(crate) fn path_value(
    raw: &str,
    name: &str,
    style: Style,
    explode: bool,
    shape: &Shape,
) -> Result<Value, String> {
    let body = match style {
        Style::Label => raw
            .strip_prefix('.')
            .ok_or("a label-style value starts with `.`")?,
        Style::Matrix => {
            let first = raw
                .strip_prefix(';')
                .ok_or("a matrix-style value starts with `;`")?;
            // `;id=5`, `;id=3,4`; exploded arrays repeat `;id=`, exploded objects name each
            // property.
            match (shape, explode) {
                (Shape::Object { .. }, true) => first,
                _ => {
                    let prefix = format!("{name}=");
                    if first == name {
                        ""
                    } else {
                        first
                            .strip_prefix(prefix.as_str())
                            .ok_or_else(|| format!("a matrix-style value starts with `;{name}=`"))?
                    }
                }
            }
        }
        _ => raw,
    };
    let (sep, exploded_sep) = match style {
        Style::Label => (',', '.'),
        Style::Matrix => (',', ';'),
        _ => (',', ','),
    };
    let decode_all = |parts: Vec<&str>| -> Result<Vec<String>, String> {
        parts.into_iter().map(|p| decode(p, false)).collect()
    };
    Ok(match shape {
        Shape::Primitive(p) => typed(&decode(body, false)?, *p),
        Shape::Array(p) => {
            let parts: Vec<&str> = if style == Style::Matrix && explode {
                let prefix = format!("{name}=");
                body.split(';')
                    .map(|s| s.strip_prefix(prefix.as_str()).unwrap_or(s))
                    .collect()
            } else if explode {
                body.split(exploded_sep).collect()
            } else {
                body.split(sep).collect()
            };
            if body.is_empty() {
                Value::Array(Vec::new())
            } else {
                Value::Array(decode_all(parts)?.iter().map(|s| typed(s, *p)).collect())
            }
        }
        Shape::Object { known, other } => {
            let parts: Vec<&str> = if explode {
                body.split(exploded_sep).collect()
            } else {
                body.split(sep).collect()
            };
            let decoded = decode_all(parts)?;
            let refs: Vec<&str> = decoded.iter().map(String::as_str).collect();
            if body.is_empty() {
                Value::Object(Map::new())
            } else {
                object(&refs, explode, known, *other)
            }
        }
    })
}

/// The query's `name=value` pairs, decoded.
pub(crate) type Pairs<'q> = Vec<(Cow<'q, str>, Cow<'q, str>)>;

/// The query's `name=value` pairs, decoded (borrowed from the query when nothing needed it).
pub(crate) fn query_pairs(query: &str) -> Result<Pairs<'_>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode_cow(k, true)?, decode_cow(v, true)?))
        })
        .collect()
}

/// A query parameter's value, `None` when the query does not have it.
pub(crate) fn query_value(
    pairs: &[(Cow<'_, str>, Cow<'_, str>)],
    name: &str,
    style: Style,
    explode: bool,
    shape: &Shape,
) -> Option<Value> {
    let named = || {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    };
    match (shape, style) {
        (Shape::Object { known, other }, Style::DeepObject) => {
            let prefix = format!("{name}[");
            let mut m = Map::new();
            for (k, v) in pairs {
                if let Some(prop) = k
                    .strip_prefix(prefix.as_str())
                    .and_then(|r| r.strip_suffix(']'))
                {
                    let prim = known.get(prop).copied().unwrap_or(*other);
                    m.insert(prop.to_string(), typed(v, prim));
                }
            }
            (!m.is_empty()).then_some(Value::Object(m))
        }
        (Shape::Object { known, .. }, Style::Form) if explode => {
            // Each property is a query parameter of its own; only those the schema names can
            // be told from the query's other parameters.
            let mut m = Map::new();
            for (k, v) in pairs {
                if let Some(prim) = known.get(k.as_ref()) {
                    m.insert(k.to_string(), typed(v, *prim));
                }
            }
            (!m.is_empty()).then_some(Value::Object(m))
        }
        (Shape::Object { known, other }, _) => {
            let v = named().next_back()?;
            let items: Vec<&str> = if v.is_empty() {
                Vec::new()
            } else {
                v.split(',').collect()
            };
            Some(object(&items, false, known, *other))
        }
        (Shape::Array(p), _) if explode => {
            let items: Vec<Value> = named().map(|v| typed(v, *p)).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        (Shape::Array(p), style) => {
            let v = named().next_back()?;
            let sep = match style {
                Style::SpaceDelimited => ' ',
                Style::PipeDelimited => '|',
                _ => ',',
            };
            Some(split_list(v, sep, *p))
        }
        (Shape::Primitive(p), _) => named().next_back().map(|v| typed(v, *p)),
    }
}

/// A header's (or a cookie's) value by the simple (or form) style.
pub(crate) fn simple_value(raw: &str, explode: bool, shape: &Shape) -> Value {
    match shape {
        Shape::Primitive(p) => typed(raw, *p),
        Shape::Array(p) => {
            if raw.is_empty() {
                return Value::Array(Vec::new());
            }
            Value::Array(raw.split(',').map(|s| typed(s.trim(), *p)).collect())
        }
        Shape::Object { known, other } => {
            let items: Vec<&str> = if raw.is_empty() {
                Vec::new()
            } else {
                raw.split(',').map(str::trim).collect()
            };
            object(&items, explode, known, *other)
        }
    }
}

/// The value of cookie `name` in `Cookie` field values (RFC 6265 §4.2.1: `a=1; b=2`).
pub(crate) fn cookie<'a>(fields: &[&'a str], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .flat_map(|f| f.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Shape {
        Shape::Object {
            known: [
                ("role".to_string(), Prim::String),
                ("n".to_string(), Prim::Integer),
            ]
            .into_iter()
            .collect(),
            other: Prim::String,
        }
    }

    /// The examples of OpenAPI 3.1 §4.8.12.4's table, for path parameters.
    #[test]
    fn path_styles_read_the_specifications_examples() {
        let int = Shape::Primitive(Prim::Integer);
        let arr = Shape::Array(Prim::Integer);
        let obj = obj();
        let strings = Shape::Array(Prim::String);
        let cases: Vec<(&str, Style, bool, &Shape, Value)> = vec![
            ("5", Style::Simple, false, &int, json!(5)),
            ("3,4,5", Style::Simple, false, &arr, json!([3, 4, 5])),
            ("3,4,5", Style::Simple, true, &arr, json!([3, 4, 5])),
            (
                "role,admin,n,7",
                Style::Simple,
                false,
                &obj,
                json!({"role": "admin", "n": 7}),
            ),
            (
                "role=admin,n=7",
                Style::Simple,
                true,
                &obj,
                json!({"role": "admin", "n": 7}),
            ),
            (".5", Style::Label, false, &int, json!(5)),
            (".3,4,5", Style::Label, false, &arr, json!([3, 4, 5])),
            (".3.4.5", Style::Label, true, &arr, json!([3, 4, 5])),
            (
                ".role=admin.n=7",
                Style::Label,
                true,
                &obj,
                json!({"role": "admin", "n": 7}),
            ),
            (";id=5", Style::Matrix, false, &int, json!(5)),
            (";id=3,4,5", Style::Matrix, false, &arr, json!([3, 4, 5])),
            (
                ";id=3;id=4;id=5",
                Style::Matrix,
                true,
                &arr,
                json!([3, 4, 5]),
            ),
            (
                ";id=role,admin,n,7",
                Style::Matrix,
                false,
                &obj,
                json!({"role": "admin", "n": 7}),
            ),
            (
                ";role=admin;n=7",
                Style::Matrix,
                true,
                &obj,
                json!({"role": "admin", "n": 7}),
            ),
            ("a%2Cb", Style::Simple, false, &strings, json!(["a,b"])),
        ];
        for (raw, style, explode, shape, want) in cases {
            assert_eq!(
                path_value(raw, "id", style, explode, shape).unwrap(),
                want,
                "{raw} {style:?} explode={explode}"
            );
        }
        assert!(path_value("5", "id", Style::Label, false, &int).is_err());
        assert!(path_value("%FF", "id", Style::Simple, false, &int).is_err());
    }

    #[test]
    fn query_styles_read_the_specifications_examples() {
        let arr = Shape::Array(Prim::Integer);
        fn pairs(q: &str) -> Pairs<'_> {
            query_pairs(q).unwrap()
        }
        let q = pairs("id=3&id=4&id=5&x=1");
        assert_eq!(
            query_value(&q, "id", Style::Form, true, &arr),
            Some(json!([3, 4, 5]))
        );
        let q = pairs("id=3,4,5");
        assert_eq!(
            query_value(&q, "id", Style::Form, false, &arr),
            Some(json!([3, 4, 5]))
        );
        let q = pairs("id=3%204%205");
        assert_eq!(
            query_value(&q, "id", Style::SpaceDelimited, false, &arr),
            Some(json!([3, 4, 5]))
        );
        let q = pairs("id=3|4|5");
        assert_eq!(
            query_value(&q, "id", Style::PipeDelimited, false, &arr),
            Some(json!([3, 4, 5]))
        );
        let q = pairs("role=admin&n=7&other=1");
        assert_eq!(
            query_value(&q, "id", Style::Form, true, &obj()),
            Some(json!({"role": "admin", "n": 7}))
        );
        let q = pairs("id=role,admin,n,7");
        assert_eq!(
            query_value(&q, "id", Style::Form, false, &obj()),
            Some(json!({"role": "admin", "n": 7}))
        );
        let q = pairs("id%5Brole%5D=admin&id[n]=7");
        assert_eq!(
            query_value(&q, "id", Style::DeepObject, true, &obj()),
            Some(json!({"role": "admin", "n": 7}))
        );
        let q = pairs("q=a+b%20c&n=x");
        assert_eq!(
            query_value(&q, "q", Style::Form, true, &Shape::Primitive(Prim::String)),
            Some(json!("a b c"))
        );
        // A value that does not read as its type stays a string, for the schema to refuse.
        assert_eq!(
            query_value(&q, "n", Style::Form, true, &Shape::Primitive(Prim::Integer)),
            Some(json!("x"))
        );
        assert_eq!(
            query_value(
                &q,
                "absent",
                Style::Form,
                true,
                &Shape::Primitive(Prim::Integer)
            ),
            None
        );
    }

    #[test]
    fn headers_and_cookies() {
        assert_eq!(
            simple_value("3, 4,5", false, &Shape::Array(Prim::Integer)),
            json!([3, 4, 5])
        );
        assert_eq!(cookie(&["a=1; b=\"x\"", "c=3"], "b"), Some("x"));
        assert_eq!(cookie(&["a=1; b=2"], "c"), None);
        assert_eq!(typed("1.5", Prim::Number), json!(1.5));
        assert_eq!(typed("1.5", Prim::Integer), json!("1.5"));
        assert_eq!(typed("true", Prim::Boolean), json!(true));
    }
}
