//! Request bodies, read from the client connection as the handler asks for them.
//!
//! The body is never buffered whole: each [`RequestBody::chunk`] returns the bytes that have
//! arrived, so a proxied upload flows to the upstream as it comes. Nothing is read until a
//! handler asks, and the first ask is what sends `100 Continue`: a handler asks only after
//! every check decidable from the head has passed, so a refused request never has its body
//! read (CONTRACT.md, row 100).

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use portico_http::chunked::{ChunkError, ChunkedDecoder};
use portico_http::{BodyFraming, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::id::RequestId;

/// Bytes asked of the kernel per read of a body.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    Done,
    Failed(ErrorCode),
}

/// The body of the request being handled.
pub struct RequestBody<'c> {
    io: &'c mut TcpStream,
    buf: &'c mut BytesMut,
    state: State,
    framing: BodyFraming,
    continue_for: Option<RequestId>,
    limit: u64,
    received: u64,
    timeout: Duration,
    touched: bool,
}

impl<'c> RequestBody<'c> {
    pub(crate) fn new(
        io: &'c mut TcpStream,
        buf: &'c mut BytesMut,
        framing: BodyFraming,
        expect_continue: Option<RequestId>,
        limit: u64,
        timeout: Duration,
    ) -> Self {
        let state = match framing {
            BodyFraming::None => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::Chunked(ChunkedDecoder::new()),
        };
        RequestBody {
            io,
            buf,
            state,
            framing,
            continue_for: expect_continue,
            limit,
            received: 0,
            timeout,
            touched: false,
        }
    }

    /// How the client framed the body.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }

    /// Sets the largest body accepted (a route's `max_body_bytes`). A chunked body that grows
    /// past it fails with 413; a declared length is checked by the caller before reading.
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Whether the whole body has been read (always, when there is none).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether any of the body was asked for.
    pub fn was_read(&self) -> bool {
        self.touched
    }

    /// Body bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// The next piece of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.touched = true;
        match self.next().await {
            Ok(data) => Ok(data),
            Err(code) => {
                self.state = State::Failed(code);
                Err(Error::new(code))
            }
        }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, ErrorCode> {
        if let Some(id) = self.continue_for.take()
            && !matches!(self.state, State::Done)
        {
            let interim = format!("HTTP/1.1 100 Continue\r\nX-Request-Id: {id}\r\n\r\n");
            self.io
                .write_all(interim.as_bytes())
                .await
                .map_err(|_| ErrorCode::BodyIncomplete)?;
        }
        loop {
            match &mut self.state {
                State::Done => return Ok(None),
                State::Failed(code) => return Err(*code),
                State::Length(_) if self.buf.is_empty() => self.fill().await?,
                State::Length(remaining) => {
                    let take = (*remaining).min(self.buf.len() as u64);
                    *remaining -= take;
                    if *remaining == 0 {
                        self.state = State::Done;
                    }
                    self.received += take;
                    return Ok(Some(self.buf.split_to(take as usize).freeze()));
                }
                State::Chunked(decoder) => {
                    let step = decoder.decode(self.buf).map_err(chunk_error)?;
                    let done = decoder.is_done();
                    self.buf.advance(step.skip);
                    if step.data > 0 {
                        self.received += step.data as u64;
                        if self.received > self.limit {
                            return Err(ErrorCode::BodyTooLargeStreamed);
                        }
                        return Ok(Some(self.buf.split_to(step.data).freeze()));
                    }
                    if done {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    self.fill().await?;
                }
            }
        }
    }

    /// Reads more bytes from the client, waiting at most the body timeout.
    async fn fill(&mut self) -> Result<(), ErrorCode> {
        self.buf.reserve(READ_CHUNK);
        match tokio::time::timeout(self.timeout, self.io.read_buf(self.buf)).await {
            Err(_) => Err(ErrorCode::BodyTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(ErrorCode::BodyIncomplete),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

fn chunk_error(e: ChunkError) -> ErrorCode {
    match e {
        ChunkError::Size => ErrorCode::ChunkSizeInvalid,
        ChunkError::Extension => ErrorCode::ChunkExtensionInvalid,
        ChunkError::Terminator => ErrorCode::ChunkTerminatorMissing,
        ChunkError::Trailer => ErrorCode::ChunkTrailerInvalid,
    }
}
