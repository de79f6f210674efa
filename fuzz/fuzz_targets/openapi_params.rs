//! Parameters and JSON bodies of an OpenAPI operation, from arbitrary bytes: reading a path
//! segment, a query and headers by every style, and checking a body against a recursive
//! schema, never panics, and the problems found name only parameters the operation has.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portico_openapi::{Operation, Parts, load};
use serde_json::json;

static OPERATION: LazyLock<Operation> = LazyLock::new(|| {
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "fuzz", "version": "1"},
        "paths": {"/a/{id}/{lab}/{mat}": {"post": {
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "array", "items": {"type": "integer"}}},
                {"name": "lab", "in": "path", "required": true, "style": "label", "explode": true, "schema": {"type": "object", "properties": {"a": {"type": "number"}}}},
                {"name": "mat", "in": "path", "required": true, "style": "matrix", "schema": {"type": "string", "pattern": "^[a-z]+$"}},
                {"name": "q", "in": "query", "schema": {"type": "array", "items": {"type": "boolean"}}},
                {"name": "f", "in": "query", "style": "deepObject", "schema": {"type": "object", "properties": {"x": {"type": "integer"}}}},
                {"name": "p", "in": "query", "style": "pipeDelimited", "explode": false, "schema": {"type": "array"}},
                {"name": "j", "in": "query", "content": {"application/json": {"schema": {"type": "object"}}}},
                {"name": "X-H", "in": "header", "schema": {"type": "array", "items": {"type": "integer"}}},
                {"name": "c", "in": "cookie", "schema": {"type": "string", "format": "regex"}}
            ],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/$defs/Tree"}}}},
            "responses": {"200": {"description": "ok"}}
        }}},
        "$defs": {"Tree": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 8},
            "kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}
        }}}
    });
    let read = |_: &str| Err("no files".to_string());
    load("fuzz.json", doc, &read)
        .map(|s| s.operations[0].clone())
        .unwrap_or_else(|p| panic!("{p:?}"))
});

struct Input<'a> {
    parts: Vec<&'a str>,
}

impl Parts for Input<'_> {
    fn path_param(&self, name: &str) -> Option<&str> {
        match name {
            "id" => self.parts.first().copied(),
            "lab" => self.parts.get(1).copied(),
            "mat" => self.parts.get(2).copied(),
            _ => None,
        }
    }
    fn query(&self) -> Option<&str> {
        self.parts.get(3).copied()
    }
    fn header(&self, name: &str) -> Vec<&str> {
        match name {
            "x-h" => self.parts.get(4).into_iter().copied().collect(),
            "cookie" => self.parts.get(5).into_iter().copied().collect(),
            _ => Vec::new(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let op = &*OPERATION;
    let input = Input {
        parts: text.split('\n').collect(),
    };
    for p in op.check_parameters(&input) {
        assert!(op.parameters.iter().any(|q| q.name == p.name && q.location == p.location));
    }
    if let (Some(schema), Some(body)) = (op.body_schema(b"application/json"), input.parts.get(6))
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(body)
    {
        let violations = schema.violations(&value);
        assert_eq!(violations.is_empty(), schema.is_valid(&value));
    }
});
