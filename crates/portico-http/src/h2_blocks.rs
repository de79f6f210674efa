//! Header blocks of an HTTP/2 client, bounded by what it sends (RFC 9113 §4.1, §6.2, §6.10).
//!
//! The `h2` library bounds a header block by its *decoded* size, and answers a block over that
//! bound with a 431, a status Portico never sends (the contract's rule of closure). So Portico bounds
//! the block before `h2` decodes it, by what the client actually sent: the bytes of a HEADERS
//! frame and its CONTINUATION frames, and how many frames. A client past either is not sending
//! a request Portico would accept at any size, and its connection ends (the CONTINUATION
//! floods of 2024 sent endless blocks). With the encoded size bounded, `h2`'s decoded bound is
//! set where no block can reach it ([`decoded_bound`]), and a large-but-allowed head gets
//! Portico's own 400 instead. How long a block may stay open is the server's to time
//! ([`Watch::block_open`] says when one is).
//!
//! [`Watch`] reads frame headers as bytes pass, in pieces of any size: it never copies or
//! holds a payload, and what it decides does not depend on how the bytes were split.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Largest encoded header block any configuration allows. `h2` keeps at most 24,576 distinct
/// field names per block (a `HeaderMap` limit it reports as "over size", hence a 431); a new
/// name costs at least 4 encoded bytes, and at most 185 more can come from the static and a
/// 4,096-byte dynamic table, so 90 KiB stays below that.
pub const MAX_BLOCK_BYTES: usize = 90 * 1024;

/// Most frames one header block may span. Clients split a block only at the frame size
/// (16 KiB by default), so even the largest allowed block needs 6.
pub const MAX_BLOCK_FRAMES: u32 = 16;

/// The bounds a [`Watch`] holds header blocks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most encoded bytes in one header block.
    pub max_bytes: usize,
    /// Most frames in one header block.
    pub max_frames: u32,
}

impl BlockLimits {
    /// Bounds for heads that may hold `head_bytes` (request line and fields): twice that, so
    /// a head somewhat over the configured limit still arrives whole and is answered with a
    /// 400, capped at [`MAX_BLOCK_BYTES`].
    pub fn for_heads(head_bytes: usize) -> BlockLimits {
        BlockLimits {
            max_bytes: head_bytes.saturating_mul(2).min(MAX_BLOCK_BYTES),
            max_frames: MAX_BLOCK_FRAMES,
        }
    }
}

/// A decoded-size bound no header block within `limits` can reach: each field costs at least
/// one encoded byte and decodes to at most the dynamic table's size (4,096) plus the 32 bytes
/// RFC 9113 §6.5.2 counts per field. Decoding shares the table's bytes rather than copying
/// them, so this bounds accounting, not memory.
pub fn decoded_bound(limits: &BlockLimits) -> u32 {
    let bound = (limits.max_bytes as u64).saturating_mul(4096 + 32);
    u32::try_from(bound).unwrap_or(u32::MAX)
}

/// Why a client's header block is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRefused {
    /// More encoded bytes than [`BlockLimits::max_bytes`].
    TooLarge,
    /// More frames than [`BlockLimits::max_frames`].
    TooManyFrames,
}

impl BlockRefused {
    /// What was wrong, for logs.
    pub fn describe(self) -> &'static str {
        match self {
            BlockRefused::TooLarge => "a header block larger than any request Portico accepts",
            BlockRefused::TooManyFrames => "a header block split into too many frames",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    bytes: usize,
    frames: u32,
}

/// The frames of one client connection, followed from its first byte (the preface).
#[derive(Clone, Debug)]
pub struct Watch {
    preface_left: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    payload_left: usize,
    block: Option<Block>,
    limits: BlockLimits,
}

impl Watch {
    /// A watch at the start of a connection.
    pub fn new(limits: BlockLimits) -> Watch {
        Watch {
            preface_left: PREFACE.len(),
            header: [0; FRAME_HEADER],
            header_len: 0,
            payload_left: 0,
            block: None,
            limits,
        }
    }

