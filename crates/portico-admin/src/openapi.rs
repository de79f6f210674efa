//! The admin API's OpenAPI 3.1 document, made from the schemas it validates with
//! (`schema.rs`) and the resources it serves (`resource.rs`): what it publishes is what it
//! enforces. Served at `/admin/v1/openapi.json`; every response an operation can give is
//! listed with the fields it carries, and each create links to what can be done with what it
//! made (for a tester that follows links).

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::resource::{self, Kind};
use crate::schema;

/// The document, made once.
pub(crate) static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

/// The singular name a kind's operations and schemas use.
fn singular(kind: &Kind) -> &'static str {
    match kind.name {
        "projects" => "Project",
        "consumers" => "Consumer",
        "credentials" => "Credential",
        "plans" => "Plan",
        "upstreams" => "Upstream",
        "routes" => "Route",
        _ => "Api",
    }
}

/// The collection's path, and the name of the item's id parameter.
fn paths_of(kind: &Kind) -> (String, &'static str) {
    match kind.name {
        "consumers" => (
            "/admin/v1/projects/{project_id}/consumers".into(),
            "consumer_id",
        ),
        "credentials" => (
            "/admin/v1/projects/{project_id}/consumers/{consumer_id}/credentials".into(),
            "credential_id",
        ),
        name => (format!("/admin/v1/{name}"), "id"),
    }
}

/// The path parameters of a collection (its parents' ids).
fn parents(kind: &Kind) -> Vec<&'static str> {
    match kind.name {
        "consumers" => vec!["project_id"],
        "credentials" => vec!["project_id", "consumer_id"],
        _ => vec![],
    }
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$"}})
}

/// A response that is an error envelope.
fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Error"}}
        }
    })
}

fn header(description: &str) -> Value {
    json!({"required": true, "description": description, "schema": {"type": "string"}})
}

/// The errors every operation can answer.
fn common(responses: &mut Map<String, Value>) {
    responses.insert(
        "401".into(),
        json!({
            "description": "No bearer token, or not the admin token (`PTC.ADMIN_TOKEN_MISSING`, `PTC.ADMIN_TOKEN_INVALID`).",
            "headers": {"WWW-Authenticate": header("`Bearer realm=\"portico-admin\"`")},
            "content": error("")["content"].clone()
        }),
    );
    responses.insert(
        "405".into(),
        json!({
            "description": "A method the path does not take (any method of the IANA registry; 501 for others).",
            "headers": {"Allow": header("The methods the path takes.")},
            "content": error("")["content"].clone()
        }),
    );
    responses.insert(
        "503".into(),
        json!({
            "description": "The store failed to answer; nothing was changed (`PTC.STORE_UNAVAILABLE`).",
            "headers": {"Retry-After": header("Seconds to wait: 1.")},
            "content": error("")["content"].clone()
        }),
    );
}

fn responses(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (code, v) in entries {
        m.insert(code.to_string(), v);
    }
    common(&mut m);
    Value::Object(m)
}

