//! Walking a document: its files, its references, and each schema it uses, turned into the
//! two views the validators compile from.
//!
//! Why a walk of our own: OpenAPI says which parts of a document are schemas (a parameter's
//! `schema`, a media type's `schema`, what a schema's applicators hold), and only there may
//! a schema's keywords be rewritten. Each file the document uses is kept as it was, and
//! twice more as a *view*: the request view (each `readOnly` property replaced by a marker
//! that refuses it, and dropped from `required`) and the response view (the same for
//! `writeOnly`). In a 3.0 document every schema is also rewritten into draft 2020-12, which
//! is what is validated: `nullable: true` adds `null` to `type` (and to `enum`), boolean
//! `exclusiveMinimum`/`exclusiveMaximum` become the numeric forms, and a `$ref` loses the
//! siblings 3.0 says to ignore.
//!
//! The walk also refuses what would hurt at run time: a `$ref` that leads nowhere or to
//! another host (documents are read from beside the configuration, never fetched), a
//! pattern that is not a linear-time regular expression or compiles too big, a schema that
//! is not one (checked against the draft 2020-12 meta-schema), and a cycle of `$ref` and
//! in-place applicators (`allOf`, `anyOf`, `oneOf`, `not`, `if`/`then`/`else`) that would
//! apply a schema to the same value forever.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::Problem;
use crate::schema::{READ_ONLY, WRITE_ONLY, pattern_problem};

/// The OpenAPI version of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 3.0.x: schemas are OpenAPI's dialect of draft 4/5 (`nullable`, boolean exclusives).
    V30,
    /// 3.1.x: schemas are draft 2020-12.
    V31,
}

/// Documents nested deeper than this are refused: no document needs it, and every walk over
/// one (here and in validation) stays far from the stack's end.
pub const MAX_DEPTH: usize = 128;

/// Most `$ref` hops from a parameter, body or response to what it stands for.
const MAX_HOPS: usize = 32;

/// A place in the files: a file's name and a JSON pointer in it.
pub(crate) type Place = (String, String);

/// The files of a document, as read and as the two views.
pub(crate) struct Files {
    pub(crate) version: Version,
    /// The file that was loaded.
    pub(crate) main: String,
    pub(crate) original: BTreeMap<String, Value>,
    pub(crate) request: BTreeMap<String, Value>,
    pub(crate) response: BTreeMap<String, Value>,
    pub(crate) problems: Vec<Problem>,
    /// Schemas already walked.
    walked: HashSet<Place>,
    /// In-place edges between schemas (a `$ref`, an `allOf` item, …), for the cycle check.
    in_place: HashMap<Place, Vec<(Place, String)>>,
    /// Schemas a `$ref` leads to, not yet checked against the meta-schema.
    unchecked: Vec<Place>,
    /// Whether some schema has a `writeOnly` property (which responses must lose).
    pub(crate) write_only: bool,
}

/// Reads a file beside the document by its name (a relative path).
pub type Read<'a> = &'a dyn Fn(&str) -> Result<Value, String>;

