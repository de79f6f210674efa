//! An API's OpenAPI document as Portico uses it: one route per operation, the operation's
//! parameters read by their style and checked by their schemas, its request bodies and
//! responses checked by theirs.
//!
//! Pure: a document comes in as JSON (the configuration reads the files, YAML or JSON, and
//! hands over the others its `$ref`s name through [`Read`]); every schema is compiled once,
//! when the document is loaded, and a request only runs compiled validators. Whatever in a
//! document cannot be used (a `$ref` that leads nowhere, a style a location cannot have, a
//! schema that is not one, a pattern that is not a linear-time regular expression) is a
//! [`Problem`] naming the file and the JSON pointer, found before anything is served.

#![forbid(unsafe_code)]

mod params;
mod schema;
mod walk;

use std::collections::BTreeMap;

use jsonschema::{Draft, Registry};
use portico_http::Method;
use portico_http::negotiate::MediaType;
use serde_json::Value;

pub use params::{In, Prim, Shape, Style};
pub use schema::{MAX_VIOLATIONS, Schema, Violation, compile_value};
pub use walk::{MAX_DEPTH, Read, Version};

use walk::{Files, Place, child};

/// Something in a document that Portico cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (as the configuration named it, or as a `$ref` did).
    pub file: String,
    /// Where in it: an RFC 6901 JSON pointer.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(file: &str, pointer: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_string(),
            pointer: pointer.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}: {}", self.file, self.pointer, self.message)
    }
}

/// A loaded document: its operations, each ready to check requests and responses.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The document's OpenAPI version.
    pub version: Version,
    /// Its operations, in document order.
    pub operations: Vec<Operation>,
}

/// One operation (a method on a path).
#[derive(Clone, Debug)]
pub struct Operation {
    /// `operationId`, or one made from the method and path (`get_pets_petId`).
    pub id: String,
    /// The method.
    pub method: Method,
    /// The path as the document writes it (`/pets/{petId}`).
    pub path: String,
    /// Where the operation is in the main file.
    pub pointer: String,
    /// Its parameters (the path item's and its own), headers OpenAPI says to ignore left out.
    pub parameters: Vec<Parameter>,
    /// Its request body, when it declares one.
    pub body: Option<Body>,
    /// Its responses, by status.
    pub responses: Vec<Response>,
    /// Whether a response schema may have `writeOnly` properties to remove.
    write_only: bool,
}

/// A parameter of an operation.
#[derive(Clone, Debug)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub location: In,
    /// Whether a request must have it.
    pub required: bool,
    style: Style,
    explode: bool,
    shape: Shape,
    /// Its schema; for a parameter given by `content`, the schema of its JSON value.
    schema: Option<Schema>,
    /// Given by `content` (a JSON value), not by `schema`.
    json: bool,
}

/// A request body: whether one is required, and the media types it may have.
#[derive(Clone, Debug)]
pub struct Body {
    /// A request without a body is refused.
    pub required: bool,
    /// Its media types (ranges allowed), each with its schema when it has one.
    pub media: Vec<(MediaType, Option<Schema>)>,
}

/// What a response with a status may be.
#[derive(Clone, Debug)]
pub struct Response {
    /// Which statuses.
    pub status: StatusKey,
    /// Its media types, each with its schema when it has one; empty when it has no content.
    pub media: Vec<(MediaType, Option<Schema>)>,
}

/// The statuses a response object stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKey {
    /// One status.
    Code(u16),
    /// A class: `2XX` is `Class(2)`.
    Class(u16),
    /// `default`: any status no other key names.
    Default,
}

/// One problem with a request's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamProblem {
    /// Where the parameter is.
    pub location: In,
    /// Its name.
    pub name: String,
    /// Where in its value (a JSON pointer; `` for the whole value).
    pub pointer: String,
    /// What is wrong.
    pub detail: String,
}

/// What a request's parameters are read from.
pub trait Parts {
    /// The raw (percent-encoded) value of path parameter `name`.
    fn path_param(&self, name: &str) -> Option<&str>;
    /// The raw query string, without `?`.
    fn query(&self) -> Option<&str>;
    /// The field lines of header `name` (lower case).
    fn header(&self, name: &str) -> Vec<&str>;
}

