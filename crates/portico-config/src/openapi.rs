//! `openapi:` on a route entry (or on an API version): the API's own OpenAPI document stands
//! for one route per operation.
//!
//! An entry `{name: pets, path: /api, openapi: pets.yaml, upstream: pets, …}` becomes, for
//! each operation, the route `pets.<operationId>` at `/api` + the operation's path, with the
//! operation's method, `produces` (its 2xx responses' media types) and `consumes` (its
//! request body's), and every other key of the entry; `operations: {<operationId>: {…}}`
//! overrides keys for one operation. Each route is then read by the same reader as any
//! other, so every rule and every message is the file's. The document is read (YAML or
//! JSON, with the files its `$ref`s name beside it) and compiled once per load; a problem in
//! it is the configuration's problem, located in the document's own file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portico_openapi::Spec;

use crate::read::{Reader, join};
use crate::yaml::{self, Kind, Loc, Node};

/// The OpenAPI operation a route stands for.
#[derive(Clone, Debug)]
pub struct OpenApiOperation {
    /// The operation, its validators compiled.
    pub operation: Arc<portico_openapi::Operation>,
    /// The document's file, as the configuration names it.
    pub file: String,
}

impl PartialEq for OpenApiOperation {
    /// The same load of the same document: a reload that reads the file again makes a new
    /// operation, which is treated as changed.
    fn eq(&self, other: &OpenApiOperation) -> bool {
        Arc::ptr_eq(&self.operation, &other.operation)
    }
}

/// `validate_responses`: what happens to an upstream response the document does not allow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseCheck {
    /// Not checked.
    #[default]
    Off,
    /// Counted and logged (route, operation, pointer; never the body), and relayed.
    Report,
    /// Answered 502 `PTC.UPSTREAM_RESPONSE_INVALID` instead.
    Enforce,
}

/// A route entry, as written or made from an operation, ready for the route reader.
pub(crate) struct Entry {
    /// The route's mapping.
    pub(crate) node: Node,
    /// Its key path in problems: `routes[2]`, or `routes[2](listPets)`.
    pub(crate) label: String,
    /// The operation it stands for.
    pub(crate) operation: Option<OpenApiOperation>,
}

/// Documents read during one load, by file: each is read and compiled once however many
/// entries name it.
pub(crate) type Documents = HashMap<PathBuf, Option<Arc<Spec>>>;

/// Keys of an `openapi` entry that its operations do not inherit.
const ENTRY_ONLY: &[&str] = &["name", "path", "openapi", "operations", "methods"];

/// The route entries of `routes` (and of the API versions in `apis` that have `openapi`).
pub(crate) fn entries(r: &mut Reader, routes: &[Node], apis: Option<&Node>) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, node) in routes.iter().enumerate() {
        let label = format!("routes[{i}]");
        let has = |k: &str| map_get(node, k).is_some();
        if has("openapi") {
            out.extend(expand(r, node, &label, None));
        } else {
            if let Some(n) = map_get(node, "operations") {
                r.problem(
                    n,
                    &join(&label, "operations"),
                    "`operations` is for routes with `openapi`",
                );
            }
            out.push(Entry {
                node: node.clone(),
                label,
                operation: None,
            });
        }
    }
    if let Some(Kind::Seq(list)) = apis.map(|a| &a.kind) {
        for (i, api) in list.iter().enumerate() {
            let (Some(name), Some(base)) = (scalar(api, "name"), scalar(api, "base_path")) else {
                continue;
            };
            let Some(Kind::Seq(versions)) = map_get(api, "versions").map(|v| &v.kind) else {
                continue;
            };
            for (j, version) in versions.iter().enumerate() {
                let (Some(id), Some(spec)) = (scalar(version, "id"), map_get(version, "openapi"))
                else {
                    continue;
                };
                let label = format!("apis[{i}].versions[{j}].openapi");
                let prefix = format!("{}/{id}", base.trim_end_matches('/'));
                out.extend(expand(
                    r,
                    spec,
                    &label,
                    Some((&format!("{name}.{id}"), &prefix)),
                ));
            }
        }
    }
    out
}

