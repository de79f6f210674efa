//! The embedded store: one SQLite file, written in WAL mode with `synchronous=FULL`, so that a
//! write acknowledged to a client is on disk even if the process is killed right after.
//!
//! SQLite calls block, so each operation runs on tokio's blocking pool with the one connection
//! (SQLite takes one writer at a time anyway; the admin API is not a hot path). Idempotency
//! keys, on a request's path, are kept differently: claims in flight in the process
//! (`sqlite_claims.rs`), kept responses written by one thread that commits them in groups
//! (`group_commit.rs`: one fsync for all that arrived during the last), which also looks
//! keys up.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::group_commit::{GroupCommit, Step};
use crate::sqlite_claims::Claims;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, Transaction, params};
use serde_json::Value;

use crate::{
    Document, Expect, JobEnd, JobRecord, KeptResponse, KeyClaim, KeyState, Lookup, MIGRATIONS,
    NewDocument, NewJob, Store, StoreError, StoredToken, check_revision, check_version, from_sql,
    new_id, now_ms, sql_count,
};

/// A store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Claims on idempotency keys in flight.
    claims: Arc<Mutex<Claims>>,
    /// The writes that wait for the disk, committed in groups.
    writes: GroupCommit,
}

fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::backend(e)
}

/// A write that broke the unique index on live names is a taken name; anything else is the
/// backend's.
fn write_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::NameTaken,
        _ => backend(e),
    }
}

const COLUMNS: &str = "kind, id, scope, name, version, body, created_ms, updated_ms, revision";

fn document(row: &Row<'_>) -> rusqlite::Result<Document> {
    let body: String = row.get(5)?;
    Ok(Document {
        kind: row.get(0)?,
        id: row.get(1)?,
        scope: row.get(2)?,
        name: row.get(3)?,
        version: from_sql(row.get(4)?),
        // Written by this store from a `Value`, so it parses; `Null` if the file was edited.
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        created_ms: row.get(6)?,
        updated_ms: row.get(7)?,
        revision: from_sql(row.get(8)?),
    })
}

/// Raises the store's revision; returns the new one.
fn bump(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE store_revision SET value = value + 1 WHERE id = 1 RETURNING value",
        [],
        |r| r.get(0),
    )
}

/// The current version of a document, or why there is none to change.
fn current(tx: &Transaction<'_>, kind: &str, id: &str) -> Result<u64, StoreError> {
    let row: Option<(i64, Option<i64>)> = tx
        .query_row(
            "SELECT version, deleted_ms FROM documents WHERE kind = ?1 AND id = ?2",
            params![kind, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    match row {
        None => Err(StoreError::NotFound),
        Some((_, Some(_))) => Err(StoreError::Gone),
        Some((v, None)) => Ok(from_sql(v)),
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the store at `path` and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut conn = Connection::open(&path).map_err(backend)?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(backend)?;
            migrate(&mut conn).map_err(backend)?;
            let conn = Arc::new(Mutex::new(conn));
            let writes = GroupCommit::start(conn.clone()).map_err(backend)?;
            Ok(SqliteStore {
                conn,
                claims: Arc::default(),
                writes,
            })
        })
        .await
        .map_err(backend)?
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(backend)?
    }
}

/// Keeps the response of a request that claimed key `?1` (payload `?2`, claim `?3`, lease
/// `?4`), until `?5`: status `?6`, header lines `?7`, body `?8`. The row replaces an
/// expired one of the same key.
const KEEP_RESPONSE: &str = "
    INSERT INTO idempotency_keys
        (key, fingerprint, claim, lease_until_ms, expires_ms, done, status, head, body)
    VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8)
    ON CONFLICT (key) DO UPDATE SET
        fingerprint = excluded.fingerprint, claim = excluded.claim,
        lease_until_ms = excluded.lease_until_ms, expires_ms = excluded.expires_ms, done = 1,
        status = excluded.status, head = excluded.head, body = excluded.body";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared SQL with SQLite's numbered parameters: SQLite reads `$1` as a *named*
/// parameter, numbered in order of first appearance, so a statement that names `$3` before
/// `$1` would bind the wrong values; `?3` is the third, wherever it appears.
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS portico_migrations (version INTEGER PRIMARY KEY)",
    )?;
    let done: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM portico_migrations",
        [],
        |r| r.get(0),
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version > done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO portico_migrations (version) VALUES (?1)",
                [version],
            )?;
        }
    }
    tx.commit()
}

