//! Request bodies, read from the client connection as the handler asks for them.
//!
//! The body is never buffered whole: each [`RequestBody::chunk`] returns the bytes that have
//! arrived, so a proxied upload flows to the upstream as it comes. Nothing is read until a
//! handler asks, and the first ask is what sends `100 Continue`: a handler asks only after
//! every check decidable from the head has passed, so a refused request never has its body
//! read (docs/contract.md, row 100). The same holds on HTTP/2, where the body is the stream's DATA
//! frames and the client's flow-control window reopens only as the handler takes bytes.

use crate::io::ClientIo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h2::RecvStream;
use h2::server::SendResponse;
use portico_http::chunked::{ChunkError, ChunkedDecoder};
use portico_http::{BodyFraming, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::Error;
use crate::id::RequestId;

/// Bytes asked of the kernel per read of a body.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    /// An HTTP/2 stream's DATA frames, until the end of the stream.
    Frames,
    /// The whole body, read into memory by [`RequestBody::buffer`], not yet handed out.
    Buffered(Bytes),
    Done,
    Failed(ErrorCode),
}

/// Seconds a client is told to wait (`Retry-After`) when the body budget is spent: bodies
/// are buffered only while they are sent on, so room comes back within moments.
pub const BUDGET_RETRY_AFTER_SECS: u64 = 1;

/// The memory all requests together may hold in buffered bodies (`limits.body_buffer_bytes`).
/// A body is buffered only once it has reserved its size here; what cannot be reserved now is
/// refused with a temporary 413 and `Retry-After`, so a burst of uploads cannot grow memory
/// without bound.
#[derive(Debug)]
pub struct BodyBudget {
    limit: u64,
    used: AtomicU64,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Bytes reserved in a [`BodyBudget`], given back when this is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: u64,
}

