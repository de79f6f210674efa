//! A write the store acknowledged is there after the process is killed with SIGKILL right
//! after: the test runs a writer (this same test binary, re-executed) that creates documents
//! and reports each one as soon as `create` returns, kills it mid-stream, and reopens the file.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use portico_store::{Lookup, NewDocument, SqliteStore, Store};
use serde_json::json;

const WRITER: &str = "PORTICO_STORE_WRITER";

/// In the re-executed child: writes until killed (or a bound, should the parent be gone).
fn write_until_killed(path: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = SqliteStore::open(path).await.unwrap();
        for i in 0..100_000 {
            let body = json!({"i": i, "pad": "x".repeat(200)});
            let d = s
                .create(NewDocument {
                    kind: "projects",
                    scope: "",
                    name: &format!("p{i}"),
                    body: &body,
                    unchanged_since: None,
                })
                .await
                .unwrap();
            // One line per acknowledged write; println! flushes at the newline only on a
            // terminal, so flush by hand.
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "ACK {}", d.id).unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Ok(path) = std::env::var(WRITER) {
        write_until_killed(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("portico.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_writes_survive_kill_9",
            "--nocapture",
        ])
        .env(WRITER, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 200 {
        let line = lines.next().expect("the writer stopped early").unwrap();
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.to_string());
        }
    }
    // SIGKILL: no destructor, no flush, no checkpoint runs in the writer.
    child.kill().unwrap();
    child.wait().unwrap();
    // Lines written before the kill but not yet read were acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(id) = line.strip_prefix("ACK ") {
            acked.push(id.to_string());
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = SqliteStore::open(&db).await.unwrap();
        for id in &acked {
            assert!(
                matches!(s.get("projects", id).await.unwrap(), Lookup::Live(_)),
                "acknowledged write {id} lost"
            );
        }
        assert!(s.revision().await.unwrap() >= acked.len() as u64);
    });
}
