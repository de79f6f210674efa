//! Group commit for idempotency keys on PostgreSQL: the writes of many requests (claims of
//! new keys, kept responses, given-up claims) go to one task that sends them to PostgreSQL
//! as one pipelined transaction (`BEGIN`, the writes, `COMMIT`, all written at once and
//! answered in one round trip), and answers each request once that transaction has
//! committed. A commit flushes PostgreSQL's log; one flush for a batch is what makes keys
//! cheap, in round trips and in Portico's CPU.
//!
//! Each write still waits for the commit that makes it durable, as when it had its own
//! transaction. A batch is all or nothing: if any write in it fails, PostgreSQL rolls the
//! transaction back and every write in it is answered with the failure (the request is then
//! answered 503, nothing sent upstream, and its client may retry). A claim taken in a batch
//! holds the key's row lock until the batch commits, so another node's claim of the same key
//! waits for it, then sees it: claims stay atomic across nodes.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Statement};

use crate::{KeptResponse, KeyClaim, KeyState, StoreError};

/// The most writes one transaction takes.
const MAX_BATCH: usize = 128;

/// A claim of a key the peek found free, with what the caller needs to read its answer.
pub(crate) struct OwnedClaim {
    pub(crate) key: String,
    pub(crate) fingerprint: String,
    pub(crate) claim: String,
    pub(crate) now_ms: i64,
    pub(crate) lease_until_ms: i64,
    pub(crate) expires_ms: i64,
}

impl OwnedClaim {
    pub(crate) fn of(ask: &KeyClaim<'_>) -> OwnedClaim {
        OwnedClaim {
            key: ask.key.to_string(),
            fingerprint: ask.fingerprint.to_string(),
            claim: ask.claim.to_string(),
            now_ms: ask.now_ms,
            lease_until_ms: ask.lease_until_ms,
            expires_ms: ask.expires_ms,
        }
    }

    fn ask(&self) -> KeyClaim<'_> {
        KeyClaim {
            key: &self.key,
            fingerprint: &self.fingerprint,
            claim: &self.claim,
            now_ms: self.now_ms,
            lease_until_ms: self.lease_until_ms,
            expires_ms: self.expires_ms,
        }
    }
}

/// One write, and where its answer goes.
pub(crate) enum KeyWrite {
    Claim(OwnedClaim, oneshot::Sender<Result<KeyState, StoreError>>),
    Finish {
        key: String,
        claim: String,
        response: KeptResponse,
        expires_ms: i64,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Release {
        key: String,
        claim: String,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl KeyWrite {
    fn fail(self, e: &str) {
        let e = || StoreError::backend_says(e.to_string());
        match self {
            KeyWrite::Claim(_, tx) => drop(tx.send(Err(e()))),
            KeyWrite::Finish { done, .. } | KeyWrite::Release { done, .. } => {
                drop(done.send(Err(e())));
            }
        }
    }
}

/// The queue to the writer task, which ends when the store does.
#[derive(Clone)]
pub(crate) struct KeyWriter {
    queue: mpsc::UnboundedSender<KeyWrite>,
}

/// How the writer gets its connection (made when first needed, and again when lost).
pub(crate) type Connect =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Client, StoreError>> + Send>> + Send + Sync>;

impl KeyWriter {
    pub(crate) fn start(connect: Connect) -> KeyWriter {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(connect, rx));
        KeyWriter { queue }
    }

    /// Queues `write`; its answer comes on the sender it carries.
    pub(crate) fn send(&self, write: KeyWrite) {
        if let Err(mpsc::error::SendError(write)) = self.queue.send(write) {
            write.fail("the store's key writer stopped");
        }
    }
}

/// The writer's connection and its statements, prepared once.
struct Prepared {
    client: Client,
    claim: Statement,
    finish: Statement,
    release: Statement,
}

async fn prepare(connect: &Connect) -> Result<Prepared, StoreError> {
    let client = connect().await?;
    let prep = |sql| client.prepare(sql);
    let (claim, finish, release) = (
        prep(crate::CLAIM_IDEMPOTENCY_KEY).await,
        prep(crate::FINISH_IDEMPOTENCY_KEY).await,
        prep(crate::RELEASE_IDEMPOTENCY_KEY).await,
    );
    let e = StoreError::backend;
    Ok(Prepared {
        claim: claim.map_err(e)?,
        finish: finish.map_err(e)?,
        release: release.map_err(e)?,
        client,
    })
}

async fn write_batches(connect: Connect, mut queue: mpsc::UnboundedReceiver<KeyWrite>) {
    let mut conn: Option<Prepared> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            match prepare(&connect).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let e = e.to_string();
                    batch.drain(..).for_each(|w| w.fail(&e));
                    continue;
                }
            }
        }
        if let Some(c) = &conn {
            commit(c, &mut batch).await;
        }
    }
}

