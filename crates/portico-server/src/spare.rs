//! Spare I/O buffers, kept per thread.
//!
//! A connection holds buffers only while a request is in flight: when it waits for the next
//! request it returns them here, and it takes them back when bytes arrive. Ten thousand idle
//! connections then hold no buffers at all, and a busy one still pays no allocation per
//! request (8 KiB buffers are past glibc's per-thread cache, and allocating one per request
//! cost more than parsing the request). At most [`SPARE`] of each kind are kept per thread.

use std::cell::RefCell;

use bytes::BytesMut;

/// Spare buffers of each kind kept per thread.
const SPARE: usize = 64;

/// What a connection reads requests into.
pub(crate) const READ_BUFFER: usize = 8 * 1024;
/// What a response head is written into.
pub(crate) const WRITE_BUFFER: usize = 4 * 1024;

thread_local! {
    static READ: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Makes sure `buf` has room to read into, taking a spare buffer when it has none.
pub(crate) fn reserve_read(buf: &mut BytesMut) {
    if buf.capacity() == 0
        && let Some(spare) = READ.with(|s| s.borrow_mut().pop())
    {
        *buf = spare;
    }
    buf.reserve(READ_BUFFER);
}

/// Gives an empty read buffer back (kept when there is room), leaving `buf` without one.
/// Its capacity counts only the room after what was split off (a request head, say), so a
/// used buffer shows less than it has: `reserve_read` reclaims the whole allocation.
pub(crate) fn release_read(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 {
        let taken = std::mem::take(buf);
        if taken.capacity() >= READ_BUFFER / 2 {
            READ.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARE {
                    s.push(taken);
                }
            });
        }
    }
}

/// Makes sure `out` has room for a response head, taking a spare buffer when it has none.
pub(crate) fn reserve_write(out: &mut Vec<u8>) {
    if out.capacity() == 0
        && let Some(spare) = WRITE.with(|s| s.borrow_mut().pop())
    {
        *out = spare;
    }
    out.reserve(WRITE_BUFFER);
}

/// Gives a write buffer back (kept when there is room and it is not oversized).
pub(crate) fn release_write(out: &mut Vec<u8>) {
    if out.capacity() > 0 {
        let mut taken = std::mem::take(out);
        if taken.capacity() <= 8 * WRITE_BUFFER {
            taken.clear();
            WRITE.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SPARE {
                    s.push(taken);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_go_back_and_come_out_again() {
        let mut buf = BytesMut::new();
        reserve_read(&mut buf);
        assert!(buf.capacity() >= READ_BUFFER);
        let ptr = buf.as_ptr();
        release_read(&mut buf);
        assert_eq!(buf.capacity(), 0);
        let mut again = BytesMut::new();
        reserve_read(&mut again);
        assert_eq!(again.as_ptr(), ptr, "the spare was reused");
        // A used buffer (a head split off its front) goes back too, and its whole allocation
        // is reused.
        again.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = again.split_to(again.len()).freeze();
        drop(head);
        release_read(&mut again);
        let mut third = BytesMut::new();
        reserve_read(&mut third);
        assert_eq!(third.as_ptr(), ptr, "the used buffer was reused whole");
        // A buffer still holding bytes is not given back.
        again.extend_from_slice(b"pipelined");
        release_read(&mut again);
        assert_eq!(&again[..], b"pipelined");

        let mut out = Vec::new();
        reserve_write(&mut out);
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let ptr = out.as_ptr();
        release_write(&mut out);
        assert!(out.is_empty() && out.capacity() == 0);
        let mut next = Vec::new();
        reserve_write(&mut next);
        assert_eq!(next.as_ptr(), ptr);
        assert!(next.is_empty());
    }
}
