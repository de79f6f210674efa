//! Response heads from upstreams: finding where one ends, then parsing it (RFC 9112 §2-§5).
//!
//! The same two steps as for requests (`head.rs`): [`ResponseScanner`] runs as bytes arrive
//! and stops early on what is decidable before the head is complete (a status line that is not
//! one), so an upstream cannot make Portico wait on garbage; [`ResponseHead::parse`] then reads
//! the complete head once. Field lines are held to the request parser's rules (the same byte
//! tables), so one set of rules decides what Portico reads in either direction.
//!
//! Where RFC 9112 lets a recipient be lenient with a response, the decision is written here
//! and each has a test:
//!
//! - **A bare LF ends a line** (§2.2 allows it; nginx and HAProxy accept it). What Portico
//!   relays is re-written with CRLF: fields leave as name and value, never as the bytes
//!   received.
//! - **Empty lines before the status line are skipped** (as robust clients do after a body
//!   followed by a stray CRLF).
//! - **No reason phrase** (`HTTP/1.1 200` and nothing else) is a response with an empty one
//!   (§4: the reason phrase is optional in practice and ignored by clients).
//!
//! And where it would be unsafe, the head is refused (the client answers 502):
//!
//! - **obs-fold** (§5.2 lets a gateway either replace it or answer 502; replacing would relay
//!   a field the upstream never sent whole), whitespace between a field name and its colon
//!   (§5.1), a bare CR, a NUL or another control byte in a field;
//! - a version other than `HTTP/1.0` or `HTTP/1.1`, a status that is not three digits from
//!   100 to 599, more than one space around it;
//! - more fields than [`MAX_RESPONSE_FIELDS`].
//!
//! Framing (Content-Length against Transfer-Encoding) is `response::response_info`'s.

use bytes::Bytes;
use memchr::memchr;

use crate::head::{Span, is_field_value_byte, is_tchar, value_range};

/// Most header fields accepted in one response head.
pub const MAX_RESPONSE_FIELDS: usize = 128;

/// Why a response head cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidHead {
    /// The status line is not `HTTP/1.x NNN reason`.
    StatusLine,
    /// A status code outside 100-599.
    Status,
    /// A field line that is not `name: value` (a bad name, whitespace before the colon, a
    /// control byte in the value).
    FieldLine,
    /// A field line folded onto the one before (obs-fold).
    ObsFold,
    /// A CR not followed by LF.
    BareCr,
    /// More than [`MAX_RESPONSE_FIELDS`] fields.
    TooManyFields,
}

impl InvalidHead {
    /// What was wrong, for logs.
    pub fn describe(self) -> &'static str {
        match self {
            InvalidHead::StatusLine => "malformed status line",
            InvalidHead::Status => "status code out of range",
            InvalidHead::FieldLine => "malformed header field",
            InvalidHead::ObsFold => "folded header field (obs-fold)",
            InvalidHead::BareCr => "bare CR in the response head",
            InvalidHead::TooManyFields => "too many header fields",
        }
    }
}

impl std::fmt::Display for InvalidHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for InvalidHead {}

/// Finds the end of a response head incrementally, never rescanning bytes it has seen.
#[derive(Clone, Debug, Default)]
pub struct ResponseScanner {
    pos: usize,
    line_start: usize,
    start: usize,
    status_line_seen: bool,
}

/// Where a complete head lies in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadSpan {
    /// First byte of the status line (what comes before is empty lines).
    pub start: usize,
    /// One past the empty line that ends the head.
    pub end: usize,
}

impl ResponseScanner {
    /// A scanner for a head that starts at offset 0 of the buffer.
    pub fn new() -> ResponseScanner {
        ResponseScanner::default()
    }

    /// Scans what was added to `buf` since the last call: `Some` once the head is complete.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<HeadSpan>, InvalidHead> {
        while let Some(off) = memchr(b'\n', &buf[self.pos..]) {
            let lf = self.pos + off;
            self.pos = lf + 1;
            let line = trim_cr(&buf[self.line_start..lf]);
            if !self.status_line_seen {
                if line.is_empty() {
                    self.line_start = self.pos;
                    self.start = self.pos;
                    continue;
                }
                status_line(line)?;
                self.status_line_seen = true;
            } else if line.is_empty() {
                return Ok(Some(HeadSpan {
                    start: self.start,
                    end: self.pos,
                }));
            }
            self.line_start = self.pos;
        }
        self.pos = buf.len();
        if !self.status_line_seen {
            // Not yet a line: whatever has come must still be able to begin `HTTP/1.`.
            let partial = &buf[self.line_start..];
            let n = partial.len().min(7);
            if partial != b"\r" && partial[..n] != b"HTTP/1."[..n] {
                return Err(InvalidHead::StatusLine);
            }
        }
        Ok(None)
    }
}

