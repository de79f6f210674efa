//! One suite for every store backend: SQLite always, PostgreSQL against the machine's server
//! (`PORTICO_TEST_DATABASE_URL`; `.ci/run` sets it, and under CI a missing URL fails the test
//! rather than skipping it). Each PostgreSQL test works in a schema of its own.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use portico_store::{
    Document, Expect, JobEnd, JobState, KeptResponse, KeyClaim, KeyState, Lookup, NewDocument,
    NewJob, PgStore, SqliteStore, Store, StoreError, new_id,
};
use serde_json::{Value, json};

fn new<'a>(kind: &'a str, scope: &'a str, name: &'a str, body: &'a Value) -> NewDocument<'a> {
    NewDocument {
        kind,
        scope,
        name,
        body,
        unchanged_since: None,
    }
}

/// Create, read, list, replace, delete, tombstones and the revision, as the admin API uses them.
async fn suite<S: Store>(s: &S) {
    let r0 = s.revision().await.unwrap();
    let body = json!({"plan": "free", "limits": [1, 2]});
    let a = s.create(new("projects", "", "alpha", &body)).await.unwrap();
    assert_eq!(a.id.len(), 32);
    assert!(
        a.id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(
        (a.version, a.body.clone(), a.name.as_str()),
        (1, body.clone(), "alpha")
    );
    assert!(a.revision > r0);
    assert_eq!(s.revision().await.unwrap(), a.revision);
    assert_eq!(
        s.get("projects", &a.id).await.unwrap(),
        Lookup::Live(a.clone())
    );

    // Names are unique among the live documents of one kind and scope only.
    assert_eq!(
        s.create(new("projects", "", "alpha", &body)).await,
        Err(StoreError::NameTaken)
    );
    s.create(new("routes", "", "alpha", &body)).await.unwrap();
    s.create(new("consumers", &a.id, "alpha", &body))
        .await
        .unwrap();
    s.create(new("consumers", "another", "alpha", &body))
        .await
        .unwrap();

    // Lists: one kind and scope, in id order, paged by marker.
    let mut ids = vec![a.id.clone()];
    for i in 0..4 {
        let d = s
            .create(new("projects", "", &format!("p{i}"), &json!({"i": i})))
            .await
            .unwrap();
        ids.push(d.id);
    }
    ids.sort();
    let page1 = s.list("projects", "", None, 3).await.unwrap();
    let page2 = s.list("projects", "", Some(&page1[2].id), 3).await.unwrap();
    let listed: Vec<String> = page1.iter().chain(&page2).map(|d| d.id.clone()).collect();
    assert_eq!(listed, ids);
    assert_eq!(page2.len(), 2);
    assert_eq!(s.list("consumers", &a.id, None, 10).await.unwrap().len(), 1);

    // Replace: the version moves on; a stale version is refused with the current one.
    let patched = json!({"plan": "pro"});
    let b = s
        .replace("projects", &a.id, Expect::version(1), "alpha2", &patched)
        .await
        .unwrap();
    assert_eq!(
        (b.version, b.name.as_str(), b.body.clone()),
        (2, "alpha2", patched.clone())
    );
    assert_eq!(b.created_ms, a.created_ms);
    assert!(b.revision > a.revision);
    assert_eq!(
        s.replace("projects", &a.id, Expect::version(1), "alpha3", &patched)
            .await,
        Err(StoreError::VersionMismatch { current: 2 })
    );
    let c = s
        .replace("projects", &a.id, Expect::ANY, "alpha2", &body)
        .await
        .unwrap();
    assert_eq!(c.version, 3);
    // Renaming onto another live name is refused, and changes nothing.
    assert_eq!(
        s.replace("projects", &a.id, Expect::ANY, "p0", &body).await,
        Err(StoreError::NameTaken)
    );
    let Lookup::Live(unchanged) = s.get("projects", &a.id).await.unwrap() else {
        panic!("gone")
    };
    assert_eq!((unchanged.version, unchanged.name.as_str()), (3, "alpha2"));

    // Delete: a tombstone, whose name is free again.
    assert_eq!(
        s.delete("projects", &a.id, Expect::version(2)).await,
        Err(StoreError::VersionMismatch { current: 3 })
    );
    s.delete("projects", &a.id, Expect::version(3))
        .await
        .unwrap();
    assert!(matches!(
        s.get("projects", &a.id).await.unwrap(),
        Lookup::Gone { .. }
    ));
    assert_eq!(
        s.delete("projects", &a.id, Expect::ANY).await,
        Err(StoreError::Gone)
    );
    assert_eq!(
        s.replace("projects", &a.id, Expect::ANY, "x", &body).await,
        Err(StoreError::Gone)
    );
    assert!(
        !s.list("projects", "", None, 100)
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == a.id)
    );
    let again = s
        .create(new("projects", "", "alpha2", &body))
        .await
        .unwrap();
    assert_ne!(again.id, a.id);

    // A write that expects the store unchanged since a revision: refused, changing nothing,
    // once anything else was written; done when nothing was.
    let since = s.revision().await.unwrap();
    let guarded = |n| NewDocument {
        unchanged_since: Some(since),
        ..new("plans", "", n, &body)
    };
    let first = s.create(guarded("g1")).await.unwrap();
    assert_eq!(first.revision, since + 1);
    assert_eq!(
        s.create(guarded("g2")).await,
        Err(StoreError::RevisionMoved)
    );
    let stale = Expect {
        version: Some(1),
        unchanged_since: Some(since),
    };
    assert_eq!(
        s.replace("plans", &first.id, stale, "g3", &body).await,
        Err(StoreError::RevisionMoved)
    );
    assert_eq!(
        s.delete("plans", &first.id, stale).await,
        Err(StoreError::RevisionMoved)
    );
    assert_eq!(s.revision().await.unwrap(), since + 1);
    let now = Expect {
        version: Some(1),
        unchanged_since: Some(since + 1),
    };
    s.delete("plans", &first.id, now).await.unwrap();

    // Tokens: kept under a digest, outside the documents (the revision does not move), revoked
    // once, purged after they expire.
    let before = s.revision().await.unwrap();
    let grant = json!({"project_id": "p", "consumer": "alice"});
    let digest = "ab".repeat(32);
    s.put_token(&digest, &grant, 5_000).await.unwrap();
    assert!(s.put_token(&digest, &grant, 5_000).await.is_err());
    assert_eq!(s.revision().await.unwrap(), before);
    let kept = s.get_token(&digest).await.unwrap().unwrap();
    assert_eq!(
        (kept.body, kept.expires_ms, kept.revoked_ms),
        (grant.clone(), 5_000, None)
    );
    assert_eq!(s.get_token(&"cd".repeat(32)).await.unwrap(), None);
    assert!(s.revoke_token(&digest).await.unwrap());
    assert!(!s.revoke_token(&digest).await.unwrap());
    assert!(
        s.get_token(&digest)
            .await
            .unwrap()
            .unwrap()
            .revoked_ms
            .is_some()
    );
    assert_eq!(s.purge_tokens(4_999).await.unwrap(), 0);
    assert_eq!(s.purge_tokens(5_000).await.unwrap(), 1);
    assert_eq!(s.get_token(&digest).await.unwrap(), None);

    // Unknown ids.
    let never = new_id();
    assert_eq!(s.get("projects", &never).await.unwrap(), Lookup::Missing);
    assert_eq!(
        s.delete("projects", &never, Expect::ANY).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        s.replace("projects", &never, Expect::ANY, "n", &body).await,
        Err(StoreError::NotFound)
    );

    // Purging tombstones deleted before a time: then the id is unknown.
    assert_eq!(s.purge_tombstones(0).await.unwrap(), 0);
    // The project's tombstone, and the plan's.
    assert_eq!(s.purge_tombstones(i64::MAX).await.unwrap(), 2);
    assert_eq!(s.get("projects", &a.id).await.unwrap(), Lookup::Missing);
}

