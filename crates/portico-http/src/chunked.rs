//! The chunked transfer coding (RFC 9112 §7.1), decoded as a pure state machine.
//!
//! The decoder never copies: each call skips framing bytes and points at the next run of data
//! in the caller's buffer, so bodies stream through Portico without being reassembled.
//! Extensions and trailers are validated, bounded and dropped (Portico re-frames every body it
//! forwards, so nothing of the client's framing reaches an upstream).
//!
//! The same decoder reads request bodies and upstream responses; the caller maps its
//! [`ChunkError`] to the right error code for the side that sent it.

use crate::syntax::hex_digit;

/// What went wrong in a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// The chunk size is not hex, is empty, or has more than 16 digits.
    Size,
    /// A chunk extension has a forbidden byte or is longer than [`MAX_EXTENSION_BYTES`].
    Extension,
    /// Chunk data is not followed by CRLF.
    Terminator,
    /// The trailer section is malformed or longer than [`MAX_TRAILER_BYTES`].
    Trailer,
}

/// Longest chunk extension accepted on one chunk line.
pub const MAX_EXTENSION_BYTES: usize = 4096;
/// Largest trailer section accepted.
pub const MAX_TRAILER_BYTES: usize = 16384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// Whitespace after the size: only valid before a `;`.
    SizeWs,
    /// Inside chunk extensions.
    Ext,
    /// Saw CR at the end of the size line.
    SizeLf,
    /// Reading chunk data.
    Data,
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine { colon: bool },
    /// Saw CR at the end of a trailer line.
    TrailerLf { empty: bool },
    /// The body is complete.
    Done,
}

/// Decodes one chunked body.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    ext_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            ext_len: 0,
            trailer_len: 0,
        }
    }
}

/// The result of one [`ChunkedDecoder::decode`] call: skip `skip` framing bytes, then `data`
/// bytes of body follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Framing bytes to discard first.
    pub skip: usize,
    /// Body bytes right after them.
    pub data: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Processes `input` until it yields data, runs out, or the body ends. When the result has
    /// `data == 0` and `skip == input.len()`, more input is needed (or the body is done).
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let n = avail.min(self.size) as usize;
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Step { skip: i, data: n });
                }
                State::Done => return Ok(Step { skip: i, data: 0 }),
                _ => {}
            }
            if self.framing_byte(input[i])? {
                return Ok(Step {
                    skip: i + 1,
                    data: 0,
                });
            }
            if matches!(
                self.state,
                State::TrailerStart | State::TrailerLine { .. } | State::TrailerLf { .. }
            ) {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILER_BYTES {
                    return Err(ChunkError::Trailer);
                }
            }
            i += 1;
        }
        Ok(Step { skip: i, data: 0 })
    }

    /// One byte of framing: a chunk's size line, the CRLF after its data, or the trailer
    /// section. True when it was the last byte of the body.
    fn framing_byte(&mut self, b: u8) -> Result<bool, ChunkError> {
        match self.state {
            State::Size { .. } | State::SizeWs | State::Ext | State::SizeLf => {
                self.size_line_byte(b)?;
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(ChunkError::Terminator);
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(ChunkError::Terminator);
                }
                self.state = State::Size { digits: 0 };
            }
            State::TrailerStart | State::TrailerLine { .. } | State::TrailerLf { .. } => {
                return self.trailer_byte(b);
            }
            // `decode` handles these before asking for a framing byte.
            State::Data | State::Done => {}
        }
        Ok(false)
    }

    /// `chunk-size [ chunk-ext ] CRLF` (RFC 9112 §7.1), with whitespace before `;` tolerated.
    fn size_line_byte(&mut self, b: u8) -> Result<(), ChunkError> {
        match self.state {
            State::Size { digits } => match hex_digit(b) {
                Some(v) => {
                    if digits == 16 {
                        return Err(ChunkError::Size);
                    }
                    self.size = (self.size << 4) | u64::from(v);
                    self.state = State::Size { digits: digits + 1 };
                }
                None if digits == 0 => return Err(ChunkError::Size),
                None => match b {
                    b'\r' => self.state = State::SizeLf,
                    b';' => {
                        self.ext_len = 0;
                        self.state = State::Ext;
                    }
                    b' ' | b'\t' => self.state = State::SizeWs,
                    _ => return Err(ChunkError::Size),
                },
            },
            State::SizeWs => match b {
                b' ' | b'\t' => {}
                b';' => {
                    self.ext_len = 0;
                    self.state = State::Ext;
                }
                _ => return Err(ChunkError::Size),
            },
            State::Ext => {
                if b == b'\r' {
                    self.state = State::SizeLf;
                } else if b == b'\t' || (b >= 0x20 && b != 0x7f) {
                    self.ext_len += 1;
                    if self.ext_len > MAX_EXTENSION_BYTES {
                        return Err(ChunkError::Extension);
                    }
                } else {
                    return Err(ChunkError::Extension);
                }
            }
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::Size);
                }
                self.state = if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                };
            }
            _ => {}
        }
        Ok(())
    }

    /// The trailer section and the empty line that ends the body; true at its last byte.
    fn trailer_byte(&mut self, b: u8) -> Result<bool, ChunkError> {
        match self.state {
            State::TrailerStart => {
                self.state = if b == b'\r' {
                    State::TrailerLf { empty: true }
                } else if crate::head::is_tchar(b) {
                    State::TrailerLine { colon: false }
                } else {
                    return Err(ChunkError::Trailer);
                };
            }
            State::TrailerLine { colon } => match b {
                b'\r' if colon => self.state = State::TrailerLf { empty: false },
                b':' => self.state = State::TrailerLine { colon: true },
                b'\t' => {}
                _ if b >= 0x20 && b != 0x7f => {}
                _ => return Err(ChunkError::Trailer),
            },
            State::TrailerLf { empty } => {
                if b != b'\n' {
                    return Err(ChunkError::Trailer);
                }
                if empty {
                    self.state = State::Done;
                    return Ok(true);
                }
                self.state = State::TrailerStart;
            }
            _ => {}
        }
        Ok(false)
    }
}