/// The routes an `openapi` entry stands for. `version` names the routes and gives the prefix
/// when the entry is an API version's (`{file, upstream, …}`).
fn expand(r: &mut Reader, node: &Node, label: &str, version: Option<(&str, &str)>) -> Vec<Entry> {
    let Kind::Map(entries) = &node.kind else {
        r.problem(node, label, "expected a mapping");
        return Vec::new();
    };
    let doc_key = if version.is_some() { "file" } else { "openapi" };
    let (name, prefix) = match version {
        Some((n, p)) => (Some(n.to_string()), Some(p.to_string())),
        None => (
            scalar(node, "name").map(str::to_string),
            scalar(node, "path").map(str::to_string),
        ),
    };
    if let Some(n) = map_get(node, "methods") {
        r.problem(
            n,
            &join(label, "methods"),
            "with `openapi`, each operation's method comes from the document",
        );
    }
    let Some(name) = name else {
        r.missing(node, label, "name");
        return Vec::new();
    };
    let Some(prefix) = prefix else {
        r.missing(node, label, "path");
        return Vec::new();
    };
    if !prefix.starts_with('/') || prefix.contains(['{', '}', '?', '#']) {
        r.problem(
            map_get(node, "path").unwrap_or(node),
            &join(label, "path"),
            "with `openapi`, `path` is a literal prefix (`/`, `/api`): the document gives the rest",
        );
        return Vec::new();
    }
    let Some(doc) = map_get(node, doc_key) else {
        r.missing(node, label, doc_key);
        return Vec::new();
    };
    let Some(spec) = document(r, doc, &join(label, doc_key)) else {
        return Vec::new();
    };
    let file = scalar(node, doc_key).unwrap_or_default().to_string();
    let overrides = operation_overrides(r, node, label, &spec);
    let inherited: Vec<&(String, Node, Node)> = entries
        .iter()
        .filter(|(k, _, _)| !ENTRY_ONLY.contains(&k.as_str()) && k != doc_key)
        .collect();
    let prefix = prefix.trim_end_matches('/');
    let mut out = Vec::new();
    let has_get = |path: &str| {
        spec.operations
            .iter()
            .any(|o| o.path == path && o.method == portico_http::Method::Get)
    };
    for op in &spec.operations {
        // Portico answers OPTIONS on every route itself, and HEAD wherever GET is taken.
        if op.method == portico_http::Method::Options
            || (op.method == portico_http::Method::Head && has_get(&op.path))
        {
            continue;
        }
        let at = node.loc;
        let mut map: Vec<(String, Node, Node)> = vec![
            field("name", text(&format!("{name}.{}", op.id), at), at),
            field(
                "path",
                text(&format!("{prefix}{}", route_path(&op.path)), at),
                at,
            ),
            field(
                "methods",
                Node {
                    kind: Kind::Seq(vec![text(op.method.as_str(), at)]),
                    loc: at,
                },
                at,
            ),
        ];
        map.extend(inherited.iter().map(|e| (*e).clone()));
        if let Some(Kind::Map(own)) = overrides.get(op.id.as_str()).map(|n| &n.kind) {
            for e in own {
                match map.iter_mut().find(|(k, _, _)| *k == e.0) {
                    Some(slot) => *slot = e.clone(),
                    None => map.push(e.clone()),
                }
            }
        }
        for (key, types) in [("produces", op.produces()), ("consumes", op.consumes())] {
            if !types.is_empty() && !map.iter().any(|(k, _, _)| k == key) {
                let items = types.iter().map(|t| text(&t.to_string(), at)).collect();
                map.push(field(
                    key,
                    Node {
                        kind: Kind::Seq(items),
                        loc: at,
                    },
                    at,
                ));
            }
        }
        out.push(Entry {
            node: Node {
                kind: Kind::Map(map),
                loc: at,
            },
            label: format!("{label}({})", op.id),
            operation: Some(OpenApiOperation {
                operation: Arc::new(op.clone()),
                file: file.clone(),
            }),
        });
    }
    out
}

