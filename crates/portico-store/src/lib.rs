//! Portico's store: the documents the admin API manages (projects, consumers, APIs, routes,
//! upstreams, plans), kept in embedded SQLite by default or in PostgreSQL when several nodes
//! share one configuration.
//!
//! The store does not know what a route or a project is. It keeps JSON documents, each of a
//! `kind`, in a `scope` (a project's id, or empty for global kinds), under a `name` unique
//! among the live documents of its kind and scope, with a `version` that every change raises
//! (for `If-Match` and stale-write checks). Deleting leaves a tombstone, so that the item
//! answers 410 for a while rather than 404, and every write raises one store-wide `revision`,
//! which is how a data plane knows there is something new to load. What a document must hold
//! is decided above the store, by the same validation as the configuration file; here, every
//! write is one transaction, so no request can leave the store half-changed.
//!
//! Tokens that the token service issues are kept apart from the documents, in their own
//! table, under the SHA-256 of the token: issuing one must not raise the revision (which would
//! make every node rebuild its data plane), and a token is looked up by digest, never listed.
//!
//! Both backends pass one conformance suite (`tests/conformance.rs`).

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod group_commit;
mod pg_keys;
mod postgres;
mod redis_limits;
mod sqlite;
mod sqlite_claims;

/// Schema changes, in order, the same SQL for both backends (`BIGINT` has integer affinity in
/// SQLite); each runs once, in a transaction, and is recorded.
pub(crate) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE documents (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        body TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        deleted_ms BIGINT,
        revision BIGINT NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE UNIQUE INDEX documents_live_name ON documents (kind, scope, name)
        WHERE deleted_ms IS NULL;
    CREATE INDEX documents_list ON documents (kind, scope, id) WHERE deleted_ms IS NULL;
    CREATE TABLE store_revision (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
    INSERT INTO store_revision (id, value) VALUES (1, 0);
",
    "
    CREATE TABLE tokens (
        digest TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        revoked_ms BIGINT
    );
    CREATE INDEX tokens_expiry ON tokens (expires_ms);
",
    "
    CREATE TABLE quota_usage (
        project TEXT NOT NULL,
        period_start BIGINT NOT NULL,
        reserved BIGINT NOT NULL,
        granted BIGINT NOT NULL,
        PRIMARY KEY (project, period_start)
    );
",
    "
    CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        claim TEXT NOT NULL,
        lease_until_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        done BIGINT NOT NULL,
        status BIGINT,
        head BYTEA,
        body BYTEA
    );
    CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_ms);
",
    "
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        route TEXT NOT NULL,
        node TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        lease_ms BIGINT NOT NULL,
        lease_until_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        forget_ms BIGINT NOT NULL,
        status BIGINT,
        head BYTEA,
        body BYTEA,
        body_size BIGINT NOT NULL,
        etag TEXT
    );
    CREATE INDEX jobs_lease ON jobs (state, lease_until_ms);
    CREATE INDEX jobs_node ON jobs (node, state);
    CREATE INDEX jobs_expiry ON jobs (expires_ms);
    CREATE TABLE job_blobs (id TEXT PRIMARY KEY, body BYTEA NOT NULL);
",
    "
    CREATE TABLE cache_purges (seq BIGINT PRIMARY KEY, purge TEXT NOT NULL, at_ms BIGINT NOT NULL);
    CREATE INDEX cache_purges_age ON cache_purges (at_ms);
    CREATE TABLE cache_purge_seq (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
    INSERT INTO cache_purge_seq (id, value) VALUES (1, 0);
",
];

/// The next purge's sequence number, taken in the purge's transaction (the row lock orders
/// writers, so purges commit in sequence order).
pub(crate) const NEXT_PURGE: &str =
    "UPDATE cache_purge_seq SET value = value + 1 WHERE id = 1 RETURNING value";

/// The most purges one read returns.
pub const PURGES_PER_READ: i64 = 1000;

/// Result bodies larger than this are kept in `job_blobs`, apart from the job's row (which
/// polls read often).
pub const JOB_INLINE_BODY: usize = 64 * 1024;

pub(crate) const CREATE_JOB: &str = "
    INSERT INTO jobs (id, project, route, node, state, created_ms, updated_ms, lease_ms,
        lease_until_ms, expires_ms, forget_ms, body_size)
    VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, 0)";

/// Job `$1` is running now (`$2`), if it was pending.
pub(crate) const START_JOB: &str = "
    UPDATE jobs SET state = 'running', updated_ms = $2 WHERE id = $1 AND state = 'pending'";

/// Job `$1` ends (`$2`: `succeeded` or `failed`) at `$3`, with reason `$4`, status `$5`,
/// header lines `$6`, inline body `$7`, body size `$8` and ETag `$9`; only if it is still
/// unfinished (a node that lost its lease must not overwrite what the sweep wrote).
pub(crate) const FINISH_JOB: &str = "
    UPDATE jobs SET state = $2, updated_ms = $3, reason = $4, status = $5, head = $6, body = $7,
        body_size = $8, etag = $9
    WHERE id = $1 AND state IN ('pending', 'running')";