/// What a response may be, for one status and content type.
#[derive(Debug)]
pub enum ResponseRule<'a> {
    /// A JSON body this schema checks.
    Schema(&'a Schema),
    /// Declared, with nothing to check (not JSON, or no schema).
    Unchecked,
    /// The operation declares no response with this status (and no `default`).
    UndeclaredStatus,
    /// The status is declared, but not with this content type.
    UndeclaredMedia,
}

/// Whether a `Content-Type` value is JSON: `application/json` or a `+json` type.
pub fn is_json(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let Some(slash) = essence.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (kind, subtype) = (&essence[..slash], &essence[slash + 1..]);
    (kind.eq_ignore_ascii_case(b"application") && subtype.eq_ignore_ascii_case(b"json"))
        || (subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// The most specific of `media` that takes `content_type`.
fn pick<'a>(
    media: &'a [(MediaType, Option<Schema>)],
    content_type: &[u8],
) -> Option<&'a (MediaType, Option<Schema>)> {
    media
        .iter()
        .filter(|(m, _)| m.accepts(content_type))
        .max_by_key(|(m, _)| {
            let kind = u8::from(m.kind != "*");
            let sub = u8::from(m.subtype != "*") + u8::from(!m.subtype.starts_with('*'));
            (kind, sub, m.params.len())
        })
}

impl Operation {
    /// What the operation's request bodies may be (its `requestBody`'s media types).
    pub fn consumes(&self) -> Vec<MediaType> {
        self.body
            .as_ref()
            .map(|b| b.media.iter().map(|(m, _)| m.clone()).collect())
            .unwrap_or_default()
    }

    /// What its successful responses are: the media types of its 2xx responses (of
    /// `default` when it has none), in document order. Empty when one of them is a range
    /// (`*/*`, `image/*`): then there is nothing exact to hold `Accept` to.
    pub fn produces(&self) -> Vec<MediaType> {
        let success: Vec<&Response> = self
            .responses
            .iter()
            .filter(|r| match r.status {
                StatusKey::Code(c) => (200..300).contains(&c),
                StatusKey::Class(c) => c == 2,
                StatusKey::Default => false,
            })
            .collect();
        let chosen: Vec<&Response> = if success.is_empty() {
            self.responses
                .iter()
                .filter(|r| r.status == StatusKey::Default)
                .collect()
        } else {
            success
        };
        let mut out: Vec<MediaType> = Vec::new();
        for r in chosen {
            for (m, _) in &r.media {
                if m.is_wildcard() {
                    return Vec::new();
                }
                if !out.contains(m) {
                    out.push(m.clone());
                }
            }
        }
        out
    }

    /// Whether a request must carry a body.
    pub fn body_required(&self) -> bool {
        self.body.as_ref().is_some_and(|b| b.required)
    }

    /// The schema a JSON body of this `Content-Type` is checked against, when there is one.
    pub fn body_schema(&self, content_type: &[u8]) -> Option<&Schema> {
        if !is_json(content_type) {
            return None;
        }
        pick(&self.body.as_ref()?.media, content_type)?.1.as_ref()
    }

    /// Whether its responses may carry `writeOnly` properties that must be removed (then
    /// every JSON response with a schema is looked into).
    pub fn strips_write_only(&self) -> bool {
        self.write_only
            && self
                .responses
                .iter()
                .any(|r| r.media.iter().any(|(_, s)| s.is_some()))
    }

