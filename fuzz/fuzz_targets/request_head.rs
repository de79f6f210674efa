#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portico_http::{HeadLimits, HeadScanner, RequestHead, RequestInfo, Scan};

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let limits = HeadLimits { max_uri_bytes: 256, max_header_bytes: 1024, max_headers: 16 };
    let mut scanner = HeadScanner::new();
    let mut n = 0;
    loop {
        n = (n + step).min(input.len());
        match scanner.scan(&input[..n], &limits) {
            Ok(Scan::Complete { start, end }) => {
                assert!(start <= end && end <= n);
                if let Ok(head) = RequestHead::parse(Bytes::copy_from_slice(&input[start..end]), &limits) {
                    assert!(head.header_section_len() <= limits.max_header_bytes + 2);
                    let _ = RequestInfo::analyze(&head);
                }
                return;
            }
            Ok(Scan::Partial) if n == input.len() => return,
            Ok(Scan::Partial) => {}
            Err(_) => return,
        }
    }
});