pub(crate) const GET_JOB: &str = "
    SELECT id, project, route, state, reason, created_ms, updated_ms, expires_ms, forget_ms,
        status, head, body, body_size, etag
    FROM jobs WHERE id = $1";

/// A node's unfinished jobs stay its own for another lease from `$2`.
pub(crate) const RENEW_JOBS: &str = "
    UPDATE jobs SET lease_until_ms = $2 + lease_ms
    WHERE node = $1 AND state IN ('pending', 'running')";

/// Unfinished jobs whose lease ended at or before `$1` (their node stopped) fail at `$2`
/// with reason `$3`.
pub(crate) const FAIL_STALE_JOBS: &str = "
    UPDATE jobs SET state = 'failed', reason = $3, updated_ms = $2
    WHERE state IN ('pending', 'running') AND lease_until_ms <= $1";

/// The bytes of the results kept for jobs not yet expired at `$1`.
pub(crate) const JOB_BYTES: &str =
    "SELECT CAST(COALESCE(SUM(body_size), 0) AS BIGINT) FROM jobs WHERE expires_ms > $1";

/// One statement, atomic in both backends: claims an idempotency key (`$1`) for a request
/// whose payload has fingerprint `$2`, under the claim `$3`, in flight until `$4`, kept until
/// `$5`, at the time `$6`. The claim is taken when the key is new or expired, or when it is
/// held by a claim whose lease ran out (a node that died) for the same payload; otherwise the
/// row is left as it is. The row is returned either way: the caller has the key when `claim`
/// is its own.
pub(crate) const CLAIM_IDEMPOTENCY_KEY: &str = "
    INSERT INTO idempotency_keys AS k
        (key, fingerprint, claim, lease_until_ms, expires_ms, done, status, head, body)
    VALUES ($1, $2, $3, $4, $5, 0, NULL, NULL, NULL)
    ON CONFLICT (key) DO UPDATE SET
        fingerprint = CASE WHEN k.expires_ms <= $6 THEN $2 ELSE k.fingerprint END,
        claim = CASE WHEN k.expires_ms <= $6
                OR (k.done = 0 AND k.lease_until_ms <= $6 AND k.fingerprint = $2)
            THEN $3 ELSE k.claim END,
        lease_until_ms = CASE WHEN k.expires_ms <= $6
                OR (k.done = 0 AND k.lease_until_ms <= $6 AND k.fingerprint = $2)
            THEN $4 ELSE k.lease_until_ms END,
        expires_ms = CASE WHEN k.expires_ms <= $6 THEN $5 ELSE k.expires_ms END,
        done = CASE WHEN k.expires_ms <= $6 THEN 0 ELSE k.done END,
        status = CASE WHEN k.expires_ms <= $6 THEN NULL ELSE k.status END,
        head = CASE WHEN k.expires_ms <= $6 THEN NULL ELSE k.head END,
        body = CASE WHEN k.expires_ms <= $6 THEN NULL ELSE k.body END
    RETURNING claim, fingerprint, done, status, head, body";

/// A key as it is, read first: most claims find it settled (a replay, a retry in flight,
/// another payload) and need no write.
pub(crate) const PEEK_IDEMPOTENCY_KEY: &str = "
    SELECT claim, fingerprint, done, status, head, body, lease_until_ms, expires_ms
    FROM idempotency_keys WHERE key = $1";

/// Records the response of the claim `$2` on key `$1`: status `$3`, header lines `$4`, body
/// `$5` (NULL: not kept), kept until `$6`.
pub(crate) const FINISH_IDEMPOTENCY_KEY: &str = "
    UPDATE idempotency_keys SET done = 1, status = $3, head = $4, body = $5, expires_ms = $6
    WHERE key = $1 AND claim = $2 AND done = 0";

/// Gives up the claim `$2` on key `$1` (the request had no response to keep).
pub(crate) const RELEASE_IDEMPOTENCY_KEY: &str =
    "DELETE FROM idempotency_keys WHERE key = $1 AND claim = $2 AND done = 0";

/// Forgets keys expired at or before `$1`.
pub(crate) const PURGE_IDEMPOTENCY_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE expires_ms <= $1";