/// Appends one chunk of `len` bytes' framing head (`{len:x}\r\n`) to `out`.
pub fn encode_chunk_head(len: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

/// The last chunk with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a whole body fed `step` bytes at a time; returns the data and the leftover.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut avail = step.min(input.len());
        loop {
            let s = d.decode(&input[pos..avail])?;
            out.extend_from_slice(&input[pos + s.skip..pos + s.skip + s.data]);
            pos += s.skip + s.data;
            if d.is_done() {
                return Ok((out, input.len() - pos));
            }
            if pos == avail {
                if avail == input.len() {
                    panic!("body incomplete");
                }
                avail = (avail + step).min(input.len());
            }
        }
    }

    #[test]
    fn decodes_chunks_in_any_split() {
        let body = b"5\r\nhello\r\n7;name=val\r\n, world\r\n0\r\nX-T: v\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (data, left) = decode_all(body, step).unwrap();
            assert_eq!(data, b"hello, world", "step {step}");
            assert_eq!(left, 4, "the next request is left untouched");
        }
    }

    #[test]
    fn size_rules() {
        // RFC 9112 §7.1: chunk-size = 1*HEXDIG; anything else is a framing error.
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"5 \r\n",
            b"0x5\r\n",
            b"5\n",
            b"5\rx",
        ] {
            assert_eq!(
                ChunkedDecoder::new().decode(bad),
                Err(ChunkError::Size),
                "{bad:?}"
            );
        }
        // 17 hex digits could overflow 64 bits.
        assert_eq!(
            ChunkedDecoder::new().decode(b"10000000000000000\r\n"),
            Err(ChunkError::Size)
        );
        assert!(
            ChunkedDecoder::new()
                .decode(b"ffffffffffffffff\r\n")
                .is_ok()
        );
        // BWS before `;` is allowed.
        assert!(decode_all(b"1 ;a\r\nx\r\n0\r\n\r\n", 100).is_ok());
    }

    #[test]
    fn data_must_end_with_crlf() {
        assert_eq!(
            decode_all(b"3\r\nabcd\r\n0\r\n\r\n", 100),
            Err(ChunkError::Terminator)
        );
        assert_eq!(
            decode_all(b"3\r\nabc\n0\r\n\r\n", 100),
            Err(ChunkError::Terminator)
        );
    }

    #[test]
    fn extensions_and_trailers_are_bounded() {
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'a', MAX_EXTENSION_BYTES + 1));
        assert_eq!(
            ChunkedDecoder::new().decode(&long_ext),
            Err(ChunkError::Extension)
        );
        assert_eq!(
            ChunkedDecoder::new().decode(b"1;a\0b\r\n"),
            Err(ChunkError::Extension)
        );
        let mut long_trailer = b"0\r\nX: ".to_vec();
        long_trailer.extend(std::iter::repeat_n(b'a', MAX_TRAILER_BYTES + 1));
        assert_eq!(
            ChunkedDecoder::new().decode(&long_trailer),
            Err(ChunkError::Trailer)
        );
        assert_eq!(
            decode_all(b"0\r\nno colon\r\n\r\n", 100),
            Err(ChunkError::Trailer)
        );
        assert_eq!(
            decode_all(b"0\r\n: v\r\n\r\n", 100),
            Err(ChunkError::Trailer)
        );
    }

    #[test]
    fn encodes_chunk_heads() {
        let mut v = Vec::new();
        encode_chunk_head(255, &mut v);
        assert_eq!(v, b"ff\r\n");
    }
}