/// Concurrent creates of one name: exactly one wins.
async fn one_name_one_winner<S: Store + Send + Sync + 'static>(s: Arc<S>) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create(new("upstreams", "", "shared", &json!({"i": i})))
                .await
        }));
    }
    let mut won: Vec<Document> = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(d) => won.push(d),
            Err(e) => assert_eq!(e, StoreError::NameTaken),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
}

/// A quota is taken in reservations: each gets what is left, at most what it asked, per
/// project and period; the revision does not move.
async fn quotas<S: Store>(s: &S) {
    let revision = s.revision().await.unwrap();
    let p = new_id();
    assert_eq!(s.reserve_quota(&p, 1_000, 4, 10).await.unwrap(), 4);
    assert_eq!(s.reserve_quota(&p, 1_000, 4, 10).await.unwrap(), 4);
    assert_eq!(s.reserve_quota(&p, 1_000, 4, 10).await.unwrap(), 2);
    assert_eq!(s.reserve_quota(&p, 1_000, 1, 10).await.unwrap(), 0);
    // The next period, and another project, start afresh.
    assert_eq!(s.reserve_quota(&p, 2_000, 10, 10).await.unwrap(), 10);
    assert_eq!(s.reserve_quota(&new_id(), 1_000, 3, 10).await.unwrap(), 3);
    // A larger limit (the plan changed) gives what is left under it.
    assert_eq!(s.reserve_quota(&p, 1_000, 8, 15).await.unwrap(), 5);
    assert_eq!(s.revision().await.unwrap(), revision);
}

