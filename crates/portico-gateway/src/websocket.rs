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
use portico_http::ErrorCode;
use portico_server::client::{UpgradeAnswer, Upstream, UpstreamRequest};
use portico_server::{Body, Error, Response};

use crate::proxy::{relayed, via};
use crate::relay::relay;

/// Sends the handshake to `upstream` and answers with what it says: a 101 that hands the
/// connection to the relay, or its other response.
pub(crate) async fn upgrade(
    upstream: &Upstream,
    outgoing: UpstreamRequest,
    idle: Duration,
) -> Result<(Response, Arc<str>), Error> {
    let method = outgoing.method;
    // Upgrade and Connection are hop-by-hop: the client asks this hop for the switch itself.
    match upstream.upgrade(outgoing).await? {
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
                    Box::pin(relay(client, switched.stream, switched.buffered, idle))
                })),
                close: false,
                error: None,
            };
            Ok((resp, target))
        }
    }
}

/// The 400 for a WebSocket handshake that breaks RFC 6455 §4.2.1; the answer names the version
/// Portico speaks (§4.4).
pub(crate) fn refused(detail: &str) -> Error {
    Error::new(ErrorCode::WebSocketHandshakeInvalid)
        .with_detail(detail)
        .with_header("Sec-WebSocket-Version", "13")
}