impl Files {
    /// The main file and every file its `$ref`s reach.
    pub(crate) fn gather(main: &str, root: Value, read: Read<'_>) -> Result<Files, Vec<Problem>> {
        let mut problems = Vec::new();
        if let Some(pointer) = too_deep(&root) {
            return Err(vec![Problem::new(
                main,
                &pointer,
                format!("the document is nested more than {MAX_DEPTH} levels deep"),
            )]);
        }
        let version = match root.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.0.") => Version::V30,
            Some(v) if v.starts_with("3.1.") => Version::V31,
            Some(v) => {
                return Err(vec![Problem::new(
                    main,
                    "/openapi",
                    format!("OpenAPI `{v}` is not supported: 3.0.x and 3.1.x are"),
                )]);
            }
            None => {
                return Err(vec![Problem::new(
                    main,
                    "",
                    "not an OpenAPI document: `openapi: 3.0.x` or `3.1.x` is missing",
                )]);
            }
        };
        if let Some(d) = root.get("jsonSchemaDialect").and_then(Value::as_str)
            && d != "https://spec.openapis.org/oas/3.1/dialect/base"
            && d != "https://json-schema.org/draft/2020-12/schema"
        {
            problems.push(Problem::new(
                main,
                "/jsonSchemaDialect",
                format!("the schema dialect `{d}` is not supported: draft 2020-12 is"),
            ));
        }
        let mut original = BTreeMap::new();
        let mut queue = vec![(main.to_string(), root)];
        while let Some((name, doc)) = queue.pop() {
            for (pointer, reference) in refs(&doc) {
                let Some(file) = file_part(&name, &reference) else {
                    continue;
                };
                match file {
                    Err(msg) => problems.push(Problem::new(&name, &pointer, msg)),
                    Ok(file) => {
                        if original.contains_key(&file)
                            || file == name
                            || queue.iter().any(|(n, _)| *n == file)
                        {
                            continue;
                        }
                        match read(&file) {
                            Ok(v) => match too_deep(&v) {
                                Some(p) => problems.push(Problem::new(
                                    &file,
                                    &p,
                                    format!("nested more than {MAX_DEPTH} levels deep"),
                                )),
                                None => queue.push((file, v)),
                            },
                            Err(e) => problems.push(Problem::new(
                                &name,
                                &pointer,
                                format!("cannot read `{file}`: {e}"),
                            )),
                        }
                    }
                }
            }
            original.insert(name, doc);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Files {
            version,
            main: main.to_string(),
            request: original.clone(),
            response: original.clone(),
            original,
            problems,
            walked: HashSet::new(),
            in_place: HashMap::new(),
            unchecked: Vec::new(),
            write_only: false,
        })
    }

    /// The value at a place, as read.
    pub(crate) fn get(&self, place: &Place) -> Option<&Value> {
        self.original.get(&place.0)?.pointer(&place.1)
    }

    pub(crate) fn problem(&mut self, place: &Place, message: impl Into<String>) {
        self.problems
            .push(Problem::new(&place.0, &place.1, message.into()));
    }

    /// Where `reference` (a `$ref` found in `file`) leads.
    pub(crate) fn target(&self, file: &str, reference: &str) -> Result<Place, String> {
        let fragment = reference.split_once('#').map_or("", |(_, f)| f);
        let file = match file_part(file, reference) {
            None => file.to_string(),
            Some(f) => f?,
        };
        let pointer = percent_encoding::percent_decode_str(fragment)
            .decode_utf8()
            .map_err(|_| format!("`{reference}`: the fragment is not UTF-8"))?
            .into_owned();
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "`{reference}`: only JSON pointer fragments (`#/…`) are supported"
            ));
        }
        match self.original.get(&file).and_then(|d| d.pointer(&pointer)) {
            Some(_) => Ok((file, pointer)),
            None => Err(format!("`{reference}` leads nowhere")),
        }
    }

    /// Follows `$ref`s from a place to the object it stands for (a parameter, a body, a
    /// response, a path item).
    pub(crate) fn deref(&mut self, place: Place) -> Option<(Place, Value)> {
        let mut at = place;
        for _ in 0..MAX_HOPS {
            let v = self.get(&at)?.clone();
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => match self.target(&at.0, r) {
                    Ok(next) => at = next,
                    Err(msg) => {
                        self.problem(&(at.0.clone(), format!("{}/$ref", at.1)), msg);
                        return None;
                    }
                },
                None => return Some((at, v)),
            }
        }
        self.problem(&at, "`$ref`s that lead in a circle");
        None
    }

    /// Walks the schema at `place` and everything it reaches, rewriting the views, then
    /// checks it against the meta-schema. Returns false when it cannot be used.
    pub(crate) fn schema_root(&mut self, place: &Place) -> bool {
        let before = self.problems.len();
        let fresh = !self.walked.contains(place);
        self.schema(place);
        let mut check: Vec<Place> = std::mem::take(&mut self.unchecked);
        if fresh {
            check.push(place.clone());
        }
        for at in check {
            if self.problems.len() != before {
                break;
            }
            // Each subtree is checked whole, where the walk first met it (its root, or the
            // target of a `$ref`): together they cover every schema the document uses.
            if let Some(view) = self.request.get(&at.0).and_then(|d| d.pointer(&at.1))
                && let Err(e) = jsonschema::draft202012::meta::validate(view)
            {
                let pointer = format!("{}{}", at.1, e.instance_path().as_str());
                self.problem(
                    &(at.0.clone(), pointer),
                    format!("not a valid schema: {}", e.masked()),
                );
            }
        }
        if self.problems.len() == before {
            self.check_cycles(place);
        }
        self.problems.len() == before
    }

    fn schema(&mut self, place: &Place) {
        if !self.walked.insert(place.clone()) {
            return;
        }
        let Some(value) = self.get(place).cloned() else {
            return;
        };
        let obj = match value {
            Value::Bool(_) if self.version == Version::V31 => return,
            Value::Object(obj) => obj,
            _ => {
                self.problem(place, "a schema is an object");
                return;
            }
        };
        if let Some(r) = obj.get("$ref") {
            let Some(r) = r.as_str() else {
                self.problem(&child(place, "$ref"), "`$ref` is a string");
                return;
            };
            match self.target(&place.0, r) {
                Ok(t) => {
                    self.edge(place, &t, "$ref");
                    if !self.walked.contains(&t) {
                        self.unchecked.push(t.clone());
                    }
                    if self.version == Version::V30 {
                        // 3.0: "any sibling elements of a $ref are ignored".
                        let only = Value::Object(Map::from_iter([(
                            "$ref".to_string(),
                            Value::String(r.to_string()),
                        )]));
                        self.write(place, None, only);
                    }
                    self.schema(&t);
                }
                Err(msg) => self.problem(&child(place, "$ref"), msg),
            }
            if self.version == Version::V30 {
                return;
            }
        }
        if self.version == Version::V30 {
            self.dialect_30(place, &obj);
        }
        if let Some(p) = obj.get("pattern").and_then(Value::as_str)
            && let Some(msg) = pattern_problem(p)
        {
            self.problem(&child(place, "pattern"), msg);
        }
        if let Some(Value::Object(pp)) = obj.get("patternProperties") {
            for key in pp.keys() {
                if let Some(msg) = pattern_problem(key) {
                    self.problem(&child(&child(place, "patternProperties"), key), msg);
                }
            }
        }
        self.direction_markers(place, &obj);
        for (key, sub) in &obj {
            let at = child(place, key);
            match (key.as_str(), sub) {
                ("allOf" | "anyOf" | "oneOf", Value::Array(items)) => {
                    for i in 0..items.len() {
                        let item = child(&at, &i.to_string());
                        self.edge(place, &item, key);
                        self.schema(&item);
                    }
                }
                ("not" | "if" | "then" | "else", _) => {
                    self.edge(place, &at, key);
                    self.schema(&at);
                }
                ("dependentSchemas", Value::Object(m)) => {
                    for k in m.keys() {
                        let item = child(&at, k);
                        self.edge(place, &item, key);
                        self.schema(&item);
                    }
                }
                (
                    "properties" | "patternProperties" | "$defs" | "definitions",
                    Value::Object(m),
                ) => {
                    for k in m.keys() {
                        self.schema(&child(&at, k));
                    }
                }
                ("prefixItems", Value::Array(items)) => {
                    for i in 0..items.len() {
                        self.schema(&child(&at, &i.to_string()));
                    }
                }
                ("items", Value::Array(_)) if self.version == Version::V30 => {
                    self.problem(&at, "in OpenAPI 3.0, `items` is one schema");
                }
                (
                    "items"
                    | "additionalProperties"
                    | "contains"
                    | "propertyNames"
                    | "unevaluatedProperties"
                    | "unevaluatedItems"
                    | "additionalItems",
                    Value::Object(_),
                ) => self.schema(&at),
                _ => {}
            }
        }
    }

    /// OpenAPI 3.0's schema dialect, rewritten into draft 2020-12 in both views.
    fn dialect_30(&mut self, place: &Place, obj: &Map<String, Value>) {
        if let Some(t) = obj.get("type")
            && !t.is_string()
        {
            self.problem(
                &child(place, "type"),
                "in OpenAPI 3.0, `type` is one string",
            );
        }
        if obj.get("nullable") == Some(&Value::Bool(true)) {
            if let Some(Value::String(t)) = obj.get("type") {
                self.write(place, Some("type"), serde_json::json!([t, "null"]));
            }
            if let Some(Value::Array(e)) = obj.get("enum")
                && !e.contains(&Value::Null)
            {
                let mut e = e.clone();
                e.push(Value::Null);
                self.write(place, Some("enum"), Value::Array(e));
            }
        }
        for (bound, exclusive) in [
            ("minimum", "exclusiveMinimum"),
            ("maximum", "exclusiveMaximum"),
        ] {
            match obj.get(exclusive) {
                Some(Value::Bool(true)) => match obj.get(bound) {
                    Some(n) if n.is_number() => {
                        self.write(place, Some(exclusive), n.clone());
                        self.remove(place, bound);
                    }
                    _ => self.problem(
                        &child(place, exclusive),
                        format!("`{exclusive}: true` needs a numeric `{bound}`"),
                    ),
                },
                Some(Value::Bool(false)) => self.remove(place, exclusive),
                _ => {}
            }
        }
    }

    /// `readOnly` properties refused in requests, `writeOnly` ones in responses (each view
    /// gets the marker in place of the property's schema, and the property leaves
    /// `required`: OpenAPI says such a required property applies to the other direction only).
    fn direction_markers(&mut self, place: &Place, obj: &Map<String, Value>) {
        let Some(Value::Object(props)) = obj.get("properties") else {
            return;
        };
        for (flag, marker, request) in [
            ("readOnly", READ_ONLY, true),
            ("writeOnly", WRITE_ONLY, false),
        ] {
            let marked: Vec<String> = props
                .iter()
                .filter(|(name, _)| self.flagged(&child(&child(place, "properties"), name), flag))
                .map(|(name, _)| name.clone())
                .collect();
            if marked.is_empty() {
                continue;
            }
            self.write_only |= !request;
            let views = if request {
                &mut self.request
            } else {
                &mut self.response
            };
            let Some(Value::Object(target)) = views
                .get_mut(&place.0)
                .and_then(|d| d.pointer_mut(&place.1))
            else {
                continue;
            };
            if let Some(Value::Object(p)) = target.get_mut("properties") {
                for name in &marked {
                    p.insert(
                        name.clone(),
                        Value::Object(Map::from_iter([(marker.to_string(), Value::Bool(true))])),
                    );
                }
            }
            if let Some(Value::Array(req)) = target.get_mut("required") {
                req.retain(|r| r.as_str().is_none_or(|r| !marked.iter().any(|m| m == r)));
            }
        }
    }

    /// Whether the schema at `place` (or what its `$ref`s lead to) says `flag: true`.
    fn flagged(&self, place: &Place, flag: &str) -> bool {
        let mut at = place.clone();
        for _ in 0..MAX_HOPS {
            let Some(v) = self.get(&at) else { return false };
            if v.get(flag) == Some(&Value::Bool(true)) {
                return true;
            }
            match v
                .get("$ref")
                .and_then(Value::as_str)
                .map(|r| self.target(&at.0, r))
            {
                Some(Ok(next)) => at = next,
                _ => return false,
            }
        }
        false
    }

    fn edge(&mut self, from: &Place, to: &Place, keyword: &str) {
        self.in_place
            .entry(from.clone())
            .or_default()
            .push((to.clone(), keyword.to_string()));
    }

    /// A cycle of in-place edges reachable from `root`: a schema that applies to a value a
    /// schema that applies itself to the same value, forever.
    fn check_cycles(&mut self, root: &Place) {
        // Iterative depth-first search, white/grey/black.
        let mut state: HashMap<Place, bool> = HashMap::new(); // false: on the stack; true: done
        let mut stack: Vec<(Place, usize)> = vec![(root.clone(), 0)];
        state.insert(root.clone(), false);
        while let Some((node, i)) = stack.pop() {
            let next = self.in_place.get(&node).and_then(|e| e.get(i)).cloned();
            match next {
                None => {
                    state.insert(node, true);
                }
                Some((to, keyword)) => {
                    stack.push((node.clone(), i + 1));
                    match state.get(&to) {
                        Some(false) => {
                            self.problem(
                                &child(&node, &keyword),
                                format!(
                                    "`{keyword}` leads back to `{}#{}` without moving into the value: a schema that would be applied forever",
                                    to.0, to.1
                                ),
                            );
                            return;
                        }
                        Some(true) => {}
                        None => {
                            state.insert(to.clone(), false);
                            stack.push((to, 0));
                        }
                    }
                }
            }
        }
    }

    /// Writes `value` at `place` (or at its member `key`) in both views.
    fn write(&mut self, place: &Place, key: Option<&str>, value: Value) {
        for views in [&mut self.request, &mut self.response] {
            let Some(target) = views
                .get_mut(&place.0)
                .and_then(|d| d.pointer_mut(&place.1))
            else {
                continue;
            };
            match (key, target) {
                (None, t) => *t = value.clone(),
                (Some(k), Value::Object(m)) => {
                    m.insert(k.to_string(), value.clone());
                }
                _ => {}
            }
        }
    }

    fn remove(&mut self, place: &Place, key: &str) {
        for views in [&mut self.request, &mut self.response] {
            if let Some(Value::Object(m)) = views
                .get_mut(&place.0)
                .and_then(|d| d.pointer_mut(&place.1))
            {
                m.remove(key);
            }
        }
    }
}

