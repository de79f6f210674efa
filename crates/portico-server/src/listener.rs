//! Accepting connections, plain and TLS, and stopping gracefully.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::conn::serve_connection;
use crate::io::ClientIo;
use crate::service::Service;
use crate::settings::Shutdown;
use crate::tls::Tls;

/// A socket Portico listens on, and whether its connections speak TLS.
pub struct Listener {
    /// The bound socket.
    pub tcp: TcpListener,
    /// TLS settings, for a TLS listener.
    pub tls: Option<Arc<Tls>>,
}

impl Listener {
    /// A plain HTTP listener.
    pub fn plain(tcp: TcpListener) -> Listener {
        Listener { tcp, tls: None }
    }

    /// A TLS listener.
    pub fn tls(tcp: TcpListener, tls: Arc<Tls>) -> Listener {
        Listener {
            tcp,
            tls: Some(tls),
        }
    }
}

/// Serves one plain listener; see [`serve_all`].
pub async fn serve<S: Service>(
    listener: TcpListener,
    svc: Arc<S>,
    grace: Duration,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_all(vec![Listener::plain(listener)], svc, grace, stop).await
}

/// What the accept loops share.
struct Shared<S> {
    svc: Arc<S>,
    slots: Arc<Semaphore>,
    max_connections: usize,
    drain: Shutdown,
    alive: mpsc::Sender<()>,
}

/// Serves `listeners` until `stop` resolves; then stops accepting, lets connections finish
/// their current request (idle ones close at once), and returns when all are gone or `grace`
/// has passed.
///
/// Each connection takes its settings from the service when it is accepted
/// ([`Service::settings`]). At most `max_connections` of the settings in force at start are
/// open at once, across the listeners: a connection is accepted only when it can have a slot,
/// so at the limit new clients wait in the kernel's accept queue, neither refused nor costing
/// Portico anything, until a connection closes. A TLS handshake happens in the connection's
/// own task, bounded by `header_timeout`, so a slow one never holds up accepting.
pub async fn serve_all<S: Service>(
    listeners: Vec<Listener>,
    svc: Arc<S>,
    grace: Duration,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    // The connection limit is fixed for the listeners' life (a reload cannot change it).
    let max_connections = svc.settings().max_connections.max(1);
    let (drain_tx, drain) = Shutdown::new();
    // Each connection task holds a sender; `recv` returns `None` once all have ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        svc,
        slots: Arc::new(Semaphore::new(max_connections)),
        max_connections,
        drain,
        alive: alive_tx,
    });
    let (stop_accepting, accepting) = Shutdown::new();
    let mut loops = JoinSet::new();
    for listener in listeners {
        loops.spawn(accept_loop(listener, shared.clone(), accepting.clone()));
    }
    stop.await;
    // The accept loops end and drop their sockets: new connections are refused from here.
    let _ = stop_accepting.send(true);
    while loops.join_next().await.is_some() {}
    let _ = drain_tx.send(true);
    drop(shared);
    if tokio::time::timeout(grace, alive_rx.recv()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
    Ok(())
}

async fn accept_loop<S: Service>(
    listener: Listener,
    shared: Arc<Shared<S>>,
    mut stopping: Shutdown,
) {
    let mut full = false;
    loop {
        let slot = match shared.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                full = false;
                slot
            }
            Err(_) => {
                if !full {
                    full = true;
                    tracing::warn!(
                        max_connections = shared.max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = shared.slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                    () = stopping.wait() => return,
                }
            }
        };
        tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let svc = shared.svc.clone();
                    let settings = svc.settings();
                    let drain = shared.drain.clone();
                    let alive = shared.alive.clone();
                    let tls = listener.tls.clone();
                    tokio::spawn(async move {
                        let io = match tls {
                            None => Some(ClientIo::Plain(stream)),
                            // Boxed: inline, the handshake's state would be part of the task
                            // for the connection's whole life.
                            Some(tls) => {
                                Box::pin(accept_tls(&tls, stream, peer, settings.header_timeout))
                                    .await
                            }
                        };
                        if let Some(io) = io {
                            serve_connection(io, peer, svc, settings, drain).await;
                        }
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
            () = stopping.wait() => return,
        }
    }
}

/// The server side of a TLS handshake, within `timeout`; `None` when it fails.
async fn accept_tls(
    tls: &Tls,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    timeout: Duration,
) -> Option<ClientIo> {
    match tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(s)) => Some(ClientIo::Tls(Box::new(s))),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