fn json_body(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn etag() -> Value {
    header("The item's version (strong: `\"vN\"`), for `If-Match` and `If-None-Match`.")
}

fn not_found() -> Value {
    error("No such item (`PTC.RESOURCE_NOT_FOUND`), or, for a nested one, no such parent.")
}

fn gone() -> Value {
    error("The item (or its parent) was deleted, and its tombstone is kept (`PTC.RESOURCE_GONE`).")
}

fn unprocessable() -> Value {
    error(
        "The document breaks the resource's schema (`PTC.VALIDATION_FAILED`); `violations` lists each with its JSON pointer.",
    )
}

fn conflict() -> Value {
    error(
        "The name is taken (`PTC.NAME_TAKEN`), the `version` sent is not the current one (`PTC.VERSION_CONFLICT`), the model cannot take the document (`PTC.MODEL_CONFLICT`: an unknown upstream, an overlapping route, a rule the schema cannot state), it would break other items (`PTC.RESOURCE_IN_USE`), or other writes kept landing first (`PTC.CONCURRENT_CHANGE`).",
    )
}

fn body_errors(entries: &mut Vec<(&'static str, Value)>) {
    entries.push((
        "400",
        error("The body is not a JSON object (`PTC.JSON_MALFORMED`)."),
    ));
    entries.push((
        "413",
        error("The body is over 1 MiB (`PTC.BODY_TOO_LARGE`)."),
    ));
    entries.push((
        "415",
        json!({
            "description": "The body is not `application/json` (`PTC.UNSUPPORTED_MEDIA_TYPE`).",
            "headers": {"Accept": header("The media types taken.")},
            "content": error("")["content"].clone()
        }),
    ));
    entries.push(("422", unprocessable()));
}

/// The operations on a kind's collection and items, and their links.
fn kind_paths(kind: &Kind, paths: &mut Map<String, Value>) {
    let name = singular(kind);
    let (collection, id) = paths_of(kind);
    let item = format!("{collection}/{{{id}}}");
    let parent_params: Vec<Value> = parents(kind).into_iter().map(path_param).collect();
    let mut item_params = parent_params.clone();
    item_params.push(path_param(id));
    let item_ref = json!({"$ref": format!("#/components/schemas/{name}")});
    // What a create links to: the item's operations, with its id from the answer and the
    // parents' ids from the request.
    let mut link_params = Map::new();
    for p in parents(kind) {
        link_params.insert(p.into(), json!(format!("$request.path.{p}")));
    }
    link_params.insert(id.into(), json!("$response.body#/id"));
    let mut links = Map::new();
    for op in ["get", "replace", "patch", "delete"] {
        links.insert(
            format!("{op}{name}"),
            json!({"operationId": format!("{op}{name}"), "parameters": link_params}),
        );
    }
    for child in resource::KINDS
        .into_iter()
        .filter(|k| k.parent.is_some_and(|p| p.name == kind.name))
    {
        let mut p = Map::new();
        for q in parents(kind) {
            p.insert(q.into(), json!(format!("$request.path.{q}")));
        }
        let parent_id = parents(child).last().copied().unwrap_or("id");
        p.insert(parent_id.into(), json!("$response.body#/id"));
        for op in ["create", "list"] {
            let cname = singular(child);
            let op_id = if op == "list" {
                format!("list{cname}s")
            } else {
                format!("create{cname}")
            };
            links.insert(
                op_id.clone(),
                json!({"operationId": op_id, "parameters": p}),
            );
        }
    }
    if kind.stats {
        for (op, path) in [
            ("getRouteStats", "stats"),
            ("resetRouteStats", "stats/reset"),
            ("resetRouteLimits", "limits/reset"),
            ("resetRouteCache", "cache/reset"),
        ] {
            let _ = path;
            links.insert(
                op.into(),
                json!({"operationId": op, "parameters": {"id": "$response.body#/id"}}),
            );
        }
    }
    if kind.name == resource::CONSUMERS.name {
        links.insert(
            "resetConsumerLimits".into(),
            json!({"operationId": "resetConsumerLimits", "parameters": link_params}),
        );
    }
    let mut create_errors = vec![
        (
            "201",
            json!({
                "description": "Created. For a credential, `secret` shows the issued secret this once.",
                "headers": {
                    "Location": header("The new item's URL."),
                    "ETag": etag(),
                    "Cache-Control": header("`no-store`.")
                },
                "content": json_body(item_ref.clone()),
                "links": links
            }),
        ),
        ("404", not_found()),
        ("409", conflict()),
        ("410", gone()),
    ];
    body_errors(&mut create_errors);
    let list_schema = json!({
        "type": "object",
        "required": [kind.name],
        "additionalProperties": false,
        "properties": {
            kind.name: {"type": "array", "items": item_ref},
            "next": {"type": "string", "description": "The next page, when this one is full."}
        }
    });
    let mut collection_params = parent_params.clone();
    collection_params.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "description": "Items in a page (default 100)."}));
    collection_params.push(json!({"name": "marker", "in": "query", "schema": {"type": "string"}, "description": "The id after which the page starts."}));
    paths.insert(
        collection,
        json!({
            "get": {
                "operationId": format!("list{name}s"),
                "summary": format!("The {} (in id order, paged).", kind.name),
                "parameters": collection_params,
                "responses": responses(vec![
                    ("200", json!({"description": "A page.", "headers": {"ETag": header("The store's revision (`\"rN\"`).")}, "content": json_body(list_schema)})),
                    ("304", json!({"description": "`If-None-Match` names the current revision.", "headers": {"ETag": header("The store's revision.")}})),
                    ("404", not_found()),
                    ("410", gone()),
                    ("422", error("`limit` is not a number from 1 to 1000 (`PTC.VALIDATION_FAILED`)."))
                ])
            },
            "post": {
                "operationId": format!("create{name}"),
                "parameters": parent_params,
                "requestBody": {"required": true, "content": json_body(schema::input(kind))},
                "responses": responses(create_errors)
            }
        }),
    );
    let ok = |desc: &str| json!({"description": desc, "headers": {"ETag": etag()}, "content": json_body(item_ref.clone())});
    let mut write_errors = vec![
        ("200", ok("Changed.")),
        ("404", not_found()),
        ("409", conflict()),
        ("410", gone()),
        (
            "412",
            error("`If-Match` does not name the current version (`PTC.PRECONDITION_FAILED`)."),
        ),
    ];
    body_errors(&mut write_errors);
    let patch_errors = write_errors.clone();
    paths.insert(
        item,
        json!({
            "parameters": item_params,
            "get": {
                "operationId": format!("get{name}"),
                "responses": responses(vec![
                    ("200", ok("The item.")),
                    ("304", json!({"description": "`If-None-Match` names the current version.", "headers": {"ETag": etag()}})),
                    ("404", not_found()),
                    ("410", gone()),
                    ("412", error("`If-Match` does not name the current version (`PTC.PRECONDITION_FAILED`)."))
                ])
            },
            "put": {
                "operationId": format!("replace{name}"),
                "requestBody": {"required": true, "content": json_body(schema::replacement(kind))},
                "responses": responses(write_errors)
            },
            "patch": {
                "operationId": format!("patch{name}"),
                "requestBody": {"required": true, "content": {
                    "application/merge-patch+json": {"schema": schema::patch(kind)},
                    "application/json": {"schema": schema::patch(kind)}
                }},
                "responses": responses(patch_errors)
            },
            "delete": {
                "operationId": format!("delete{name}"),
                "responses": responses(vec![
                    ("204", json!({"description": "Deleted: the item answers 410 while its tombstone is kept, then 404."})),
                    ("404", not_found()),
                    ("409", error("Other items still use it, or it still holds items (`PTC.RESOURCE_IN_USE`).")),
                    ("410", gone()),
                    ("412", error("`If-Match` does not name the current version (`PTC.PRECONDITION_FAILED`)."))
                ])
            }
        }),
    );
}