/// The configuration file at `root` (its node tree) with every `openapi` entry (and API
/// version) written out as the routes it stands for: YAML (each value as JSON, which is
/// YAML) that `check-config` accepts. What the file says is kept as written (`${NAME}`
/// references included, never their values); comments are not.
pub(crate) fn expanded(r: &mut Reader, root: &Node) -> String {
    let Kind::Map(top) = &root.kind else {
        return String::new();
    };
    let routes = match map_get(root, "routes").map(|n| &n.kind) {
        Some(Kind::Seq(list)) => list.as_slice(),
        _ => &[],
    };
    let list = entries(r, routes, map_get(root, "apis"));
    let mut out = String::from(
        "# The routes of this file's OpenAPI documents, one per operation, as `portico openapi routes`\n\
         # wrote them. Relative paths are relative to the original file's directory; the documents'\n\
         # own checks (parameters, bodies, responses) come only with `openapi:`.\n",
    );
    for (key, _, value) in top {
        match key.as_str() {
            "routes" => {
                out.push_str("routes:\n");
                for e in &list {
                    out.push_str(&format!("  - {}\n", in_order(&e.node)));
                }
            }
            "apis" => {
                let mut apis = yaml::to_json(value);
                for api in apis.as_array_mut().into_iter().flatten() {
                    for v in api["versions"].as_array_mut().into_iter().flatten() {
                        if let Some(m) = v.as_object_mut() {
                            m.remove("openapi");
                        }
                    }
                }
                out.push_str(&format!("apis: {apis}\n"));
            }
            _ => out.push_str(&format!("{key}: {}\n", in_order(value))),
        }
    }
    out
}

