//! Group commit for the SQLite store: writes that must reach the disk before their request
//! is answered (an idempotency key's claim and the response kept under it) are gathered and
//! committed together, one transaction and one fsync for as many as arrived while the last
//! commit was on its way to the disk.
//!
//! Every write still waits for its own commit: a caller hears its write succeeded only once
//! the transaction that holds it is durable (`synchronous = FULL`), so nothing promised to a
//! client is weaker than when each write had its own transaction. What changes is the cost:
//! under load the fsync, SQLite's dearest step, is paid once per batch, not once per write.
//! A batch is whatever is queued when the writer comes back for more; an idle store commits
//! a lone write at once, with no waiting for company.
//!
//! The writer is one thread: SQLite takes one writer at a time anyway, and running the writes
//! one after another in one transaction keeps their order and their meaning (a claim sees
//! the claims before it in the batch, as it would have seen them committed).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::StoreError;

/// The most writes one transaction takes, so a flood of writes still commits (and answers)
/// in steps.
const MAX_BATCH: usize = 256;

/// What a write came to: a result to give at once (it wrote nothing, or found nothing to
/// write), or one to give once its transaction is durable.
pub(crate) enum Step<T> {
    /// Nothing written: answered without waiting for the commit.
    Now(Result<T, StoreError>),
    /// Written: answered once the commit is durable (or with the commit's failure).
    Durable(Result<T, StoreError>),
}

/// Called once the batch's commit is done, with its failure if it failed.
type Reply = Box<dyn FnOnce(Result<(), &str>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Option<Reply> + Send>;

/// The queue of writes to the one writer thread, which ends when the last handle goes.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer for `conn`.
    pub(crate) fn start(conn: Arc<Mutex<Connection>>) -> std::io::Result<GroupCommit> {
        let (jobs, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("portico-sqlite-writer".into())
            .spawn(move || write_batches(&conn, &queue))?;
        Ok(GroupCommit { jobs })
    }

    /// Runs `write` in the next batch; its result comes back when [`Step`] says.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Step<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| match write(conn) {
            Step::Now(result) => {
                let _ = tx.send(result);
                None
            }
            Step::Durable(result) => Some(Box::new(move |committed: Result<(), &str>| {
                let outcome = match committed {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::backend(format!("commit failed: {e}"))),
                };
                let _ = tx.send(outcome);
            })),
        });
        let stopped = || StoreError::backend("the store's writer stopped");
        self.jobs.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// The writer's loop: takes what is queued (at least one write), runs it in one
/// transaction, commits, answers.
fn write_batches(conn: &Mutex<Connection>, queue: &Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        // Without a transaction (BEGIN failed: the disk or the file is in trouble) each write
        // commits on its own, as it always could.
        let grouped = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        let replies: Vec<Reply> = batch.drain(..).filter_map(|job| job(&conn)).collect();
        let committed = if grouped {
            conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        } else {
            Ok(())
        };
        if committed.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        drop(conn);
        for reply in replies {
            reply(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}
