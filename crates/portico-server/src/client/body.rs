//! An upstream response body, streamed; an HTTP/1.1 connection goes back to its pool at the
//! end.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use h2::{Reason, RecvStream};
use portico_http::ErrorCode;
use portico_http::chunked::ChunkedDecoder;
pub use portico_http::response::ResponseFraming;
use tokio::io::AsyncReadExt;

use super::h2::Upload;
use super::pool::{READ_BUFFER, TargetPool, UpConn};
use crate::error::Error;

enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    Done,
    /// DATA frames of an HTTP/2 stream (the `h2` crate checks them against any
    /// `Content-Length`), and the rest of the request body to send while they come, if any
    /// is left (an HTTP/2 client's stream to a target that answered before it ended).
    Frames(h2::RecvStream, Option<Box<Upload>>),
    /// Done, and the HTTP/2 stream ended with this trailer section.
    Trailers(Box<http::HeaderMap>),
}

enum Next {
    Data(Bytes),
    End,
    NeedMore,
}

/// The body of an upstream response.
pub struct UpstreamBody {
    conn: Option<UpConn>,
    state: State,
    framing: ResponseFraming,
    reusable: bool,
    pool: Arc<TargetPool>,
    /// Bytes already read by [`UpstreamBody::read_up_to`], handed out first.
    prefix: Option<Bytes>,
}

impl UpstreamBody {
    pub(crate) fn new(
        conn: UpConn,
        framing: ResponseFraming,
        reusable: bool,
        pool: Arc<TargetPool>,
    ) -> UpstreamBody {
        let state = match framing {
            ResponseFraming::None | ResponseFraming::Length(0) => State::Done,
            ResponseFraming::Length(n) => State::Length(n),
            ResponseFraming::Chunked => State::Chunked(ChunkedDecoder::new()),
            ResponseFraming::Close => State::Close,
        };
        let mut body = UpstreamBody {
            conn: Some(conn),
            state,
            framing,
            reusable,
            pool,
            prefix: None,
        };
        if matches!(body.state, State::Done) {
            body.release();
        }
        body
    }

    /// The body of an HTTP/2 response; `framing` is its length when the upstream gave one,
    /// [`ResponseFraming::Close`] (ends with the stream) when not. A stream still open after
    /// the head is read to its end even when no body is announced: a trailer section may
    /// follow (a gRPC status after an empty body).
    pub(crate) fn frames(
        recv: h2::RecvStream,
        framing: ResponseFraming,
        pool: Arc<TargetPool>,
    ) -> UpstreamBody {
        let state = match framing {
            ResponseFraming::None => State::Done,
            ResponseFraming::Length(0) if recv.is_end_stream() => State::Done,
            _ => State::Frames(recv, None),
        };
        UpstreamBody {
            conn: None,
            state,
            framing,
            reusable: false,
            pool,
            prefix: None,
        }
    }

    /// Hands the rest of the request body to this one, to send while it is relayed; dropped
    /// (the sending ends) when the response has ended already.
    pub(crate) fn set_upload(&mut self, upload: Box<Upload>) {
        if let State::Frames(_, slot) = &mut self.state {
            *slot = Some(upload);
        }
    }

    /// The rest of the request body to send while this body is relayed, if any is left.
    pub(crate) fn take_upload(&mut self) -> Option<Box<Upload>> {
        match &mut self.state {
            State::Frames(_, slot) => slot.take(),
            _ => None,
        }
    }

    /// Whether a trailer section may follow the body: the upstream spoke HTTP/2 and the
    /// stream is still open. A writer that would end the stream with the body's last byte
    /// waits for the end instead, so the trailers can follow.
    pub fn may_have_trailers(&self) -> bool {
        matches!(self.state, State::Frames(..))
    }

    /// The trailer section the upstream sent after the body, once [`UpstreamBody::chunk`]
    /// has returned `None`; taken, so it is relayed once.
    pub fn take_trailers(&mut self) -> Option<http::HeaderMap> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Trailers(t) => Some(*t),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// How the upstream framed the body.
    pub fn framing(&self) -> ResponseFraming {
        self.framing
    }

    /// Body bytes that have already arrived, without waiting.
    pub fn buffered(&mut self) -> Result<Option<Bytes>, Error> {
        if let Some(prefix) = self.prefix.take() {
            return Ok(Some(prefix));
        }
        match self.take_buffered()? {
            Next::Data(d) => Ok(Some(d)),
            Next::End | Next::NeedMore => Ok(None),
        }
    }

