//! A watch on the frames an HTTP/2 client sends, ahead of the `h2` library.
//!
//! `h2` bounds a header block by its *decoded* size, and answers a block over that bound with
//! a 431, a status Portico never sends (CONTRACT.md rule 1). So Portico bounds the block
//! before `h2` decodes it, by what the client actually sent: the bytes of a HEADERS frame and
//! its CONTINUATION frames, how many frames, and how long the block stays open. A client past
//! any of these is not sending a request Portico would accept at any size, and its connection
//! ends (the CONTINUATION floods of 2024 sent endless or endlessly slow blocks). With the
//! encoded size bounded, `h2`'s decoded bound is set where no block can reach it (see
//! [`decoded_bound`]), and a large-but-allowed head gets Portico's own 400 instead.
//!
//! The guard only reads frame headers as bytes flow past: it never copies or holds a payload.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::io::ClientIo;

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Largest encoded header block any configuration allows. `h2` keeps at most 24,576 distinct
/// field names per block (a `HeaderMap` limit it reports as "over size", hence a 431); a new
/// name costs at least 4 encoded bytes, and at most 185 more can come from the static and a
/// 4,096-byte dynamic table, so 90 KiB stays below that.
const MAX_BLOCK_BYTES: usize = 90 * 1024;

/// Most frames one header block may span. Clients split a block only at the frame size
/// (16 KiB by default), so even the largest allowed block needs 6.
pub(crate) const MAX_BLOCK_FRAMES: u32 = 16;

/// The bounds the guard enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockLimits {
    /// Most encoded bytes in one header block.
    pub(crate) max_bytes: usize,
    /// Most frames in one header block.
    pub(crate) max_frames: u32,
    /// Longest a header block may stay open, from its HEADERS frame to END_HEADERS.
    pub(crate) timeout: Duration,
}

impl BlockLimits {
    /// Bounds for heads that may hold `head_bytes` (request line and fields): twice that, so
    /// a head somewhat over the configured limit still arrives whole and is answered with a
    /// 400, capped at [`MAX_BLOCK_BYTES`].
    pub(crate) fn for_heads(head_bytes: usize, timeout: Duration) -> BlockLimits {
        BlockLimits {
            max_bytes: head_bytes.saturating_mul(2).min(MAX_BLOCK_BYTES),
            max_frames: MAX_BLOCK_FRAMES,
            timeout,
        }
    }
}

/// A decoded-size bound no header block within `limits` can reach: each field costs at least
/// one encoded byte and decodes to at most the dynamic table's size (4,096) plus the 32 bytes
/// RFC 9113 §6.5.2 counts per field. Decoding shares the table's bytes rather than copying
/// them, so this bounds accounting, not memory.
pub(crate) fn decoded_bound(limits: &BlockLimits) -> u32 {
    let bound = (limits.max_bytes as u64).saturating_mul(4096 + 32);
    u32::try_from(bound).unwrap_or(u32::MAX)
}

#[derive(Debug)]
struct Block {
    bytes: usize,
    frames: u32,
}

/// A client connection speaking HTTP/2, with bytes read before the switch replayed first, and
/// header blocks held to [`BlockLimits`].
pub(crate) struct Guarded {
    io: ClientIo,
    replay: Bytes,
    preface_left: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    payload_left: usize,
    block: Option<Block>,
    deadline: Option<Pin<Box<Sleep>>>,
    limits: BlockLimits,
}

impl Guarded {
    /// Guards `io`; `replay` holds what was read from it already (the start of the preface,
    /// when the protocol was told by the preface itself).
    pub(crate) fn new(io: ClientIo, replay: Bytes, limits: BlockLimits) -> Guarded {
        Guarded {
            io,
            replay,
            preface_left: PREFACE.len(),
            header: [0; FRAME_HEADER],
            header_len: 0,
            payload_left: 0,
            block: None,
            deadline: None,
            limits,
        }
    }

    /// Follows the frames in `bytes`, the next bytes from the client.
    fn inspect(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let skip = if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                n
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                n
            } else {
                let n = (FRAME_HEADER - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                if self.header_len == FRAME_HEADER {
                    self.header_len = 0;
                    let h = self.header;
                    let length =
                        usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    self.payload_left = length;
                    self.frame(h[3], h[4], length)?;
                }
                n
            };
            bytes = &bytes[skip..];
        }
        Ok(())
    }

    fn frame(&mut self, kind: u8, flags: u8, length: usize) -> io::Result<()> {
        let ends = flags & END_HEADERS != 0;
        match kind {
            HEADERS => {
                // A HEADERS frame inside an open block is a protocol error `h2` reports.
                if ends {
                    self.check(length, 1)?;
                } else {
                    self.block = Some(Block {
                        bytes: length,
                        frames: 1,
                    });
                    self.check(length, 1)?;
                    self.deadline = Some(Box::pin(tokio::time::sleep_until(
                        Instant::now() + self.limits.timeout,
                    )));
                }
            }
            CONTINUATION => {
                if let Some(block) = &mut self.block {
                    block.bytes += length;
                    block.frames += 1;
                    let (bytes, frames) = (block.bytes, block.frames);
                    self.check(bytes, frames)?;
                    if ends {
                        self.block = None;
                        self.deadline = None;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check(&self, bytes: usize, frames: u32) -> io::Result<()> {
        if bytes > self.limits.max_bytes {
            return Err(refused(
                "a header block larger than any request Portico accepts",
            ));
        }
        if frames > self.limits.max_frames {
            return Err(refused("a header block split into too many frames"));
        }
        Ok(())
    }

    /// Fails once an open header block has outlived its time; otherwise arranges a wake-up
    /// for when it does.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(sleep) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Err(refused("a header block left open past the header timeout"));
        }
        Ok(())
    }
}

fn refused(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_deadline(cx)?;
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            let head = this.replay.split_to(n);
            this.inspect(&head)?;
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.inspect(&buf.filled()[before..])?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