/// A line without the CR of its CRLF.
fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `HTTP/1.x SP 3DIGIT [SP reason]`: whether HTTP/1.0, the status, the reason's range.
fn status_line(line: &[u8]) -> Result<(bool, u16, Range), InvalidHead> {
    let http10 = match line.get(..8) {
        Some(b"HTTP/1.0") => true,
        Some(b"HTTP/1.1") => false,
        _ => return Err(InvalidHead::StatusLine),
    };
    let code = match line.get(8..12) {
        Some([b' ', a, b, c]) if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(InvalidHead::StatusLine),
    };
    let reason = match line.get(12) {
        // `HTTP/1.1 200` with no reason at all.
        None => (12, 12),
        Some(b' ') => (13, line.len()),
        Some(_) => return Err(InvalidHead::StatusLine),
    };
    let reason_bytes = &line[reason.0..reason.1];
    if let Some(&b) = reason_bytes.iter().find(|&&b| !is_field_value_byte(b)) {
        return Err(if b == b'\r' {
            InvalidHead::BareCr
        } else {
            InvalidHead::StatusLine
        });
    }
    if !(100..=599).contains(&code) {
        return Err(InvalidHead::Status);
    }
    Ok((http10, code, reason))
}

#[derive(Clone, Copy, Debug)]
struct Field {
    name: Span,
    value: Span,
}

/// A parsed response head. The reason and the fields are slices of the received bytes.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    buf: Bytes,
    http10: bool,
    status: u16,
    reason: Span,
    fields: Vec<Field>,
}

impl ResponseHead {
    /// Parses a complete head: `buf` runs from the first byte of the status line through the
    /// empty line that ends the head (as [`ResponseScanner`] found it).
    pub fn parse(buf: Bytes) -> Result<ResponseHead, InvalidHead> {
        let lf = memchr(b'\n', &buf).ok_or(InvalidHead::StatusLine)?;
        let (http10, status, (rs, re)) = status_line(trim_cr(&buf[..lf]))?;
        let mut fields = Vec::with_capacity(16);
        let mut pos = lf + 1;
        loop {
            let off = memchr(b'\n', &buf[pos..]).ok_or(InvalidHead::FieldLine)?;
            let line = trim_cr(&buf[pos..pos + off]);
            if line.is_empty() {
                break;
            }
            let (name, value) = field_line(line)?;
            if fields.len() == MAX_RESPONSE_FIELDS {
                return Err(InvalidHead::TooManyFields);
            }
            fields.push(Field {
                name: Span::new(pos + name.0, pos + name.1),
                value: Span::new(pos + value.0, pos + value.1),
            });
            pos += off + 1;
        }
        Ok(ResponseHead {
            http10,
            status,
            reason: Span::new(rs, re),
            fields,
            buf,
        })
    }

    /// The status code (100-599).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the upstream spoke HTTP/1.0.
    pub fn is_http10(&self) -> bool {
        self.http10
    }

    /// The reason phrase as sent (empty when there was none).
    pub fn reason(&self) -> Bytes {
        self.slice(self.reason)
    }

    /// All header fields, in order received.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|f| (f.name.get(&self.buf), f.value.get(&self.buf)))
    }

    /// All header fields as shared slices of the received bytes (no copies).
    pub fn shared_fields(&self) -> impl Iterator<Item = (Bytes, Bytes)> + '_ {
        self.fields
            .iter()
            .map(|f| (self.slice(f.name), self.slice(f.value)))
    }

    /// Number of header fields.
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    fn slice(&self, span: Span) -> Bytes {
        let range = span.get(&self.buf);
        self.buf.slice_ref(range)
    }
}

/// A `start..end` range within a line.
type Range = (usize, usize);

