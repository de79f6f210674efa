//! The shared store: PostgreSQL, for several Portico nodes on one configuration. The same
//! schema and the same transactions as SQLite; migrations take an advisory lock, so nodes that
//! start together do not run them twice.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row, Transaction};

use crate::pg_keys::{Connect, KeyWrite, KeyWriter, OwnedClaim};

use crate::{
    Document, Expect, JobEnd, JobRecord, KeptResponse, KeyClaim, KeyState, Lookup, MIGRATIONS,
    NewDocument, NewJob, Store, StoreError, StoredToken, check_revision, check_version, from_sql,
    new_id, now_ms, sql_count,
};

/// Any number: the advisory lock that serialises migrations across nodes.
const MIGRATION_LOCK: i64 = 0x0070_6f72_7469_636f; // "portico" in ASCII

const COLUMNS: &str = "kind, id, scope, name, version, body, created_ms, updated_ms, revision";

/// A store in a PostgreSQL database.
pub struct PgStore {
    /// Its connections, each made when first needed and made again when lost.
    clients: Vec<Mutex<Option<Client>>>,
    /// Where the next operation starts looking for a free connection.
    next: AtomicUsize,
    /// Where it connects.
    url: String,
    schema: Option<String>,
    /// Writes of idempotency keys, committed in groups on a connection of their own.
    keys: KeyWriter,
}

/// How many connections a store keeps at most: operations on one are serialised, and
/// PostgreSQL commits several connections' transactions with one flush of its log, so a few
/// let concurrent requests (idempotency keys, jobs) share the wait.
const CONNECTIONS: usize = 4;

fn backend(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::backend(e)
}

fn write_error(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::NameTaken
    } else {
        backend(e)
    }
}

fn document(row: &Row) -> Document {
    let body: String = row.get(5);
    Document {
        kind: row.get(0),
        id: row.get(1),
        scope: row.get(2),
        name: row.get(3),
        version: from_sql(row.get(4)),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        created_ms: row.get(6),
        updated_ms: row.get(7),
        revision: from_sql(row.get(8)),
    }
}

async fn bump(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    let row = tx
        .query_one(
            "UPDATE store_revision SET value = value + 1 WHERE id = 1 RETURNING value",
            &[],
        )
        .await
        .map_err(backend)?;
    Ok(row.get(0))
}

/// The current version of a document (locked for the transaction), or why there is none.
async fn current(tx: &Transaction<'_>, kind: &str, id: &str) -> Result<u64, StoreError> {
    let row = tx
        .query_opt(
            "SELECT version, deleted_ms FROM documents WHERE kind = $1 AND id = $2 FOR UPDATE",
            &[&kind, &id],
        )
        .await
        .map_err(backend)?;
    match row {
        None => Err(StoreError::NotFound),
        Some(r) if r.get::<_, Option<i64>>(1).is_some() => Err(StoreError::Gone),
        Some(r) => Ok(from_sql(r.get(0))),
    }
}

impl PgStore {
    /// Connects to `url` and migrates; with `schema`, everything lives in that schema (created
    /// if needed), so that separate stores can share one database.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
        let mut client = open(url, schema).await?;
        migrate(&mut client).await.map_err(backend)?;
        let mut clients = vec![Mutex::new(Some(client))];
        clients.extend((1..CONNECTIONS).map(|_| Mutex::new(None)));
        let (u, sch) = (url.to_string(), schema.map(str::to_string));
        let connect: Connect = Box::new(move || {
            let (u, sch) = (u.clone(), sch.clone());
            Box::pin(async move { open(&u, sch.as_deref()).await })
        });
        Ok(PgStore {
            clients,
            next: AtomicUsize::new(0),
            url: url.to_string(),
            schema: schema.map(str::to_string),
            keys: KeyWriter::start(connect),
        })
    }

    /// A connection for one operation: a free one if there is one, else the next in turn once
    /// it is free; made first if it never was or was lost (the server restarted, the network
    /// failed, an operator ended it), so a store that failed comes back with its server.
    async fn client(&self) -> Result<MappedMutexGuard<'_, Client>, StoreError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.clients.len();
        let free = (0..n).find_map(|k| self.clients[(start + k) % n].try_lock().ok());
        let mut slot = match free {
            Some(slot) => slot,
            None => self.clients[start % n].lock().await,
        };
        if slot.as_ref().is_none_or(Client::is_closed) {
            let lost = slot.is_some();
            *slot = Some(open(&self.url, self.schema.as_deref()).await?);
            if lost {
                tracing::info!("PostgreSQL connection made again");
            }
        }
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| StoreError::backend_says("no PostgreSQL connection"))
    }
}

