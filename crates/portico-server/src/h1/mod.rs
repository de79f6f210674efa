//! HTTP/1.1 (RFC 9112) on a client connection: the connection loop (`conn.rs`), which reads
//! each request head with `portico-http`'s strict parser, and the response writer
//! (`write.rs`), which owns the framing of everything sent.

mod conn;
mod write;

pub(crate) use conn::serve;
