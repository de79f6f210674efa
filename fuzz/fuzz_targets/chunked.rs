#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_http::chunked::ChunkedDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut d = ChunkedDecoder::new();
    let mut at = 0;
    let mut avail = step.min(input.len());
    while !d.is_done() {
        match d.decode(&input[at..avail]) {
            Ok(s) => {
                assert!(at + s.skip + s.data <= avail, "decoder ran past its input");
                at += s.skip + s.data;
                if at == avail {
                    if avail == input.len() {
                        return;
                    }
                    avail = (avail + step).min(input.len());
                }
            }
            Err(_) => return,
        }
    }
});
