//! A write the store acknowledged is there after the process is killed with SIGKILL right
//! after: the test runs a writer (this same test binary, re-executed) that creates documents
//! and reports each one as soon as `create` returns, kills it mid-stream, and reopens the file.
//! The same for idempotency keys, whose writes are committed in groups: each response kept is
//! reported as soon as `finish_key` returns.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use std::path::PathBuf;

use portico_store::{KeptResponse, KeyClaim, KeyState, Lookup, NewDocument, SqliteStore, Store};
use serde_json::json;

const WRITER: &str = "PORTICO_STORE_WRITER";

/// In the re-executed child: writes until killed (or a bound, should the parent be gone).
fn write_until_killed(path: &str) {
    runtime().block_on(async {
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
            ack(&d.id);
        }
    });
}

/// Runs `test` (this binary, re-executed) as a writer on a new file, reads at least `at_least`
/// acknowledgements, kills it with SIGKILL, and returns the file and every acknowledged id.
fn acknowledged_before_kill(
    test: &str,
    at_least: usize,
) -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("portico.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(WRITER, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < at_least {
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
    (dir, db, acked)
}

fn ack(id: &str) {
    // One line per acknowledged write; println! flushes at the newline only on a terminal,
    // so flush by hand.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {id}").unwrap();
    out.flush().unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if let Ok(path) = std::env::var(WRITER) {
        write_until_killed(&path);
        return;
    }
    let (_dir, db, acked) = acknowledged_before_kill("acknowledged_writes_survive_kill_9", 200);
    runtime().block_on(async {
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

fn claim<'a>(key: &'a str, claim: &'a str) -> KeyClaim<'a> {
    KeyClaim {
        key,
        fingerprint: "f",
        claim,
        now_ms: 1,
        lease_until_ms: i64::MAX / 2,
        expires_ms: i64::MAX / 2,
    }
}

/// In the re-executed child: many requests at once claim keys and keep responses (so their
/// writes share commits), each key reported once its response is kept.
fn keep_keys_until_killed(path: &str) {
    runtime().block_on(async {
        let s = std::sync::Arc::new(SqliteStore::open(path).await.unwrap());
        let writers: Vec<_> = (0..32)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..100_000 {
                        let key = format!("k{w}-{i}");
                        let id = format!("c{w}-{i}");
                        assert_eq!(
                            s.claim_key(claim(&key, &id)).await.unwrap(),
                            KeyState::Claimed
                        );
                        let kept = KeptResponse {
                            status: 201,
                            head: b"x-n: 1\r\n".to_vec(),
                            body: Some(key.clone().into_bytes()),
                        };
                        s.finish_key(&key, &id, &kept, i64::MAX / 2).await.unwrap();
                        ack(&key);
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    });
}

#[test]
fn kept_responses_committed_in_groups_survive_kill_9() {
    if let Ok(path) = std::env::var(WRITER) {
        keep_keys_until_killed(&path);
        return;
    }
    let (_dir, db, acked) =
        acknowledged_before_kill("kept_responses_committed_in_groups_survive_kill_9", 500);
    runtime().block_on(async {
        let s = SqliteStore::open(&db).await.unwrap();
        for key in &acked {
            match s.claim_key(claim(key, "later")).await.unwrap() {
                KeyState::Done(kept) => assert_eq!(kept.body.as_deref(), Some(key.as_bytes())),
                other => panic!("the response kept under {key} was lost: {other:?}"),
            }
        }
    });
}
