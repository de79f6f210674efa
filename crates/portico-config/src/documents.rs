//! Upstreams, routes and APIs kept in the store (created through the admin API) are the same model
//! as the file's: each document is read by the same reader, and the file's configuration with
//! the store's documents added is checked as one (names unique across both, every upstream a
//! route names known, no two routes overlapping).
//!
//! A document is JSON, and JSON is YAML: it is read as the one item of an `upstreams`, `apis` or
//! `routes` list, so every rule and every message is the file's, and a problem's key path
//! becomes a JSON pointer into the document.

use serde_json::Value;

use crate::model::Config;
use crate::route_table::RouteTable;
use crate::routes::Answer;

/// The parts of the model that documents can add to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// `upstreams`.
    Upstreams,
    /// `routes`.
    Routes,
    /// `apis`.
    Apis,
}

impl Section {
    /// Every section, upstreams first (routes name them).
    pub const ALL: [Section; 3] = [Section::Upstreams, Section::Routes, Section::Apis];

    /// Its key in the file, which is also its collection name in the admin API.
    pub const fn name(self) -> &'static str {
        match self {
            Section::Upstreams => "upstreams",
            Section::Routes => "routes",
            Section::Apis => "apis",
        }
    }
}

/// JSON documents for each section, in the order they are added.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Documents {
    /// Upstreams.
    pub upstreams: Vec<Value>,
    /// Routes.
    pub routes: Vec<Value>,
    /// APIs.
    pub apis: Vec<Value>,
}

impl Documents {
    /// The documents of one section.
    pub fn of(&self, section: Section) -> &Vec<Value> {
        match section {
            Section::Upstreams => &self.upstreams,
            Section::Routes => &self.routes,
            Section::Apis => &self.apis,
        }
    }

    /// The documents of one section, to change.
    pub fn of_mut(&mut self, section: Section) -> &mut Vec<Value> {
        match section {
            Section::Upstreams => &mut self.upstreams,
            Section::Routes => &mut self.routes,
            Section::Apis => &mut self.apis,
        }
    }
}

/// One thing wrong with one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentProblem {
    /// Which document: its section and its index in that section's list.
    pub section: Section,
    /// Its index in its section's list.
    pub index: usize,
    /// A JSON pointer into the document (`/targets/0`), empty for the whole document.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for DocumentProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}]{}: {}",
            self.section.name(),
            self.index,
            self.pointer,
            self.message
        )
    }
}

