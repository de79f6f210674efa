//! Writing a response: the status line, the headers, the framing the body needs, the body.

use crate::io::ClientIo;
use std::io::{self, IoSlice};

use bytes::Bytes;
use futures_util::StreamExt;
use portico_http::chunked::{LAST_CHUNK, encode_chunk_head};
use portico_http::response::is_relayable_trailer;
use portico_http::status::reason_phrase;
use tokio::io::AsyncWriteExt;

use crate::client::UpstreamBody;
use crate::date::with_http_date;
use crate::id::RequestId;
use crate::response::{Payload, Response, StreamBody};

/// Chunks up to this size are copied behind their framing and sent with it in one write.
const COALESCE: usize = 16 * 1024;
/// Bodies up to this size are copied behind the head; larger ones go out with it in one
/// vectored write, uncopied (a copy of a few KiB costs less than the vectored write's
/// bookkeeping, a copy of 16 KiB more).
const COPY_BELOW: usize = 4 * 1024;
/// Pieces of a streamed body are gathered into writes of up to this size.
const STREAM_BATCH: usize = 64 * 1024;

/// Facts about the request that shape its response.
pub(crate) struct WriteCtx {
    pub(crate) head_request: bool,
    pub(crate) http10: bool,
    pub(crate) keep_alive: bool,
    pub(crate) id: RequestId,
}

/// How a write ended.
pub(crate) struct Written {
    pub(crate) bytes: u64,
    /// The response went out whole and the connection may carry another request.
    pub(crate) keep_alive: bool,
    /// The response went out whole.
    pub(crate) complete: bool,
}

enum Mode {
    Nothing,
    Bytes(Bytes),
    Raw(UpstreamBody),
    Chunked(UpstreamBody),
    Stream(StreamBody),
}

