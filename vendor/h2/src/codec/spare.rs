//! Patch: spare buffers, kept per thread. A connection gives its buffers back when it is
//! quiet (nothing left to read, everything written) and takes them again when bytes next move;
//! the spares make that cost a few instructions, not an allocation of 8 or 16 KiB (past glibc's
//! per-thread cache) every time a busy connection pauses. At most `SPARE` of each kind are
//! kept per thread, so ten thousand idle connections hold none between them.

use bytes::BytesMut;
use std::cell::RefCell;

/// Spare buffers of each kind kept per thread.
const SPARE: usize = 16;

/// A kind of buffer, by use and size.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// Bytes read from the connection, cut into frames.
    Read,
    /// Frames encoded for the connection.
    Write,
    /// Strings the HPACK decoder decodes from Huffman code.
    Hpack,
}

impl Kind {
    /// The size a buffer of this kind is taken at.
    pub(crate) fn size(self) -> usize {
        match self {
            Kind::Read => 8 * 1024,
            Kind::Write => 16 * 1024,
            Kind::Hpack => 4 * 1024,
        }
    }

    fn with<R>(self, f: impl FnOnce(&mut Vec<BytesMut>) -> R) -> Option<R> {
        thread_local! {
            static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
            static WRITE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
            static HPACK: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
        }
        let key = match self {
            Kind::Read => &READ,
            Kind::Write => &WRITE,
            Kind::Hpack => &HPACK,
        };
        // Not available while the thread's locals are torn down: no spare then.
        key.try_with(|s| f(&mut s.borrow_mut())).ok()
    }
}

/// A buffer of `kind` with room for at least its size: a spare if one is kept.
pub(crate) fn take(kind: Kind) -> BytesMut {
    let mut buf = kind.with(Vec::pop).flatten().unwrap_or_default();
    // A spare's capacity counts only the room after what was split off it; when nothing
    // split off is still alive, this reclaims the whole allocation rather than taking another.
    buf.reserve(kind.size());
    buf
}

/// Gives `buf` back, leaving it without an allocation; kept as a spare if empty, large enough
/// and there is room for it.
pub(crate) fn give(kind: Kind, buf: &mut BytesMut) {
    let buf = std::mem::take(buf);
    if buf.is_empty() && buf.capacity() >= kind.size() / 2 {
        kind.with(|s| {
            if s.len() < SPARE {
                s.push(buf);
            }
        });
    }
}
