//! Patch: the connection's bytes cut into frames (each the 9-octet frame header and the
//! payload its length field names), in place of tokio-util's `FramedRead` with a
//! `LengthDelimitedCodec`. The framing is the same; what differs is the read buffer. tokio-util
//! takes 8 KiB when the connection opens and keeps it for the connection's life, so ten
//! thousand idle connections hold 80 MiB of empty buffers. Here the buffer goes back to the
//! thread's spares (`spare.rs`) whenever a read finds nothing to read and no partial frame is
//! held; a read with no buffer goes to the stack, so one that finds nothing takes nothing, and
//! what arrives is copied into a spare.

use bytes::BytesMut;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::poll_read_buf;

use super::spare::{self, Kind};
use crate::frame::HEADER_LEN;

/// The room a read with no buffer is given: several small frames, or the start of a large
/// one.
const READ_SIZE: usize = 8 * 1024;

/// Below this much spare room, the buffer grows before it is read into (so reads stay large).
const MIN_ROOM: usize = 1024;

#[derive(Debug)]
pub(crate) struct Delimited<T> {
    io: T,
    /// Bytes read and not yet returned as frames; no allocation while nothing is held and the
    /// connection waits.
    buf: BytesMut,
    /// The largest payload accepted (SETTINGS_MAX_FRAME_SIZE as sent to the peer).
    max_frame_length: usize,
    /// An error was returned: the stream has ended.
    failed: bool,
}

/// A frame whose length field is over the maximum frame size.
#[derive(Debug)]
pub(crate) struct FrameTooLarge;

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("frame size too big")
    }
}

impl StdError for FrameTooLarge {}

impl<T> Delimited<T> {
    pub(crate) fn new(io: T, max_frame_length: usize) -> Delimited<T> {
        Delimited {
            io,
            buf: BytesMut::new(),
            max_frame_length,
            failed: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.io
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    pub(crate) fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    pub(crate) fn set_max_frame_length(&mut self, val: usize) {
        self.max_frame_length = val;
    }

    /// Whether no read buffer is held: the last read found nothing, between frames.
    pub(crate) fn is_released(&self) -> bool {
        self.buf.capacity() == 0
    }

    /// The next whole frame in the buffer, if there is one.
    fn next_frame(&mut self) -> io::Result<Option<BytesMut>> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let length =
            (self.buf[0] as usize) << 16 | (self.buf[1] as usize) << 8 | self.buf[2] as usize;
        if length > self.max_frame_length {
            return Err(io::Error::new(io::ErrorKind::InvalidData, FrameTooLarge));
        }
        let whole = HEADER_LEN + length;
        if self.buf.len() < whole {
            self.buf.reserve(whole - self.buf.len());
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(whole)))
    }
}

impl<T: AsyncRead + Unpin> Delimited<T> {
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<BytesMut>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let polled = self.poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            self.failed = true;
        }
        polled
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<BytesMut>>> {
        loop {
            match self.next_frame() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            let read = if self.is_released() {
                self.poll_read_unbuffered(cx)
            } else {
                if self.buf.capacity() - self.buf.len() < MIN_ROOM {
                    self.buf.reserve(Kind::Read.size());
                }
                match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf) {
                    Poll::Pending if self.buf.is_empty() => {
                        // Quiet, between frames: the buffer goes while the connection waits.
                        spare::give(Kind::Read, &mut self.buf);
                        Poll::Pending
                    }
                    other => other,
                }
            };
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Ok(0)) if self.buf.is_empty() => return Poll::Ready(None),
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::Other,
                        "bytes remaining on stream",
                    ))))
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// Reads with no buffer held: into the stack, so a read that finds nothing takes nothing,
    /// and what arrives is copied into a buffer taken for it.
    fn poll_read_unbuffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut space = [MaybeUninit::<u8>::uninit(); READ_SIZE];
        let mut read = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let bytes = read.filled();
        if !bytes.is_empty() {
            self.buf = spare::take(Kind::Read);
            self.buf.extend_from_slice(bytes);
        }
        Poll::Ready(Ok(bytes.len()))
    }
}
