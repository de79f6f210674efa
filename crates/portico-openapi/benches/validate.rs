//! What checking a request against an operation costs, without the network: a 1 KiB JSON
//! body against a schema of 20 properties (parsed, then validated), and three query
//! parameters read by their style and validated. `bench/openapi.sh` measures the same
//! through the gateway.

#![allow(clippy::unwrap_used, missing_docs)] // benches: a failed unwrap is a failed bench

use criterion::{Criterion, criterion_group, criterion_main};
use portico_openapi::{Parts, load};
use serde_json::{Value, json};

fn document() -> Value {
    // Twenty properties of the common kinds, as `bench/openapi.sh` has them.
    let mut props = serde_json::Map::new();
    for i in 0..8 {
        props.insert(
            format!("text{i}"),
            json!({"type": "string", "minLength": 1, "maxLength": 128}),
        );
    }
    for i in 0..2 {
        props.insert(
            format!("code{i}"),
            json!({"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4,12}$"}),
        );
    }
    for i in 0..4 {
        props.insert(
            format!("count{i}"),
            json!({"type": "integer", "minimum": 0, "maximum": 1_000_000}),
        );
    }
    props.insert(
        "price".into(),
        json!({"type": "number", "exclusiveMinimum": 0}),
    );
    props.insert(
        "ratio".into(),
        json!({"type": "number", "minimum": 0, "maximum": 1}),
    );
    for i in 0..2 {
        props.insert(
            format!("kind{i}"),
            json!({"type": "string", "enum": ["alpha", "beta", "gamma", "delta"]}),
        );
        props.insert(format!("flag{i}"), json!({"type": "boolean"}));
    }
    assert_eq!(props.len(), 20);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "bench", "version": "1"},
        "paths": {"/items": {
            "post": {
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false, "properties": props}}}},
                "responses": {"200": {"description": "ok"}}
            },
            "get": {
                "parameters": [
                    {"name": "limit", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "q", "in": "query", "schema": {"type": "string", "pattern": "^[a-z]{1,20}$"}},
                    {"name": "deep", "in": "query", "schema": {"type": "boolean"}}
                ],
                "responses": {"200": {"description": "ok"}}
            }
        }}
    })
}

fn body() -> String {
    let mut b = serde_json::Map::new();
    for i in 0..8 {
        b.insert(
            format!("text{i}"),
            json!(format!("description of part {i}: {}", "x".repeat(90))),
        );
    }
    for i in 0..2 {
        b.insert(format!("code{i}"), json!(format!("EU-{}", 1_234_567 + i)));
    }
    for i in 0..4 {
        b.insert(format!("count{i}"), json!(1000 * (i + 1)));
    }
    b.insert("price".into(), json!(129.95));
    b.insert("ratio".into(), json!(0.25));
    for i in 0..2 {
        b.insert(format!("kind{i}"), json!("gamma"));
        b.insert(format!("flag{i}"), json!(i == 0));
    }
    Value::Object(b).to_string()
}

struct Query(&'static str);

impl Parts for Query {
    fn path_param(&self, _: &str) -> Option<&str> {
        None
    }
    fn query(&self) -> Option<&str> {
        Some(self.0)
    }
    fn header(&self, _: &str) -> Vec<&str> {
        Vec::new()
    }
}

fn bench(c: &mut Criterion) {
    let read = |_: &str| Err("no files".to_string());
    let spec = load("bench.json", document(), &read).unwrap();
    let post = spec
        .operations
        .iter()
        .find(|o| o.method == portico_http::Method::Post)
        .unwrap();
    let get = spec
        .operations
        .iter()
        .find(|o| o.method == portico_http::Method::Get)
        .unwrap();
    let schema = post.body_schema(b"application/json").unwrap();
    let text = body();
    assert!(text.len() > 900, "{}", text.len());
    c.bench_function("body_parse", |b| {
        b.iter(|| serde_json::from_str::<Value>(&text).unwrap())
    });
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(schema.is_valid(&value));
    c.bench_function("body_validate", |b| b.iter(|| schema.violations(&value)));
    let q = Query("limit=20&q=shoes&deep=true");
    assert!(get.check_parameters(&q).is_empty());
    c.bench_function("three_query_parameters", |b| {
        b.iter(|| get.check_parameters(&q))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