/// A connection, with `schema` (created if needed) as its search path.
async fn open(url: &str, schema: Option<&str>) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(backend)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    if let Some(schema) = schema {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::backend_says(format!(
                "`{schema}` is not a schema name"
            )));
        }
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
            ))
            .await
            .map_err(backend)?;
    }
    Ok(client)
}

async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS portico_migrations (version BIGINT PRIMARY KEY)")
        .await?;
    let done: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM portico_migrations",
            &[],
        )
        .await?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version > done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO portico_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await?;
        }
    }
    tx.commit().await
}

impl Store for PgStore {
    async fn create(&self, new: NewDocument<'_>) -> Result<Document, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let revision = bump(&tx).await?;
        check_revision(revision, new.unchanged_since)?;
        let now = now_ms();
        let id = new_id();
        let body = new.body.to_string();
        tx.execute(
            "INSERT INTO documents (kind, id, scope, name, version, body, created_ms, updated_ms, revision)
             VALUES ($1, $2, $3, $4, 1, $5, $6, $6, $7)",
            &[&new.kind, &id, &new.scope, &new.name, &body, &now, &revision],
        )
        .await
        .map_err(write_error)?;
        tx.commit().await.map_err(backend)?;
        Ok(Document {
            kind: new.kind.to_string(),
            id,
            scope: new.scope.to_string(),
            name: new.name.to_string(),
            version: 1,
            body: new.body.clone(),
            created_ms: now,
            updated_ms: now,
            revision: from_sql(revision),
        })
    }

