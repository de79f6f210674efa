#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_http::range::{MAX_PARTS, MAX_RANGE_SPECS, RangeOutcome, parse_range, resolve};

// The first 8 bytes are the representation's length, the rest the Range field value. Checks
// the invariants that keep a range request from costing more than the whole representation.
fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, value) = data.split_at(8);
    let len = u64::from_le_bytes(len.try_into().unwrap_or_default()) % (1 << 40);
    let Some(specs) = parse_range(value) else { return };
    assert!(!specs.is_empty() && specs.len() <= MAX_RANGE_SPECS);
    match resolve(&specs, len) {
        RangeOutcome::Full | RangeOutcome::NotSatisfiable => {}
        RangeOutcome::Single(r) => assert!(r.first <= r.last && r.last < len),
        RangeOutcome::Multi(parts) => {
            assert!(parts.len() >= 2 && parts.len() <= MAX_PARTS);
            let mut sorted = parts.clone();
            sorted.sort();
            for w in sorted.windows(2) {
                assert!(w[0].last < w[1].first, "overlapping parts");
            }
            let total: u64 = parts.iter().map(|r| r.len()).sum();
            assert!(total <= len, "more bytes than the representation");
        }
    }
});