/// One statement, atomic in both backends (SQLite 3.35 and PostgreSQL 9.5 have the upsert with
/// `RETURNING`): takes what is left of the quota (`$4`), at most `$3`, and gives how much
/// that was. The count never passes the quota, so a quota raised later has all it added.
/// (`SET` reads the row as it was before the statement, in both.)
pub(crate) const RESERVE_QUOTA: &str = "
    INSERT INTO quota_usage AS q (project, period_start, reserved, granted)
    VALUES ($1, $2,
        CASE WHEN CAST($3 AS BIGINT) < CAST($4 AS BIGINT)
            THEN CAST($3 AS BIGINT) ELSE CAST($4 AS BIGINT) END,
        CASE WHEN CAST($3 AS BIGINT) < CAST($4 AS BIGINT)
            THEN CAST($3 AS BIGINT) ELSE CAST($4 AS BIGINT) END)
    ON CONFLICT (project, period_start) DO UPDATE SET
        granted = CASE
            WHEN q.reserved >= CAST($4 AS BIGINT) THEN 0
            WHEN CAST($4 AS BIGINT) - q.reserved < CAST($3 AS BIGINT)
                THEN CAST($4 AS BIGINT) - q.reserved
            ELSE CAST($3 AS BIGINT) END,
        reserved = q.reserved + CASE
            WHEN q.reserved >= CAST($4 AS BIGINT) THEN 0
            WHEN CAST($4 AS BIGINT) - q.reserved < CAST($3 AS BIGINT)
                THEN CAST($4 AS BIGINT) - q.reserved
            ELSE CAST($3 AS BIGINT) END
    RETURNING granted";

pub use postgres::PgStore;
pub use redis_limits::{RedisLimits, SharedDecision};
pub use sqlite::SqliteStore;

/// A document to create.
#[derive(Clone, Copy, Debug)]
pub struct NewDocument<'a> {
    /// What it is (`projects`, `routes`, …).
    pub kind: &'a str,
    /// The project it belongs to, or empty.
    pub scope: &'a str,
    /// Unique among the live documents of its kind and scope.
    pub name: &'a str,
    /// Its content.
    pub body: &'a Value,
    /// Create it only if the store's revision is still this one (nothing was written since
    /// the caller read what its checks rely on); any time when `None`.
    pub unchanged_since: Option<u64>,
}

/// What must still hold for a replace or delete to happen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// The document's version (`If-Match`, or the version a client read).
    pub version: Option<u64>,
    /// The store's revision: nothing was written since the caller read what its checks rely
    /// on (another document a route names, the parent of an item).
    pub unchanged_since: Option<u64>,
}

impl Expect {
    /// Nothing: the write happens whatever changed.
    pub const ANY: Expect = Expect {
        version: None,
        unchanged_since: None,
    };

    /// The document is at `version`.
    pub fn version(version: u64) -> Expect {
        Expect {
            version: Some(version),
            unchanged_since: None,
        }
    }
}

/// A live document.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// What it is.
    pub kind: String,
    /// 32 lowercase hexadecimal characters, never reused.
    pub id: String,
    /// The project it belongs to, or empty.
    pub scope: String,
    /// Its name.
    pub name: String,
    /// 1 when created; each replace raises it by one.
    pub version: u64,
    /// Its content.
    pub body: Value,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// The store's revision at its last change.
    pub revision: u64,
}

/// A token the token service issued, as the store keeps it: under the SHA-256 of the token
/// (never the token), with what it grants.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredToken {
    /// What the token grants (project, consumer, roles…), as the token service wrote it.
    pub body: Value,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
}

/// A claim on an idempotency key: the request that makes it, and how long it may hold it.
#[derive(Clone, Copy, Debug)]
pub struct KeyClaim<'a> {
    /// The key, as the caller scopes it (never a client's raw input: a digest).
    pub key: &'a str,
    /// The digest of the request's payload.
    pub fingerprint: &'a str,
    /// This claim's own id ([`new_id`]).
    pub claim: &'a str,
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// Until when the claim holds the key while its request is in flight; past it, a retry
    /// with the same payload may take the key over (the node that held it died).
    pub lease_until_ms: i64,
    /// Until when the key is kept.
    pub expires_ms: i64,
}

/// A response kept under an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptResponse {
    /// Its status code.
    pub status: u16,
    /// Its header fields, as `name: value\r\n` lines.
    pub head: Vec<u8>,
    /// Its body; `None` when it was too large to keep.
    pub body: Option<Vec<u8>>,
}

/// What a claim on an idempotency key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// The key is the caller's: its request goes on.
    Claimed,
    /// Another request with the key and the same payload is in flight.
    InFlight,
    /// The key was used with another payload.
    OtherPayload,
    /// The key's request finished with this response.
    Done(KeptResponse),
}

/// A row of [`PEEK_IDEMPOTENCY_KEY`]: what it settles without a write (`None` when the key
/// is free, expired, or held by a claim whose lease ran out for this payload: then the claim
/// statement decides, atomically).
#[allow(clippy::too_many_arguments)]
pub(crate) fn settled(
    ask: &KeyClaim<'_>,
    claim: &str,
    fingerprint: &str,
    done: i64,
    status: Option<i64>,
    head: Option<Vec<u8>>,
    body: Option<Vec<u8>>,
    lease_until_ms: i64,
    expires_ms: i64,
) -> Option<KeyState> {
    let takeable = expires_ms <= ask.now_ms
        || (done == 0 && lease_until_ms <= ask.now_ms && fingerprint == ask.fingerprint);
    (!takeable).then(|| key_state(ask, claim, fingerprint, done, status, head, body))
}