    /// The next piece of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if let Some(prefix) = self.prefix.take() {
            return Ok(Some(prefix));
        }
        if let State::Frames(recv, _) = &mut self.state {
            let next = next_data(recv).await;
            if matches!(next, Ok(None)) {
                self.state = match trailers(recv).await? {
                    Some(t) => State::Trailers(t),
                    None => State::Done,
                };
            }
            return next;
        }
        loop {
            match self.take_buffered()? {
                Next::Data(d) => return Ok(Some(d)),
                Next::End => return Ok(None),
                Next::NeedMore => self.fill().await?,
            }
        }
    }

    /// Reads the whole body if it is at most `limit` bytes. When it is longer, `None`: what
    /// was read is handed out first by the next reads, so the body can still be relayed
    /// whole (having held at most `limit` bytes and one piece more).
    pub async fn read_up_to(&mut self, limit: usize) -> Result<Option<Bytes>, Error> {
        let mut all = BytesMut::new();
        while let Some(piece) = self.chunk().await? {
            if all.is_empty() && piece.len() > limit {
                self.prefix = Some(piece);
                return Ok(None);
            }
            all.extend_from_slice(&piece);
            if all.len() > limit {
                self.prefix = Some(all.freeze());
                return Ok(None);
            }
        }
        Ok(Some(all.freeze()))
    }

    fn take_buffered(&mut self) -> Result<Next, Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(match self.state {
                // HTTP/2 data is taken when asked for, never "already there".
                State::Frames(..) => Next::NeedMore,
                _ => Next::End,
            });
        };
        let next = match &mut self.state {
            State::Done | State::Trailers(_) => Next::End,
            State::Frames(..) => Next::NeedMore,
            State::Length(remaining) => {
                if conn.buf.is_empty() {
                    return Ok(Next::NeedMore);
                }
                let take = (*remaining).min(conn.buf.len() as u64);
                *remaining -= take;
                let data = conn.buf.split_to(take as usize).freeze();
                if *remaining == 0 {
                    self.state = State::Done;
                }
                Next::Data(data)
            }
            State::Chunked(decoder) => {
                let step = decoder.decode(&conn.buf).map_err(|_| {
                    Error::new(ErrorCode::UpstreamInvalidResponse).with_cause("bad chunked framing")
                })?;
                conn.buf.advance(step.skip);
                if step.data > 0 {
                    Next::Data(conn.buf.split_to(step.data).freeze())
                } else if decoder.is_done() {
                    self.state = State::Done;
                    Next::End
                } else {
                    return Ok(Next::NeedMore);
                }
            }
            State::Close => {
                if conn.buf.is_empty() {
                    return Ok(Next::NeedMore);
                }
                Next::Data(conn.buf.split().freeze())
            }
        };
        if matches!(self.state, State::Done) {
            self.release();
        }
        Ok(next)
    }

    async fn fill(&mut self) -> Result<(), Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        conn.buf.reserve(READ_BUFFER);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if matches!(self.state, State::Close) => {
                self.state = State::Done;
                self.conn = None;
                Ok(())
            }
            Ok(0) => Err(Error::new(ErrorCode::UpstreamReset).with_cause("body ended early")),
            Err(e) => Err(Error::new(ErrorCode::UpstreamReset).with_cause(e)),
            Ok(_) => Ok(()),
        }
    }

    /// At the end of the body: the connection goes back to the pool if it can carry another
    /// request.
    fn release(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reusable
        {
            self.pool.checkin(conn);
        }
    }
}

/// The trailer section after the last DATA, if the upstream sent one (the `h2` crate has
/// checked it holds no pseudo-fields and no connection-specific fields).
async fn trailers(recv: &mut RecvStream) -> Result<Option<Box<http::HeaderMap>>, Error> {
    match recv.trailers().await {
        Ok(Some(map)) if !map.is_empty() => Ok(Some(Box::new(map))),
        Ok(_) => Ok(None),
        Err(e) => Err(stream_error(e)),
    }
}

/// What a failed response stream means: a malformed frame is an invalid response, anything
/// else a reset.
fn stream_error(e: h2::Error) -> Error {
    let code = match e.reason() {
        Some(Reason::PROTOCOL_ERROR) if !e.is_remote() => ErrorCode::UpstreamInvalidResponse,
        _ => ErrorCode::UpstreamReset,
    };
    Error::new(code).with_cause(e)
}

/// The next DATA of a response body, or `None` at its end. The flow-control window is given
/// back as each piece is handed on, so the upstream can send at most a window ahead of what
/// the client has taken.
async fn next_data(recv: &mut RecvStream) -> Result<Option<Bytes>, Error> {
    loop {
        match recv.data().await {
            None => return Ok(None),
            Some(Ok(data)) => {
                let _ = recv.flow_control().release_capacity(data.len());
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
            Some(Err(e)) => return Err(stream_error(e)),
        }
    }
}
