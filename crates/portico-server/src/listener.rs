//! Accepting connections, and stopping gracefully.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use crate::conn::{Shutdown, serve_connection};
use crate::service::Service;

/// Serves `listener` until `stop` resolves; then stops accepting, lets connections finish
/// their current request (idle ones close at once), and returns when all are gone or `grace`
/// has passed.
///
/// Each connection takes its settings from the service when it is accepted
/// ([`Service::settings`]). At most `max_connections` of the settings in force at start are
/// open at once: a connection is accepted
/// only when it can have a slot, so at the limit new clients wait in the kernel's accept
/// queue, neither refused nor costing Portico anything, until a connection closes.
pub async fn serve<S: Service>(
    listener: TcpListener,
    svc: Arc<S>,
    grace: Duration,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    // The connection limit is fixed for the listener's life (a reload cannot change it).
    let max_connections = svc.settings().max_connections.max(1);
    let (drain_tx, drain) = Shutdown::new();
    // Each connection task holds a sender; `recv` returns `None` once all have ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut stop = std::pin::pin!(stop);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut full = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                full = false;
                slot
            }
            Err(_) => {
                if !full {
                    full = true;
                    tracing::warn!(
                        max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut stop => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let svc = svc.clone();
                    let settings = svc.settings();
                    let drain = drain.clone();
                    let alive = alive_tx.clone();
                    tokio::spawn(async move {
                        serve_connection(stream, peer, svc, settings, drain).await;
                        drop(slot);
                        drop(alive);
                    });
                }
                Err(e) => {
                    // Out of file descriptors or memory: back off briefly instead of spinning
                    // on an accept that keeps failing. This is not waiting for an event.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    let _ = drain_tx.send(true);
    drop(alive_tx);
    if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    Ok(())
}