pub(crate) async fn write_response(
    io: &mut ClientIo,
    out: &mut Vec<u8>,
    resp: Response,
    ctx: &WriteCtx,
) -> Written {
    let mut keep_alive = ctx.keep_alive && !resp.close;
    let (length, payload) = resp.body.plan(resp.status, ctx.head_request);
    let mode = match payload {
        Payload::Nothing => Mode::Nothing,
        Payload::Bytes(b) => Mode::Bytes(b),
        Payload::Stream(sb) => Mode::Stream(sb),
        Payload::Upstream(ub) if length.is_some() => Mode::Raw(ub),
        Payload::Upstream(ub) if ctx.http10 => {
            // An HTTP/1.0 client cannot read chunked: the body ends with the connection.
            keep_alive = false;
            Mode::Raw(ub)
        }
        Payload::Upstream(ub) => Mode::Chunked(ub),
    };

    out.clear();
    crate::spare::reserve_write(out);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(resp.status).as_slice());
    out.push(b' ');
    match &resp.reason {
        Some(r) => out.extend_from_slice(r),
        None => out.extend_from_slice(reason_phrase(resp.status).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let mut has_date = false;
    for (name, value) in &resp.headers {
        if name.eq_ignore_ascii_case(b"x-request-id") || name.eq_ignore_ascii_case(b"connection") {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case(b"date");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"X-Request-Id: ");
    out.extend_from_slice(ctx.id.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    if !has_date {
        with_http_date(|d| {
            out.extend_from_slice(b"Date: ");
            out.extend_from_slice(d.as_bytes());
            out.extend_from_slice(b"\r\n");
        });
    }
    if let Some(n) = length {
        // `itoa`, not `write!`: the formatting machinery cost some 300 instructions a response.
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if matches!(mode, Mode::Chunked(_)) {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if resp.status == 101 {
        // RFC 9110 §7.8: a 101 names the protocol it switches to in Upgrade (a header the
        // response carries) and says Connection: Upgrade.
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    } else if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if ctx.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");

    let mut bytes = 0u64;
    let result = send_body(io, out, mode, &mut bytes).await;
    if let Err(e) = &result {
        tracing::debug!(request_id = %ctx.id, error = %e, "response cut short");
    }
    Written {
        bytes,
        keep_alive: keep_alive && result.is_ok(),
        complete: result.is_ok(),
    }
}

async fn send_body(
    io: &mut ClientIo,
    out: &mut Vec<u8>,
    mode: Mode,
    bytes: &mut u64,
) -> io::Result<()> {
    match mode {
        Mode::Nothing => flush(io, out, bytes).await,
        Mode::Bytes(b) => flush_with(io, out, &b, bytes).await,
        Mode::Raw(mut ub) => {
            match ub.buffered().map_err(io::Error::other)? {
                Some(first) => flush_with(io, out, &first, bytes).await?,
                None => flush(io, out, bytes).await?,
            }
            while let Some(data) = ub.chunk().await.map_err(io::Error::other)? {
                io.write_all(&data).await?;
                *bytes += data.len() as u64;
            }
            Ok(())
        }
        Mode::Stream(sb) => send_stream(io, out, sb, bytes).await,
        Mode::Chunked(mut ub) => {
            if let Some(first) = ub.buffered().map_err(io::Error::other)? {
                push_chunk(out, &first);
            }
            loop {
                match ub.chunk().await.map_err(io::Error::other)? {
                    Some(data) if data.len() <= COALESCE => push_chunk(out, &data),
                    Some(data) => {
                        encode_chunk_head(data.len(), out);
                        flush(io, out, bytes).await?;
                        io.write_all(&data).await?;
                        *bytes += data.len() as u64;
                        out.extend_from_slice(b"\r\n");
                    }
                    None => {
                        end_chunked(out, ub.take_trailers());
                        return flush(io, out, bytes).await;
                    }
                }
                flush(io, out, bytes).await?;
            }
        }
    }
}

/// Sends exactly `sb.len()` bytes of a streamed body after the head in `out`; any other
/// count is an error (the caller closes the connection).
async fn send_stream(
    io: &mut ClientIo,
    out: &mut Vec<u8>,
    mut sb: StreamBody,
    bytes: &mut u64,
) -> io::Result<()> {
    let mut remaining = sb.len();
    while let Some(piece) = sb.pieces().next().await {
        let piece = piece?;
        if piece.len() as u64 > remaining {
            return Err(io::Error::other("a streamed body is longer than announced"));
        }
        remaining -= piece.len() as u64;
        if out.len() + piece.len() <= STREAM_BATCH {
            out.extend_from_slice(&piece);
        } else {
            flush(io, out, bytes).await?;
            io.write_all(&piece).await?;
            *bytes += piece.len() as u64;
        }
    }
    flush(io, out, bytes).await?;
    if remaining > 0 {
        return Err(io::Error::other(
            "a streamed body is shorter than announced",
        ));
    }
    Ok(())
}

/// The last chunk, with the upstream's trailer section when it sent one (an HTTP/2 upstream's
/// trailers, relayed in the chunked trailer section of RFC 9112 §7.1.2; fields a trailer
/// must not carry are left out).
fn end_chunked(out: &mut Vec<u8>, trailers: Option<http::HeaderMap>) {
    let Some(trailers) = trailers else {
        out.extend_from_slice(LAST_CHUNK);
        return;
    };
    out.extend_from_slice(b"0\r\n");
    for (name, value) in &trailers {
        if is_relayable_trailer(name.as_str().as_bytes()) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    encode_chunk_head(data.len(), out);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Sends what is in `out`, then `data`, in one write: `data` is copied behind `out` when it
/// is small, and written from where it is (a vectored write) when it is not.
async fn flush_with(
    io: &mut ClientIo,
    out: &mut Vec<u8>,
    data: &[u8],
    bytes: &mut u64,
) -> io::Result<()> {
    if data.len() <= COPY_BELOW {
        out.extend_from_slice(data);
        return flush(io, out, bytes).await;
    }
    let total = out.len() + data.len();
    {
        let mut bufs = [IoSlice::new(out), IoSlice::new(data)];
        let mut pending = &mut bufs[..];
        while !pending.is_empty() {
            let n = io.write_vectored(pending).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut pending, n);
        }
    }
    *bytes += total as u64;
    out.clear();
    Ok(())
}

async fn flush(io: &mut ClientIo, out: &mut Vec<u8>, bytes: &mut u64) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        *bytes += out.len() as u64;
        out.clear();
    }
    Ok(())
}

fn itoa3(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}
