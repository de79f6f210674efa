#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;

fn no_files(name: &str) -> Result<Value, String> {
    Err(format!("no file `{name}`"))
}

fn load_ok(doc: Value) -> Spec {
    load("api.yaml", doc, &no_files).unwrap_or_else(|p| panic!("{p:?}"))
}

fn load_err(doc: Value) -> Vec<Problem> {
    load("api.yaml", doc, &no_files).unwrap_err()
}

/// A request's parts, for parameter checks.
#[derive(Default)]
struct Req {
    path: HashMap<&'static str, &'static str>,
    query: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
}

impl Parts for Req {
    fn path_param(&self, name: &str) -> Option<&str> {
        self.path.get(name).copied()
    }
    fn query(&self) -> Option<&str> {
        self.query
    }
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .collect()
    }
}

fn pets(version: &str) -> Value {
    json!({
        "openapi": version,
        "info": {"title": "pets", "version": "1"},
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                        {"name": "tags", "in": "query", "style": "form", "explode": false,
                         "schema": {"type": "array", "items": {"type": "string"}}},
                        {"name": "filter", "in": "query", "style": "deepObject",
                         "schema": {"type": "object", "properties": {"age": {"type": "integer"}}}},
                        {"name": "X-Trace", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[a-f0-9]+$"}},
                        {"name": "Accept", "in": "header", "required": true, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}},
                        "default": {"description": "error", "content": {"application/problem+json": {"schema": {"type": "object"}}}}
                    }
                },
                "post": {
                    "operationId": "createPet",
                    "requestBody": {"$ref": "#/components/requestBodies/Pet"},
                    "responses": {"201": {"description": "made", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
                }
            },
            "/pets/{petId}": {
                "parameters": [{"$ref": "#/components/parameters/PetId"}],
                "get": {"responses": {"200": {"description": "ok"}}},
                "delete": {"operationId": "deletePet", "responses": {"204": {"description": "gone"}}}
            }
        },
        "components": {
            "parameters": {"PetId": {"name": "petId", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}},
            "requestBodies": {"Pet": {"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}},
                "text/plain": {}
            }}},
            "schemas": {
                "Pet": {
                    "type": "object",
                    "required": ["id", "name", "password"],
                    "additionalProperties": false,
                    "properties": {
                        "id": {"type": "integer", "readOnly": true},
                        "name": {"type": "string", "minLength": 1},
                        "tag": {"$ref": "#/components/schemas/Tag"},
                        "password": {"type": "string", "writeOnly": true},
                        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
                    }
                },
                "Tag": {"type": "string", "enum": ["cat", "dog"]}
            }
        }
    })
}

#[test]
fn operations_are_read_with_their_ids_methods_and_media_types() {
    for version in ["3.0.3", "3.1.0"] {
        let spec = load_ok(pets(version));
        let ops: Vec<(&str, Method, &str)> = spec
            .operations
            .iter()
            .map(|o| (o.id.as_str(), o.method, o.path.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("listPets", Method::Get, "/pets"),
                ("createPet", Method::Post, "/pets"),
                ("get_pets_petId", Method::Get, "/pets/{petId}"),
                ("deletePet", Method::Delete, "/pets/{petId}"),
            ]
        );
        let list = &spec.operations[0];
        assert_eq!(
            list.produces()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["application/json"]
        );
        // `Accept` as a header parameter is one OpenAPI says to ignore.
        assert!(list.parameters.iter().all(|p| p.name != "Accept"));
        let create = &spec.operations[1];
        assert_eq!(
            create
                .consumes()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["application/json", "text/plain"]
        );
        assert!(create.body_required());
        assert!(
            create
                .body_schema(b"application/json; charset=utf-8")
                .is_some()
        );
        assert!(create.body_schema(b"text/plain").is_none());
        assert!(spec.operations[3].produces().is_empty());
    }
}

#[test]
fn parameters_are_read_by_style_and_checked_by_schema() {
    let spec = load_ok(pets("3.1.0"));
    let list = &spec.operations[0];
    let fine = Req {
        query: Some("limit=10&tags=a,b&filter[age]=3"),
        headers: vec![("x-trace", "abc123")],
        ..Req::default()
    };
    assert_eq!(list.check_parameters(&fine), []);
    let bad = Req {
        query: Some("limit=ten&filter[age]=old"),
        headers: vec![],
        ..Req::default()
    };
    let problems = list.check_parameters(&bad);
    let found: Vec<(In, &str, &str)> = problems
        .iter()
        .map(|p| (p.location, p.name.as_str(), p.pointer.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (In::Query, "limit", ""),
            (In::Query, "filter", "/age"),
            (In::Header, "X-Trace", ""),
        ],
        "{problems:?}"
    );
    assert!(problems[2].detail.contains("missing"));
    let item = &spec.operations[2];
    let req = |id: &'static str| Req {
        path: [("petId", id)].into_iter().collect(),
        ..Req::default()
    };
    assert_eq!(item.check_parameters(&req("7")), []);
    assert_eq!(item.check_parameters(&req("0")).len(), 1);
    assert_eq!(item.check_parameters(&req("seven")).len(), 1);
}

