//! Relaying bytes both ways between a client whose connection changed hands (a WebSocket
//! after its 101, a CONNECT tunnel after its 200) and the other side.

use std::time::Duration;

use bytes::Bytes;
use portico_server::Upgraded;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};

/// Relay buffer per direction.
const RELAY_BUFFER: usize = 8 * 1024;

/// Relays bytes both ways until both sides have closed, a write fails, or `idle` passes
/// without a byte in either direction. When one side closes, the other is told (its write
/// side is shut) and the remaining direction goes on, as TCP allows.
pub(crate) async fn relay<U: AsyncRead + AsyncWrite + Unpin>(
    client: Upgraded,
    mut upstream_io: U,
    from_upstream: Bytes,
    idle: Duration,
) {
    let Upgraded {
        io: mut client,
        buffered: from_client,
    } = client;
    // What either side sent before the switch was complete goes first.
    if (!from_client.is_empty() && send(&mut upstream_io, &from_client).await.is_err())
        || (!from_upstream.is_empty() && send(&mut client, &from_upstream).await.is_err())
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
                tracing::debug!("relay idle timeout; closing both sides");
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
