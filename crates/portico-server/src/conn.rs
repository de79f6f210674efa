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
    // A protocol ALPN settled is honoured even if a reload turned HTTP/2 off meanwhile.
    // HTTP/2's state lives in its own allocation: inline, it would make every HTTP/1.1
    // connection's future (held for as long as the connection is open) as large as its own.
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
    h1::serve(io, peer, svc, settings, shutdown).await
}