/// Reads a row returned by [`CLAIM_IDEMPOTENCY_KEY`].
pub(crate) fn key_state(
    ask: &KeyClaim<'_>,
    claim: &str,
    fingerprint: &str,
    done: i64,
    status: Option<i64>,
    head: Option<Vec<u8>>,
    body: Option<Vec<u8>>,
) -> KeyState {
    if claim == ask.claim {
        KeyState::Claimed
    } else if fingerprint != ask.fingerprint {
        KeyState::OtherPayload
    } else if done == 0 {
        KeyState::InFlight
    } else {
        KeyState::Done(KeptResponse {
            status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
            head: head.unwrap_or_default(),
            body,
        })
    }
}

/// A job to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// Its id ([`new_id`]).
    pub id: String,
    /// The project it belongs to.
    pub project: String,
    /// The route that took its request.
    pub route: String,
    /// The node that runs it (this process).
    pub node: String,
    /// `pending` (not sent on yet) or `running`.
    pub state: JobState,
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// How long the job stays its node's without the node renewing it.
    pub lease_ms: i64,
    /// When its result stops being served (410 from then on).
    pub expires_ms: i64,
    /// When it is forgotten (404 from then on).
    pub forget_ms: i64,
}

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Recorded, its request not sent on yet.
    Pending,
    /// Its request is at the upstream.
    Running,
    /// The upstream answered; the answer is the result.
    Succeeded,
    /// No answer will come (`reason` says why).
    Failed,
}

impl JobState {
    /// Its name in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            _ => JobState::Failed,
        }
    }

    /// Whether it is over.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    /// The upstream answered: its response.
    Succeeded {
        /// The response, body included.
        response: KeptResponse,
        /// Its strong ETag, quoted.
        etag: String,
    },
    /// No answer, for this reason (words for the job's owner, never internal detail).
    Failed(String),
}

/// A job as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// Its id.
    pub id: String,
    /// The project it belongs to.
    pub project: String,
    /// The route that took its request.
    pub route: String,
    /// Its state.
    pub state: JobState,
    /// Why it failed.
    pub reason: Option<String>,
    /// When it was recorded.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// When its result stops being served.
    pub expires_ms: i64,
    /// When it is forgotten.
    pub forget_ms: i64,
    /// Its result, once it succeeded (the body is read only by [`Store::get_job`]'s caller
    /// asking for it).
    pub result: Option<KeptResponse>,
    /// The result's ETag.
    pub etag: Option<String>,
}

/// The columns [`FINISH_JOB`] writes for an end, and the body to keep apart (in `job_blobs`)
/// when it is too large for the row.
pub(crate) struct JobColumns<'a> {
    pub(crate) state: &'static str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) status: Option<i64>,
    pub(crate) head: Option<&'a [u8]>,
    pub(crate) inline: Option<&'a [u8]>,
    pub(crate) apart: Option<&'a [u8]>,
    pub(crate) size: i64,
    pub(crate) etag: Option<&'a str>,
}

pub(crate) fn job_columns(end: &JobEnd) -> JobColumns<'_> {
    match end {
        JobEnd::Failed(reason) => JobColumns {
            state: JobState::Failed.as_str(),
            reason: Some(reason),
            status: None,
            head: None,
            inline: None,
            apart: None,
            size: 0,
            etag: None,
        },
        JobEnd::Succeeded { response, etag } => {
            let body = response.body.as_deref().unwrap_or_default();
            let (inline, apart) = if body.len() > JOB_INLINE_BODY {
                (None, Some(body))
            } else {
                (Some(body), None)
            };
            JobColumns {
                state: JobState::Succeeded.as_str(),
                reason: None,
                status: Some(i64::from(response.status)),
                head: Some(&response.head),
                inline,
                apart,
                size: sql_count(body.len() as u64),
                etag: Some(etag),
            }
        }
    }
}

pub(crate) const PUT_JOB_BLOB: &str = "
    INSERT INTO job_blobs (id, body) VALUES ($1, $2)
    ON CONFLICT (id) DO UPDATE SET body = excluded.body";
pub(crate) const GET_JOB_BLOB: &str = "SELECT body FROM job_blobs WHERE id = $1";
pub(crate) const DELETE_JOB_BLOB: &str = "DELETE FROM job_blobs WHERE id = $1";
/// Expired results go (`$1`: now), then jobs past their time to be remembered.
pub(crate) const PURGE_JOBS: [&str; 3] = [
    "DELETE FROM job_blobs WHERE id IN (SELECT id FROM jobs WHERE expires_ms <= $1)",
    "UPDATE jobs SET head = NULL, body = NULL, body_size = 0
        WHERE expires_ms <= $1 AND (body_size > 0 OR head IS NOT NULL)",
    "DELETE FROM jobs WHERE forget_ms <= $1",
];

