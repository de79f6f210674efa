//! How many client connections are open, and how many were taken, by protocol: what the
//! `portico_connections` metrics read.
//!
//! The counts are the process's, like its file descriptors: every listener of the process
//! adds to them, whichever service it serves. A connection is counted as HTTP/1.1 until it
//! switches to HTTP/2 (a cleartext client that opened with the HTTP/2 preface), then as
//! HTTP/2; one that chose `h2` by ALPN is HTTP/2 from the start.

use std::sync::atomic::{AtomicU64, Ordering};

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (and 1.0).
    Http1,
    /// HTTP/2, over TLS or cleartext.
    Http2,
}

impl Protocol {
    /// Both, in the order [`counts`] gives them.
    pub const ALL: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

    /// The label value: `http1` or `http2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }

    fn slot(self) -> usize {
        match self {
            Protocol::Http1 => 0,
            Protocol::Http2 => 1,
        }
    }
}

static ACCEPTED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static CLOSED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// One protocol's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// The protocol.
    pub protocol: Protocol,
    /// Connections taken since the process started.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
}

/// The counts of each protocol, HTTP/1.1 first.
pub fn counts() -> [Counts; 2] {
    Protocol::ALL.map(|p| {
        // Read closed first: a connection that closes between the loads is then never
        // counted as closed but not accepted.
        let closed = CLOSED[p.slot()].load(Ordering::Relaxed);
        let accepted = ACCEPTED[p.slot()].load(Ordering::Relaxed);
        Counts {
            protocol: p,
            accepted,
            open: accepted.saturating_sub(closed),
        }
    })
}

/// A connection counted as open while this lives.
pub(crate) struct Open(Protocol);

impl Open {
    pub(crate) fn new(p: Protocol) -> Open {
        ACCEPTED[p.slot()].fetch_add(1, Ordering::Relaxed);
        Open(p)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        CLOSED[self.0.slot()].fetch_add(1, Ordering::Relaxed);
    }
}