impl Store for SqliteStore {
    async fn create(&self, new: NewDocument<'_>) -> Result<Document, StoreError> {
        let (kind, scope, name) = (
            new.kind.to_string(),
            new.scope.to_string(),
            new.name.to_string(),
        );
        let body = new.body.clone();
        let since = new.unchanged_since;
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let revision = bump(&tx).map_err(backend)?;
            check_revision(revision, since)?;
            let now = now_ms();
            let id = new_id();
            tx.execute(
                "INSERT INTO documents (kind, id, scope, name, version, body, created_ms, updated_ms, revision)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6, ?7)",
                params![kind, id, scope, name, body.to_string(), now, revision],
            )
            .map_err(write_error)?;
            tx.commit().map_err(backend)?;
            Ok(Document {
                kind,
                id,
                scope,
                name,
                version: 1,
                body,
                created_ms: now,
                updated_ms: now,
                revision: from_sql(revision),
            })
        })
        .await
    }

    async fn get(&self, kind: &str, id: &str) -> Result<Lookup, StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.with(move |conn| {
            let row = conn
                .query_row(
                    &format!(
                        "SELECT {COLUMNS}, deleted_ms FROM documents WHERE kind = ?1 AND id = ?2"
                    ),
                    params![kind, id],
                    |r| Ok((document(r)?, r.get::<_, Option<i64>>(9)?)),
                )
                .optional()
                .map_err(backend)?;
            Ok(match row {
                None => Lookup::Missing,
                Some((_, Some(deleted_ms))) => Lookup::Gone { deleted_ms },
                Some((doc, None)) => Lookup::Live(doc),
            })
        })
        .await
    }

    async fn list(
        &self,
        kind: &str,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        let (kind, scope) = (kind.to_string(), scope.to_string());
        let after = after.unwrap_or("").to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM documents
                     WHERE kind = ?1 AND scope = ?2 AND id > ?3 AND deleted_ms IS NULL
                     ORDER BY id LIMIT ?4"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![kind, scope, after, limit], document)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn replace(
        &self,
        kind: &str,
        id: &str,
        expected: Expect,
        name: &str,
        body: &Value,
    ) -> Result<Document, StoreError> {
        let (kind, id, name) = (kind.to_string(), id.to_string(), name.to_string());
        let body = body.clone();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let version = current(&tx, &kind, &id)?;
            check_version(version, expected.version)?;
            let revision = bump(&tx).map_err(backend)?;
            check_revision(revision, expected.unchanged_since)?;
            let doc = tx
                .query_row(
                    &format!(
                        "UPDATE documents SET name = ?3, body = ?4, version = version + 1,
                         updated_ms = ?5, revision = ?6 WHERE kind = ?1 AND id = ?2
                         RETURNING {COLUMNS}"
                    ),
                    params![kind, id, name, body.to_string(), now_ms(), revision],
                    document,
                )
                .map_err(write_error)?;
            tx.commit().map_err(backend)?;
            Ok(doc)
        })
        .await
    }

    async fn delete(&self, kind: &str, id: &str, expected: Expect) -> Result<(), StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let version = current(&tx, &kind, &id)?;
            check_version(version, expected.version)?;
            let revision = bump(&tx).map_err(backend)?;
            check_revision(revision, expected.unchanged_since)?;
            tx.execute(
                "UPDATE documents SET deleted_ms = ?3, body = '{}', revision = ?4
                 WHERE kind = ?1 AND id = ?2",
                params![kind, id, now_ms(), revision],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn purge_tombstones(&self, deleted_before_ms: i64) -> Result<u64, StoreError> {
        self.with(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM documents WHERE deleted_ms IS NOT NULL AND deleted_ms <= ?1",
                    [deleted_before_ms],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn put_token(
        &self,
        digest: &str,
        body: &Value,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let (digest, body) = (digest.to_string(), body.to_string());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO tokens (digest, body, expires_ms) VALUES (?1, ?2, ?3)",
                params![digest, body, expires_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_token(&self, digest: &str) -> Result<Option<StoredToken>, StoreError> {
        let digest = digest.to_string();
        self.with(move |conn| {
            let row: Option<(String, i64, Option<i64>)> = conn
                .query_row(
                    "SELECT body, expires_ms, revoked_ms FROM tokens WHERE digest = ?1",
                    [digest],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(body, expires_ms, revoked_ms)| {
                Ok(StoredToken {
                    body: serde_json::from_str(&body).map_err(backend)?,
                    expires_ms,
                    revoked_ms,
                })
            })
            .transpose()
        })
        .await
    }

    async fn revoke_token(&self, digest: &str) -> Result<bool, StoreError> {
        let digest = digest.to_string();
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE tokens SET revoked_ms = ?2 WHERE digest = ?1 AND revoked_ms IS NULL",
                    params![digest, now_ms()],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn purge_tokens(&self, expired_before_ms: i64) -> Result<u64, StoreError> {
        self.with(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM tokens WHERE expires_ms <= ?1",
                    [expired_before_ms],
                )
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn reserve_quota(
        &self,
        project: &str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let project = project.to_string();
        let (want, limit) = (sql_count(want), sql_count(limit));
        self.with(move |conn| {
            let granted: i64 = conn
                .query_row(
                    crate::RESERVE_QUOTA,
                    params![project, period_start, want, limit],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok(from_sql(granted))
        })
        .await
    }

    async fn claim_key(&self, ask: KeyClaim<'_>) -> Result<KeyState, StoreError> {
        let (key, fingerprint, claim) = (
            ask.key.to_string(),
            ask.fingerprint.to_string(),
            ask.claim.to_string(),
        );
        let (lease, expires, now) = (ask.lease_until_ms, ask.expires_ms, ask.now_ms);
        let claims = self.claims.clone();
        // In the writer's queue, on its connection: a handoff to a thread that is awake
        // under load, cheaper than one to the blocking pool; nothing is written.
        let decide = move |conn: &Connection| {
            let ask = KeyClaim {
                key: &key,
                fingerprint: &fingerprint,
                claim: &claim,
                now_ms: now,
                lease_until_ms: lease,
                expires_ms: expires,
            };
            // Held across the lookup, so that no claim is taken between it and the decision.
            let mut claims = lock(&claims);
            if let Some(state) = claims.decide(&ask) {
                return Ok(state);
            }
            let kept = conn
                .prepare_cached(&numbered(crate::PEEK_IDEMPOTENCY_KEY))
                .and_then(|mut st| {
                    st.query_row(params![key], |r| {
                        Ok(crate::settled(
                            &ask,
                            &r.get::<_, String>(0)?,
                            &r.get::<_, String>(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                        ))
                    })
                    .optional()
                })
                .map_err(backend)?;
            if let Some(Some(state)) = kept {
                return Ok(state);
            }
            claims.take(&ask);
            Ok(KeyState::Claimed)
        };
        self.writes.write(move |conn| Step::Now(decide(conn))).await
    }

    async fn finish_key(
        &self,
        key: &str,
        claim: &str,
        response: &KeptResponse,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let (k, c, r) = (key.to_string(), claim.to_string(), response.clone());
        let claims = self.claims.clone();
        let kept = self
            .writes
            .write(move |conn| {
                let Some(held) = lock(&claims).held_by(&k, &c).cloned() else {
                    // The claim lost the key (its lease ran out and a retry took it over).
                    return Step::Now(Ok(false));
                };
                let done = conn.prepare_cached(KEEP_RESPONSE).and_then(|mut st| {
                    st.execute(params![
                        k,
                        held.fingerprint,
                        c,
                        held.lease_until_ms,
                        expires_ms,
                        i64::from(r.status),
                        r.head,
                        r.body
                    ])
                });
                Step::Durable(done.map(|_| true).map_err(backend))
            })
            .await?;
        // The response is durable: the key is answered from it from now on.
        if kept {
            lock(&self.claims).release(key, claim);
        }
        Ok(())
    }

    async fn release_key(&self, key: &str, claim: &str) -> Result<(), StoreError> {
        lock(&self.claims).release(key, claim);
        Ok(())
    }

    async fn create_job(&self, job: &NewJob) -> Result<(), StoreError> {
        let j = job.clone();
        self.with(move |conn| {
            conn.execute(
                &numbered(crate::CREATE_JOB),
                params![
                    j.id,
                    j.project,
                    j.route,
                    j.node,
                    j.state.as_str(),
                    j.now_ms,
                    j.lease_ms,
                    j.now_ms.saturating_add(j.lease_ms),
                    j.expires_ms,
                    j.forget_ms
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn start_job(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            conn.execute(&numbered(crate::START_JOB), params![id, now_ms])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn finish_job(&self, id: &str, end: &JobEnd, now_ms: i64) -> Result<bool, StoreError> {
        let (id, end) = (id.to_string(), end.clone());
        self.with(move |conn| {
            let c = crate::job_columns(&end);
            let tx = conn.transaction().map_err(backend)?;
            if let Some(body) = c.apart {
                tx.execute(&numbered(crate::PUT_JOB_BLOB), params![id, body])
                    .map_err(backend)?;
            }
            let changed = tx
                .execute(
                    &numbered(crate::FINISH_JOB),
                    params![
                        id, c.state, now_ms, c.reason, c.status, c.head, c.inline, c.size, c.etag
                    ],
                )
                .map_err(backend)?;
            if changed == 0 && c.apart.is_some() {
                tx.execute(&numbered(crate::DELETE_JOB_BLOB), params![id])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn get_job(&self, id: &str, with_body: bool) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            let found = conn
                .query_row(&numbered(crate::GET_JOB), params![id], |r| {
                    let size: i64 = r.get(12)?;
                    let inline: Option<Vec<u8>> = if with_body { r.get(11)? } else { None };
                    Ok((
                        crate::job_record(
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            &r.get::<_, String>(3)?,
                            r.get(4)?,
                            [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                            r.get(9)?,
                            r.get(10)?,
                            inline,
                            r.get(13)?,
                        ),
                        size,
                    ))
                })
                .optional()
                .map_err(backend)?;
            let Some((mut job, size)) = found else {
                return Ok(None);
            };
            if let Some(result) = job.result.as_mut()
                && with_body
                && result.body.is_none()
                && size > 0
            {
                result.body = conn
                    .query_row(&numbered(crate::GET_JOB_BLOB), params![id], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
            }
            Ok(Some(job))
        })
        .await
    }

    async fn renew_jobs(&self, node: &str, now_ms: i64) -> Result<u64, StoreError> {
        let node = node.to_string();
        self.with(move |conn| {
            conn.execute(&numbered(crate::RENEW_JOBS), params![node, now_ms])
                .map(|n| n as u64)
                .map_err(backend)
        })
        .await
    }

    async fn fail_stale_jobs(
        &self,
        lease_before_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let reason = reason.to_string();
        self.with(move |conn| {
            conn.execute(
                &numbered(crate::FAIL_STALE_JOBS),
                params![lease_before_ms, now_ms, reason],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }

    async fn job_bytes(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.with(move |conn| {
            conn.query_row(&numbered(crate::JOB_BYTES), params![now_ms], |r| {
                r.get::<_, i64>(0)
            })
            .map(from_sql)
            .map_err(backend)
        })
        .await
    }

    async fn purge_jobs(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.with(move |conn| {
            let mut forgotten = 0;
            for sql in crate::PURGE_JOBS {
                forgotten = conn
                    .execute(&numbered(sql), params![now_ms])
                    .map_err(backend)?;
            }
            Ok(forgotten as u64)
        })
        .await
    }

    async fn purge_keys(&self, expired_before_ms: i64) -> Result<u64, StoreError> {
        lock(&self.claims).purge(expired_before_ms);
        self.with(move |conn| {
            conn.execute(
                &numbered(crate::PURGE_IDEMPOTENCY_KEYS),
                params![expired_before_ms],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }

    async fn add_purge(&self, purge: &Value) -> Result<u64, StoreError> {
        let purge = purge.to_string();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let seq: i64 = tx
                .query_row(crate::NEXT_PURGE, [], |r| r.get(0))
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO cache_purges (seq, purge, at_ms) VALUES (?1, ?2, ?3)",
                params![seq, purge, now_ms()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(from_sql(seq))
        })
        .await
    }

    async fn purges_after(&self, after: u64) -> Result<Vec<(u64, Value)>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut stmt = conn
                .prepare("SELECT seq, purge FROM cache_purges WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after, crate::PURGES_PER_READ], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, purge) = row.map_err(backend)?;
                out.push((
                    from_sql(seq),
                    serde_json::from_str(&purge).map_err(backend)?,
                ));
            }
            Ok(out)
        })
        .await
    }

    async fn last_purge(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT value FROM cache_purge_seq WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(from_sql)
            .map_err(backend)
        })
        .await
    }

    async fn forget_purges(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.with(move |conn| {
            let n = conn
                .execute("DELETE FROM cache_purges WHERE at_ms <= ?1", [before_ms])
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT value FROM store_revision WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(from_sql)
            .map_err(backend)
        })
        .await
    }
}
