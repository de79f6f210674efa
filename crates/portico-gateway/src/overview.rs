//! What the gateway serves now, as the dashboard shows it (`GET /admin/v1/overview`): its
//! routes, its APIs with where each version is in its life, and its upstreams' targets with
//! their health.

use std::time::SystemTime;

use portico_config::VersionState;
use serde_json::{Value, json};

use crate::Gateway;
use crate::access_log::rfc3339_millis;
use crate::route::Answer;

impl Gateway {
    /// The routes, APIs and upstreams this gateway serves, at `now` (a version in its
    /// maintenance window says so).
    pub fn overview(&self, now: SystemTime) -> Value {
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let answer = match &r.answer {
                    Answer::Upstream(i) => format!("upstream {}", self.upstream_names[*i]),
                    Answer::Echo => "echo".into(),
                    Answer::Static(..) => "static files".into(),
                    Answer::Redirect(redirect) => format!("redirect {}", redirect.status),
                    Answer::UseProxy(_) => "use proxy".into(),
                    Answer::Tokens(_) => "token service".into(),
                    Answer::Job { .. } => "jobs".into(),
                    Answer::Custom(_) => "handler".into(),
                };
                json!({
                    "name": &*r.name,
                    "path": &*r.template,
                    "methods": r.methods.allow_header(),
                    "answer": answer,
                })
            })
            .collect();
        let apis: Vec<Value> = self
            .apis
            .iter()
            .map(|api| {
                let versions: Vec<Value> = api
                    .versions
                    .iter()
                    .map(|v| {
                        let mut out = json!({"id": v.id, "state": match v.state {
                            VersionState::Published => "published",
                            VersionState::Deprecated { .. } => "deprecated",
                            VersionState::Retired => "retired",
                            VersionState::Disabled => "disabled",
                        }});
                        if let VersionState::Deprecated { sunset, .. } = v.state {
                            out["sunset"] = rfc3339_millis(sunset).into();
                        }
                        if let Some(w) = v.maintenance {
                            out["maintenance"] = json!({
                                "start": rfc3339_millis(w.start),
                                "end": rfc3339_millis(w.end),
                                "now": w.start <= now && now < w.end,
                            });
                        }
                        out
                    })
                    .collect();
                json!({"name": api.name, "base_path": api.base_path, "versions": versions})
            })
            .collect();
        let upstreams: Vec<Value> = self
            .upstreams
            .iter()
            .zip(&self.upstream_names)
            .map(|(u, name)| {
                let targets: Vec<Value> = u
                    .health()
                    .into_iter()
                    .map(|(target, healthy)| json!({"target": &*target, "healthy": healthy}))
                    .collect();
                json!({"name": &**name, "targets": targets})
            })
            .collect();
        json!({"routes": routes, "apis": apis, "upstreams": upstreams})
    }
}