/// The actions and the endpoints that are not resources.
fn other_paths(paths: &mut Map<String, Value>) {
    let reset = |op: &str, params: Vec<Value>, what: &str| {
        json!({
            "parameters": params,
            "post": {
                "operationId": op,
                "summary": what,
                "responses": responses(vec![
                    ("205", json!({"description": "Done; no content."})),
                    ("404", not_found()),
                    ("410", gone())
                ])
            }
        })
    };
    paths.insert(
        "/admin/v1/routes/{id}/stats".into(),
        json!({
            "parameters": [path_param("id")],
            "get": {
                "operationId": "getRouteStats",
                "responses": responses(vec![
                    ("200", json!({"description": "The route's answers by status since it was made or reset.", "content": json_body(json!({
                        "type": "object",
                        "required": ["route", "statuses"],
                        "additionalProperties": false,
                        "properties": {
                            "route": {"type": "string"},
                            "statuses": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                            "cache": {
                                "description": "With `cache`: answered from the cache (`hits`), nothing usable stored (`misses`), a stale entry sent upstream (`stale`), a stale entry answering a failure (`stale_if_error`), responses stored (`stored`), body bytes served from the cache (`bytes_served`).",
                                "type": "object",
                                "additionalProperties": {"type": "integer", "minimum": 0}
                            }
                        }
                    }))})),
                    ("404", not_found()),
                    ("410", gone())
                ])
            }
        }),
    );
    paths.insert(
        "/admin/v1/routes/{id}/stats/reset".into(),
        reset(
            "resetRouteStats",
            vec![path_param("id")],
            "Sets the route's answer counts back to zero.",
        ),
    );
    paths.insert(
        "/admin/v1/routes/{id}/limits/reset".into(),
        reset(
            "resetRouteLimits",
            vec![path_param("id")],
            "Forgets the route's rate-limit state (here and in Redis).",
        ),
    );
    paths.insert(
        "/admin/v1/routes/{id}/cache/reset".into(),
        reset(
            "resetRouteCache",
            vec![path_param("id")],
            "Drops every response the route's cache stored, on this node at once and on every node on the store within a second.",
        ),
    );
    let mut purge_errors = Vec::new();
    body_errors(&mut purge_errors);
    purge_errors.insert(
        0,
        ("205", json!({"description": "Purged, on this node at once and on every node on the store within a second; no content."})),
    );
    paths.insert(
        "/admin/v1/cache/purge".into(),
        json!({"post": {
            "operationId": "purgeCache",
            "summary": "Drops cached responses: one URL's, those under a prefix, or a route's.",
            "requestBody": {"required": true, "content": json_body(schema::purge())},
            "responses": responses(purge_errors)
        }}),
    );
    paths.insert(
        "/admin/v1/projects/{project_id}/consumers/{consumer_id}/limits/reset".into(),
        reset(
            "resetConsumerLimits",
            vec![path_param("project_id"), path_param("consumer_id")],
            "Forgets the consumer's rate-limit state in every limit that counts by consumer.",
        ),
    );
    paths.insert(
        "/admin/v1/openapi.json".into(),
        json!({"get": {
            "operationId": "getOpenApi",
            "responses": responses(vec![("200", json!({"description": "This document.", "content": json_body(json!({"type": "object"}))}))])
        }}),
    );
    paths.insert(
        "/admin/v1/metrics".into(),
        json!({"get": {
            "operationId": "getMetrics",
            "responses": responses(vec![("200", json!({"description": "The data plane's counters.", "content": json_body(json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}))}))])
        }}),
    );
    let text = json!({"type": "string"});
    let named = |extra: Value| {
        let mut props = json!({"name": text, "path": text, "methods": text, "answer": text});
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        props
    };
    let overview = json!({
        "type": "object",
        "required": ["routes", "apis", "upstreams", "reloads"],
        "additionalProperties": false,
        "properties": {
            "routes": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "path", "methods", "answer"],
                "additionalProperties": false,
                "properties": named(json!({}))
            }},
            "apis": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "base_path", "versions"],
                "additionalProperties": false,
                "properties": {
                    "name": text,
                    "base_path": text,
                    "versions": {"type": "array", "items": {
                        "type": "object",
                        "required": ["id", "state"],
                        "additionalProperties": false,
                        "properties": {
                            "id": text,
                            "state": {"enum": ["published", "deprecated", "retired", "disabled"]},
                            "sunset": text,
                            "maintenance": {
                                "type": "object",
                                "required": ["start", "end", "now"],
                                "additionalProperties": false,
                                "properties": {"start": text, "end": text, "now": {"type": "boolean"}}
                            }
                        }
                    }}
                }
            }},
            "upstreams": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "targets"],
                "additionalProperties": false,
                "properties": {
                    "name": text,
                    "targets": {"type": "array", "items": {
                        "type": "object",
                        "required": ["target", "healthy"],
                        "additionalProperties": false,
                        "properties": {"target": text, "healthy": {"type": "boolean"}}
                    }}
                }
            }},
            "reloads": {"type": "array", "items": {
                "type": "object",
                "required": ["time", "result"],
                "additionalProperties": false,
                "properties": {"time": text, "result": {"enum": ["success", "failure"]}}
            }}
        }
    });
    paths.insert(
        "/admin/v1/overview".into(),
        json!({"get": {
            "operationId": "getOverview",
            "summary": "What the data plane serves now: its routes, its APIs and where each version is in its life, its upstreams' targets and their health, and the last configuration loads (what the dashboard shows).",
            "responses": responses(vec![("200", json!({
                "description": "The data plane as it is now.",
                "headers": {"Cache-Control": {"schema": {"type": "string"}}},
                "content": json_body(overview)
            }))])
        }}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {
            "operationId": "getPrometheusMetrics",
            "summary": "The Prometheus exposition: OpenMetrics when `Accept` asks for `application/openmetrics-text`, else the Prometheus text format 0.0.4.",
            "responses": responses(vec![("200", json!({
                "description": "Every metric Portico keeps (docs/metrics.md lists them).",
                "headers": {"Vary": {"schema": {"type": "string"}}, "Cache-Control": {"schema": {"type": "string"}}},
                "content": {
                    portico_telemetry::metrics::PROMETHEUS_TEXT: {"schema": {"type": "string"}},
                    portico_telemetry::metrics::OPENMETRICS: {"schema": {"type": "string"}}
                }
            }))])
        }}),
    );
    paths.insert(
        "/admin/v1/tokens".into(),
        json!({"delete": {
            "operationId": "revokeToken",
            "parameters": [{"name": "X-Subject-Token", "in": "header", "required": true, "schema": {"type": "string", "minLength": 1}}],
            "responses": responses(vec![
                ("204", json!({"description": "Revoked, on this node at once and on the others within a second."})),
                ("400", error("No `X-Subject-Token` (`PTC.SUBJECT_TOKEN_MISSING`).")),
                ("404", error("No live token has this value (`PTC.RESOURCE_NOT_FOUND`)."))
            ])
        }}),
    );
}