/// What one write came to, before the commit.
enum Wrote {
    Claim(Result<tokio_postgres::Row, tokio_postgres::Error>),
    Count(Result<u64, tokio_postgres::Error>),
}

/// Sends `BEGIN`, the writes and `COMMIT` at once, and answers each write.
async fn commit(c: &Prepared, batch: &mut Vec<KeyWrite>) {
    type Step<'a> =
        Pin<Box<dyn Future<Output = Result<Option<Wrote>, tokio_postgres::Error>> + Send + 'a>>;
    let mut steps: Vec<Step<'_>> = Vec::with_capacity(batch.len() + 2);
    steps.push(Box::pin(async {
        c.client.batch_execute("BEGIN").await.map(|()| None)
    }));
    for write in batch.iter() {
        steps.push(match write {
            KeyWrite::Claim(a, _) => Box::pin(async move {
                let row = c
                    .client
                    .query_one(
                        &c.claim,
                        &[
                            &a.key,
                            &a.fingerprint,
                            &a.claim,
                            &a.lease_until_ms,
                            &a.expires_ms,
                            &a.now_ms,
                        ],
                    )
                    .await;
                Ok(Some(Wrote::Claim(row)))
            }),
            KeyWrite::Finish {
                key,
                claim,
                response,
                expires_ms,
                ..
            } => Box::pin(async move {
                let status = i64::from(response.status);
                let n = c
                    .client
                    .execute(
                        &c.finish,
                        &[
                            key,
                            claim,
                            &status,
                            &response.head,
                            &response.body,
                            expires_ms,
                        ],
                    )
                    .await;
                Ok(Some(Wrote::Count(n)))
            }),
            KeyWrite::Release { key, claim, .. } => Box::pin(async move {
                let n = c.client.execute(&c.release, &[key, claim]).await;
                Ok(Some(Wrote::Count(n)))
            }),
        });
    }
    steps.push(Box::pin(async {
        c.client.batch_execute("COMMIT").await.map(|()| None)
    }));
    let outcomes = in_order(steps).await;
    // A failed write makes PostgreSQL roll the whole transaction back (its `COMMIT` then
    // reports a rollback, not an error): any failure is every write's.
    let failure = outcomes.iter().find_map(|o| match o {
        Err(e) => Some(e.to_string()),
        Ok(Some(Wrote::Claim(Err(e)) | Wrote::Count(Err(e)))) => Some(e.to_string()),
        Ok(_) => None,
    });
    let wrote = outcomes.into_iter().skip(1);
    for (write, outcome) in batch.drain(..).zip(wrote) {
        if let Some(e) = &failure {
            write.fail(e);
            continue;
        }
        match (write, outcome) {
            (KeyWrite::Claim(a, tx), Ok(Some(Wrote::Claim(Ok(r))))) => {
                let state = crate::key_state(
                    &a.ask(),
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                );
                let _ = tx.send(Ok(state));
            }
            (KeyWrite::Finish { done, .. } | KeyWrite::Release { done, .. }, _) => {
                let _ = done.send(Ok(()));
            }
            (write, _) => write.fail("a write came back as another"),
        }
    }
}

/// Runs `steps` to completion, each first polled in the order given: tokio-postgres sends a
/// request when its future is first polled, so this writes them to the connection in order,
/// together, and PostgreSQL runs them in that order.
async fn in_order<T>(mut steps: Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> Vec<T> {
    let mut done: Vec<Option<T>> = steps.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (step, out) in steps.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match step.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}