#[test]
fn bodies_list_every_violation_and_refuse_read_only_properties() {
    for version in ["3.0.3", "3.1.0"] {
        let spec = load_ok(pets(version));
        let schema = spec.operations[1].body_schema(b"application/json").unwrap();
        assert!(schema.is_valid(&json!({"name": "rex", "password": "pw"})));
        let v = schema.violations(&json!({
            "id": 5, "name": "", "tag": "bird", "password": "pw", "items": [{"name": 1}], "x": 1
        }));
        let mut found: Vec<(&str, &str)> = v
            .iter()
            .map(|v| (v.pointer.as_str(), v.keyword.as_str()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("/id", "readOnly"),
                ("/items/0/name", "type"),
                ("/name", "minLength"),
                ("/tag", "enum"),
                ("/x", "additionalProperties"),
            ],
            "{version}: {v:?}"
        );
        let tag = v.iter().find(|v| v.keyword == "enum").unwrap();
        assert_eq!(tag.schema, "api.yaml#/components/schemas/Tag/enum");
    }
}

#[test]
fn responses_are_checked_and_write_only_properties_removed() {
    let spec = load_ok(pets("3.1.0"));
    let list = &spec.operations[0];
    let ResponseRule::Schema(schema) = list.response_rule(200, Some(b"application/json")) else {
        panic!("200 has a schema")
    };
    // `id` is required in responses (readOnly applies to requests), `password` is not.
    assert!(schema.is_valid(&json!([{"id": 1, "name": "rex"}])));
    assert!(!schema.is_valid(&json!([{"name": "rex"}])));
    let mut body =
        json!([{"id": 1, "name": "rex", "password": "hunter2"}, {"id": 2, "name": "tom"}]);
    assert_eq!(schema.violations(&body), []);
    assert!(schema.strip_write_only(&mut body));
    assert_eq!(
        body,
        json!([{"id": 1, "name": "rex"}, {"id": 2, "name": "tom"}])
    );
    assert!(!schema.strip_write_only(&mut body));
    assert!(matches!(
        list.response_rule(200, Some(b"text/html")),
        ResponseRule::UndeclaredMedia
    ));
    assert!(matches!(
        list.response_rule(500, Some(b"application/problem+json")),
        ResponseRule::Schema(_)
    ));
    let delete = &spec.operations[3];
    assert!(matches!(
        delete.response_rule(204, None),
        ResponseRule::Unchecked
    ));
    assert!(matches!(
        delete.response_rule(500, None),
        ResponseRule::UndeclaredStatus
    ));
}

#[test]
fn openapi_3_0_nullable_and_boolean_exclusives_mean_what_they_meant() {
    let doc = json!({
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "paths": {"/x": {"post": {
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object",
                "properties": {
                    "a": {"type": "string", "nullable": true},
                    "b": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                    "c": {"type": "string", "enum": ["x"], "nullable": true},
                    "d": {"$ref": "#/components/schemas/D", "description": "ignored sibling"}
                }
            }}}},
            "responses": {"200": {"description": "ok"}}
        }}},
        "components": {"schemas": {"D": {"type": "integer"}}}
    });
    let spec = load_ok(doc);
    let s = spec.operations[0].body_schema(b"application/json").unwrap();
    assert!(s.is_valid(&json!({"a": null, "b": 0.5, "c": null, "d": 1})));
    assert!(!s.is_valid(&json!({"b": 0})));
    assert!(!s.is_valid(&json!({"d": "x"})));
}

#[test]
fn files_beside_the_document_are_followed() {
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/x": {"post": {
            "parameters": [{"$ref": "common/params.yaml#/Limit"}],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "schemas.json#/Thing"}}}},
            "responses": {"200": {"description": "ok"}}
        }}}
    });
    let read = |name: &str| -> Result<Value, String> {
        match name {
            "schemas.json" => Ok(
                json!({"Thing": {"type": "object", "properties": {"n": {"$ref": "#/N"}}}, "N": {"type": "integer"}}),
            ),
            "common/params.yaml" => Ok(
                json!({"Limit": {"name": "limit", "in": "query", "schema": {"$ref": "../schemas.json#/N"}}}),
            ),
            other => Err(format!("no {other}")),
        }
    };
    let spec = load("api.yaml", doc, &read).unwrap();
    let op = &spec.operations[0];
    let s = op.body_schema(b"application/json").unwrap();
    assert!(s.is_valid(&json!({"n": 1})));
    let v = s.violations(&json!({"n": "x"}));
    assert_eq!(v[0].schema, "schemas.json#/N/type");
    let bad = Req {
        query: Some("limit=x"),
        ..Req::default()
    };
    assert_eq!(op.check_parameters(&bad).len(), 1);
}