    /// What a response with `status` and `content_type` (`None`: no body) may be.
    pub fn response_rule(&self, status: u16, content_type: Option<&[u8]>) -> ResponseRule<'_> {
        let found = self
            .responses
            .iter()
            .find(|r| r.status == StatusKey::Code(status))
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|r| r.status == StatusKey::Class(status / 100))
            })
            .or_else(|| {
                self.responses
                    .iter()
                    .find(|r| r.status == StatusKey::Default)
            });
        let Some(resp) = found else {
            return ResponseRule::UndeclaredStatus;
        };
        let Some(ct) = content_type else {
            return ResponseRule::Unchecked;
        };
        if resp.media.is_empty() {
            return ResponseRule::UndeclaredMedia;
        }
        match pick(&resp.media, ct) {
            None => ResponseRule::UndeclaredMedia,
            Some((_, Some(schema))) if is_json(ct) => ResponseRule::Schema(schema),
            Some(_) => ResponseRule::Unchecked,
        }
    }

    /// Every problem with a request's parameters (none: they are fine).
    pub fn check_parameters(&self, parts: &dyn Parts) -> Vec<ParamProblem> {
        let mut out = Vec::new();
        let query = parts.query().map(params::query_pairs);
        for p in &self.parameters {
            let problem = |pointer: &str, detail: String| ParamProblem {
                location: p.location,
                name: p.name.clone(),
                pointer: pointer.to_string(),
                detail,
            };
            let value = match p.read(parts, query.as_ref()) {
                Ok(Some(v)) => v,
                Ok(None) if p.required => {
                    out.push(problem("", "a required parameter is missing".to_string()));
                    continue;
                }
                Ok(None) => continue,
                Err(detail) => {
                    out.push(problem("", detail));
                    continue;
                }
            };
            if let Some(schema) = &p.schema {
                for v in schema.violations(&value) {
                    if out.len() >= MAX_VIOLATIONS {
                        return out;
                    }
                    out.push(problem(&v.pointer, v.detail));
                }
            }
        }
        out
    }
}

impl Parameter {
    /// The parameter's value in a request, `None` when the request does not have it.
    fn read(
        &self,
        parts: &dyn Parts,
        query: Option<&Result<params::Pairs<'_>, String>>,
    ) -> Result<Option<Value>, String> {
        let raw: Option<String> = match self.location {
            In::Path => {
                let Some(raw) = parts.path_param(&self.name) else {
                    return Ok(None);
                };
                if self.json {
                    Some(params::decode(raw, false)?)
                } else {
                    return params::path_value(
                        raw,
                        &self.name,
                        self.style,
                        self.explode,
                        &self.shape,
                    )
                    .map(Some);
                }
            }
            In::Query => {
                let pairs = match query {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(e.clone()),
                    Some(Ok(p)) => p,
                };
                if self.json {
                    pairs
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == self.name)
                        .map(|(_, v)| v.to_string())
                } else {
                    return Ok(params::query_value(
                        pairs,
                        &self.name,
                        self.style,
                        self.explode,
                        &self.shape,
                    ));
                }
            }
            In::Header => {
                let lines = parts.header(&self.name.to_ascii_lowercase());
                if lines.is_empty() {
                    return Ok(None);
                }
                let joined = lines.join(", ");
                if self.json {
                    Some(joined)
                } else {
                    return Ok(Some(params::simple_value(
                        &joined,
                        self.explode,
                        &self.shape,
                    )));
                }
            }
            In::Cookie => {
                let lines = parts.header("cookie");
                let Some(v) = params::cookie(&lines, &self.name) else {
                    return Ok(None);
                };
                let v = params::decode(v, false)?;
                if self.json {
                    Some(v)
                } else {
                    return Ok(Some(params::simple_value(&v, self.explode, &self.shape)));
                }
            }
        };
        match raw {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|_| "the value is not JSON, as the parameter's content says".to_string()),
        }
    }
}

/// The HTTP methods an OpenAPI path item may have.
const METHODS: [(&str, Method); 8] = [
    ("get", Method::Get),
    ("put", Method::Put),
    ("post", Method::Post),
    ("delete", Method::Delete),
    ("options", Method::Options),
    ("head", Method::Head),
    ("patch", Method::Patch),
    ("trace", Method::Trace),
];

/// What a schema root will be compiled as, once every file's views are ready.
enum Slot {
    Param(usize, usize),
    Body(usize, usize),
    Response(usize, usize, usize),
}