/// The file's configuration with the documents added after its own, or every problem with
/// the documents.
pub fn with_documents(base: &Config, docs: &Documents) -> Result<Config, Vec<DocumentProblem>> {
    let mut problems = Vec::new();
    let mut config = base.clone();
    for (index, doc) in docs.upstreams.iter().enumerate() {
        let text = format!("upstreams: [{doc}]\nroutes: [{PROBE_ROUTE}]\n");
        match read_one(&text, index, Section::Upstreams) {
            Ok(mut c) => {
                let u = c.upstreams.remove(0);
                if config.upstreams.iter().any(|o| o.name == u.name) {
                    problems.push(problem(
                        Section::Upstreams,
                        index,
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
    for (index, doc) in docs.routes.iter().enumerate() {
        let text = format!("upstreams: [{}]\nroutes: [{doc}]\n", stand_ins.join(", "));
        match read_one(&text, index, Section::Routes) {
            Ok(mut c) => {
                let r = c.routes.remove(0);
                if config.routes.iter().any(|o| o.name == r.name) {
                    problems.push(problem(
                        Section::Routes,
                        index,
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
    for (index, doc) in docs.apis.iter().enumerate() {
        let text = format!("apis: [{doc}]\nroutes: [{PROBE_ROUTE}]\n");
        match read_one(&text, index, Section::Apis) {
            Ok(mut c) => {
                let a = c.apis.remove(0);
                if config.apis.iter().any(|o| o.name == a.name) {
                    problems.push(problem(
                        Section::Apis,
                        index,
                        "/name",
                        format!("an API named `{}` exists", a.name),
                    ));
                } else if config.apis.iter().any(|o| o.base_path == a.base_path) {
                    problems.push(problem(
                        Section::Apis,
                        index,
                        "/base_path",
                        format!("another API has the base path `{}`", a.base_path),
                    ));
                } else {
                    config.apis.push(a);
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
                problems.push(problem(Section::Routes, index, "/path", o.message));
            }
        }
    }
    debug_assert!(config.routes.iter().all(|r| match r.answer {
        Answer::Upstream(i) => i < config.upstreams.len(),
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

fn problem(section: Section, index: usize, pointer: &str, message: String) -> DocumentProblem {
    DocumentProblem {
        section,
        index,
        pointer: pointer.to_string(),
        message,
    }
}

/// Reads a configuration made around one document; its problems under `prefix` (the
/// document's key path) become pointers into it.
fn read_one(text: &str, index: usize, section: Section) -> Result<Config, Vec<DocumentProblem>> {
    let prefix = format!("{}[0]", section.name());
    crate::from_str(text, "document").map_err(|p| {
        p.list
            .into_iter()
            .map(|p| {
                let pointer = p
                    .path
                    .strip_prefix(prefix.as_str())
                    .map_or(String::new(), to_pointer);
                problem(section, index, &pointer, p.message)
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
            "upstreams:\n  - {name: file-up, targets: [\"http://127.0.0.1:9000\"]}\nroutes:\n  - {name: file-route, path: /file, methods: [GET], upstream: file-up}\napis:\n  - {name: file-api, base_path: /files, versions: [{id: v1, status: published}]}\n",
            "base.yaml",
        )
        .unwrap()
    }

    #[test]
    fn documents_join_the_files_model() {
        let c = with_documents(
            &base(),
            &Documents {
                upstreams: vec![json!({"name": "store-up", "targets": ["h2c://127.0.0.1:9001"]})],
                routes: vec![
                    json!({"name": "a", "path": "/a/{*rest}", "methods": ["GET", "POST"], "upstream": "store-up"}),
                    json!({"name": "b", "path": "/b", "methods": ["GET"], "upstream": "file-up"}),
                ],
                apis: vec![json!({"name": "a", "base_path": "/a", "versions": [{"id": "v1", "status": "retired"}]})],
            },
        )
        .unwrap();
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.routes.len(), 3);
        assert_eq!(c.routes[1].answer, Answer::Upstream(1));
        assert_eq!(c.routes[2].answer, Answer::Upstream(0));
        assert_eq!(c.apis.len(), 2);
        assert_eq!(c.apis[1].versions[0].state, crate::VersionState::Retired);
    }

    #[test]
    fn problems_point_into_the_document_at_fault() {
        let problems = with_documents(
            &base(),
            &Documents {
                upstreams: vec![
                    json!({"name": "file-up", "targets": ["http://127.0.0.1:1"]}),
                    json!({"name": "x", "targets": ["ftp://h"], "colour": 1}),
                ],
                routes: vec![
                    json!({"name": "r", "path": "/r", "methods": ["GET"], "upstream": "nowhere"}),
                ],
                apis: vec![
                    json!({"name": "file-api", "base_path": "/other", "versions": [{"id": "v1", "status": "published"}]}),
                    json!({"name": "b", "base_path": "/files", "versions": [{"id": "v1", "status": "gone"}]}),
                ],
            },
        )
        .unwrap_err();
        let got: Vec<(Section, usize, &str)> = problems
            .iter()
            .map(|p| (p.section, p.index, p.pointer.as_str()))
            .collect();
        assert!(
            got.contains(&(Section::Upstreams, 0, "/name")),
            "{problems:?}"
        );
        assert!(
            got.contains(&(Section::Upstreams, 1, "/targets/0")),
            "{problems:?}"
        );
        assert!(
            got.contains(&(Section::Upstreams, 1, "/colour")),
            "{problems:?}"
        );
        assert!(
            got.contains(&(Section::Routes, 0, "/upstream")),
            "{problems:?}"
        );
        assert!(got.contains(&(Section::Apis, 0, "/name")), "{problems:?}");
        assert!(
            got.contains(&(Section::Apis, 1, "/versions/0/status")),
            "{problems:?}"
        );

        let problems = with_documents(
            &base(),
            &Documents {
                routes: vec![
                    json!({"name": "again", "path": "/file", "methods": ["GET"], "upstream": "file-up"}),
                ],
                ..Documents::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            (
                problems[0].section,
                problems[0].index,
                problems[0].pointer.as_str()
            ),
            (Section::Routes, 0, "/path")
        );
        assert_eq!(
            problems[0].to_string().split(':').next(),
            Some("routes[0]/path")
        );
    }
}