/// `name ":" OWS value OWS`, as ranges within the line.
fn field_line(line: &[u8]) -> Result<(Range, Range), InvalidHead> {
    match line[0] {
        b' ' | b'\t' => return Err(InvalidHead::ObsFold),
        _ => {}
    }
    let name_end = line
        .iter()
        .position(|&b| !is_tchar(b))
        .ok_or(InvalidHead::FieldLine)?;
    if name_end == 0 || line[name_end] != b':' {
        return Err(match line[name_end] {
            b'\r' => InvalidHead::BareCr,
            _ => InvalidHead::FieldLine,
        });
    }
    let (start, end) = value_range(line, name_end + 1);
    if let Some(&b) = line[start..end].iter().find(|&&b| !is_field_value_byte(b)) {
        return Err(if b == b'\r' {
            InvalidHead::BareCr
        } else {
            InvalidHead::FieldLine
        });
    }
    Ok(((0, name_end), (start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `raw` in one piece and parses the head found.
    fn read(raw: &[u8]) -> Result<Option<ResponseHead>, InvalidHead> {
        let Some(span) = ResponseScanner::new().scan(raw)? else {
            return Ok(None);
        };
        let head = Bytes::copy_from_slice(&raw[span.start..span.end]);
        ResponseHead::parse(head).map(Some)
    }

    fn fields(h: &ResponseHead) -> Vec<(String, String)> {
        h.fields()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_plain_head_parses() {
        let h = read(b"HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nX-A:  b c  \r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status(), &h.reason()[..], h.is_http10()),
            (200, &b"Fine"[..], false)
        );
        assert_eq!(
            fields(&h),
            [
                ("Content-Type".into(), "text/plain".into()),
                ("X-A".into(), "b c".into())
            ]
        );
    }

    #[test]
    fn bare_lf_ends_lines_rfc9112_2_2() {
        let h = read(b"HTTP/1.0 204 No Content\nX-A: 1\n\n")
            .unwrap()
            .unwrap();
        assert!(h.is_http10());
        assert_eq!(fields(&h), [("X-A".into(), "1".into())]);
        // Mixed line ends, as some upstreams write them.
        let h = read(b"HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.field_count(), 2);
    }

    #[test]
    fn empty_lines_before_the_status_line_are_skipped() {
        let raw = b"\r\n\nHTTP/1.1 200 OK\r\n\r\n";
        let span = ResponseScanner::new().scan(raw).unwrap().unwrap();
        assert_eq!((span.start, span.end), (3, raw.len()));
    }

    #[test]
    fn the_reason_phrase_may_be_missing_or_empty() {
        assert_eq!(
            &read(b"HTTP/1.1 200\r\n\r\n").unwrap().unwrap().reason()[..],
            b""
        );
        assert_eq!(
            &read(b"HTTP/1.1 200 \r\n\r\n").unwrap().unwrap().reason()[..],
            b""
        );
        // A reason may begin with a space (RFC 9112 §4: 1*( HTAB / SP / VCHAR / obs-text )).
        assert_eq!(
            &read(b"HTTP/1.1 200  OK\r\n\r\n").unwrap().unwrap().reason()[..],
            b" OK"
        );
        // obs-text in a reason is kept as sent.
        let h = read(b"HTTP/1.1 200 \xc3\xa9t\xc3\xa9\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(&h.reason()[..], "été".as_bytes());
    }

    #[test]
    fn unsafe_heads_are_refused() {
        let cases: &[(&[u8], InvalidHead)] = &[
            (
                b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\r\n",
                InvalidHead::ObsFold,
            ),
            (b"HTTP/1.1 200 OK\r\n X-A: 1\r\n\r\n", InvalidHead::ObsFold),
            (
                b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
                InvalidHead::FieldLine,
            ),
            (b"HTTP/1.1 200 OK\r\nX-A\r\n\r\n", InvalidHead::FieldLine),
            (b"HTTP/1.1 200 OK\r\n: 1\r\n\r\n", InvalidHead::FieldLine),
            (
                b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n",
                InvalidHead::FieldLine,
            ),
            (b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", InvalidHead::BareCr),
            (b"HTTP/2.0 200 OK\r\n\r\n", InvalidHead::StatusLine),
            (b"HTTP/1.1  200 OK\r\n\r\n", InvalidHead::StatusLine),
            (b"HTTP/1.1 20 OK\r\n\r\n", InvalidHead::StatusLine),
            (b"HTTP/1.1 2000 OK\r\n\r\n", InvalidHead::StatusLine),
            (b"HTTP/1.1 099 X\r\n\r\n", InvalidHead::Status),
            (b"HTTP/1.1 600 X\r\n\r\n", InvalidHead::Status),
            (b"garbage\r\n\r\n", InvalidHead::StatusLine),
        ];
        for (raw, want) in cases {
            assert_eq!(
                read(raw).map(|_| ()),
                Err(*want),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let many: Vec<u8> = (0..=MAX_RESPONSE_FIELDS)
            .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
            .collect();
        let raw = [&b"HTTP/1.1 200 OK\r\n"[..], &many, b"\r\n"].concat();
        assert_eq!(read(&raw).map(|_| ()), Err(InvalidHead::TooManyFields));
    }

    #[test]
    fn garbage_is_refused_before_the_head_ends() {
        // An upstream that answers with something else is refused at once, not waited on.
        assert_eq!(
            ResponseScanner::new().scan(b"SSH-2.0"),
            Err(InvalidHead::StatusLine)
        );
        assert_eq!(ResponseScanner::new().scan(b"HTTP/1.1 2x"), Ok(None));
        assert_eq!(
            ResponseScanner::new().scan(b"HTTP/1.1 2x\r\n"),
            Err(InvalidHead::StatusLine)
        );
        assert_eq!(ResponseScanner::new().scan(b"HTT"), Ok(None));
        assert_eq!(ResponseScanner::new().scan(b"\r"), Ok(None));
    }

    #[test]
    fn scanning_in_pieces_finds_the_same_end() {
        let raw = b"\r\nHTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\r\nrest";
        let whole = ResponseScanner::new().scan(raw).unwrap();
        for cut in 1..raw.len() {
            let mut s = ResponseScanner::new();
            let first = s.scan(&raw[..cut]).unwrap();
            let found = first.or_else(|| s.scan(raw).unwrap());
            assert_eq!(found, whole, "cut at {cut}");
        }
    }
}
