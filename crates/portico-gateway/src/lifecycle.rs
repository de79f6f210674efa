//! API lifecycle on the data plane, decided before routing from the configuration's `apis`:
//! version discovery (300) on an API's base path, 410 for a retired version, 503 for a
//! disabled one (no `Retry-After`: waiting changes nothing) or one inside its maintenance
//! window (`Retry-After` to the window's end), and `Deprecation` (RFC 9745) and `Sunset`
//! (RFC 8594) on every answer of a deprecated version.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::{Api, ApiVersion, VersionState};
use portico_http::{ErrorCode, Method};
use portico_server::{Error, Response};
use serde_json::json;

/// The APIs, ready to be matched against request paths.
pub(crate) struct Lifecycle {
    apis: Vec<Entry>,
}

struct Entry {
    /// The base path without a trailing `/` (empty for an API at the root).
    base: String,
    versions: Vec<ApiVersion>,
    /// The 300 answer on the base path, when there are several versions to choose from.
    discovery: Option<(Bytes, String)>,
}

/// What the lifecycle says about a request.
pub(crate) enum Step {
    /// Portico answers it (version discovery).
    Answer(Box<Response>),
    /// Routing goes on; these fields go on the answer (a deprecated version's).
    Proceed(Vec<(&'static str, String)>),
}

fn served(v: &ApiVersion) -> bool {
    matches!(
        v.state,
        VersionState::Published | VersionState::Deprecated { .. }
    )
}

impl Lifecycle {
    pub(crate) fn new(apis: &[Api]) -> Lifecycle {
        let apis = apis
            .iter()
            .map(|api| {
                let base = api.base_path.trim_end_matches('/').to_string();
                let discovery = discovery(&base, &api.versions);
                Entry {
                    base,
                    versions: api.versions.clone(),
                    discovery,
                }
            })
            .collect();
        Lifecycle { apis }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.apis.is_empty()
    }

    /// Decides for a request with this (normalised) path and method, at `now`.
    pub(crate) fn check(
        &self,
        path: &[u8],
        method: Method,
        now: SystemTime,
    ) -> Result<Step, Error> {
        for api in &self.apis {
            let Some(rest) = path.strip_prefix(api.base.as_bytes()) else {
                continue;
            };
            if rest.is_empty() || rest == b"/" {
                if let (Some((body, location)), Method::Get | Method::Head) =
                    (&api.discovery, method)
                {
                    return Ok(Step::Answer(Box::new(
                        Response::new(300)
                            .header("Content-Type", "application/json")
                            .header("Location", location.clone())
                            .body(body.clone()),
                    )));
                }
                continue;
            }
            let Some(rest) = rest.strip_prefix(b"/") else {
                continue;
            };
            let segment = rest.split(|&b| b == b'/').next().unwrap_or_default();
            let Some(version) = api.versions.iter().find(|v| v.id.as_bytes() == segment) else {
                continue;
            };
            return admit(version, now);
        }
        Ok(Step::Proceed(Vec::new()))
    }
}

fn admit(version: &ApiVersion, now: SystemTime) -> Result<Step, Error> {
    match version.state {
        VersionState::Retired => return Err(Error::new(ErrorCode::ApiVersionRetired)),
        VersionState::Disabled => return Err(Error::new(ErrorCode::ApiVersionDisabled)),
        VersionState::Published | VersionState::Deprecated { .. } => {}
    }
    if let Some(w) = version.maintenance
        && w.start <= now
        && now < w.end
    {
        let left = w.end.duration_since(now).unwrap_or_default();
        // Whole seconds, rounded up: a client that waits that long finds the window over.
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        return Err(Error::new(ErrorCode::ApiVersionMaintenance)
            .with_header("Retry-After", secs.to_string()));
    }
    let VersionState::Deprecated { since, sunset } = version.state else {
        return Ok(Step::Proceed(Vec::new()));
    };
    let since = since
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Ok(Step::Proceed(vec![
        ("Deprecation", format!("@{since}")),
        ("Sunset", httpdate::fmt_http_date(sunset)),
    ]))
}

/// The 300 body and `Location` for an API's base path, when more than one version is served:
/// each version (retired ones left out) with its status and link, as OpenStack's version
/// discovery lists them; the first published version is the current one.
fn discovery(base: &str, versions: &[ApiVersion]) -> Option<(Bytes, String)> {
    if versions.iter().filter(|v| served(v)).count() < 2 {
        return None;
    }
    let current = versions
        .iter()
        .find(|v| v.state == VersionState::Published)
        .or_else(|| versions.iter().find(|v| served(v)))?;
    let href = |v: &ApiVersion| format!("{base}/{}/", v.id);
    let list: Vec<_> = versions
        .iter()
        .filter(|v| v.state != VersionState::Retired)
        .map(|v| {
            let status = match v.state {
                _ if v.id == current.id => "CURRENT",
                VersionState::Published => "SUPPORTED",
                VersionState::Deprecated { .. } => "DEPRECATED",
                _ => "DISABLED",
            };
            let mut item = json!({
                "id": v.id,
                "status": status,
                "links": [{"rel": "self", "href": href(v)}],
            });
            if let VersionState::Deprecated { sunset, .. } = v.state {
                item["sunset"] = json!(httpdate::fmt_http_date(sunset));
            }
            item
        })
        .collect();
    let body = json!({ "versions": list }).to_string();
    Some((Bytes::from(body), href(current)))
}