/// A node as flow YAML (JSON), its mapping's keys in their order; `validate_responses` left
/// out (without `openapi` there is nothing to check responses against).
fn in_order(node: &Node) -> String {
    let Kind::Map(entries) = &node.kind else {
        return yaml::to_json(node).to_string();
    };
    let items: Vec<String> = entries
        .iter()
        .filter(|(k, _, _)| k != "validate_responses")
        .map(|(k, _, v)| {
            format!(
                "{}: {}",
                serde_json::Value::String(k.clone()),
                yaml::to_json(v)
            )
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// `operations`: per operation, the keys that differ from the entry's.
fn operation_overrides<'n>(
    r: &mut Reader,
    node: &'n Node,
    label: &str,
    spec: &Spec,
) -> HashMap<&'n str, &'n Node> {
    let mut out = HashMap::new();
    let Some(ops) = map_get(node, "operations") else {
        return out;
    };
    let opath = join(label, "operations");
    let Kind::Map(entries) = &ops.kind else {
        r.problem(ops, &opath, "expected a mapping of operationIds");
        return out;
    };
    for (id, key_node, value) in entries {
        let ipath = join(&opath, id);
        if !spec.operations.iter().any(|o| o.id == *id) {
            let known: Vec<&str> = spec.operations.iter().map(|o| o.id.as_str()).collect();
            r.problem(
                key_node,
                &ipath,
                format!(
                    "the document has no operation `{id}`; it has: {}",
                    known.join(", ")
                ),
            );
            continue;
        }
        match &value.kind {
            Kind::Map(keys) => {
                for (k, kn, _) in keys {
                    if ENTRY_ONLY.contains(&k.as_str()) {
                        r.problem(
                            kn,
                            &join(&ipath, k),
                            format!("`{k}` cannot be set per operation"),
                        );
                    }
                }
                out.insert(id.as_str(), value);
            }
            _ => r.problem(value, &ipath, "expected a mapping of route keys"),
        }
    }
    out
}

/// A route path for an OpenAPI path: each `{name}` as a route parameter's name.
fn route_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push('{');
                out.push_str(&route_param(&rest[open + 1..open + close]));
                out.push('}');
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The name a route gives an OpenAPI path parameter: route parameters are letters, digits
/// and `_` (not starting with a digit), so `pet-id` is `pet_id`.
pub fn route_param(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Reads and compiles the document `n` names (once per load).
fn document(r: &mut Reader, n: &Node, path: &str) -> Option<Arc<Spec>> {
    let name = r.string(n, path)?.to_string();
    let file = r.resolve_path(&name);
    if let Some(cached) = r.documents.get(&file) {
        return cached.clone();
    }
    let loaded = load(&file, &name);
    let spec = match loaded {
        Ok(spec) => Some(Arc::new(spec)),
        Err(messages) => {
            for m in messages {
                r.problem(n, path, m);
            }
            None
        }
    };
    r.documents.insert(file, spec.clone());
    spec
}

/// A document file as nodes (for locations) and as JSON.
fn read_file(file: &Path) -> Result<(Node, serde_json::Value), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?;
    let node = yaml::load(&text).map_err(|p| {
        let at = p
            .loc
            .map(|l| format!("{}:{}: ", l.line, l.col))
            .unwrap_or_default();
        format!("`{}`: {at}{}", file.display(), p.message)
    })?;
    if yaml::depth_over(&node, portico_openapi::MAX_DEPTH) {
        return Err(format!(
            "`{}` is nested more than {} levels deep",
            file.display(),
            portico_openapi::MAX_DEPTH
        ));
    }
    let json = yaml::to_json(&node);
    Ok((node, json))
}

/// Loads an OpenAPI document from its file as a route entry would (YAML or JSON, the files
/// its `$ref`s name beside it); its problems name each file, line, column and JSON pointer.
pub fn load_openapi(file: &Path) -> Result<Spec, Vec<String>> {
    load(file, &file.display().to_string())
}

/// Loads the document `file` (named `name` in the configuration); its problems come back as
/// messages that name each file, its line and column, and the JSON pointer.
fn load(file: &Path, name: &str) -> Result<Spec, Vec<String>> {
    let (main, json) = read_file(file).map_err(|e| vec![e])?;
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = |rel: &str| read_file(&dir.join(rel)).map(|(_, v)| v);
    let main_name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    portico_openapi::load(&main_name, json, &read).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| {
                let node = if p.file == main_name {
                    Some(main.clone())
                } else {
                    read_file(&dir.join(&p.file)).ok().map(|(n, _)| n)
                };
                let loc = node.and_then(|n| locate(&n, &p.pointer));
                let shown = dir.join(&p.file);
                match loc {
                    Some(l) => format!(
                        "{}:{}:{}: #{}: {}",
                        shown.display(),
                        l.line,
                        l.col,
                        p.pointer,
                        p.message
                    ),
                    None => format!("{}: #{}: {}", shown.display(), p.pointer, p.message),
                }
            })
            .collect()
    })
}

/// Where the node at a JSON pointer starts (or its nearest ancestor that exists).
fn locate(root: &Node, pointer: &str) -> Option<Loc> {
    let mut at = root;
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        let next = match &at.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _, _)| *k == token)
                .map(|(_, _, v)| v),
            Kind::Seq(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => break,
        }
    }
    Some(at.loc)
}

fn map_get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .find(|(k, _, v)| k == key && v.kind != Kind::Null)
            .map(|(_, _, v)| v),
        _ => None,
    }
}

fn scalar<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    match &map_get(node, key)?.kind {
        Kind::Scalar { value, .. } => Some(value),
        _ => None,
    }
}

fn text(value: &str, loc: Loc) -> Node {
    Node {
        kind: Kind::Scalar {
            value: value.to_string(),
            plain: true,
        },
        loc,
    }
}

fn field(key: &str, value: Node, loc: Loc) -> (String, Node, Node) {
    (key.to_string(), text(key, loc), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_paths_become_route_paths() {
        assert_eq!(route_path("/pets/{petId}/toys"), "/pets/{petId}/toys");
        assert_eq!(route_path("/pets/{pet-id}"), "/pets/{pet_id}");
        assert_eq!(route_param("1st"), "_1st");
    }
}