impl Reservation {
    /// An empty reservation that can grow.
    pub fn empty(budget: &Arc<BodyBudget>) -> Reservation {
        Reservation {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Reserves `n` more bytes; false when the budget cannot give them now.
    pub fn grow(&mut self, n: u64) -> bool {
        let ok = self.budget.take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

fn budget_full() -> Error {
    Error::new(ErrorCode::BodyBufferFull)
        .with_header("Retry-After", BUDGET_RETRY_AFTER_SECS.to_string())
}

/// Where a body's bytes come from.
enum Source<'c> {
    /// Nowhere any more: the body was read whole before (see [`RequestBody::detached`]).
    Detached,
    /// An HTTP/1.1 connection: bytes read already, and the socket for more.
    Http1 {
        io: &'c mut ClientIo,
        buf: &'c mut BytesMut,
    },
    /// An HTTP/2 stream, and its response handle (for `100 Continue`; shared with the task
    /// that watches for the client resetting the stream, never contended).
    Http2 {
        recv: &'c mut RecvStream,
        respond: &'c Mutex<SendResponse<Bytes>>,
    },
}

/// The body of the request being handled.
pub struct RequestBody<'c> {
    source: Source<'c>,
    state: State,
    framing: BodyFraming,
    continue_for: Option<RequestId>,
    limit: u64,
    received: u64,
    timeout: Duration,
    touched: bool,
    /// The trailer section of an HTTP/2 request, once its body has ended (boxed: rare).
    trailers: Option<Box<http::HeaderMap>>,
}

impl<'c> RequestBody<'c> {
    pub(crate) fn new(
        io: &'c mut ClientIo,
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
            source: Source::Http1 { io, buf },
            state,
            framing,
            continue_for: expect_continue,
            limit,
            received: 0,
            timeout,
            touched: false,
            trailers: None,
        }
    }

    /// The body of an HTTP/2 request: `framing` is `Length` when the client declared one,
    /// `Chunked` when the stream carries a body of unannounced length.
    pub(crate) fn http2(
        recv: &'c mut RecvStream,
        respond: &'c Mutex<SendResponse<Bytes>>,
        framing: BodyFraming,
        expect_continue: Option<RequestId>,
        limit: u64,
        timeout: Duration,
    ) -> Self {
        let state = match framing {
            BodyFraming::None => State::Done,
            BodyFraming::Length(_) | BodyFraming::Chunked => State::Frames,
        };
        RequestBody {
            source: Source::Http2 { recv, respond },
            state,
            framing,
            continue_for: expect_continue,
            limit,
            received: 0,
            timeout,
            touched: false,
            trailers: None,
        }
    }

    /// A body read whole before, no longer tied to the connection it came on: what an
    /// asynchronous job sends upstream after its client has been answered.
    pub fn detached(data: Bytes) -> RequestBody<'static> {
        let (state, framing) = if data.is_empty() {
            (State::Done, BodyFraming::None)
        } else {
            let n = data.len() as u64;
            (State::Buffered(data), BodyFraming::Length(n))
        };
        RequestBody {
            source: Source::Detached,
            state,
            framing,
            continue_for: None,
            limit: u64::MAX,
            received: 0,
            timeout: Duration::MAX,
            touched: false,
            trailers: None,
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

    /// Whether the rest of the body can still be read while the response is being sent: an
    /// HTTP/2 stream's, not yet whole (the two directions of a stream are independent; an
    /// HTTP/1.1 connection reads the next request after the body).
    pub(crate) fn continues_after_response(&self) -> bool {
        matches!(self.source, Source::Http2 { .. }) && !self.is_complete()
    }

    /// Whether a trailer section may follow what is still to be read: an HTTP/2 stream's.
    pub(crate) fn may_have_trailers(&self) -> bool {
        matches!(
            (&self.source, &self.state),
            (Source::Http2 { .. }, State::Frames)
        )
    }

    /// The trailer section the client sent after the body, once [`RequestBody::chunk`] has
    /// returned `None`; taken, so it is sent on once.
    pub fn take_trailers(&mut self) -> Option<http::HeaderMap> {
        self.trailers.take().map(|t| *t)
    }

    /// Whether the whole body has been read from the client (always, when there is none).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done | State::Buffered(_))
    }

    /// Reads the whole body into memory, reserving its size in `budget` first: a declared
    /// length all at once (so a refusal comes before `100 Continue`, with nothing read), a
    /// chunked body as it arrives. When the budget cannot give the room now the answer is a
    /// temporary 413 (`PTC.BODY_BUFFER_FULL`, with `Retry-After`). Afterwards the body is
    /// handed out by [`RequestBody::chunk`] as one piece and [`RequestBody::framing`] gives its
    /// length, so it can be sent on with a `Content-Length` whatever its framing was. The
    /// returned reservation must be held as long as the bytes are.
    pub async fn buffer(&mut self, budget: &Arc<BodyBudget>) -> Result<Reservation, Error> {
        let mut reservation = Reservation::empty(budget);
        let mut data = match self.framing {
            BodyFraming::None => return Ok(reservation),
            BodyFraming::Length(n) => {
                if !reservation.grow(n) {
                    return Err(budget_full());
                }
                BytesMut::with_capacity(usize::try_from(n).unwrap_or(0))
            }
            BodyFraming::Chunked => BytesMut::new(),
        };
        while let Some(piece) = self.chunk().await? {
            let held = data.len() as u64 + piece.len() as u64;
            if held > reservation.bytes() && !reservation.grow(held - reservation.bytes()) {
                self.state = State::Failed(ErrorCode::BodyBufferFull);
                return Err(budget_full());
            }
            data.extend_from_slice(&piece);
        }
        let data = data.freeze();
        self.framing = if data.is_empty() {
            BodyFraming::None
        } else {
            BodyFraming::Length(data.len() as u64)
        };
        self.state = State::Buffered(data);
        Ok(reservation)
    }

    /// The body, once [`RequestBody::buffer`] has read it (and before it is handed out).
    pub fn buffered(&self) -> Option<&Bytes> {
        match &self.state {
            State::Buffered(data) => Some(data),
            _ => None,
        }
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
            self.send_continue(id).await?;
        }
        loop {
            match (&mut self.state, &mut self.source) {
                (State::Done, _) => return Ok(None),
                (State::Buffered(_), _) => {
                    let State::Buffered(data) = std::mem::replace(&mut self.state, State::Done)
                    else {
                        return Ok(None);
                    };
                    return Ok(Some(data));
                }
                (State::Failed(code), _) => return Err(*code),
                (State::Length(_), Source::Http1 { buf, .. }) if buf.is_empty() => {
                    self.fill().await?;
                }
                (State::Length(remaining), Source::Http1 { buf, .. }) => {
                    let take = (*remaining).min(buf.len() as u64);
                    *remaining -= take;
                    let data = buf.split_to(take as usize).freeze();
                    if *remaining == 0 {
                        self.state = State::Done;
                    }
                    self.received += take;
                    return Ok(Some(data));
                }
                (State::Chunked(decoder), Source::Http1 { buf, .. }) => {
                    let step = decoder.decode(buf).map_err(chunk_error)?;
                    let done = decoder.is_done();
                    buf.advance(step.skip);
                    if step.data > 0 {
                        self.received += step.data as u64;
                        if self.received > self.limit {
                            return Err(ErrorCode::BodyTooLargeStreamed);
                        }
                        return Ok(Some(buf.split_to(step.data).freeze()));
                    }
                    if done {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    self.fill().await?;
                }
                (State::Frames, Source::Http2 { recv, .. }) => {
                    let data = match tokio::time::timeout(self.timeout, recv.data()).await {
                        Err(_) => return Err(ErrorCode::BodyTimeout),
                        Ok(None) => {
                            self.state = State::Done;
                            // The stream ended with its data, or with a trailer section.
                            if let Ok(Some(map)) = recv.trailers().await
                                && !map.is_empty()
                            {
                                self.trailers = Some(Box::new(map));
                            }
                            return Ok(None);
                        }
                        Ok(Some(Err(_))) => return Err(ErrorCode::BodyIncomplete),
                        Ok(Some(Ok(data))) => data,
                    };
                    // The window reopens as the handler takes bytes, so a slow reader slows
                    // the client down rather than piling its bytes up here.
                    let _ = recv.flow_control().release_capacity(data.len());
                    if data.is_empty() {
                        continue;
                    }
                    self.received += data.len() as u64;
                    if self.received > self.limit {
                        return Err(ErrorCode::BodyTooLargeStreamed);
                    }
                    return Ok(Some(data));
                }
                // Framing a source cannot carry; never built (see the constructors).
                (State::Length(_) | State::Chunked(_), Source::Http2 { .. })
                | (State::Frames, Source::Http1 { .. })
                | (State::Length(_) | State::Chunked(_) | State::Frames, Source::Detached) => {
                    return Err(ErrorCode::BodyIncomplete);
                }
            }
        }
    }

    /// Tells a client that waits for it to send the body (`Expect: 100-continue`).
    async fn send_continue(&mut self, id: RequestId) -> Result<(), ErrorCode> {
        match &mut self.source {
            Source::Detached => Ok(()),
            Source::Http1 { io, .. } => {
                let interim = format!("HTTP/1.1 100 Continue\r\nX-Request-Id: {id}\r\n\r\n");
                io.write_all(interim.as_bytes())
                    .await
                    .map_err(|_| ErrorCode::BodyIncomplete)
            }
            Source::Http2 { respond, .. } => respond
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send_informational(interim_continue(id))
                .map_err(|_| ErrorCode::BodyIncomplete),
        }
    }

    /// Reads more bytes from an HTTP/1.1 client, waiting at most the body timeout.
    async fn fill(&mut self) -> Result<(), ErrorCode> {
        let Source::Http1 { io, buf } = &mut self.source else {
            return Err(ErrorCode::BodyIncomplete);
        };
        buf.reserve(READ_CHUNK);
        match tokio::time::timeout(self.timeout, io.read_buf(*buf)).await {
            Err(_) => Err(ErrorCode::BodyTimeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(ErrorCode::BodyIncomplete),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

/// The interim `100 Continue` for the request `id`.
fn interim_continue(id: RequestId) -> http::Response<()> {
    let mut interim = http::Response::new(());
    *interim.status_mut() = http::StatusCode::CONTINUE;
    if let Ok(v) = http::HeaderValue::from_str(id.as_str()) {
        interim.headers_mut().insert("x-request-id", v);
    }
    interim
}

fn chunk_error(e: ChunkError) -> ErrorCode {
    match e {
        ChunkError::Size => ErrorCode::ChunkSizeInvalid,
        ChunkError::Extension => ErrorCode::ChunkExtensionInvalid,
        ChunkError::Terminator => ErrorCode::ChunkTerminatorMissing,
        ChunkError::Trailer => ErrorCode::ChunkTrailerInvalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_take_from_the_budget_and_give_back_on_drop() {
        let budget = BodyBudget::new(100);
        let mut a = Reservation::empty(&budget);
        assert!(a.grow(60));
        let mut b = Reservation::empty(&budget);
        assert!(!b.grow(41), "over the limit");
        assert!(b.grow(40));
        assert_eq!(budget.used(), 100);
        assert!(!b.grow(1));
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.grow(60));
        drop(b);
        assert_eq!(budget.used(), 0);
        // A reservation larger than any budget never fits, and costs nothing.
        let mut c = Reservation::empty(&budget);
        assert!(!c.grow(u64::MAX));
        assert_eq!(budget.used(), 0);
    }
}