    async fn get(&self, kind: &str, id: &str) -> Result<Lookup, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS}, deleted_ms FROM documents WHERE kind = $1 AND id = $2"),
                &[&kind, &id],
            )
            .await
            .map_err(backend)?;
        Ok(match row {
            None => Lookup::Missing,
            Some(r) => match r.get::<_, Option<i64>>(9) {
                Some(deleted_ms) => Lookup::Gone { deleted_ms },
                None => Lookup::Live(document(&r)),
            },
        })
    }

    async fn list(
        &self,
        kind: &str,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        let client = self.client().await?;
        let after = after.unwrap_or("");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM documents
                     WHERE kind = $1 AND scope = $2 AND id COLLATE \"C\" > $3 AND deleted_ms IS NULL
                     ORDER BY id COLLATE \"C\" LIMIT $4"
                ),
                &[&kind, &scope, &after, &limit],
            )
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(document).collect())
    }

    async fn replace(
        &self,
        kind: &str,
        id: &str,
        expected: Expect,
        name: &str,
        body: &Value,
    ) -> Result<Document, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let version = current(&tx, kind, id).await?;
        check_version(version, expected.version)?;
        let revision = bump(&tx).await?;
        check_revision(revision, expected.unchanged_since)?;
        let row = tx
            .query_one(
                &format!(
                    "UPDATE documents SET name = $3, body = $4, version = version + 1,
                     updated_ms = $5, revision = $6 WHERE kind = $1 AND id = $2
                     RETURNING {COLUMNS}"
                ),
                &[&kind, &id, &name, &body.to_string(), &now_ms(), &revision],
            )
            .await
            .map_err(write_error)?;
        tx.commit().await.map_err(backend)?;
        Ok(document(&row))
    }

    async fn delete(&self, kind: &str, id: &str, expected: Expect) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let version = current(&tx, kind, id).await?;
        check_version(version, expected.version)?;
        let revision = bump(&tx).await?;
        check_revision(revision, expected.unchanged_since)?;
        tx.execute(
            "UPDATE documents SET deleted_ms = $3, body = '{}', revision = $4
             WHERE kind = $1 AND id = $2",
            &[&kind, &id, &now_ms(), &revision],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn purge_tombstones(&self, deleted_before_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM documents WHERE deleted_ms IS NOT NULL AND deleted_ms <= $1",
                &[&deleted_before_ms],
            )
            .await
            .map_err(backend)
    }

    async fn put_token(
        &self,
        digest: &str,
        body: &Value,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO tokens (digest, body, expires_ms) VALUES ($1, $2, $3)",
                &[&digest, &body.to_string(), &expires_ms],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_token(&self, digest: &str) -> Result<Option<StoredToken>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT body, expires_ms, revoked_ms FROM tokens WHERE digest = $1",
                &[&digest],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            Ok(StoredToken {
                body: serde_json::from_str(r.get::<_, &str>(0)).map_err(backend)?,
                expires_ms: r.get(1),
                revoked_ms: r.get(2),
            })
        })
        .transpose()
    }

    async fn revoke_token(&self, digest: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE tokens SET revoked_ms = $2 WHERE digest = $1 AND revoked_ms IS NULL",
                &[&digest, &now_ms()],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn purge_tokens(&self, expired_before_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM tokens WHERE expires_ms <= $1",
                &[&expired_before_ms],
            )
            .await
            .map_err(backend)
    }

    async fn reserve_quota(
        &self,
        project: &str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let (want, limit) = (sql_count(want), sql_count(limit));
        let client = self.client().await?;
        let row = client
            .query_one(
                crate::RESERVE_QUOTA,
                &[&project, &period_start, &want, &limit],
            )
            .await
            .map_err(backend)?;
        Ok(from_sql(row.get(0)))
    }

    async fn claim_key(&self, ask: KeyClaim<'_>) -> Result<KeyState, StoreError> {
        // Most claims find the key settled (a replay, a retry in flight, another payload):
        // one read, typed so that it needs no round trip to prepare.
        let peeked = {
            let client = self.client().await?;
            client
                .query_typed_opt(crate::PEEK_IDEMPOTENCY_KEY, &[(&ask.key, Type::TEXT)])
                .await
                .map_err(backend)?
        };
        if let Some(state) = peeked.and_then(|r| {
            crate::settled(
                &ask,
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        }) {
            return Ok(state);
        }
        let (tx, rx) = oneshot::channel();
        self.keys.send(KeyWrite::Claim(OwnedClaim::of(&ask), tx));
        rx.await.map_err(backend)?
    }

    async fn finish_key(
        &self,
        key: &str,
        claim: &str,
        response: &KeptResponse,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.keys.send(KeyWrite::Finish {
            key: key.to_string(),
            claim: claim.to_string(),
            response: response.clone(),
            expires_ms,
            done,
        });
        rx.await.map_err(backend)?
    }

    async fn release_key(&self, key: &str, claim: &str) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.keys.send(KeyWrite::Release {
            key: key.to_string(),
            claim: claim.to_string(),
            done,
        });
        rx.await.map_err(backend)?
    }

    async fn purge_keys(&self, expired_before_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(crate::PURGE_IDEMPOTENCY_KEYS, &[&expired_before_ms])
            .await
            .map_err(backend)
    }

    async fn create_job(&self, j: &NewJob) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                crate::CREATE_JOB,
                &[
                    &j.id,
                    &j.project,
                    &j.route,
                    &j.node,
                    &j.state.as_str(),
                    &j.now_ms,
                    &j.lease_ms,
                    &j.now_ms.saturating_add(j.lease_ms),
                    &j.expires_ms,
                    &j.forget_ms,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn start_job(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(crate::START_JOB, &[&id, &now_ms])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn finish_job(&self, id: &str, end: &JobEnd, now_ms: i64) -> Result<bool, StoreError> {
        let c = crate::job_columns(end);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        if let Some(body) = c.apart {
            tx.execute(crate::PUT_JOB_BLOB, &[&id, &body])
                .await
                .map_err(backend)?;
        }
        let changed = tx
            .execute(
                crate::FINISH_JOB,
                &[
                    &id, &c.state, &now_ms, &c.reason, &c.status, &c.head, &c.inline, &c.size,
                    &c.etag,
                ],
            )
            .await
            .map_err(backend)?;
        if changed == 0 && c.apart.is_some() {
            tx.execute(crate::DELETE_JOB_BLOB, &[&id])
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(changed > 0)
    }

    async fn get_job(&self, id: &str, with_body: bool) -> Result<Option<JobRecord>, StoreError> {
        let client = self.client().await?;
        let Some(r) = client
            .query_opt(crate::GET_JOB, &[&id])
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let size: i64 = r.get(12);
        let mut job = crate::job_record(
            r.get(0),
            r.get(1),
            r.get(2),
            r.get::<_, &str>(3),
            r.get(4),
            [r.get(5), r.get(6), r.get(7), r.get(8)],
            r.get(9),
            r.get(10),
            if with_body { r.get(11) } else { None },
            r.get(13),
        );
        if let Some(result) = job.result.as_mut()
            && with_body
            && result.body.is_none()
            && size > 0
        {
            result.body = client
                .query_opt(crate::GET_JOB_BLOB, &[&id])
                .await
                .map_err(backend)?
                .map(|row| row.get(0));
        }
        Ok(Some(job))
    }

    async fn renew_jobs(&self, node: &str, now_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(crate::RENEW_JOBS, &[&node, &now_ms])
            .await
            .map_err(backend)
    }

    async fn fail_stale_jobs(
        &self,
        lease_before_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                crate::FAIL_STALE_JOBS,
                &[&lease_before_ms, &now_ms, &reason],
            )
            .await
            .map_err(backend)
    }

    async fn job_bytes(&self, now_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(crate::JOB_BYTES, &[&now_ms])
            .await
            .map_err(backend)?;
        Ok(from_sql(row.get(0)))
    }

    async fn purge_jobs(&self, now_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let mut forgotten = 0;
        for sql in crate::PURGE_JOBS {
            forgotten = client.execute(sql, &[&now_ms]).await.map_err(backend)?;
        }
        Ok(forgotten)
    }

    async fn add_purge(&self, purge: &Value) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let seq: i64 = tx
            .query_one(crate::NEXT_PURGE, &[])
            .await
            .map_err(backend)?
            .get(0);
        tx.execute(
            "INSERT INTO cache_purges (seq, purge, at_ms) VALUES ($1, $2, $3)",
            &[&seq, &purge.to_string(), &now_ms()],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(from_sql(seq))
    }

    async fn purges_after(&self, after: u64) -> Result<Vec<(u64, Value)>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, purge FROM cache_purges WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &crate::PURGES_PER_READ],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let purge = serde_json::from_str(r.get::<_, &str>(1)).map_err(backend)?;
                Ok((from_sql(r.get(0)), purge))
            })
            .collect()
    }

    async fn last_purge(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT value FROM cache_purge_seq WHERE id = 1", &[])
            .await
            .map_err(backend)?;
        Ok(from_sql(row.get(0)))
    }

    async fn forget_purges(&self, before_ms: i64) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM cache_purges WHERE at_ms <= $1", &[&before_ms])
            .await
            .map_err(backend)?;
        Ok(n)
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT value FROM store_revision WHERE id = 1", &[])
            .await
            .map_err(backend)?;
        Ok(from_sql(row.get(0)))
    }
}
