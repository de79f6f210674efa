//! Portico's connection layer: listeners, the HTTP/1.1 server side, the upstream client.
//!
//! The server reads bytes, asks `portico-http` what they mean, hands well-formed requests to a
//! [`Service`], and turns every error, its own or the service's, into a response in one place
//! ([`rescue::error_response`]). It owns framing in both directions, so handlers never set
//! `Content-Length`, `Transfer-Encoding` or `Connection`.

#![forbid(unsafe_code)]

pub mod body;
pub mod client;
mod conn;
pub mod connections;
mod date;
pub mod error;
mod h1;
mod http2;
pub mod id;
pub mod io;
pub mod listener;
pub mod reload;
pub mod rescue;
pub mod response;
pub mod service;
pub mod settings;
mod spare;
pub mod stats;
pub mod tls;

pub use body::{BodyBudget, RequestBody, Reservation};
pub use conn::serve_connection;
pub use date::with_http_date;
pub use error::Error;
pub use id::RequestId;
pub use io::{ClientIo, MaybeTls, TlsOverTcp};
pub use listener::{Listener, serve, serve_all};
pub use reload::Reloadable;
pub use response::{Body, OnUpgrade, Response, StreamBody, Upgraded};
pub use service::{Exchange, Permits, Request, Service};
pub use settings::{ConnSettings, Http2Settings, Shutdown};
pub use stats::{RouteStats, StatusCounts};