/// The whole document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for kind in resource::KINDS {
        kind_paths(kind, &mut paths);
        schemas.insert(singular(kind).into(), schema::representation(kind));
    }
    other_paths(&mut paths);
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every error Portico answers: the cloud convention's members and RFC 9457's; a cause may add members (`violations`, `conflicts`, `current_version`).",
            "required": ["error_code", "error_msg", "request_id", "status", "title"],
            "properties": {
                "error_code": {"type": "string", "pattern": "^PTC\\.[A-Z0-9_]+$"},
                "error_msg": {"type": "string"},
                "request_id": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "title": {"type": "string"},
                "detail": {"type": "string"},
                "violations": {"type": "array", "items": {"type": "object", "required": ["pointer", "message"], "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}}}},
                "conflicts": {"type": "array", "items": {"type": "object", "required": ["message"], "properties": {"kind": {"type": "string"}, "pointer": {"type": "string"}, "message": {"type": "string"}}}},
                "current_version": {"type": "integer"}
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Portico admin API",
            "version": "1",
            "description": "The store's resources under `/admin/v1/`. Every request needs `Authorization: Bearer <admin token>`. Items carry a strong `ETag`; `If-None-Match` on a GET answers 304, `If-Match` on a GET, PUT, PATCH or DELETE that does not hold answers 412. `OPTIONS` on any path answers 204 with `Allow`. This document is made from the schemas the API validates with."
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas
        },
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_an_operation_for_every_kind() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for kind in resource::KINDS {
            let (collection, id) = paths_of(kind);
            assert!(
                doc["paths"][&collection]["post"].is_object(),
                "{collection}"
            );
            assert!(doc["paths"][format!("{collection}/{{{id}}}")]["patch"].is_object());
        }
    }
}
