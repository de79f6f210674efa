//! The store as a file: `portico apply FILE` makes the store hold what the file says, and
//! `portico export` writes the store as such a file, which `apply` takes back unchanged.
//!
//! ```yaml
//! upstreams: [...]   # as in the configuration file, and as in the admin API
//! routes: [...]
//! apis: [...]
//! plans: [...]
//! projects:
//!   - name: acme
//!     consumers: [{name: build-bot, roles: [reader]}]
//! ```
//!
//! Items are known by name: one in the file and not in the store is created, one in both that
//! differs is replaced, one in the store and not in the file is deleted. The file is checked
//! whole, by the admin API's own rules, before anything is written. Credentials are not in the
//! file (their secrets are shown once and kept only as hashes); deleting a consumer revokes
//! its credentials.
//!
//! Each write is a transaction, and the writes go in an order that keeps the model whole at
//! each step where it can (routes and APIs go before the upstreams they name; upstreams come
//! before the routes that name them). A failure part-way leaves some changes made; running
//! `apply` again finishes the job, as it changes only what differs.

use std::collections::BTreeMap;

use portico_config::{Config, Documents};
use portico_store::{Document, Expect, NewDocument, Store, StoreError};
use serde_json::{Map, Value};

use crate::all;
use crate::resource::{
    APIS, CONSUMERS, CREDENTIALS, Fields, Kind, PLANS, PROJECTS, ROUTES, UPSTREAMS,
};

/// The file's top-level keys, in the order they are written.
const SECTIONS: [&Kind; 5] = [&UPSTREAMS, &ROUTES, &APIS, &PLANS, &PROJECTS];

/// One change to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What happens.
    pub verb: Verb,
    /// What it happens to, by names: `routes/r`, `projects/acme/consumers/bot`.
    pub path: String,
}

/// What a change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Adds an item.
    Create,
    /// Replaces an item's document.
    Update,
    /// Deletes an item.
    Delete,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.verb {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        };
        write!(f, "{verb} {}", self.path)
    }
}

/// Why `apply` did not finish.
#[derive(Debug)]
pub enum ApplyError {
    /// The file breaks the rules; nothing was written. Each problem is `section[index]/pointer:
    /// message`.
    Invalid(Vec<String>),
    /// The store failed, after the changes listed were made.
    Store {
        /// The changes made before the failure.
        made: Vec<Change>,
        /// The failure.
        error: StoreError,
    },
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Invalid(problems) => {
                for p in problems {
                    writeln!(f, "{p}")?;
                }
                Ok(())
            }
            ApplyError::Store { made, error } => {
                write!(f, "{error} (after {} changes)", made.len())
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// A project as the file has it: its document and its consumers.
struct ProjectEntry {
    doc: Fields,
    consumers: Vec<Fields>,
}

/// What the file asks for, checked.
struct Desired {
    /// By kind name, each item's document by its store name.
    global: BTreeMap<&'static str, BTreeMap<String, Fields>>,
    /// By project name.
    projects: BTreeMap<String, ProjectEntry>,
}

/// Checks the file (JSON, as read from YAML) by the admin API's rules, with the model
/// documents joined to `base` (the configuration file's model, or an empty one).
fn desired(base: &Config, file: &Value) -> Result<Desired, Vec<String>> {
    let mut problems = Vec::new();
    let empty = Map::new();
    let top = match file {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(vec!["the file is a mapping of sections".to_string()]),
    };
    for key in top.keys() {
        if !SECTIONS.iter().any(|k| k.name == key) {
            problems.push(format!(
                "/{key}: unknown section; the sections are upstreams, routes, apis, plans, projects"
            ));
        }
    }
    let mut global = BTreeMap::new();
    let mut projects = BTreeMap::new();
    let mut docs = Documents::default();
    for kind in SECTIONS {
        let items = match top.get(kind.name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                problems.push(format!("/{}: a list", kind.name));
                continue;
            }
        };
        let mut by_name = BTreeMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let at = format!("{}[{i}]", kind.name);
            let Value::Object(mut doc) = item else {
                problems.push(format!("{at}: a mapping"));
                continue;
            };
            // A project's consumers are checked even when the project is not valid.
            let consumers = if kind.name == PROJECTS.name {
                project_consumers(&at, doc.remove("consumers"), &mut problems)
            } else {
                Vec::new()
            };
            let found = crate::schema::violations(
                kind,
                crate::schema::Body::Create,
                &Value::Object(doc.clone()),
            );
            if !found.is_empty() {
                problems.extend(found.into_iter().map(|(p, m)| format!("{at}{p}: {m}")));
                continue;
            }
            let doc = match (kind.validate)(doc, None) {
                Ok(d) => d,
                Err(e) => {
                    problems.extend(violations(&at, &e));
                    continue;
                }
            };
            let name = (kind.store_name)(&doc);
            if let Some(section) = kind.section {
                docs.of_mut(section).push(Value::Object(doc.clone()));
            }
            if kind.name == PROJECTS.name {
                if projects
                    .insert(name.clone(), ProjectEntry { doc, consumers })
                    .is_some()
                {
                    problems.push(format!("{at}/name: `{name}` is used twice"));
                }
            } else if by_name.insert(name.clone(), doc).is_some() && kind.section.is_none() {
                // The model's own check says so for upstreams, routes and APIs.
                problems.push(format!("{at}/name: `{name}` is used twice"));
            }
        }
        global.insert(kind.name, by_name);
    }
    if let Err(model) = portico_config::with_documents(base, &docs) {
        problems.extend(model.iter().map(ToString::to_string));
    }
    if problems.is_empty() {
        Ok(Desired { global, projects })
    } else {
        Err(problems)
    }
}