/// Reads a row of [`GET_JOB`] (the body, when kept apart, is filled in by the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn job_record(
    id: String,
    project: String,
    route: String,
    state: &str,
    reason: Option<String>,
    times: [i64; 4],
    status: Option<i64>,
    head: Option<Vec<u8>>,
    body: Option<Vec<u8>>,
    etag: Option<String>,
) -> JobRecord {
    let state = JobState::parse(state);
    let result = (state == JobState::Succeeded).then(|| KeptResponse {
        status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
        head: head.unwrap_or_default(),
        body,
    });
    JobRecord {
        id,
        project,
        route,
        state,
        reason,
        created_ms: times[0],
        updated_ms: times[1],
        expires_ms: times[2],
        forget_ms: times[3],
        result,
        etag,
    }
}

/// What is under an id.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// A live document.
    Live(Document),
    /// A document deleted at this time, whose tombstone is still kept.
    Gone {
        /// When it was deleted.
        deleted_ms: i64,
    },
    /// Nothing: never created, or its tombstone was purged.
    Missing,
}

/// Why a store operation did not happen.
#[derive(Debug)]
pub enum StoreError {
    /// Another live document of this kind and scope has the name.
    NameTaken,
    /// No document has this id.
    NotFound,
    /// The document was deleted.
    Gone,
    /// The caller's version is not the document's.
    VersionMismatch {
        /// The document's version.
        current: u64,
    },
    /// Something was written since the revision the caller expected; nothing was changed.
    RevisionMoved,
    /// The backend failed (I/O, connection, a bad URL); for logs, never for a client.
    Backend(BackendError),
}

impl StoreError {
    /// The backend failed with `source` (a driver's error, kept as the cause).
    pub fn backend(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
        StoreError::Backend(BackendError {
            what: None,
            source: Some(source.into()),
        })
    }

    /// The backend cannot do what was asked, for a reason Portico itself states.
    pub fn backend_says(what: impl Into<String>) -> StoreError {
        StoreError::Backend(BackendError {
            what: Some(what.into()),
            source: None,
        })
    }
}