/// What cannot be used is refused with the file and the pointer, every problem at once.
#[test]
fn unusable_documents_name_the_file_and_the_pointer() {
    let mut doc = pets("3.1.0");
    doc["paths"]["/pets"]["get"]["parameters"][0]["style"] = json!("matrix");
    doc["paths"]["/pets"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"] =
        json!("#/components/schemas/Nope");
    doc["components"]["schemas"]["Tag"]["type"] = json!("strng");
    let problems = load_err(doc);
    let at: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.file.as_str(), p.pointer.as_str()))
        .collect();
    assert!(
        at.contains(&("api.yaml", "/paths/~1pets/get/parameters/0/style")),
        "{problems:?}"
    );
    assert!(
        at.contains(&(
            "api.yaml",
            "/paths/~1pets/post/responses/201/content/application~1json/schema/$ref"
        )),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(
            |p| p.pointer.starts_with("/components/schemas/Tag") || p.message.contains("strng")
        ),
        "{problems:?}"
    );
    assert!(
        load_err(json!({"swagger": "2.0"}))[0]
            .message
            .contains("not an OpenAPI document")
    );
    assert!(load_err(json!({"openapi": "3.2.0"}))[0].pointer == "/openapi");
}

#[test]
fn hostile_documents_are_refused_at_load() {
    let with_schema = |schema: Value, components: Value| {
        json!({
            "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
            "paths": {"/x": {"post": {
                "requestBody": {"content": {"application/json": {"schema": schema}}},
                "responses": {"200": {"description": "ok"}}
            }}},
            "components": {"schemas": components}
        })
    };
    // A cycle of references that never moves into the value.
    let p = load_err(with_schema(
        json!({"$ref": "#/components/schemas/A"}),
        json!({"A": {"$ref": "#/components/schemas/B"}, "B": {"allOf": [{"$ref": "#/components/schemas/A"}]}}),
    ));
    assert!(p[0].message.contains("forever"), "{p:?}");
    // A recursive schema that does move into the value is fine.
    let spec = load_ok(with_schema(
        json!({"$ref": "#/components/schemas/Tree"}),
        json!({"Tree": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}}}}),
    ));
    let s = spec.operations[0].body_schema(b"application/json").unwrap();
    assert!(s.is_valid(&json!({"kids": [{"kids": []}]})));
    // A pattern too big to compile, and one that is not a regular expression.
    let p = load_err(with_schema(
        json!({"type": "string", "pattern": "\\w{1000}\\w{1000}\\w{1000}"}),
        json!({}),
    ));
    assert!(p[0].pointer.ends_with("/schema/pattern"), "{p:?}");
    let p = load_err(with_schema(
        json!({"type": "string", "pattern": "(?=x)"}),
        json!({}),
    ));
    assert!(p[0].message.contains("look-around"), "{p:?}");
    // A reference to another host is never fetched.
    let p = load_err(with_schema(
        json!({"$ref": "https://evil.example/s.json"}),
        json!({}),
    ));
    assert!(p[0].message.contains("never fetched"), "{p:?}");
    // Nesting deeper than any document needs.
    let mut deep = json!({"type": "string"});
    for _ in 0..200 {
        deep = json!({"type": "array", "items": deep});
    }
    let p = load_err(with_schema(deep, json!({})));
    assert!(p[0].message.contains("levels deep"), "{p:?}");
    // `format: regex` values are bounded regular expressions.
    let spec = load_ok(with_schema(
        json!({"type": "string", "format": "regex"}),
        json!({}),
    ));
    let s = spec.operations[0].body_schema(b"application/json").unwrap();
    assert!(s.is_valid(&json!("^a+$")));
    assert!(!s.is_valid(&json!("(?=a)")));
}

#[test]
fn paths_and_their_parameters_must_agree() {
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/a/{id}": {"get": {"responses": {"200": {"description": "ok"}}}}}
    });
    let p = load_err(doc);
    assert!(
        p[0].message.contains("`{id}` has no path parameter"),
        "{p:?}"
    );
    let doc = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"operationId": "x y", "responses": {}}}}
    });
    assert!(load_err(doc)[0].pointer.ends_with("/operationId"));
}
