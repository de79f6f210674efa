#![no_main]

//! The HTTP/2 header-block watch (what guards `h2` from blocks it would answer with a 431):
//! any bytes, after the preface, in pieces of any size. It never panics, decides the same
//! however the bytes are split, and once it lets a block through, that block is within its
//! limits.

use libfuzzer_sys::fuzz_target;
use portico_http::h2_blocks::{BlockLimits, PREFACE, Watch};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frames)) = data.split_first() else { return };
    let limits = BlockLimits {
        max_bytes: 64 + usize::from(flags) * 8,
        max_frames: 1 + u32::from(flags & 0x7),
    };
    let mut whole = Watch::new(limits);
    let expected = whole.observe(PREFACE).and_then(|()| whole.observe(frames));
    let piece = usize::from(flags >> 3).max(1);
    let mut split = Watch::new(limits);
    let got = split
        .observe(PREFACE)
        .and_then(|()| frames.chunks(piece).try_for_each(|c| split.observe(c)));
    assert_eq!(expected, got);
    if expected.is_ok() {
        assert_eq!(whole.block_open(), split.block_open());
    }
});