/// `place` + `/key` (the key escaped as RFC 6901 says).
pub(crate) fn child(place: &Place, key: &str) -> Place {
    (
        place.0.clone(),
        format!("{}/{}", place.1, key.replace('~', "~0").replace('/', "~1")),
    )
}

/// The file a reference names, relative to the directory of the file it is in: `None` for
/// a reference within the same file.
fn file_part(from: &str, reference: &str) -> Option<Result<String, String>> {
    let (name, _) = reference.split_once('#').unwrap_or((reference, ""));
    if name.is_empty() {
        return None;
    }
    if name.contains("://") || name.starts_with("//") || name.starts_with('/') {
        return Some(Err(format!(
            "`{reference}`: documents are read from beside the configuration, never fetched; only relative file names are followed"
        )));
    }
    let dir = from.rsplit_once('/').map_or("", |(d, _)| d);
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for seg in name.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    Some(Ok(parts.join("/")))
}

/// Every `$ref` string in a value, with its JSON pointer (iteratively: the depth was checked
/// but the walk need not spend the stack).
fn refs(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), v)];
    while let Some((at, v)) = stack.pop() {
        match v {
            Value::Object(m) => {
                for (k, sub) in m {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    if k == "$ref"
                        && let Some(r) = sub.as_str()
                    {
                        out.push((p, r.to_string()));
                    } else {
                        stack.push((p, sub));
                    }
                }
            }
            Value::Array(items) => {
                for (i, sub) in items.iter().enumerate() {
                    stack.push((format!("{at}/{i}"), sub));
                }
            }
            _ => {}
        }
    }
    out
}