fn project_consumers(
    at: &str,
    consumers: Option<Value>,
    problems: &mut Vec<String>,
) -> Vec<Fields> {
    let items = match consumers {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.push(format!("{at}/consumers: a list"));
            return Vec::new();
        }
    };
    let mut out: Vec<Fields> = Vec::new();
    for (j, item) in items.into_iter().enumerate() {
        let at = format!("{at}/consumers/{j}");
        let Value::Object(doc) = item else {
            problems.push(format!("{at}: a mapping"));
            continue;
        };
        let found = crate::schema::violations(
            &CONSUMERS,
            crate::schema::Body::Create,
            &Value::Object(doc.clone()),
        );
        if !found.is_empty() {
            problems.extend(found.into_iter().map(|(p, m)| format!("{at}{p}: {m}")));
            continue;
        }
        match (CONSUMERS.validate)(doc, None) {
            Ok(doc) => {
                let name = (CONSUMERS.store_name)(&doc);
                if out.iter().any(|c| (CONSUMERS.store_name)(c) == name) {
                    problems.push(format!("{at}/name: `{name}` is used twice"));
                }
                out.push(doc);
            }
            Err(e) => problems.extend(violations(&at, &e)),
        }
    }
    out
}

/// A 422's violations as `at/pointer: message`.
fn violations(at: &str, e: &portico_server::Error) -> Vec<String> {
    e.members()
        .iter()
        .filter(|(name, _)| *name == "violations")
        .filter_map(|(_, v)| v.as_array())
        .flatten()
        .map(|v| {
            format!(
                "{at}{}: {}",
                v["pointer"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Makes changes, or (on a dry run) only lists them.
struct Applier<'a, S> {
    store: &'a S,
    dry_run: bool,
    changes: Vec<Change>,
}

impl<S: Store> Applier<'_, S> {
    fn note(&mut self, verb: Verb, path: String) {
        self.changes.push(Change { verb, path });
    }

    /// Creates `doc` of `kind` in `scope`; its id (none on a dry run).
    async fn create(
        &mut self,
        kind: &Kind,
        scope: &str,
        path: String,
        doc: &Fields,
    ) -> Result<Option<String>, StoreError> {
        let mut id = None;
        if !self.dry_run {
            let created = self
                .store
                .create(NewDocument {
                    kind: kind.name,
                    scope,
                    name: &(kind.store_name)(doc),
                    body: &Value::Object(doc.clone()),
                    unchanged_since: None,
                })
                .await?;
            id = Some(created.id);
        }
        self.note(Verb::Create, path);
        Ok(id)
    }

    /// Replaces `current` with `doc` if they differ.
    async fn update(
        &mut self,
        kind: &Kind,
        current: &Document,
        path: String,
        doc: &Fields,
    ) -> Result<(), StoreError> {
        if current.body.as_object() == Some(doc) {
            return Ok(());
        }
        if !self.dry_run {
            self.store
                .replace(
                    kind.name,
                    &current.id,
                    Expect::version(current.version),
                    &(kind.store_name)(doc),
                    &Value::Object(doc.clone()),
                )
                .await?;
        }
        self.note(Verb::Update, path);
        Ok(())
    }

    async fn delete(
        &mut self,
        kind: &Kind,
        current: &Document,
        path: String,
    ) -> Result<(), StoreError> {
        if !self.dry_run {
            self.store
                .delete(kind.name, &current.id, Expect::version(current.version))
                .await?;
        }
        self.note(Verb::Delete, path);
        Ok(())
    }

    /// Deletes a consumer and its credentials.
    async fn delete_consumer(
        &mut self,
        consumer: &Document,
        path: String,
    ) -> Result<(), StoreError> {
        for credential in all(self.store, CREDENTIALS.name, &consumer.id).await? {
            let prefix = credential
                .body
                .get("prefix")
                .and_then(Value::as_str)
                .unwrap_or(&credential.id)
                .to_string();
            self.delete(
                &CREDENTIALS,
                &credential,
                format!("{path}/credentials/{prefix}"),
            )
            .await?;
        }
        self.delete(&CONSUMERS, consumer, path).await
    }

    /// Makes the items of a global kind what `want` says: creates and updates, and when
    /// `deletes`, deletes the others.
    async fn sync_kind(
        &mut self,
        kind: &Kind,
        want: &BTreeMap<String, Fields>,
        writes: bool,
        deletes: bool,
    ) -> Result<(), StoreError> {
        let current = by_name(all(self.store, kind.name, "").await?);
        if deletes {
            for (name, doc) in &current {
                if !want.contains_key(name) {
                    self.delete(kind, doc, format!("{}/{name}", kind.name))
                        .await?;
                }
            }
        }
        if writes {
            for (name, doc) in want {
                let path = format!("{}/{name}", kind.name);
                match current.get(name) {
                    Some(c) => self.update(kind, c, path, doc).await?,
                    None => {
                        self.create(kind, "", path, doc).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn sync_projects(
        &mut self,
        want: &BTreeMap<String, ProjectEntry>,
    ) -> Result<(), StoreError> {
        let current = by_name(all(self.store, PROJECTS.name, "").await?);
        for (name, project) in &current {
            if want.contains_key(name) {
                continue;
            }
            let path = format!("projects/{name}");
            for consumer in all(self.store, CONSUMERS.name, &project.id).await? {
                self.delete_consumer(&consumer, format!("{path}/consumers/{}", consumer.name))
                    .await?;
            }
            self.delete(&PROJECTS, project, path).await?;
        }
        for (name, entry) in want {
            let path = format!("projects/{name}");
            let id = match current.get(name) {
                Some(c) => {
                    self.update(&PROJECTS, c, path.clone(), &entry.doc).await?;
                    Some(c.id.clone())
                }
                None => self.create(&PROJECTS, "", path.clone(), &entry.doc).await?,
            };
            let existing = match &id {
                Some(id) => by_name(all(self.store, CONSUMERS.name, id).await?),
                None => BTreeMap::new(),
            };
            for (cname, consumer) in &existing {
                if !entry
                    .consumers
                    .iter()
                    .any(|c| (CONSUMERS.store_name)(c) == *cname)
                {
                    self.delete_consumer(consumer, format!("{path}/consumers/{cname}"))
                        .await?;
                }
            }
            for doc in &entry.consumers {
                let cname = (CONSUMERS.store_name)(doc);
                let cpath = format!("{path}/consumers/{cname}");
                match existing.get(&cname) {
                    Some(c) => self.update(&CONSUMERS, c, cpath, doc).await?,
                    None => {
                        let scope = id.clone().unwrap_or_default();
                        self.create(&CONSUMERS, &scope, cpath, doc).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn by_name(docs: Vec<Document>) -> BTreeMap<String, Document> {
    docs.into_iter().map(|d| (d.name.clone(), d)).collect()
}

/// Makes the store hold what `file` says (see the module's documentation); with `dry_run`,
/// changes nothing. Returns the changes, made or to be made.
pub async fn apply<S: Store>(
    store: &S,
    base: &Config,
    file: &Value,
    dry_run: bool,
) -> Result<Vec<Change>, ApplyError> {
    let want = desired(base, file).map_err(ApplyError::Invalid)?;
    let mut applier = Applier {
        store,
        dry_run,
        changes: Vec::new(),
    };
    let empty = BTreeMap::new();
    let of = |kind: &Kind| want.global.get(kind.name).unwrap_or(&empty);
    let result = async {
        // Routes and APIs that go, first: they may name upstreams that go.
        applier.sync_kind(&ROUTES, of(&ROUTES), false, true).await?;
        applier.sync_kind(&APIS, of(&APIS), false, true).await?;
        applier
            .sync_kind(&UPSTREAMS, of(&UPSTREAMS), true, false)
            .await?;
        applier.sync_kind(&ROUTES, of(&ROUTES), true, false).await?;
        applier.sync_kind(&APIS, of(&APIS), true, false).await?;
        applier
            .sync_kind(&UPSTREAMS, of(&UPSTREAMS), false, true)
            .await?;
        applier.sync_kind(&PLANS, of(&PLANS), true, true).await?;
        applier.sync_projects(&want.projects).await
    }
    .await;
    match result {
        Ok(()) => Ok(applier.changes),
        Err(error) => Err(ApplyError::Store {
            made: applier.changes,
            error,
        }),
    }
}

/// The store as a file that [`apply`] takes back unchanged: every section, items by name,
/// each a JSON document on one line. Credentials are left out.
pub async fn export<S: Store>(store: &S) -> Result<String, StoreError> {
    let mut out = String::from(
        "# Portico's store, written by `portico export`; `portico apply` takes it back.\n",
    );
    for kind in SECTIONS {
        let docs = by_name(all(store, kind.name, "").await?);
        if docs.is_empty() {
            out.push_str(&format!("{}: []\n", kind.name));
            continue;
        }
        out.push_str(&format!("{}:\n", kind.name));
        for doc in docs.values() {
            let mut body = doc.body.as_object().cloned().unwrap_or_default();
            for key in kind.hidden {
                body.remove(*key);
            }
            if kind.name == PROJECTS.name {
                let consumers: Vec<Value> = by_name(all(store, CONSUMERS.name, &doc.id).await?)
                    .into_values()
                    .map(|c| c.body)
                    .collect();
                body.insert("consumers".into(), Value::Array(consumers));
            }
            out.push_str(&format!("  - {}\n", Value::Object(body)));
        }
    }
    Ok(out)
}