/// Loads the document `root`, read from the file `main`; `read` gives the files its
/// `$ref`s name (relative to `main`'s directory).
pub fn load(main: &str, root: Value, read: Read<'_>) -> Result<Spec, Vec<Problem>> {
    let mut files = Files::gather(main, root, read)?;
    let mut operations: Vec<Operation> = Vec::new();
    let mut slots: Vec<(Slot, Place, bool)> = Vec::new();
    let root_place: Place = (main.to_string(), String::new());
    let paths = match files.get(&child(&root_place, "paths")).cloned() {
        Some(Value::Object(p)) => p,
        Some(_) => {
            files.problem(&child(&root_place, "paths"), "`paths` is a mapping");
            return Err(files.problems);
        }
        None => {
            files.problem(&root_place, "the document has no `paths`");
            return Err(files.problems);
        }
    };
    for path in paths.keys() {
        let item_place = child(&child(&root_place, "paths"), path);
        if !path.starts_with('/') {
            files.problem(&item_place, "a path starts with `/`");
            continue;
        }
        let Some((item_place, item)) = files.deref(item_place) else {
            continue;
        };
        let shared = read_parameters(&mut files, &item_place, &item);
        for (key, method) in METHODS {
            if item.get(key).is_none() {
                continue;
            }
            let op_place = child(&item_place, key);
            if let Some(op) = read_operation(
                &mut files,
                &op_place,
                path,
                method,
                &shared,
                &mut slots,
                operations.len(),
            ) {
                if let Some(other) = operations.iter().find(|o| o.id == op.id) {
                    files.problem(
                        &child(&op_place, "operationId"),
                        format!(
                            "`{}` is also the id of {} {}",
                            op.id, other.method, other.path
                        ),
                    );
                    continue;
                }
                operations.push(op);
            }
        }
    }
    if operations.is_empty() && files.problems.is_empty() {
        files.problem(
            &child(&root_place, "paths"),
            "the document has no operations",
        );
    }
    if !files.problems.is_empty() {
        return Err(files.problems);
    }
    compile_slots(&mut files, &mut operations, slots)?;
    for op in &mut operations {
        op.write_only = files.write_only;
    }
    Ok(Spec {
        version: files.version,
        operations,
    })
}

/// Builds the registry of every file's two views and compiles each schema root.
fn compile_slots(
    files: &mut Files,
    operations: &mut [Operation],
    slots: Vec<(Slot, Place, bool)>,
) -> Result<(), Vec<Problem>> {
    let mut builder = Registry::new();
    for (view, docs) in [("request", &files.request), ("response", &files.response)] {
        for (name, doc) in docs {
            builder = match builder.add(
                format!("{}{view}/{name}", schema::BASE),
                Draft::Draft202012.create_resource(doc.clone()),
            ) {
                Ok(b) => b,
                Err(e) => {
                    return Err(vec![Problem::new(
                        name,
                        "",
                        format!("cannot register: {e}"),
                    )]);
                }
            };
        }
    }
    let registry = builder.prepare().map_err(|e| {
        vec![Problem::new(
            &files.main,
            "",
            format!("cannot resolve: {e}"),
        )]
    })?;
    let mut cache: BTreeMap<(Place, bool), Schema> = BTreeMap::new();
    for (slot, place, response) in slots {
        let key = (place.clone(), response);
        let compiled = match cache.get(&key) {
            Some(s) => s.clone(),
            None => {
                let view = if response { "response" } else { "request" };
                let uri = format!("{}{view}/{}#{}", schema::BASE, place.0, fragment(&place.1));
                match schema::compile(&registry, &uri, format!("{}#{}", place.0, place.1)) {
                    Ok(s) => {
                        cache.insert(key, s.clone());
                        s
                    }
                    Err(e) => {
                        files.problem(&place, format!("cannot compile the schema: {e}"));
                        continue;
                    }
                }
            }
        };
        match slot {
            Slot::Param(o, p) => operations[o].parameters[p].schema = Some(compiled),
            Slot::Body(o, m) => {
                if let Some(b) = operations[o].body.as_mut() {
                    b.media[m].1 = Some(compiled);
                }
            }
            Slot::Response(o, r, m) => operations[o].responses[r].media[m].1 = Some(compiled),
        }
    }
    if files.problems.is_empty() {
        Ok(())
    } else {
        Err(std::mem::take(&mut files.problems))
    }
}

/// A JSON pointer as a URI fragment.
fn fragment(pointer: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'<')
        .add(b'>')
        .add(b'[')
        .add(b'\\')
        .add(b']')
        .add(b'^')
        .add(b'`')
        .add(b'{')
        .add(b'|')
        .add(b'}');
    percent_encoding::utf8_percent_encode(pointer, SET).to_string()
}