/// Two errors are the same when they say the same: a backend's failure by what it says.
impl PartialEq for StoreError {
    fn eq(&self, other: &StoreError) -> bool {
        match (self, other) {
            (StoreError::NameTaken, StoreError::NameTaken)
            | (StoreError::NotFound, StoreError::NotFound)
            | (StoreError::Gone, StoreError::Gone)
            | (StoreError::RevisionMoved, StoreError::RevisionMoved) => true,
            (
                StoreError::VersionMismatch { current: a },
                StoreError::VersionMismatch { current: b },
            ) => a == b,
            (StoreError::Backend(a), StoreError::Backend(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

/// How a backend failed: what Portico says of it, and the driver's error, when there is one.
#[derive(Debug)]
pub struct BackendError {
    what: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.what, &self.source) {
            (Some(what), Some(source)) => write!(f, "{what}: {source}"),
            (Some(what), None) => f.write_str(what),
            (None, Some(source)) => write!(f, "{source}"),
            (None, None) => f.write_str("the store failed"),
        }
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NameTaken => f.write_str("the name is taken"),
            StoreError::NotFound => f.write_str("no such document"),
            StoreError::Gone => f.write_str("the document was deleted"),
            StoreError::VersionMismatch { current } => {
                write!(f, "the document is at version {current}")
            }
            StoreError::RevisionMoved => f.write_str("the store changed since it was read"),
            StoreError::Backend(e) => write!(f, "store backend: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Backend(e) => Some(e),
            _ => None,
        }
    }
}

/// The operations every backend provides, each one transaction.
pub trait Store {
    /// Creates a document (version 1).
    fn create(
        &self,
        new: NewDocument<'_>,
    ) -> impl Future<Output = Result<Document, StoreError>> + Send;

    /// What is under `id`.
    fn get(&self, kind: &str, id: &str) -> impl Future<Output = Result<Lookup, StoreError>> + Send;

    /// Up to `limit` live documents of a kind and scope, in id order, after the id `after`.
    fn list(
        &self,
        kind: &str,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Document>, StoreError>> + Send;

    /// Replaces a live document's name and body, if what is `expected` holds; the version
    /// goes up by one.
    fn replace(
        &self,
        kind: &str,
        id: &str,
        expected: Expect,
        name: &str,
        body: &Value,
    ) -> impl Future<Output = Result<Document, StoreError>> + Send;

    /// Deletes a live document, if what is `expected` holds, leaving a tombstone (its body is
    /// not kept).
    fn delete(
        &self,
        kind: &str,
        id: &str,
        expected: Expect,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the tombstones of documents deleted at or before `deleted_before_ms`; returns
    /// how many.
    fn purge_tombstones(
        &self,
        deleted_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The store's revision: raised by every write, so a reader that saw revision `r` has
    /// seen everything when it is still `r`.
    fn revision(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records a purge of cached responses (its description, as JSON) for every node on the
    /// store to apply; returns its sequence number. Purges are not documents: they do not
    /// raise the revision.
    fn add_purge(&self, purge: &Value) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The purges recorded after sequence number `after`, in order (at most
    /// [`PURGES_PER_READ`]).
    fn purges_after(
        &self,
        after: u64,
    ) -> impl Future<Output = Result<Vec<(u64, Value)>, StoreError>> + Send;

    /// The sequence number of the last purge recorded (0 before any).
    fn last_purge(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Forgets purges recorded at or before `before_ms`; returns how many.
    fn forget_purges(&self, before_ms: i64)
    -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Keeps a token under its digest (hex SHA-256). Tokens are not documents: issuing one does
    /// not raise the revision (no data plane rebuilds for it).
    fn put_token(
        &self,
        digest: &str,
        body: &Value,
        expires_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The token kept under `digest`, revoked or not, until it is purged.
    fn get_token(
        &self,
        digest: &str,
    ) -> impl Future<Output = Result<Option<StoredToken>, StoreError>> + Send;

    /// Revokes the token under `digest`; whether there was one that was not revoked yet.
    fn revoke_token(&self, digest: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets tokens that expired at or before `expired_before_ms`; returns how many.
    fn purge_tokens(
        &self,
        expired_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes up to `want` requests from `project`'s quota of `limit` for the period that began
    /// at `period_start` (seconds since the Unix epoch), atomically across every node on the
    /// store; how many it got (0 when the quota is spent).
    fn reserve_quota(
        &self,
        project: &str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Claims an idempotency key, atomically across every node on the store.
    fn claim_key(
        &self,
        ask: KeyClaim<'_>,
    ) -> impl Future<Output = Result<KeyState, StoreError>> + Send;

    /// Keeps `response` under `key` for the claim that holds it, until `expires_ms`.
    fn finish_key(
        &self,
        key: &str,
        claim: &str,
        response: &KeptResponse,
        expires_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives up a claim whose request has no response to keep, so that a retry may go on.
    fn release_key(
        &self,
        key: &str,
        claim: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets keys that expired at or before `expired_before_ms`; returns how many.
    fn purge_keys(
        &self,
        expired_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records a job.
    fn create_job(&self, job: &NewJob) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A pending job's request is sent on now.
    fn start_job(
        &self,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a job that is not over yet (a result body over [`JOB_INLINE_BODY`] is kept in
    /// `job_blobs`); whether it was still unfinished.
    fn finish_job(
        &self,
        id: &str,
        end: &JobEnd,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A job, with its result's body when `with_body`.
    fn get_job(
        &self,
        id: &str,
        with_body: bool,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;

    /// Keeps `node`'s unfinished jobs its own for another lease from `now_ms`.
    fn renew_jobs(
        &self,
        node: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Fails the unfinished jobs whose lease ended at or before `lease_before_ms` (their node
    /// stopped), at `now_ms`, with `reason`; returns how many.
    fn fail_stale_jobs(
        &self,
        lease_before_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The bytes of the results kept for jobs not expired at `now_ms`.
    fn job_bytes(&self, now_ms: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Drops the results of jobs expired at `now_ms` and forgets the jobs whose time to be
    /// remembered is over; returns how many jobs were forgotten.
    fn purge_jobs(&self, now_ms: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A shared store is a store.
impl<T: Store + Send + Sync> Store for std::sync::Arc<T> {
    fn create(
        &self,
        new: NewDocument<'_>,
    ) -> impl Future<Output = Result<Document, StoreError>> + Send {
        (**self).create(new)
    }

    fn get(&self, kind: &str, id: &str) -> impl Future<Output = Result<Lookup, StoreError>> + Send {
        (**self).get(kind, id)
    }

    fn list(
        &self,
        kind: &str,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Document>, StoreError>> + Send {
        (**self).list(kind, scope, after, limit)
    }

    fn replace(
        &self,
        kind: &str,
        id: &str,
        expected: Expect,
        name: &str,
        body: &Value,
    ) -> impl Future<Output = Result<Document, StoreError>> + Send {
        (**self).replace(kind, id, expected, name, body)
    }

    fn delete(
        &self,
        kind: &str,
        id: &str,
        expected: Expect,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete(kind, id, expected)
    }

    fn purge_tombstones(
        &self,
        deleted_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge_tombstones(deleted_before_ms)
    }

    fn revision(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).revision()
    }

    fn add_purge(&self, purge: &Value) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).add_purge(purge)
    }

    fn purges_after(
        &self,
        after: u64,
    ) -> impl Future<Output = Result<Vec<(u64, Value)>, StoreError>> + Send {
        (**self).purges_after(after)
    }

    fn last_purge(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).last_purge()
    }

    fn forget_purges(
        &self,
        before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).forget_purges(before_ms)
    }

    fn put_token(
        &self,
        digest: &str,
        body: &Value,
        expires_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).put_token(digest, body, expires_ms)
    }

    fn get_token(
        &self,
        digest: &str,
    ) -> impl Future<Output = Result<Option<StoredToken>, StoreError>> + Send {
        (**self).get_token(digest)
    }

    fn revoke_token(&self, digest: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).revoke_token(digest)
    }

    fn purge_tokens(
        &self,
        expired_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge_tokens(expired_before_ms)
    }

    fn reserve_quota(
        &self,
        project: &str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).reserve_quota(project, period_start, want, limit)
    }

    fn claim_key(
        &self,
        ask: KeyClaim<'_>,
    ) -> impl Future<Output = Result<KeyState, StoreError>> + Send {
        (**self).claim_key(ask)
    }

    fn finish_key(
        &self,
        key: &str,
        claim: &str,
        response: &KeptResponse,
        expires_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).finish_key(key, claim, response, expires_ms)
    }

    fn release_key(
        &self,
        key: &str,
        claim: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release_key(key, claim)
    }

    fn purge_keys(
        &self,
        expired_before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge_keys(expired_before_ms)
    }

    fn create_job(&self, job: &NewJob) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_job(job)
    }

    fn start_job(
        &self,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).start_job(id, now_ms)
    }

    fn finish_job(
        &self,
        id: &str,
        end: &JobEnd,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).finish_job(id, end, now_ms)
    }

    fn get_job(
        &self,
        id: &str,
        with_body: bool,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send {
        (**self).get_job(id, with_body)
    }

    fn renew_jobs(
        &self,
        node: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).renew_jobs(node, now_ms)
    }

    fn fail_stale_jobs(
        &self,
        lease_before_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).fail_stale_jobs(lease_before_ms, now_ms, reason)
    }

    fn job_bytes(&self, now_ms: i64) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).job_bytes(now_ms)
    }

    fn purge_jobs(&self, now_ms: i64) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge_jobs(now_ms)
    }
}

/// The store named by a configuration's `storage` URL.
pub enum Backend {
    /// `sqlite://PATH`
    Sqlite(SqliteStore),
    /// `postgres://…` or `postgresql://…`
    Postgres(Box<PgStore>),
}

impl Backend {
    /// Opens the store at `url` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Backend, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(Backend::Sqlite(SqliteStore::open(path).await?));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres(Box::new(
                PgStore::connect(url, None).await?,
            )));
        }
        Err(StoreError::backend_says(
            "a storage URL is sqlite://PATH or postgres://…",
        ))
    }
}

impl Store for Backend {
    async fn create(&self, new: NewDocument<'_>) -> Result<Document, StoreError> {
        match self {
            Backend::Sqlite(s) => s.create(new).await,
            Backend::Postgres(s) => s.create(new).await,
        }
    }

    async fn get(&self, kind: &str, id: &str) -> Result<Lookup, StoreError> {
        match self {
            Backend::Sqlite(s) => s.get(kind, id).await,
            Backend::Postgres(s) => s.get(kind, id).await,
        }
    }

    async fn list(
        &self,
        kind: &str,
        scope: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, StoreError> {
        match self {
            Backend::Sqlite(s) => s.list(kind, scope, after, limit).await,
            Backend::Postgres(s) => s.list(kind, scope, after, limit).await,
        }
    }

    async fn replace(
        &self,
        kind: &str,
        id: &str,
        expected: Expect,
        name: &str,
        body: &Value,
    ) -> Result<Document, StoreError> {
        match self {
            Backend::Sqlite(s) => s.replace(kind, id, expected, name, body).await,
            Backend::Postgres(s) => s.replace(kind, id, expected, name, body).await,
        }
    }

    async fn delete(&self, kind: &str, id: &str, expected: Expect) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(s) => s.delete(kind, id, expected).await,
            Backend::Postgres(s) => s.delete(kind, id, expected).await,
        }
    }

    async fn purge_tombstones(&self, deleted_before_ms: i64) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.purge_tombstones(deleted_before_ms).await,
            Backend::Postgres(s) => s.purge_tombstones(deleted_before_ms).await,
        }
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.revision().await,
            Backend::Postgres(s) => s.revision().await,
        }
    }

    async fn add_purge(&self, purge: &Value) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.add_purge(purge).await,
            Backend::Postgres(s) => s.add_purge(purge).await,
        }
    }

