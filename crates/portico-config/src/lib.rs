//! Portico's configuration, read in stages: YAML text → a tree of located nodes
//! ([`yaml`]) → a validated [`Config`], with every problem reported at once, each with its
//! line, column and key path.
//!
//! Unknown keys are errors: a misspelt `max_body_bytes` must never silently leave a limit off.

#![forbid(unsafe_code)]
// The JSON Schemas in `schema.rs` are written with `serde_json::json!`, which nests deep.
#![recursion_limit = "256"]

mod access;
mod apis;
mod cache;
mod content;
mod documents;
mod egress;
mod jobs;
mod limits;
mod listen;
mod model;
mod openapi;
mod path_template;
mod plans;
mod rate_limits;
mod read;
mod redirect;
mod route_table;
mod routes;
pub mod schema;
mod telemetry;
mod transform;
mod upstreams;
pub mod yaml;

use std::fmt;
use std::path::Path;

pub use access::{
    Access, AccessKey, ApiKey, ApiKeyPlace, AuthScheme, BillingState, Consumer, Jwt, Project,
    project_id_for,
};
pub use apis::{Api, ApiVersion, VersionState, Window, parse_timestamp};
pub use cache::{CacheDisk, CacheStorage, RouteCache};
pub use content::PRECOMPRESSED;
pub use content::StaticFiles;
pub use documents::{DocumentProblem, Documents, Section, with_documents};
pub use egress::{Egress, EgressAuth};
pub use jobs::{AsyncJobs, DEFAULT_JOBS_PATH, Deadline, Idempotency};
pub use limits::Limits;
pub use listen::{AdminListener, Http2, TlsListener};
pub use model::{AccessLog, Config};
pub use openapi::{OpenApiOperation, ResponseCheck, load_openapi, route_param};
pub use path_template::PathTemplate;
pub use plans::{DEFAULT_PLAN, Plan, Quota, QuotaPeriod};
pub use rate_limits::{Cluster, LimitKey, OnStoreFailure, RateLimit};
pub use read::{parse_duration, parse_size};
pub use redirect::{REDIRECT_STATUSES, Redirect};
pub use route_table::{Overlap, RouteGroup, RouteTable};
pub use routes::{Answer, BuiltIn, Route};
pub use telemetry::{Metrics, Tracing};
pub use transform::BodyTransform;
pub use upstreams::{HealthCheck, Transport, Upstream, UpstreamTarget, UpstreamTls, parse_target};
use yaml::Loc;

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where, when known.
    pub loc: Option<Loc>,
    /// Key path, e.g. `routes[2].upstream` (empty for the document itself).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn at(loc: Loc, path: &str, message: impl Into<String>) -> Problem {
        Problem {
            loc: Some(loc),
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// Every problem found in one configuration source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems {
    /// The file name (or another label) the problems refer to.
    pub origin: String,
    /// The problems, in document order.
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.list {
            write!(f, "{}", self.origin)?;
            if let Some(loc) = p.loc {
                write!(f, ":{}:{}", loc.line, loc.col)?;
            }
            if !p.path.is_empty() {
                write!(f, ": {}", p.path)?;
            }
            writeln!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Parses and validates configuration text. `origin` labels the problems (a file name).
/// Relative paths in it (a static route's `root`) are relative to the working directory.
pub fn from_str(src: &str, origin: &str) -> Result<Config, Problems> {
    parse(src, origin, None, None)
}

/// As [`from_str`], with `${NAME}` secrets looked up in `env` instead of the process
/// environment.
pub fn from_str_with_env(
    src: &str,
    origin: &str,
    env: impl Fn(&str) -> Option<String> + 'static,
) -> Result<Config, Problems> {
    parse(src, origin, None, Some(Box::new(env)))
}

fn parse(
    src: &str,
    origin: &str,
    base: Option<&Path>,
    env: Option<read::Env>,
) -> Result<Config, Problems> {
    let problems = |list| Problems {
        origin: origin.to_string(),
        list,
    };
    let root = yaml::load(src).map_err(|p| problems(vec![p]))?;
    let mut reader = read::Reader {
        base: base.map(Path::to_path_buf),
        env,
        ..read::Reader::default()
    };
    match Config::read(&mut reader, &root) {
        Some(config) if reader.problems.is_empty() => Ok(config),
        _ => {
            let mut list = reader.problems;
            list.sort_by_key(|p| p.loc.map(|l| (l.line, l.col)));
            Err(problems(list))
        }
    }
}

/// The configuration file with its `openapi` entries written out as the routes they stand
/// for (`portico openapi routes`): YAML that `check-config` accepts. The file is validated
/// first; a file with problems gives them instead.
pub fn expand_openapi(path: &Path) -> Result<String, Problems> {
    load(path)?;
    let origin = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| Problems {
        origin: origin.clone(),
        list: vec![Problem {
            loc: None,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    let root = yaml::load(&src).map_err(|p| Problems {
        origin: origin.clone(),
        list: vec![p],
    })?;
    let mut reader = read::Reader {
        base: path.parent().map(Path::to_path_buf),
        ..read::Reader::default()
    };
    Ok(openapi::expanded(&mut reader, &root))
}

/// Reads and validates a configuration file. Relative paths in it are relative to the file's
/// directory.
pub fn load(path: &Path) -> Result<Config, Problems> {
    let origin = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| Problems {
        origin: origin.clone(),
        list: vec![Problem {
            loc: None,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    parse(&src, &origin, path.parent(), None)
}