    /// Whether a header block is open (a HEADERS frame without END_HEADERS, and no
    /// CONTINUATION with it yet).
    pub fn block_open(&self) -> bool {
        self.block.is_some()
    }

    /// Follows the frames in `bytes`, the next bytes from the client.
    pub fn observe(&mut self, mut bytes: &[u8]) -> Result<(), BlockRefused> {
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

    fn frame(&mut self, kind: u8, flags: u8, length: usize) -> Result<(), BlockRefused> {
        let ends = flags & END_HEADERS != 0;
        match kind {
            // A HEADERS frame inside an open block is a protocol error `h2` reports; here it
            // begins a block of its own.
            HEADERS => {
                self.check(length, 1)?;
                self.block = (!ends).then_some(Block {
                    bytes: length,
                    frames: 1,
                });
            }
            CONTINUATION => {
                if let Some(block) = &mut self.block {
                    block.bytes = block.bytes.saturating_add(length);
                    block.frames = block.frames.saturating_add(1);
                    let (bytes, frames) = (block.bytes, block.frames);
                    self.check(bytes, frames)?;
                    if ends {
                        self.block = None;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check(&self, bytes: usize, frames: u32) -> Result<(), BlockRefused> {
        if bytes > self.limits.max_bytes {
            return Err(BlockRefused::TooLarge);
        }
        if frames > self.limits.max_frames {
            return Err(BlockRefused::TooManyFrames);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend(std::iter::repeat_n(0u8, len));
        f
    }

    fn limits() -> BlockLimits {
        BlockLimits {
            max_bytes: 100,
            max_frames: 3,
        }
    }

    #[test]
    fn a_block_is_bounded_by_its_bytes_and_frames() {
        let mut w = Watch::new(limits());
        w.observe(PREFACE).unwrap();
        w.observe(&frame(HEADERS, END_HEADERS, 100)).unwrap();
        assert!(!w.block_open());
        w.observe(&frame(HEADERS, 0, 40)).unwrap();
        assert!(w.block_open());
        w.observe(&frame(CONTINUATION, 0, 40)).unwrap();
        assert_eq!(
            w.observe(&frame(CONTINUATION, 0, 40)),
            Err(BlockRefused::TooLarge)
        );

        let mut w = Watch::new(limits());
        w.observe(PREFACE).unwrap();
        w.observe(&frame(HEADERS, 0, 1)).unwrap();
        w.observe(&frame(CONTINUATION, 0, 1)).unwrap();
        w.observe(&frame(CONTINUATION, 0, 1)).unwrap();
        assert_eq!(
            w.observe(&frame(CONTINUATION, 0, 1)),
            Err(BlockRefused::TooManyFrames)
        );
    }

    #[test]
    fn end_headers_closes_the_block_and_data_is_not_counted() {
        let mut w = Watch::new(limits());
        w.observe(PREFACE).unwrap();
        w.observe(&frame(HEADERS, 0, 10)).unwrap();
        w.observe(&frame(CONTINUATION, END_HEADERS, 10)).unwrap();
        assert!(!w.block_open());
        // DATA (0x0) frames of any size are the flow-control window's business.
        w.observe(&frame(0x0, 0, 5000)).unwrap();
        assert_eq!(
            w.observe(&frame(HEADERS, END_HEADERS, 101)),
            Err(BlockRefused::TooLarge)
        );
    }

    #[test]
    fn the_answer_does_not_depend_on_how_bytes_are_split() {
        let mut all = PREFACE.to_vec();
        all.extend(frame(HEADERS, 0, 30));
        all.extend(frame(CONTINUATION, 0, 30));
        all.extend(frame(CONTINUATION, 0, 50));
        let mut whole = Watch::new(limits());
        let expected = whole.observe(&all);
        assert_eq!(expected, Err(BlockRefused::TooLarge));
        for size in 1..all.len() {
            let mut w = Watch::new(limits());
            let got = all.chunks(size).try_for_each(|c| w.observe(c));
            assert_eq!(got, expected, "pieces of {size}");
        }
    }
}