fn claim<'a>(key: &'a str, fingerprint: &'a str, claim: &'a str, now_ms: i64) -> KeyClaim<'a> {
    KeyClaim {
        key,
        fingerprint,
        claim,
        now_ms,
        lease_until_ms: now_ms + 100,
        expires_ms: now_ms + 1_000,
    }
}

/// Idempotency keys: the first claim takes the key; the same payload meanwhile finds it in
/// flight, another payload is told so; a finished key replays its response (kept or not);
/// a released key, a lease that ran out (same payload only) and an expired key can be taken
/// again; the revision does not move.
async fn idempotency_keys<S: Store>(s: &S) {
    let revision = s.revision().await.unwrap();
    let k = new_id();
    assert_eq!(
        s.claim_key(claim(&k, "f1", "c1", 0)).await.unwrap(),
        KeyState::Claimed
    );
    assert_eq!(
        s.claim_key(claim(&k, "f1", "c2", 10)).await.unwrap(),
        KeyState::InFlight
    );
    assert_eq!(
        s.claim_key(claim(&k, "f2", "c2", 10)).await.unwrap(),
        KeyState::OtherPayload
    );
    let kept = KeptResponse {
        status: 201,
        head: b"Location: /items/1\r\n".to_vec(),
        body: Some(b"{\"id\":1}".to_vec()),
    };
    // Only the claim that holds the key finishes it.
    s.finish_key(&k, "c2", &kept, 1_000).await.unwrap();
    assert_eq!(
        s.claim_key(claim(&k, "f1", "c3", 20)).await.unwrap(),
        KeyState::InFlight
    );
    s.finish_key(&k, "c1", &kept, 1_000).await.unwrap();
    assert_eq!(
        s.claim_key(claim(&k, "f1", "c3", 200)).await.unwrap(),
        KeyState::Done(kept.clone())
    );
    assert_eq!(
        s.claim_key(claim(&k, "f2", "c3", 200)).await.unwrap(),
        KeyState::OtherPayload
    );
    // Expired: a new request, whatever its payload.
    assert_eq!(
        s.claim_key(claim(&k, "f2", "c4", 1_000)).await.unwrap(),
        KeyState::Claimed
    );
    // Released: taken again at once.
    s.release_key(&k, "c4").await.unwrap();
    assert_eq!(
        s.claim_key(claim(&k, "f3", "c5", 1_001)).await.unwrap(),
        KeyState::Claimed
    );
    // A lease that ran out (its node died): the same payload takes the key over, another
    // payload is still another payload.
    assert_eq!(
        s.claim_key(claim(&k, "f4", "c6", 1_200)).await.unwrap(),
        KeyState::OtherPayload
    );
    assert_eq!(
        s.claim_key(claim(&k, "f3", "c6", 1_200)).await.unwrap(),
        KeyState::Claimed
    );
    s.release_key(&k, "c5").await.unwrap();
    assert_eq!(
        s.claim_key(claim(&k, "f3", "c7", 1_201)).await.unwrap(),
        KeyState::InFlight
    );
    // A response too large to keep is remembered without its body.
    let unkept = KeptResponse { body: None, ..kept };
    s.finish_key(&k, "c6", &unkept, 5_000).await.unwrap();
    assert_eq!(
        s.claim_key(claim(&k, "f3", "c8", 1_300)).await.unwrap(),
        KeyState::Done(unkept)
    );
    assert_eq!(s.purge_keys(5_000).await.unwrap(), 1);
    assert_eq!(
        s.claim_key(claim(&k, "f9", "c9", 1_300)).await.unwrap(),
        KeyState::Claimed
    );
    assert_eq!(s.revision().await.unwrap(), revision);
}

