//! The built-in `echo` handler: answers with the request it saw, as JSON, so a new user can
//! see what Portico received (and what an upstream would get) without running one. Like the
//! proxy, it keeps a caller's credential to itself (its field or query parameter is left out)
//! and says who the caller is instead.

use portico_server::{Error, Request, RequestBody, Response};

use crate::caller::{Caller, CredentialPlace};
use serde_json::{Map, Value};

/// Reads the body (counting it, never keeping it) and describes the request.
pub(crate) async fn echo(
    req: &Request,
    caller: Option<&Caller>,
    route: &str,
    path: &str,
    params: &matchit::Params<'_, '_>,
    body: &mut RequestBody<'_>,
) -> Result<Response, Error> {
    let mut body_length = 0u64;
    while let Some(chunk) = body.chunk().await? {
        body_length += chunk.len() as u64;
    }
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let credential = caller.map(|c| &c.credential);
    let mut headers = Map::new();
    for (name, value) in req.head.fields() {
        let name = lossy(name).to_ascii_lowercase();
        if matches!(credential, Some(CredentialPlace::Field(f)) if **f == *name) {
            continue;
        }
        let value = lossy(value);
        match headers.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name, Value::String(value));
            }
        }
    }
    let params: Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let json = serde_json::json!({
        "method": req.head.method().as_str(),
        "path": path,
        "query": match (req.head.query(), credential) {
            (Some(q), Some(CredentialPlace::Query(name))) => {
                crate::access::without_param(q, name).map(|q| lossy(&q))
            }
            (q, _) => q.map(lossy),
        },
        "caller": caller.map(|c| serde_json::json!({
            "project_id": &*c.project_id,
            "consumer": &*c.consumer,
            "roles": &*c.roles,
        })),
        "route": route,
        "params": params,
        "headers": headers,
        "body_length": body_length,
    });
    let mut text = serde_json::to_vec_pretty(&json).unwrap_or_default();
    text.push(b'\n');
    Ok(Response::new(200)
        .header("Content-Type", "application/json")
        .body(text))
}
