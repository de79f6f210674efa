//! One client connection, whatever it speaks: HTTP/2 when ALPN chose it, else HTTP/1.1 (which
//! itself hands over to HTTP/2 when a cleartext client opens with the HTTP/2 preface).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::io::ClientIo;
use crate::service::Service;
use crate::settings::{ConnSettings, Shutdown};
use crate::{h1, http2};

/// Serves one connection until it closes.
pub async fn serve_connection<S: Service>(
    io: ClientIo,
    peer: SocketAddr,
    svc: Arc<S>,
    settings: Arc<ConnSettings>,
    shutdown: Shutdown,
) {
    // Each protocol's state lives in its own allocation, for as long as the connection speaks
    // it: inline, both would be part of this future (the connection's task, held while the
    // connection is open), and every connection would be as large as the larger of the two.
    // A protocol ALPN settled is honoured even if a reload turned HTTP/2 off meanwhile.
    if io.alpn() == Some(b"h2") {
        return Box::pin(http2::serve(
            io,
            Bytes::new(),
            peer,
            svc,
            settings,
            shutdown,
        ))
        .await;
    }
    let http1 = Box::pin(h1::serve(io, peer, svc, settings, shutdown)).await;
    if let Some(h2) = http1 {
        let http2 = http2::serve(h2.io, h2.replay, peer, h2.svc, h2.settings, h2.shutdown);
        Box::pin(http2).await;
    }
}