fn job(node: &str, state: JobState, now_ms: i64) -> NewJob {
    NewJob {
        id: new_id(),
        project: "p1".into(),
        route: "reports".into(),
        node: node.into(),
        state,
        now_ms,
        lease_ms: 100,
        expires_ms: now_ms + 1_000,
        forget_ms: now_ms + 2_000,
    }
}

/// Jobs: recorded pending or running, started, finished once (a large result kept apart and
/// read back whole), renewed by their node, failed when their node's lease ends, their
/// results counted until they expire, then dropped, then the jobs forgotten.
async fn jobs<S: Store>(s: &S) {
    let revision = s.revision().await.unwrap();
    let a = job("node-a", JobState::Pending, 0);
    s.create_job(&a).await.unwrap();
    let got = s.get_job(&a.id, true).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.created_ms, got.result),
        (JobState::Pending, 0, None)
    );
    s.start_job(&a.id, 5).await.unwrap();
    let got = s.get_job(&a.id, false).await.unwrap().unwrap();
    assert_eq!((got.state, got.updated_ms), (JobState::Running, 5));
    let big = vec![b'x'; portico_store::JOB_INLINE_BODY + 1];
    let response = KeptResponse {
        status: 200,
        head: b"Content-Type: text/csv\r\n".to_vec(),
        body: Some(big.clone()),
    };
    let end = JobEnd::Succeeded {
        response: response.clone(),
        etag: "\"r1\"".into(),
    };
    assert!(s.finish_job(&a.id, &end, 10).await.unwrap());
    // Once over, it stays as it ended.
    assert!(
        !s.finish_job(&a.id, &JobEnd::Failed("late".into()), 11)
            .await
            .unwrap()
    );
    let got = s.get_job(&a.id, true).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Succeeded);
    assert_eq!(got.result.as_ref(), Some(&response));
    assert_eq!(got.etag.as_deref(), Some("\"r1\""));
    // Without its body, it is only the state.
    let light = s.get_job(&a.id, false).await.unwrap().unwrap();
    assert_eq!(light.result.unwrap().body, None);
    assert_eq!(s.job_bytes(10).await.unwrap(), big.len() as u64);
    // Node b's job is renewed while b lives; node c's lease runs out and the job fails.
    let b = job("node-b", JobState::Running, 0);
    let c = job("node-c", JobState::Running, 0);
    s.create_job(&b).await.unwrap();
    s.create_job(&c).await.unwrap();
    assert_eq!(s.renew_jobs("node-b", 150).await.unwrap(), 1);
    assert_eq!(
        s.fail_stale_jobs(200, 200, "its node stopped")
            .await
            .unwrap(),
        1
    );
    let got = s.get_job(&c.id, false).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.reason.as_deref()),
        (JobState::Failed, Some("its node stopped"))
    );
    assert_eq!(
        s.get_job(&b.id, false).await.unwrap().unwrap().state,
        JobState::Running
    );
    // Node c comes back too late: what the sweep wrote stands.
    assert!(!s.finish_job(&c.id, &end, 210).await.unwrap());
    // Expired: the result goes, the job is still known; then it is forgotten.
    assert_eq!(s.purge_jobs(1_000).await.unwrap(), 0);
    assert_eq!(s.job_bytes(1_000).await.unwrap(), 0);
    let got = s.get_job(&a.id, true).await.unwrap().unwrap();
    assert_eq!(got.result.and_then(|r| r.body), None);
    assert!(s.purge_jobs(2_000).await.unwrap() >= 3);
    assert_eq!(s.get_job(&a.id, true).await.unwrap(), None);
    assert_eq!(s.get_job("nope", true).await.unwrap(), None);
    assert_eq!(s.revision().await.unwrap(), revision);
}

/// Concurrent claims of one key: exactly one takes it.
async fn one_key_one_claim<S: Store + Send + Sync + 'static>(s: Arc<S>) {
    let k = new_id();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (s, k) = (s.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let c = format!("c{i}");
            s.claim_key(claim(&k, "f", &c, 0)).await.unwrap() == KeyState::Claimed
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}

/// Concurrent reservations never hand out more than the quota, nor less while some is left.
async fn reservations_add_up<S: Store + Send + Sync + 'static>(s: Arc<S>) {
    let p = new_id();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (s, p) = (s.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            for _ in 0..10 {
                got += s.reserve_quota(&p, 0, 3, 100).await.unwrap();
            }
            got
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 100);
}

