//! A watch on the frames an HTTP/2 client sends, ahead of the `h2` library: header blocks
//! held to `portico_http::h2_blocks` (bytes and frames, decided as bytes pass), and to the
//! header timeout while one is open. A client past any of these ends its connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use portico_http::h2_blocks::{BlockLimits, Watch};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::io::ClientIo;

/// A client connection speaking HTTP/2, with bytes read before the switch replayed first, and
/// header blocks held to [`BlockLimits`] and to `timeout` from their HEADERS frame to
/// END_HEADERS.
pub(crate) struct Guarded {
    io: ClientIo,
    replay: Bytes,
    watch: Watch,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    /// Guards `io`; `replay` holds what was read from it already (the start of the preface,
    /// when the protocol was told by the preface itself).
    pub(crate) fn new(
        io: ClientIo,
        replay: Bytes,
        limits: BlockLimits,
        timeout: Duration,
    ) -> Guarded {
        Guarded {
            io,
            replay,
            watch: Watch::new(limits),
            timeout,
            deadline: None,
        }
    }

    /// Follows the frames in `bytes`, the next bytes from the client; a block that opens
    /// starts its timer, one that closes stops it.
    fn inspect(&mut self, bytes: &[u8]) -> io::Result<()> {
        let was_open = self.watch.block_open();
        self.watch
            .observe(bytes)
            .map_err(|why| refused(why.describe()))?;
        match (was_open, self.watch.block_open()) {
            (false, true) => {
                self.deadline = Some(Box::pin(tokio::time::sleep_until(
                    Instant::now() + self.timeout,
                )));
            }
            (true, false) => self.deadline = None,
            _ => {}
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
