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
        "{rel} is stale: run `PORTICO_BLESS=1 cargo nextest run -p portico -E 'test(/^docs::/)'`"
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

/// A fenced YAML block of a Markdown file: where it starts, its info string and its text.
struct Block {
    file: String,
    line: usize,
    info: String,
    text: String,
}

/// Every ```yaml block in README.md and docs/*.md.
fn yaml_blocks() -> Vec<Block> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.strip_prefix(root()).unwrap().display().to_string();
        let mut open: Option<Block> = None;
        for (i, line) in text.lines().enumerate() {
            let fence = line.trim_start().strip_prefix("```");
            match (&mut open, fence) {
                (None, Some(info)) if info.trim().split(' ').next() == Some("yaml") => {
                    open = Some(Block {
                        file: file.clone(),
                        line: i + 1,
                        info: info.trim().to_string(),
                        text: String::new(),
                    });
                }
                (Some(_), Some(_)) => blocks.extend(open.take()),
                (Some(b), None) => {
                    b.text.push_str(line);
                    b.text.push('\n');
                }
                (None, _) => {}
            }
        }
    }
    blocks
}

/// What a fragment needs around it to be a whole configuration file: a list of routes goes
/// under `routes:`, and a file without routes gets one (a file must have at least one).
fn as_config(block: &str) -> String {
    let first = block
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or("");
    if first.starts_with("- ") {
        return format!("routes:\n{}", indent(block));
    }
    if block.lines().any(|l| l.starts_with("routes:")) {
        block.to_string()
    } else {
        format!(
            "{block}routes:\n  - {{name: docs-example, path: /docs-example, methods: [GET], handler: echo}}\n"
        )
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The `${NAME}` references of a text, each given a value (what secrets need: 32 characters).
fn references(text: &str) -> Vec<(String, String)> {
    text.split("${")
        .skip(1)
        .filter_map(|t| t.split_once('}'))
        .map(|(name, _)| {
            (
                name.to_string(),
                format!("{name:_<32}").to_ascii_lowercase(),
            )
        })
        .collect()
}

/// The files an example may name beside itself: an identity provider's key set, a
/// directory of files to serve, and the example OpenAPI documents (`examples/openapi/`).
fn fixtures(dir: &Path) {
    std::fs::create_dir_all(dir.join("openapi")).unwrap();
    for doc in std::fs::read_dir(root().join("examples/openapi")).unwrap() {
        let doc = doc.unwrap().path();
        std::fs::copy(&doc, dir.join("openapi").join(doc.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.join("idp-keys.json"),
        r#"{"keys": [{"kty": "oct", "kid": "hs", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("static-site")).unwrap();
}

/// Every YAML block the docs show is a Portico configuration (whole, or a fragment made whole
/// by `as_config`) that `portico check-config` accepts, with the environment variables it
/// names set; a block fenced ```` ```yaml apply ```` is a file for `portico apply`, which
/// takes it (with `--dry-run`). So no example in the docs can drift from what Portico reads.
#[test]
fn every_yaml_block_in_the_docs_is_accepted_by_portico() {
    let bin = env!("CARGO_BIN_EXE_portico");
    let blocks = yaml_blocks();
    assert!(blocks.len() >= 10, "found only {} blocks", blocks.len());
    let mut failures = Vec::new();
    for block in &blocks {
        let dir = tempfile::tempdir().unwrap();
        fixtures(dir.path());
        let env = references(&block.text);
        let mut cmd = std::process::Command::new(bin);
        if block.info == "yaml apply" {
            let file = dir.path().join("apply.yaml");
            std::fs::write(&file, &block.text).unwrap();
            let config = dir.path().join("portico.yaml");
            let db = dir.path().join("portico.db");
            std::fs::write(
                &config,
                format!(
                    "admin: {{listen: 127.0.0.1:0, token: docs-example-admin-token}}\nstorage: sqlite://{}\n{}",
                    db.display(),
                    as_config("")
                ),
            )
            .unwrap();
            cmd.arg("apply")
                .arg(&file)
                .arg("--config")
                .arg(&config)
                .arg("--dry-run");
        } else {
            assert_eq!(
                block.info, "yaml",
                "{}:{}: unknown fence",
                block.file, block.line
            );
            let file = dir.path().join("portico.yaml");
            std::fs::write(&file, as_config(&block.text)).unwrap();
            cmd.arg("check-config").arg(&file);
        }
        let out = cmd.envs(env).output().unwrap();
        if !out.status.success() {
            failures.push(format!(
                "{}:{} ({}):\n{}{}",
                block.file,
                block.line,
                block.info,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