/// The pointer of a place nested deeper than [`MAX_DEPTH`], if there is one.
fn too_deep(v: &Value) -> Option<String> {
    let mut stack = vec![(v, 0usize, String::new())];
    while let Some((v, depth, at)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Some(at);
        }
        match v {
            Value::Object(m) => {
                for (k, sub) in m {
                    stack.push((sub, depth + 1, format!("{at}/{k}")));
                }
            }
            Value::Array(items) => {
                for (i, sub) in items.iter().enumerate() {
                    stack.push((sub, depth + 1, format!("{at}/{i}")));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_relative_to_the_file_they_are_in() {
        assert_eq!(file_part("api.yaml", "#/a"), None);
        assert_eq!(
            file_part("api.yaml", "common.yaml#/a"),
            Some(Ok("common.yaml".into()))
        );
        assert_eq!(
            file_part("schemas/pet.yaml", "./tag.yaml"),
            Some(Ok("schemas/tag.yaml".into()))
        );
        assert_eq!(
            file_part("schemas/pet.yaml", "../common.yaml#/x"),
            Some(Ok("common.yaml".into()))
        );
        assert!(matches!(
            file_part("api.yaml", "https://example.com/x.yaml"),
            Some(Err(_))
        ));
        assert!(matches!(file_part("api.yaml", "/etc/passwd"), Some(Err(_))));
    }
}