/// A raw parameter object, where it is, before its schema is compiled.
type RawParam = (Place, Value);

/// The `parameters` of a path item or an operation, each followed to what it stands for.
fn read_parameters(files: &mut Files, at: &Place, obj: &Value) -> Vec<RawParam> {
    let Some(list) = obj.get("parameters") else {
        return Vec::new();
    };
    let place = child(at, "parameters");
    let Some(items) = list.as_array() else {
        files.problem(&place, "`parameters` is a list");
        return Vec::new();
    };
    (0..items.len())
        .filter_map(|i| files.deref(child(&place, &i.to_string())))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn read_operation(
    files: &mut Files,
    at: &Place,
    path: &str,
    method: Method,
    shared: &[RawParam],
    slots: &mut Vec<(Slot, Place, bool)>,
    index: usize,
) -> Option<Operation> {
    let before = files.problems.len();
    let op = files.get(at).cloned()?;
    let id = match op.get("operationId") {
        None => derived_id(method, path),
        Some(Value::String(id))
            if !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            id.clone()
        }
        Some(_) => {
            files.problem(
                &child(at, "operationId"),
                "an operationId names a route: letters, digits, `-`, `_` and `.`",
            );
            String::new()
        }
    };
    // The operation's parameters override the path item's of the same name and place.
    let mut raw: Vec<RawParam> = shared.to_vec();
    for p in read_parameters(files, at, &op) {
        let key = |v: &Value| (v.get("name").cloned(), v.get("in").cloned());
        raw.retain(|(_, q)| key(q) != key(&p.1));
        raw.push(p);
    }
    let mut parameters = Vec::new();
    for (place, p) in raw {
        if let Some(param) = read_parameter(files, &place, &p) {
            if parameters
                .iter()
                .any(|q: &Parameter| q.name == param.name && q.location == param.location)
            {
                files.problem(&place, format!("`{}` is listed twice", param.name));
                continue;
            }
            let ignored = param.location == In::Header
                && ["accept", "content-type", "authorization"]
                    .contains(&param.name.to_ascii_lowercase().as_str());
            if ignored {
                continue;
            }
            if let Some(schema_place) = param_schema_place(&place, &p) {
                slots.push((Slot::Param(index, parameters.len()), schema_place, false));
            }
            parameters.push(param);
        }
    }
    check_path_parameters(files, at, path, &parameters);
    let body = match op.get("requestBody") {
        None => None,
        Some(_) => {
            let (place, b) = files.deref(child(at, "requestBody"))?;
            let media = read_content(files, &place, &b, true);
            for (i, (_, has)) in media.iter().enumerate() {
                if let Some(s) = has {
                    slots.push((Slot::Body(index, i), s.clone(), false));
                }
            }
            if media.is_empty() && files.problems.len() == before {
                files.problem(&place, "a request body lists its media types in `content`");
            }
            Some(Body {
                required: b.get("required") == Some(&Value::Bool(true)),
                media: media.into_iter().map(|(m, _)| (m, None)).collect(),
            })
        }
    };
    let responses = read_responses(files, at, &op, slots, index);
    (files.problems.len() == before).then(|| Operation {
        id,
        method,
        path: path.to_string(),
        pointer: at.1.clone(),
        parameters,
        body,
        responses,
        write_only: false,
    })
}

/// `get_pets_petId` for `GET /pets/{petId}`.
fn derived_id(method: Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(seg.chars().filter_map(|c| match c {
            '{' | '}' => None,
            c if c.is_ascii_alphanumeric() || "-.".contains(c) => Some(c),
            _ => Some('_'),
        }));
    }
    id
}

/// Every `{name}` of the path has a path parameter, and every path parameter a `{name}`.
fn check_path_parameters(files: &mut Files, at: &Place, path: &str, parameters: &[Parameter]) {
    let names: Vec<&str> = path
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(n, _)| n))
        .collect();
    for n in &names {
        if !parameters
            .iter()
            .any(|p| p.location == In::Path && p.name == *n)
        {
            files.problem(at, format!("the path's `{{{n}}}` has no path parameter"));
        }
    }
    for p in parameters.iter().filter(|p| p.location == In::Path) {
        if !names.contains(&p.name.as_str()) {
            files.problem(
                at,
                format!("the path parameter `{}` is not in the path", p.name),
            );
        }
    }
}

