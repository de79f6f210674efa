#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_http::response::{ResponseFraming, response_info};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    // Fields: lines of `name:value`.
    let fields: Vec<(&[u8], &[u8])> = rest
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((&line[..colon], &line[colon + 1..]))
        })
        .collect();
    let status = 100 + u16::from(flags) * 2;
    if let Ok(info) = response_info(status, flags & 1 == 1, flags & 2 == 2, fields.into_iter()) {
        if info.framing == ResponseFraming::Close {
            assert!(!info.reusable, "a close-delimited body cannot leave the connection reusable");
        }
    }
});
