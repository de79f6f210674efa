//! Upstreams and routes kept in the store (created through the admin API) are the same model
//! as the file's: each document is read by the same reader, and the file's configuration with
//! the store's documents added is checked as one (names unique across both, every upstream a
//! route names known, no two routes overlapping).
//!
//! A document is JSON, and JSON is YAML: it is read as the one item of an `upstreams` or
//! `routes` list, so every rule and every message is the file's, and a problem's key path
//! becomes a JSON pointer into the document.

use serde_json::Value;

use crate::model::{Action, Config, RouteTable};

/// One thing wrong with one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentProblem {
    /// Which document: its index in the list given for its kind.
    pub index: usize,
    /// Whether it is a route (else an upstream).
    pub route: bool,
    /// A JSON pointer into the document (`/targets/0`), empty for the whole document.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// The file's configuration with `upstreams` and `routes` (JSON documents) added after its
/// own, or every problem with the documents.
pub fn with_documents(
    base: &Config,
    upstreams: &[Value],
    routes: &[Value],
) -> Result<Config, Vec<DocumentProblem>> {
    let mut problems = Vec::new();
    let mut config = base.clone();
    for (index, doc) in upstreams.iter().enumerate() {
        let text = format!("upstreams: [{doc}]\nroutes: [{PROBE_ROUTE}]\n");
        match read_one(&text, index, false, "upstreams[0]") {
            Ok(mut c) => {
                let u = c.upstreams.remove(0);
                if config.upstreams.iter().any(|o| o.name == u.name) {
                    problems.push(problem(
                        index,
                        false,
                        "/name",
                        format!("an upstream named `{}` exists", u.name),
                    ));
                } else {
                    config.upstreams.push(u);
                }
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    // Routes are read beside stand-ins for every known upstream, in the combined order, so
    // that a route's upstream index is its index in the combined configuration.
    let stand_ins: Vec<String> = config
        .upstreams
        .iter()
        .map(|u| {
            format!(
                "{{name: {}, targets: [\"http://127.0.0.1:1\"]}}",
                Value::String(u.name.clone())
            )
        })
        .collect();
    let first_store_route = config.routes.len();
    for (index, doc) in routes.iter().enumerate() {
        let text = format!("upstreams: [{}]\nroutes: [{doc}]\n", stand_ins.join(", "));
        match read_one(&text, index, true, "routes[0]") {
            Ok(mut c) => {
                let r = c.routes.remove(0);
                if config.routes.iter().any(|o| o.name == r.name) {
                    problems.push(problem(
                        index,
                        true,
                        "/name",
                        format!("a route named `{}` exists", r.name),
                    ));
                } else {
                    config.routes.push(r);
                }
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty()
        && let Err(overlaps) = RouteTable::build(&config.routes)
    {
        for o in overlaps {
            // Only routes from the store can be at fault: the file's were checked alone.
            if let Some(index) = o.route.checked_sub(first_store_route) {
                problems.push(problem(index, true, "/path", o.message));
            }
        }
    }
    debug_assert!(config.routes.iter().all(|r| match r.action {
        Action::Upstream(i) => i < config.upstreams.len(),
        _ => true,
    }));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// A route that makes a one-upstream document a whole configuration.
const PROBE_ROUTE: &str = "{name: __probe, path: /__probe, methods: [GET], handler: echo}";

fn problem(index: usize, route: bool, pointer: &str, message: String) -> DocumentProblem {
    DocumentProblem {
        index,
        route,
        pointer: pointer.to_string(),
        message,
    }
}

/// Reads a configuration made around one document; its problems under `prefix` (the
/// document's key path) become pointers into it.
fn read_one(
    text: &str,
    index: usize,
    route: bool,
    prefix: &str,
) -> Result<Config, Vec<DocumentProblem>> {
    crate::from_str(text, "document").map_err(|p| {
        p.list
            .into_iter()
            .map(|p| {
                let pointer = p
                    .path
                    .strip_prefix(prefix)
                    .map_or(String::new(), to_pointer);
                problem(index, route, &pointer, p.message)
            })
            .collect()
    })
}

/// `.targets[0].x` → `/targets/0/x`.
fn to_pointer(path: &str) -> String {
    let mut out = String::new();
    for part in path.split(['.', '[']).filter(|p| !p.is_empty()) {
        out.push('/');
        out.push_str(
            &part
                .trim_end_matches(']')
                .replace('~', "~0")
                .replace('/', "~1"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use serde_json::json;

    use super::*;

    fn base() -> Config {
        crate::from_str(
            "upstreams:\n  - {name: file-up, targets: [\"http://127.0.0.1:9000\"]}\nroutes:\n  - {name: file-route, path: /file, methods: [GET], upstream: file-up}\n",
            "base.yaml",
        )
        .unwrap()
    }

    #[test]
    fn documents_join_the_files_model() {
        let c = with_documents(
            &base(),
            &[json!({"name": "store-up", "targets": ["h2c://127.0.0.1:9001"]})],
            &[
                json!({"name": "a", "path": "/a/{*rest}", "methods": ["GET", "POST"], "upstream": "store-up"}),
                json!({"name": "b", "path": "/b", "methods": ["GET"], "upstream": "file-up"}),
            ],
        )
        .unwrap();
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.routes.len(), 3);
        assert_eq!(c.routes[1].action, Action::Upstream(1));
        assert_eq!(c.routes[2].action, Action::Upstream(0));
    }

    #[test]
    fn problems_point_into_the_document_at_fault() {
        let problems = with_documents(
            &base(),
            &[
                json!({"name": "file-up", "targets": ["http://127.0.0.1:1"]}),
                json!({"name": "x", "targets": ["ftp://h"], "colour": 1}),
            ],
            &[json!({"name": "r", "path": "/r", "methods": ["GET"], "upstream": "nowhere"})],
        )
        .unwrap_err();
        let got: Vec<(usize, bool, &str)> = problems
            .iter()
            .map(|p| (p.index, p.route, p.pointer.as_str()))
            .collect();
        assert!(got.contains(&(0, false, "/name")), "{problems:?}");
        assert!(got.contains(&(1, false, "/targets/0")), "{problems:?}");
        assert!(got.contains(&(1, false, "/colour")), "{problems:?}");
        assert!(got.contains(&(0, true, "/upstream")), "{problems:?}");

        let problems = with_documents(
            &base(),
            &[],
            &[json!({"name": "again", "path": "/file", "methods": ["GET"], "upstream": "file-up"})],
        )
        .unwrap_err();
        assert_eq!(
            (problems[0].index, problems[0].pointer.as_str()),
            (0, "/path")
        );
    }
}