    async fn purges_after(&self, after: u64) -> Result<Vec<(u64, Value)>, StoreError> {
        match self {
            Backend::Sqlite(s) => s.purges_after(after).await,
            Backend::Postgres(s) => s.purges_after(after).await,
        }
    }

    async fn last_purge(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.last_purge().await,
            Backend::Postgres(s) => s.last_purge().await,
        }
    }

    async fn forget_purges(&self, before_ms: i64) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.forget_purges(before_ms).await,
            Backend::Postgres(s) => s.forget_purges(before_ms).await,
        }
    }

    async fn put_token(
        &self,
        digest: &str,
        body: &Value,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(s) => s.put_token(digest, body, expires_ms).await,
            Backend::Postgres(s) => s.put_token(digest, body, expires_ms).await,
        }
    }

    async fn get_token(&self, digest: &str) -> Result<Option<StoredToken>, StoreError> {
        match self {
            Backend::Sqlite(s) => s.get_token(digest).await,
            Backend::Postgres(s) => s.get_token(digest).await,
        }
    }

    async fn revoke_token(&self, digest: &str) -> Result<bool, StoreError> {
        match self {
            Backend::Sqlite(s) => s.revoke_token(digest).await,
            Backend::Postgres(s) => s.revoke_token(digest).await,
        }
    }

    async fn purge_tokens(&self, expired_before_ms: i64) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.purge_tokens(expired_before_ms).await,
            Backend::Postgres(s) => s.purge_tokens(expired_before_ms).await,
        }
    }

    async fn reserve_quota(
        &self,
        project: &str,
        period_start: i64,
        want: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.reserve_quota(project, period_start, want, limit).await,
            Backend::Postgres(s) => s.reserve_quota(project, period_start, want, limit).await,
        }
    }

    async fn claim_key(&self, ask: KeyClaim<'_>) -> Result<KeyState, StoreError> {
        match self {
            Backend::Sqlite(s) => s.claim_key(ask).await,
            Backend::Postgres(s) => s.claim_key(ask).await,
        }
    }

    async fn finish_key(
        &self,
        key: &str,
        claim: &str,
        response: &KeptResponse,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(s) => s.finish_key(key, claim, response, expires_ms).await,
            Backend::Postgres(s) => s.finish_key(key, claim, response, expires_ms).await,
        }
    }

    async fn release_key(&self, key: &str, claim: &str) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(s) => s.release_key(key, claim).await,
            Backend::Postgres(s) => s.release_key(key, claim).await,
        }
    }

    async fn purge_keys(&self, expired_before_ms: i64) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.purge_keys(expired_before_ms).await,
            Backend::Postgres(s) => s.purge_keys(expired_before_ms).await,
        }
    }

    async fn create_job(&self, job: &NewJob) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(s) => s.create_job(job).await,
            Backend::Postgres(s) => s.create_job(job).await,
        }
    }

    async fn start_job(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(s) => s.start_job(id, now_ms).await,
            Backend::Postgres(s) => s.start_job(id, now_ms).await,
        }
    }

    async fn finish_job(&self, id: &str, end: &JobEnd, now_ms: i64) -> Result<bool, StoreError> {
        match self {
            Backend::Sqlite(s) => s.finish_job(id, end, now_ms).await,
            Backend::Postgres(s) => s.finish_job(id, end, now_ms).await,
        }
    }

    async fn get_job(&self, id: &str, with_body: bool) -> Result<Option<JobRecord>, StoreError> {
        match self {
            Backend::Sqlite(s) => s.get_job(id, with_body).await,
            Backend::Postgres(s) => s.get_job(id, with_body).await,
        }
    }

    async fn renew_jobs(&self, node: &str, now_ms: i64) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.renew_jobs(node, now_ms).await,
            Backend::Postgres(s) => s.renew_jobs(node, now_ms).await,
        }
    }

    async fn fail_stale_jobs(
        &self,
        lease_before_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.fail_stale_jobs(lease_before_ms, now_ms, reason).await,
            Backend::Postgres(s) => s.fail_stale_jobs(lease_before_ms, now_ms, reason).await,
        }
    }

    async fn job_bytes(&self, now_ms: i64) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.job_bytes(now_ms).await,
            Backend::Postgres(s) => s.job_bytes(now_ms).await,
        }
    }

    async fn purge_jobs(&self, now_ms: i64) -> Result<u64, StoreError> {
        match self {
            Backend::Sqlite(s) => s.purge_jobs(now_ms).await,
            Backend::Postgres(s) => s.purge_jobs(now_ms).await,
        }
    }
}

/// A new document id: 128 random bits as 32 lowercase hexadecimal characters.
pub fn new_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Versions and revisions are stored as SQL integers (signed 64-bit, never negative).
pub(crate) fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A count as an SQL integer (counts past `i64::MAX` are taken as that).
pub(crate) fn sql_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A write that names the version it expects fails when the document has moved on.
/// Refuses a write whose transaction raised the revision to `bumped` when the caller expected
/// the revision before it to be `since`. Writers are serialized on the revision row, so this
/// is exact.
pub(crate) fn check_revision(bumped: i64, since: Option<u64>) -> Result<(), StoreError> {
    match since {
        Some(r) if from_sql(bumped) != r + 1 => Err(StoreError::RevisionMoved),
        _ => Ok(()),
    }
}

pub(crate) fn check_version(current: u64, expected: Option<u64>) -> Result<(), StoreError> {
    match expected {
        Some(e) if e != current => Err(StoreError::VersionMismatch { current }),
        _ => Ok(()),
    }
}
