//! Responses for a representation Portico serves itself (a static file, a job's result, a
//! response from the cache): 200, 206 (single or `multipart/byteranges`), 304, 412 and 416,
//! decided by `portico_http::representation` and built here with the fields each needs.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, Stream, StreamExt};
use portico_http::conditional::{Conditions, EntityTag, HttpDate, Validators};
use portico_http::range::{ByteRange, Multipart, unsatisfied_range};
use portico_http::representation::{Answer, Representation, decide};
use portico_http::{ErrorCode, Method};
use portico_server::{Body, Error, Response, StreamBody};

use crate::static_files::open::{READ_PIECE, read_piece};

/// The metadata of the selected representation.
pub(crate) struct Meta {
    /// `Content-Type`, when it has one.
    pub(crate) content_type: Option<Bytes>,
    /// `ETag`, as sent (`"tag"` or `W/"tag"`), when it has one.
    pub(crate) etag: Option<String>,
    /// `Last-Modified`, when it has one.
    pub(crate) last_modified: Option<HttpDate>,
    /// Length in bytes.
    pub(crate) length: u64,
    /// `Cache-Control`, when configured.
    pub(crate) cache_control: Option<Bytes>,
    /// `Vary`, when the representation was negotiated.
    pub(crate) vary: Option<&'static str>,
    /// `Content-Encoding`, when not identity.
    pub(crate) content_encoding: Option<&'static str>,
    /// Other fields of the representation, sent with 200 and 206 (a job result's or a stored
    /// response's, as its upstream sent them); of these, 304 carries `Cache-Control`,
    /// `Content-Location`, `Expires` and `Vary` (RFC 9110 §15.4.5).
    pub(crate) fields: Vec<(Bytes, Bytes)>,
}

/// Where the bytes are.
pub(crate) enum Source {
    /// All of them, in memory.
    Memory(Bytes),
    /// In a file, read as they are sent.
    File(Arc<File>),
}

/// Decides and builds the response to `method` for this representation.
pub(crate) fn respond(
    method: Method,
    conditions: &Conditions<'_>,
    meta: &Meta,
    source: Source,
) -> Result<Response, Error> {
    let rep = Representation {
        validators: Validators {
            etag: meta
                .etag
                .as_deref()
                .and_then(|e| EntityTag::parse(e.as_bytes())),
            last_modified: meta.last_modified,
        },
        length: meta.length,
    };
    match decide(method, conditions, &rep) {
        // RFC 9110 §15.4.5: the fields a 200 would have of ETag, Cache-Control, Expires,
        // Vary, Content-Location and Date (the writer adds Date); Last-Modified is left out
        // because an ETag is present.
        Answer::NotModified => {
            let mut resp = Response::new(304);
            if let Some(etag) = &meta.etag {
                resp = resp.header("ETag", etag.clone());
            }
            if let Some(cc) = &meta.cache_control {
                resp = resp.header("Cache-Control", cc.clone());
            }
            if let Some(vary) = meta.vary {
                resp = resp.header("Vary", vary);
            }
            const LIKE_200: &[&str] = &["cache-control", "content-location", "expires", "vary"];
            resp.headers.extend(
                meta.fields
                    .iter()
                    .filter(|(n, _)| {
                        LIKE_200
                            .iter()
                            .any(|l| n.eq_ignore_ascii_case(l.as_bytes()))
                    })
                    .cloned(),
            );
            Ok(resp)
        }
        Answer::PreconditionFailed => Err(Error::new(ErrorCode::PreconditionFailed)),
        Answer::RangeNotSatisfiable => Err(Error::new(ErrorCode::RangeNotSatisfiable)
            .with_header("Content-Range", unsatisfied_range(meta.length))),
        Answer::Full => {
            let whole = ByteRange {
                first: 0,
                last: meta.length.saturating_sub(1),
            };
            let pieces = if meta.length == 0 {
                Vec::new()
            } else {
                vec![Piece::Data(whole)]
            };
            let resp = with_type(fields(Response::new(200), meta), meta);
            Ok(with_body(resp, source, pieces, meta.length))
        }
        Answer::Partial(r) => {
            let resp = with_type(fields(Response::new(206), meta), meta)
                .header("Content-Range", r.content_range(meta.length));
            Ok(with_body(resp, source, vec![Piece::Data(r)], r.len()))
        }
        Answer::Multipart(ranges) => {
            let boundary = boundary();
            let part_type = meta
                .content_type
                .as_deref()
                .and_then(|t| std::str::from_utf8(t).ok())
                .unwrap_or("application/octet-stream");
            let m = Multipart::new(&ranges, meta.length, part_type, &boundary);
            let len = m.content_length();
            let mut pieces = Vec::with_capacity(m.parts.len() * 2 + 1);
            for (head, range) in m.parts {
                pieces.push(Piece::Framing(Bytes::from(head)));
                pieces.push(Piece::Data(range));
            }
            pieces.push(Piece::Framing(Bytes::from(m.closing)));
            let resp = fields(Response::new(206), meta).header("Content-Type", m.content_type);
            Ok(with_body(resp, source, pieces, len))
        }
    }
}

