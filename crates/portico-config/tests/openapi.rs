//! `openapi:` entries: a document stands for one route per operation, and what cannot be used
//! in it is a problem of the configuration, named by file, line and JSON pointer.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;

use portico_config::{ResponseCheck, load};
use portico_http::Method;

const PETSTORE: &str = include_str!("../../../examples/openapi/petstore.yaml");

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

const CONFIG: &str = r#"
upstreams:
  - {name: pets, targets: ["http://127.0.0.1:9000"]}
routes:
  - name: pets
    path: /api
    openapi: docs/petstore.yaml
    upstream: pets
    max_body_bytes: 64KiB
    validate_responses: enforce
    operations:
      deletePet: {max_in_flight: 2, validate_responses: off}
"#;

#[test]
fn each_operation_is_a_route_with_its_method_media_types_and_the_entrys_keys() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "docs/petstore.yaml", PETSTORE);
    let config = load(&write(dir.path(), "portico.yaml", CONFIG)).unwrap();
    let routes: Vec<(&str, &str)> = config
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.path.source.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("pets.listPets", "/api/pets"),
            ("pets.createPet", "/api/pets"),
            ("pets.showPet", "/api/pets/{petId}"),
            ("pets.deletePet", "/api/pets/{petId}"),
        ]
    );
    let list = &config.routes[0];
    assert!(list.methods.allows(Method::Get) && !list.methods.allows(Method::Post));
    assert_eq!(list.produces[0].to_string(), "application/json");
    assert!(list.consumes.is_empty());
    assert_eq!(list.max_body_bytes, Some(64 << 10));
    assert_eq!(list.validate_responses, ResponseCheck::Enforce);
    assert_eq!(list.openapi.as_ref().unwrap().operation.id, "listPets");
    let create = &config.routes[1];
    assert_eq!(create.consumes[0].to_string(), "application/json");
    let delete = &config.routes[3];
    assert_eq!(delete.max_in_flight, Some(2));
    assert_eq!(delete.validate_responses, ResponseCheck::Off);
    assert!(delete.produces.is_empty());
}

#[test]
fn an_api_version_can_be_an_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "petstore.yaml", PETSTORE);
    let text = r#"
upstreams:
  - {name: pets, targets: ["http://127.0.0.1:9000"]}
routes:
  - {name: health, path: /health, methods: [GET], handler: echo}
apis:
  - name: petstore
    base_path: /petstore
    versions:
      - id: v2
        status: published
        openapi: {file: petstore.yaml, upstream: pets}
"#;
    let config = load(&write(dir.path(), "portico.yaml", text)).unwrap();
    let names: Vec<(&str, &str)> = config
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.path.source.as_str()))
        .collect();
    assert!(
        names.contains(&("petstore.v2.showPet", "/petstore/v2/pets/{petId}")),
        "{names:?}"
    );
}

#[test]
fn a_document_that_cannot_be_used_is_a_problem_naming_its_file_line_and_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let broken = PETSTORE
        .replace("style: deepObject", "style: matrix")
        .replace(
            "$ref: \"#/components/schemas/Pet\"}\n  /pets/{petId}",
            "$ref: \"#/components/schemas/Nope\"}\n  /pets/{petId}",
        );
    write(dir.path(), "docs/petstore.yaml", &broken);
    let problems = load(&write(dir.path(), "portico.yaml", CONFIG)).unwrap_err();
    let text = problems.to_string();
    assert!(
        text.contains("petstore.yaml:20:18: #/paths/~1pets/get/parameters/2/style"),
        "{text}"
    );
    assert!(text.contains("schemas/Nope` leads nowhere"), "{text}");
    // Reported at the `openapi` key of the configuration.
    assert!(
        text.contains("portico.yaml:7:14: routes[0].openapi"),
        "{text}"
    );
    // A missing file, a file that is not a document, a key that cannot be per operation.
    let dir = tempfile::tempdir().unwrap();
    let text = load(&write(dir.path(), "portico.yaml", CONFIG))
        .unwrap_err()
        .to_string();
    assert!(text.contains("cannot read"), "{text}");
    write(dir.path(), "docs/petstore.yaml", "swagger: '2.0'\n");
    let text = load(&write(dir.path(), "portico.yaml", CONFIG))
        .unwrap_err()
        .to_string();
    assert!(text.contains("not an OpenAPI document"), "{text}");
    write(dir.path(), "docs/petstore.yaml", PETSTORE);
    let bad = CONFIG
        .replace("{max_in_flight: 2, validate_responses: off}", "{path: /x}")
        .replace(
            "deletePet:",
            "deletePet:\n      nope: {}\n      deletePet2:",
        );
    let text = load(&write(dir.path(), "portico.yaml", &bad))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("routes[0].operations.nope: the document has no operation `nope`"),
        "{text}"
    );
}

#[test]
fn openapi_entries_take_a_literal_prefix_and_no_methods() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "docs/petstore.yaml", PETSTORE);
    let bad = CONFIG.replace("path: /api", "path: /api/{x}\n    methods: [GET]");
    let text = load(&write(dir.path(), "portico.yaml", &bad))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("routes[0].path: with `openapi`, `path` is a literal prefix"),
        "{text}"
    );
    assert!(text.contains("routes[0].methods"), "{text}");
    let bad = "routes:\n  - {name: a, path: /a, methods: [GET], handler: echo, validate_responses: report}\n";
    let text = load(&write(dir.path(), "plain.yaml", bad))
        .unwrap_err()
        .to_string();
    assert!(text.contains("validate_responses"), "{text}");
}

#[test]
fn a_root_prefix_and_parameters_whose_names_routes_cannot_have() {
    let dir = tempfile::tempdir().unwrap();
    let doc = PETSTORE
        .replace("{petId}", "{pet-id}")
        .replace("name: petId", "name: pet-id");
    write(dir.path(), "docs/petstore.yaml", &doc);
    let config = load(&write(
        dir.path(),
        "portico.yaml",
        &CONFIG.replace("path: /api", "path: /"),
    ))
    .unwrap();
    assert_eq!(config.routes[2].path.source, "/pets/{pet_id}");
}

#[test]
fn transform_policies_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"
upstreams: [{name: u, targets: ["http://127.0.0.1:9000"]}]
routes:
  - name: a
    path: /a
    methods: [GET]
    upstream: u
    transform: {remove: [/items/*/secret], keep: [/items, /total], rename: {/items/*/nm: name}, add: {/source: {by: portico}}, max_bytes: 64KiB}
"#;
    let config = load(&write(dir.path(), "t.yaml", good)).unwrap();
    let t = config.routes[0].transform.as_ref().unwrap();
    assert_eq!(t.max_bytes, 64 << 10);
    assert_eq!(t.rules.add[0].1, serde_json::json!({"by": "portico"}));
    let bad = good
        .replace("[/items/*/secret]", "[items]")
        .replace("/items/*/nm: name", "/items/*: name");
    let text = load(&write(dir.path(), "t.yaml", &bad))
        .unwrap_err()
        .to_string();
    assert!(text.contains("transform.remove[0]"), "{text}");
    assert!(text.contains("transform.rename./items/*"), "{text}");
    let echo = "routes:\n  - {name: a, path: /a, methods: [GET], handler: echo, transform: {remove: [/x]}}\n";
    let text = load(&write(dir.path(), "t.yaml", echo))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("`transform` is for routes with an `upstream`"),
        "{text}"
    );
}
