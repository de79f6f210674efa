//! The upstream side: pooled keep-alive HTTP/1.1 connections to targets, or one multiplexed
//! HTTP/2 connection per target for `h2c://` targets and `https://` targets that choose `h2`
//! with ALPN.
//!
//! Portico speaks HTTP/1.1 to upstreams with its own small client rather than hyper's. The
//! contract needs every upstream fault told apart (refused, timed out, reset, invalid, 306), the
//! request body streamed from the client connection as it arrives, and an early upstream answer
//! noticed while the body is still being sent; and on the benchmark's hot path, a proxied
//! request costs one write and one read on each side. Framing is owned here in one place: the
//! client adds the body's framing header and re-encodes the body, and the response's framing
//! is decided here and hidden from the caller. HTTP/2 goes through the `h2` crate: the same
//! request is mapped to an HTTP/2 request (`h2.rs`), and the response comes back as
//! the same [`UpstreamResponse`].

mod body;
mod h1;
mod h2;
mod health;
mod message;
mod pool;
mod resolve;
mod settings;
mod upstream;

pub use body::{ResponseFraming, UpstreamBody};
pub use message::{Switched, UpgradeAnswer, UpstreamRequest, UpstreamResponse};
pub use pool::{TargetPool, connect_tcp};
pub use resolve::{MAX_LOOKUPS, resolve};
pub use settings::{
    Active, Balance, Passive, Transport, UpstreamIo, UpstreamSettings, UpstreamTarget, UpstreamTls,
};
pub use upstream::Upstream;