/// `Content-Type`, when the representation has one.
fn with_type(resp: Response, meta: &Meta) -> Response {
    match &meta.content_type {
        Some(t) => resp.header("Content-Type", t.clone()),
        None => resp,
    }
}

/// The representation's fields shared by 200 and 206.
fn fields(mut resp: Response, meta: &Meta) -> Response {
    if let Some(etag) = &meta.etag {
        resp = resp.header("ETag", etag.clone());
    }
    if let Some(lm) = meta.last_modified {
        resp = resp.header("Last-Modified", lm.to_imf_fixdate());
    }
    resp = resp.header("Accept-Ranges", "bytes");
    if let Some(cc) = &meta.cache_control {
        resp = resp.header("Cache-Control", cc.clone());
    }
    if let Some(vary) = meta.vary {
        resp = resp.header("Vary", vary);
    }
    if let Some(ce) = meta.content_encoding {
        resp = resp.header("Content-Encoding", ce);
    }
    resp.headers.extend(meta.fields.iter().cloned());
    resp
}

/// A multipart boundary: 32 random alphanumerics (RFC 2046 §5.1.1 allows up to 70). A
/// representation that happens to contain it is as likely as guessing a 190-bit key.
fn boundary() -> String {
    (0..32).map(|_| fastrand::alphanumeric()).collect()
}

/// One piece of a body: framing Portico wrote, or a range of the representation.
enum Piece {
    Framing(Bytes),
    Data(ByteRange),
}

fn with_body(mut resp: Response, source: Source, pieces: Vec<Piece>, len: u64) -> Response {
    resp.body = match source {
        Source::Memory(data) => Body::Full(match pieces.as_slice() {
            [] => Bytes::new(),
            [Piece::Data(r)] => slice(&data, *r),
            _ => {
                let mut out = BytesMut::with_capacity(len as usize);
                for p in &pieces {
                    match p {
                        Piece::Framing(b) => out.extend_from_slice(b),
                        Piece::Data(r) => out.extend_from_slice(&slice(&data, *r)),
                    }
                }
                out.freeze()
            }
        }),
        Source::File(file) => Body::Stream(StreamBody::new(len, file_pieces(file, pieces))),
    };
    resp
}

fn slice(data: &Bytes, r: ByteRange) -> Bytes {
    data.slice(r.first as usize..=r.last as usize)
}

/// The pieces as a stream, file ranges read [`READ_PIECE`] at a time (from the page cache
/// directly when it holds them, else on the blocking pool).
fn file_pieces(file: Arc<File>, pieces: Vec<Piece>) -> impl Stream<Item = io::Result<Bytes>> {
    stream::iter(pieces).flat_map(move |p| match p {
        Piece::Framing(b) => stream::once(async move { Ok(b) }).left_stream(),
        Piece::Data(r) => file_range(file.clone(), r).right_stream(),
    })
}

fn file_range(file: Arc<File>, r: ByteRange) -> impl Stream<Item = io::Result<Bytes>> {
    stream::unfold(Some(r.first), move |at| {
        let file = file.clone();
        async move {
            let at = at?;
            if at > r.last {
                return None;
            }
            let n = (r.last - at + 1).min(READ_PIECE as u64) as usize;
            match read_piece(file, at, n).await {
                Ok(b) => Some((Ok(b), Some(at + n as u64))),
                // Stop after reporting the error: the writer closes the connection.
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}