/// Purges of cached responses: recorded in order, read after a sequence number, forgotten by
/// age; they do not raise the revision.
async fn purges<S: Store>(s: &S) {
    let start = s.last_purge().await.unwrap();
    let revision = s.revision().await.unwrap();
    let a = s.add_purge(&json!({"prefix": "h/a/"})).await.unwrap();
    let b = s.add_purge(&json!({"route": "items"})).await.unwrap();
    assert_eq!((a, b), (start + 1, start + 2));
    assert_eq!(s.last_purge().await.unwrap(), b);
    assert_eq!(s.revision().await.unwrap(), revision);
    let after = s.purges_after(start).await.unwrap();
    assert_eq!(
        after,
        vec![
            (a, json!({"prefix": "h/a/"})),
            (b, json!({"route": "items"}))
        ]
    );
    assert_eq!(s.purges_after(a).await.unwrap().len(), 1);
    assert!(s.purges_after(b).await.unwrap().is_empty());
    assert_eq!(s.forget_purges(i64::MAX).await.unwrap(), 2);
    assert!(s.purges_after(start).await.unwrap().is_empty());
    // Forgetting never reuses a number.
    assert_eq!(s.add_purge(&json!({"url": "h/x"})).await.unwrap(), b + 1);
}

#[tokio::test]
async fn sqlite_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("portico.db"))
        .await
        .unwrap();
    suite(&s).await;
    quotas(&s).await;
    idempotency_keys(&s).await;
    jobs(&s).await;
    purges(&s).await;
    let s = Arc::new(s);
    one_name_one_winner(s.clone()).await;
    one_key_one_claim(s.clone()).await;
    reservations_add_up(s).await;
}

#[tokio::test]
async fn sqlite_keeps_its_data_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.db");
    let s = SqliteStore::open(&path).await.unwrap();
    let d = s
        .create(new("projects", "", "kept", &json!({"a": 1})))
        .await
        .unwrap();
    drop(s);
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        s.get("projects", &d.id).await.unwrap(),
        Lookup::Live(d.clone())
    );
    assert_eq!(s.revision().await.unwrap(), d.revision);
}

/// The PostgreSQL URL, or `None` (with a note) outside CI when it is not set.
fn pg_url() -> Option<String> {
    match std::env::var("PORTICO_TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("PORTICO_TEST_DATABASE_URL is not set; .ci/run sets it")
        }
        Err(_) => {
            eprintln!("PORTICO_TEST_DATABASE_URL is not set: PostgreSQL store not tested");
            None
        }
    }
}

/// A store in a new schema of its own, and that schema's name.
async fn pg_store(url: &str) -> (PgStore, String) {
    let schema = format!("portico_test_{}", &new_id()[..16]);
    (PgStore::connect(url, Some(&schema)).await.unwrap(), schema)
}

async fn drop_schema(url: &str, schema: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_passes_the_suite() {
    let Some(url) = pg_url() else { return };
    let (s, schema) = pg_store(&url).await;
    suite(&s).await;
    quotas(&s).await;
    idempotency_keys(&s).await;
    jobs(&s).await;
    purges(&s).await;
    let s = Arc::new(s);
    one_name_one_winner(s.clone()).await;
    one_key_one_claim(s.clone()).await;
    reservations_add_up(s.clone()).await;
    // A second node on the same schema shares the count.
    let b = Arc::new(PgStore::connect(&url, Some(&schema)).await.unwrap());
    let p = new_id();
    assert_eq!(s.reserve_quota(&p, 0, 6, 10).await.unwrap(), 6);
    assert_eq!(b.reserve_quota(&p, 0, 6, 10).await.unwrap(), 4);
    drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn two_postgres_nodes_see_each_others_writes() {
    let Some(url) = pg_url() else { return };
    let (a, schema) = pg_store(&url).await;
    // A second node on the same schema: migrations already done, nothing runs twice.
    let b = PgStore::connect(&url, Some(&schema)).await.unwrap();
    let d = a
        .create(new("routes", "", "r", &json!({"path": "/x"})))
        .await
        .unwrap();
    assert_eq!(
        b.get("routes", &d.id).await.unwrap(),
        Lookup::Live(d.clone())
    );
    assert_eq!(b.revision().await.unwrap(), d.revision);
    b.delete("routes", &d.id, Expect::version(1)).await.unwrap();
    assert!(matches!(
        a.get("routes", &d.id).await.unwrap(),
        Lookup::Gone { .. }
    ));
    assert_eq!(a.revision().await.unwrap(), d.revision + 1);
    drop_schema(&url, &schema).await;
}