/// Where a parameter's schema is: `schema`, or its one `content` entry's.
fn param_schema_place(place: &Place, p: &Value) -> Option<Place> {
    if p.get("schema").is_some() {
        return Some(child(place, "schema"));
    }
    let (media, m) = p.get("content")?.as_object()?.iter().next()?;
    m.get("schema")?;
    Some(child(&child(&child(place, "content"), media), "schema"))
}

fn read_parameter(files: &mut Files, place: &Place, p: &Value) -> Option<Parameter> {
    let before = files.problems.len();
    let name = match p.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            files.problem(&child(place, "name"), "a parameter has a `name`");
            String::new()
        }
    };
    let location = match p.get("in").and_then(Value::as_str).and_then(In::parse) {
        Some(l) => l,
        None => {
            files.problem(&child(place, "in"), "`in` is path, query, header or cookie");
            return None;
        }
    };
    let required = match p.get("required") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            files.problem(&child(place, "required"), "`required` is true or false");
            false
        }
    };
    if location == In::Path && !required {
        files.problem(
            &child(place, "required"),
            "a path parameter is required (`required: true`)",
        );
    }
    let style = match p.get("style") {
        None => Style::default_for(location),
        Some(v) => match v.as_str().and_then(|s| Style::parse(s, location)) {
            Some(s) => s,
            None => {
                files.problem(
                    &child(place, "style"),
                    format!(
                        "style {v} is not one a {} parameter can have",
                        location.as_str()
                    ),
                );
                Style::default_for(location)
            }
        },
    };
    let explode = match p.get("explode") {
        None => style == Style::Form,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            files.problem(&child(place, "explode"), "`explode` is true or false");
            false
        }
    };
    let json = match (p.get("schema"), p.get("content")) {
        (Some(_), None) => false,
        (None, Some(Value::Object(c))) if c.len() == 1 => {
            let media = c.keys().next().map(String::as_str).unwrap_or_default();
            if !is_json(media.as_bytes()) {
                files.problem(
                    &child(place, "content"),
                    format!("a parameter's content is read as JSON; `{media}` is not"),
                );
            }
            true
        }
        _ => {
            files.problem(
                place,
                "a parameter has `schema`, or `content` with one media type",
            );
            false
        }
    };
    let shape = match param_schema_place(place, p) {
        Some(s) if !json => {
            if !files.schema_root(&s) {
                return None;
            }
            shape_of(files, &s)
        }
        Some(s) => {
            if !files.schema_root(&s) {
                return None;
            }
            Shape::Primitive(Prim::String)
        }
        None => Shape::Primitive(Prim::String),
    };
    if style == Style::DeepObject && !matches!(shape, Shape::Object { .. }) {
        files.problem(
            &child(place, "style"),
            "deepObject is for parameters whose schema is an object",
        );
    }
    (files.problems.len() == before).then_some(Parameter {
        name,
        location,
        required,
        style,
        explode,
        shape,
        schema: None,
        json,
    })
}

/// The shape of the (request view's) schema at `place`, following `$ref`s.
fn shape_of(files: &Files, place: &Place) -> Shape {
    let Some(schema) = resolved(files, place) else {
        return Shape::Primitive(Prim::String);
    };
    match main_type(&schema).as_deref() {
        Some("array") => {
            let item = schema
                .get("items")
                .map(|_| child_resolved(files, place, &schema, "items"))
                .and_then(|v| main_type(&v))
                .map_or(Prim::String, |t| prim(&t));
            Shape::Array(item)
        }
        Some("object") => {
            let mut known = BTreeMap::new();
            if let Some(Value::Object(props)) = schema.get("properties") {
                for k in props.keys() {
                    let p = child_resolved(files, place, &schema, &format!("properties/{k}"));
                    known.insert(k.clone(), main_type(&p).map_or(Prim::String, |t| prim(&t)));
                }
            }
            let other = schema
                .get("additionalProperties")
                .and_then(main_type)
                .map_or(Prim::String, |t| prim(&t));
            Shape::Object { known, other }
        }
        Some(t) => Shape::Primitive(prim(t)),
        None => Shape::Primitive(Prim::String),
    }
}

