//! `--openapi`: the rows an API's own OpenAPI document lets the prober provoke per operation —
//! 405 on each path for a method it does not take, 400 for a parameter its schema refuses,
//! and with `--unsafe` 415 for a media type the body does not have and 422 for a JSON body
//! its schema refuses.
//!
//! Values are chosen with the document's own validators (`portico-openapi`): a path parameter
//! is filled with a value the operation takes, a bad value is one the operation's checks
//! refuse, an invalid body is one its schema refuses, so a verdict never rests on a guess.

use std::collections::BTreeMap;

use portico_http::Method;
use portico_openapi::{In, Operation, Parts};
use serde_json::Value;

/// A request's parts as the operation's checks read them.
#[derive(Default)]
struct Sample {
    path: BTreeMap<String, String>,
    query: Option<String>,
}

impl Parts for Sample {
    fn path_param(&self, name: &str) -> Option<&str> {
        self.path.get(name).map(String::as_str)
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, _: &str) -> Vec<&str> {
        Vec::new()
    }
}

/// Values tried for a parameter: the first the operation takes fills it; the first it
/// refuses makes a 400.
const CANDIDATES: [&str; 6] = ["1", "a", "true", "-1", "portico-probe", "99999999999"];

/// The path parameters of `op` filled with values it takes (`None` when one takes none).
fn fill(op: &Operation) -> Option<BTreeMap<String, String>> {
    let mut path = BTreeMap::new();
    for p in op.parameters.iter().filter(|p| p.location == In::Path) {
        let ok = CANDIDATES.into_iter().find(|c| {
            let mut s = Sample::default();
            s.path.insert(p.name.clone(), (*c).to_string());
            !op.check_parameters(&s)
                .iter()
                .any(|x| x.location == In::Path && x.name == p.name)
        })?;
        path.insert(p.name.clone(), ok.to_string());
    }
    Some(path)
}

/// The operation's path with its parameters put in.
fn concrete(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// One request a per-operation row sends, and what it wants back.
pub(crate) struct Planned {
    /// The contract row.
    pub(crate) code: u16,
    /// Which operation (or path) and what is wrong with the request, for the report.
    pub(crate) about: String,
    /// The request line's method and target, and extra header lines.
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) fields: String,
    /// A body to send.
    pub(crate) body: Option<String>,
}

/// The requests the document lets the prober send, paths under `base`.
pub(crate) fn plan(ops: &[Operation], base: &str, unsafe_probes: bool) -> Vec<Planned> {
    let mut out = Vec::new();
    // 405: each path, a method none of its operations has (GET first, it is safe; else a
    // safe method no API takes).
    let mut by_path: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        by_path.entry(op.path.as_str()).or_default().push(op);
    }
    for (path, ops_here) in &by_path {
        let taken: Vec<Method> = ops_here.iter().map(|o| o.method).collect();
        let Some(values) = fill(ops_here[0]) else {
            continue;
        };
        let method = if taken.contains(&Method::Get) {
            "TRACE"
        } else {
            "GET"
        };
        if method == "TRACE" && taken.contains(&Method::Trace) {
            continue;
        }
        out.push(Planned {
            code: 405,
            about: format!("{method} {path}"),
            method: method.to_string(),
            target: format!("{base}{}", concrete(path, &values)),
            fields: String::new(),
            body: None,
        });
    }
    for op in ops {
        let safe = matches!(op.method, Method::Get | Method::Head);
        if !safe && !unsafe_probes {
            continue;
        }
        let Some(values) = fill(op) else { continue };
        let target = format!("{base}{}", concrete(&op.path, &values));
        // 400: a parameter given a value the operation refuses.
        if let Some((location, name, bad)) = bad_parameter(op, &values) {
            let (t, where_) = match location {
                In::Path => {
                    let mut v = values.clone();
                    v.insert(name.clone(), bad.to_string());
                    (format!("{base}{}", concrete(&op.path, &v)), "path")
                }
                _ => (format!("{target}?{name}={bad}"), "query"),
            };
            out.push(Planned {
                code: 400,
                about: format!("{} ({where_} parameter `{name}` = `{bad}`)", op.id),
                method: op.method.as_str().to_string(),
                target: t,
                fields: String::new(),
                body: None,
            });
        }
        let Some(body) = &op.body else { continue };
        if body.media.is_empty() {
            continue;
        }
        // 415: a media type the body does not take, announced and never sent.
        out.push(Planned {
            code: 415,
            about: format!("{} (Content-Type: application/x-portico-probe)", op.id),
            method: op.method.as_str().to_string(),
            target: target.clone(),
            fields: "Content-Type: application/x-portico-probe\r\nContent-Length: 16\r\nExpect: 100-continue\r\n".into(),
            body: None,
        });
        // 422: JSON its schema refuses.
        let Some(schema) = op.body_schema(b"application/json") else {
            continue;
        };
        let candidates = [
            Value::Array(Vec::new()),
            Value::String("portico-probe".into()),
            Value::from(0),
            Value::Object(Default::default()),
            Value::Null,
        ];
        if let Some(bad) = candidates.into_iter().find(|c| !schema.is_valid(c)) {
            let text = bad.to_string();
            out.push(Planned {
                code: 422,
                about: format!("{} (body {text})", op.id),
                method: op.method.as_str().to_string(),
                target,
                fields: format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    text.len()
                ),
                body: Some(text),
            });
        }
    }
    out
}

/// A parameter and a value the operation refuses for it (path parameters, then query ones).
fn bad_parameter(
    op: &Operation,
    path: &BTreeMap<String, String>,
) -> Option<(In, String, &'static str)> {
    for p in op
        .parameters
        .iter()
        .filter(|p| matches!(p.location, In::Path | In::Query))
    {
        for bad in CANDIDATES {
            let mut s = Sample {
                path: path.clone(),
                query: None,
            };
            match p.location {
                In::Path => {
                    s.path.insert(p.name.clone(), bad.to_string());
                }
                _ => s.query = Some(format!("{}={bad}", p.name)),
            }
            let refused = op
                .check_parameters(&s)
                .iter()
                .any(|x| x.location == p.location && x.name == p.name);
            if refused {
                return Some((p.location, p.name.clone(), bad));
            }
        }
    }
    None
}
