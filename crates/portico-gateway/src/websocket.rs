//! WebSocket (RFC 6455) on routes with `websocket: true`: the handshake goes to the upstream on
//! a connection of its own, and if the upstream switches (101), Portico relays the 101 and
//! then the bytes of both directions until either side closes or the route's idle timeout
//! passes with no byte either way.
//!
//! Every check of the request pipeline (route, method, limits, media types; authentication
//! later) has passed before the handshake leaves Portico. What the upstream answers other
//! than 101 is relayed like any response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portico_server::client::{Switched, UpgradeAnswer, Upstream, UpstreamRequest};
use portico_server::{Body, Error, Request, Response, Upgraded};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};

use crate::proxy::{relayed, upstream_head, via};

/// Relay buffer per direction.
const RELAY_BUFFER: usize = 8 * 1024;

/// Sends the handshake to `upstream` and answers with what it says: a 101 that hands the
/// connection to the relay, or its other response.
pub(crate) async fn upgrade(
    upstream: &Upstream,
    req: &Request,
    path: &[u8],
    idle: Duration,
) -> Result<(Response, Arc<str>), Error> {
    let mut head = upstream_head(req, path, upstream.authority());
    // Upgrade and Connection are hop-by-hop: Portico asks this hop for the switch itself.
    head.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n");
    let method = req.head.method();
    match upstream.upgrade(UpstreamRequest { head, method }).await? {
        UpgradeAnswer::Refused(answer) => {
            let target = answer.target.authority_arc();
            Ok((relayed(answer, method), target))
        }
        UpgradeAnswer::Switched(switched) => {
            let target = switched.target.authority_arc();
            let mut headers = vec![(
                Bytes::from_static(b"Upgrade"),
                Bytes::from_static(b"websocket"),
            )];
            headers.extend(switched.headers.iter().cloned());
            headers.push(via());
            let resp = Response {
                status: 101,
                reason: Some(switched.reason.clone()),
                headers,
                body: Body::Upgrade(Box::new(move |client| {
                    Box::pin(relay(client, switched, idle))
                })),
                close: false,
                error: None,
            };
            Ok((resp, target))
        }
    }
}

/// Relays bytes both ways until both sides have closed, a write fails, or `idle` passes
/// without a byte in either direction. When one side closes, the other is told (its write
/// side is shut) and the remaining direction goes on, as TCP allows.
async fn relay(client: Upgraded, upstream: Switched, idle: Duration) {
    let Upgraded {
        io: mut client,
        buffered: from_client,
    } = client;
    let mut upstream_io = upstream.stream;
    // What either side sent before the switch was complete goes first.
    if (!from_client.is_empty() && send(&mut upstream_io, &from_client).await.is_err())
        || (!upstream.buffered.is_empty() && send(&mut client, &upstream.buffered).await.is_err())
    {
        return;
    }
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (mut upstream_rd, mut upstream_wr) = tokio::io::split(upstream_io);
    let mut up = vec![0u8; RELAY_BUFFER];
    let mut down = vec![0u8; RELAY_BUFFER];
    let (mut client_open, mut upstream_open) = (true, true);
    let mut deadline = Instant::now() + idle;
    while client_open || upstream_open {
        tokio::select! {
            read = client_rd.read(&mut up), if client_open => match read {
                Ok(n) if n > 0 => {
                    if send(&mut upstream_wr, &up[..n]).await.is_err() {
                        return;
                    }
                    deadline = Instant::now() + idle;
                }
                _ => {
                    client_open = false;
                    let _ = upstream_wr.shutdown().await;
                }
            },
            read = upstream_rd.read(&mut down), if upstream_open => match read {
                Ok(n) if n > 0 => {
                    if send(&mut client_wr, &down[..n]).await.is_err() {
                        return;
                    }
                    deadline = Instant::now() + idle;
                }
                _ => {
                    upstream_open = false;
                    let _ = client_wr.shutdown().await;
                }
            },
            () = sleep_until(deadline) => {
                tracing::debug!("WebSocket idle timeout; closing both sides");
                return;
            }
        }
    }
}

/// Writes `data` and flushes it (either side may be TLS, which buffers).
async fn send<W: AsyncWrite + Unpin>(out: &mut W, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data).await?;
    out.flush().await
}