/// The schema at `place` in the request view, its `$ref`s followed.
fn resolved(files: &Files, place: &Place) -> Option<Value> {
    let mut at = place.clone();
    for _ in 0..16 {
        let v = files.request.get(&at.0)?.pointer(&at.1)?.clone();
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => at = files.target(&at.0, r).ok()?,
            None => return Some(v),
        }
    }
    None
}

fn child_resolved(files: &Files, place: &Place, schema: &Value, path: &str) -> Value {
    let mut v = schema.clone();
    for seg in path.split('/') {
        v = v.get(seg).cloned().unwrap_or(Value::Null);
    }
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => files
            .target(&place.0, r)
            .ok()
            .and_then(|t| resolved(files, &t))
            .unwrap_or(Value::Null),
        None => v,
    }
}

/// The schema's type, `null` aside (`["integer", "null"]` is an integer).
fn main_type(schema: &Value) -> Option<String> {
    match schema.get("type")? {
        Value::String(t) => Some(t.clone()),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_string),
        _ => None,
    }
}

fn prim(t: &str) -> Prim {
    match t {
        "integer" => Prim::Integer,
        "number" => Prim::Number,
        "boolean" => Prim::Boolean,
        _ => Prim::String,
    }
}

/// A `content` mapping's media types, each with the place of its schema (when it has one,
/// walked as a schema root).
fn read_content(
    files: &mut Files,
    at: &Place,
    obj: &Value,
    ranges: bool,
) -> Vec<(MediaType, Option<Place>)> {
    let Some(content) = obj.get("content") else {
        return Vec::new();
    };
    let place = child(at, "content");
    let Some(map) = content.as_object() else {
        files.problem(&place, "`content` is a mapping of media types");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (media, m) in map {
        let mplace = child(&place, media);
        let parsed = match MediaType::parse(media) {
            Ok(mt) if mt.is_wildcard() && !ranges && !media.starts_with('*') => Ok(mt),
            other => other,
        };
        let mt = match parsed {
            Ok(mt) => mt,
            Err(e) => {
                files.problem(&mplace, e);
                continue;
            }
        };
        let schema = match m.get("schema") {
            Some(_) => {
                let s = child(&mplace, "schema");
                if !files.schema_root(&s) {
                    continue;
                }
                Some(s)
            }
            None => None,
        };
        out.push((mt, schema));
    }
    out
}

fn read_responses(
    files: &mut Files,
    at: &Place,
    op: &Value,
    slots: &mut Vec<(Slot, Place, bool)>,
    index: usize,
) -> Vec<Response> {
    let Some(Value::Object(map)) = op.get("responses") else {
        if op.get("responses").is_some() {
            files.problem(&child(at, "responses"), "`responses` is a mapping");
        }
        return Vec::new();
    };
    let place = child(at, "responses");
    let mut out = Vec::new();
    for key in map.keys() {
        let rplace = child(&place, key);
        let status = match key.as_str() {
            "default" => StatusKey::Default,
            k if k.len() == 3 && k[1..].eq_ignore_ascii_case("XX") => match k[..1].parse::<u16>() {
                Ok(c) if (1..=5).contains(&c) => StatusKey::Class(c),
                _ => {
                    files.problem(&rplace, format!("`{k}` is not a status"));
                    continue;
                }
            },
            k => match k.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => StatusKey::Code(c),
                _ => {
                    files.problem(&rplace, format!("`{k}` is not a status"));
                    continue;
                }
            },
        };
        let Some((rplace, r)) = files.deref(rplace) else {
            continue;
        };
        let media = read_content(files, &rplace, &r, true);
        let r_index = out.len();
        for (i, (_, s)) in media.iter().enumerate() {
            if let Some(s) = s {
                slots.push((Slot::Response(index, r_index, i), s.clone(), true));
            }
        }
        out.push(Response {
            status,
            media: media.into_iter().map(|(m, _)| (m, None)).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests;
