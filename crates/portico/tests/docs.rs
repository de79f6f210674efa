//! The docs that are generated from code stay equal to it, and every test the contract names
//! as proof exists. Run with `PORTICO_BLESS=1` to rewrite the generated files.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use portico_http::catalog::{STATUS_TABLE, contract_markdown, errors_markdown};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check_generated(rel: &str, expected: &str) {
    let path = root().join(rel);
    if std::env::var_os("PORTICO_BLESS").is_some() {
        std::fs::write(&path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{rel} is stale: run `PORTICO_BLESS=1 cargo nextest run -p portico --test docs`"
    );
}

#[test]
fn errors_md_is_generated_from_the_catalog() {
    check_generated("docs/errors.md", &errors_markdown());
}

#[test]
fn contract_md_is_generated_from_the_catalog() {
    check_generated("docs/contract.md", &contract_markdown());
}

#[test]
fn every_proof_named_by_the_contract_is_a_test() {
    let crates = root().join("crates");
    let mut missing = Vec::new();
    for row in STATUS_TABLE {
        for proof in row.proof {
            let (file, name) = proof.split_once("::").unwrap();
            let found = std::fs::read_dir(&crates).unwrap().any(|c| {
                let path = c.unwrap().path().join("tests").join(format!("{file}.rs"));
                std::fs::read_to_string(path).is_ok_and(|text| {
                    text.lines().zip(text.lines().skip(1)).any(|(attr, decl)| {
                        attr.trim_start().starts_with("#[tokio::test") || attr.trim_start() == "#[test]"
                    } && decl.contains(&format!("fn {name}(")))
                })
            });
            if !found {
                missing.push(format!("{}: {proof}", row.code));
            }
        }
    }
    assert!(missing.is_empty(), "proofs that are not tests: {missing:?}");
}

#[test]
fn readme_has_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- serve"));
    assert!(readme.contains("cargo nextest run --workspace"));
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.contains("cargo nextest run --workspace"),
        ".ci/run runs the README's test command"
    );
}
