//! A body written as DATA frames on an HTTP/2 stream as the peer's flow-control window
//! allows: responses to HTTP/2 clients and request bodies to HTTP/2 upstreams.

use std::future::poll_fn;
use std::io;

use bytes::Bytes;
use h2::SendStream;
use http::HeaderName;
use portico_http::response::is_relayable_trailer;

/// A body sent piece by piece: each piece waits for window, and a body of known length ends
/// the stream with its last piece rather than with an empty frame after it.
pub(crate) struct Out<'a> {
    stream: &'a mut SendStream<Bytes>,
    remaining: Option<u64>,
    sent: &'a mut u64,
    ended: bool,
    /// The stream stays open after the last piece: a trailer section may follow.
    hold_end: bool,
}

impl<'a> Out<'a> {
    /// A body of `length` (when known) of which `sent` bytes have gone out already.
    pub(crate) fn new(
        stream: &'a mut SendStream<Bytes>,
        length: Option<u64>,
        sent: &'a mut u64,
    ) -> Self {
        Out {
            remaining: length.map(|n| n.saturating_sub(*sent)),
            stream,
            sent,
            ended: false,
            hold_end: false,
        }
    }

    /// The stream is not ended with the body's last piece but by [`Out::finish_with`], so
    /// a trailer section can follow the body.
    pub(crate) fn hold_end(mut self) -> Self {
        self.hold_end = true;
        self
    }

    pub(crate) async fn send(&mut self, mut data: Bytes) -> io::Result<()> {
        self.send_from(&mut data).await
    }

    /// Sends `data`, taking each piece from it as it goes out: cancelled while waiting for
    /// window, what is left in `data` is exactly what was not sent.
    pub(crate) async fn send_from(&mut self, data: &mut Bytes) -> io::Result<()> {
        if self.remaining.is_some_and(|r| data.len() as u64 > r) {
            return Err(io::Error::other("a body is longer than announced"));
        }
        while !data.is_empty() {
            self.stream.reserve_capacity(data.len());
            let window = match poll_fn(|cx| self.stream.poll_capacity(cx)).await {
                Some(Ok(window)) => window,
                // The peer reset the stream (or the connection failed): nobody takes the rest.
                Some(Err(e)) => return Err(io::Error::new(io::ErrorKind::ConnectionReset, e)),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the stream closed",
                    ));
                }
            };
            if window == 0 {
                continue;
            }
            let piece = data.split_to(window.min(data.len()));
            *self.sent += piece.len() as u64;
            if let Some(remaining) = &mut self.remaining {
                *remaining -= piece.len() as u64;
            }
            let last = data.is_empty() && self.remaining == Some(0) && !self.hold_end;
            self.stream
                .send_data(piece, last)
                .map_err(io::Error::other)?;
            self.ended |= last;
        }
        Ok(())
    }

    /// Resolves when the peer resets the stream or the connection fails: an error of kind
    /// `ConnectionReset`, to stop the body's source.
    pub(crate) async fn reset(&mut self) -> io::Error {
        match poll_fn(|cx| self.stream.poll_reset(cx)).await {
            Ok(reason) => io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("reset by the peer: {reason}"),
            ),
            Err(e) => io::Error::new(io::ErrorKind::ConnectionReset, e),
        }
    }

    /// Ends the stream: with `trailers` when there are any (a HEADERS frame after the
    /// body), else as [`Out::finish`] does.
    pub(crate) fn finish_with(self, trailers: Option<http::HeaderMap>) -> io::Result<()> {
        let Some(trailers) = trailers else {
            return self.finish();
        };
        if let Some(n) = self.remaining.filter(|n| *n > 0) {
            return Err(io::Error::other(format!(
                "a body is {n} bytes shorter than announced"
            )));
        }
        self.stream
            .send_trailers(trailers)
            .map_err(io::Error::other)
    }

    pub(crate) fn finish(self) -> io::Result<()> {
        match self.remaining {
            Some(0) if self.ended => Ok(()),
            Some(0) | None => self
                .stream
                .send_data(Bytes::new(), true)
                .map_err(io::Error::other),
            Some(_) => Err(io::Error::other("a body is shorter than announced")),
        }
    }
}

/// The trailer fields that go on to the other side (see
/// [`portico_http::response::is_relayable_trailer`]); `None` when none is left.
pub(crate) fn relayable(mut trailers: http::HeaderMap) -> Option<http::HeaderMap> {
    let names: Vec<HeaderName> = trailers
        .keys()
        .filter(|n| !is_relayable_trailer(n.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in names {
        trailers.remove(name);
    }
    (!trailers.is_empty()).then_some(trailers)
}
