//! RFC 9111 decisions from arbitrary field values: `Cache-Control` of a response and of a
//! request, `Surrogate-Control`, `Age`, `Expires`, `Date`, `Vary`, and a target to normalise.
//! No panic; a freshness lifetime never exceeds 2^31 seconds, a
//! directive that conflicts makes it 0, a normalised target normalises to itself, and a
//! stored response is never served fresh past its lifetime without a request's `max-stale`.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use portico_http::caching::{
    DELTA_MAX, RequestDirectives, ResponseDirectives, Staleness, Timing, Use, push_normalised,
    stale_if_error, usable, vary_fields,
};

fuzz_target!(|data: &[u8]| {
    // Seven values, separated by NUL.
    let mut parts = data.split(|&b| b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (resp_cc, req_cc, surrogate, age, expires, date, rest) =
        (next(), next(), next(), next(), next(), next(), next());
    let response = ResponseDirectives::parse(resp_cc.split(|&b| b == b'\n'));
    assert_eq!(response, ResponseDirectives::parse(resp_cc.split(|&b| b == b'\n')));
    let targeted = ResponseDirectives::targeted([], [surrogate]);
    let request = RequestDirectives::parse([req_cc], []);
    let now = u64::from(rest.first().copied().unwrap_or(0)) * 1000;
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let timing = Timing::from_fields(
        t0,
        t0 + Duration::from_secs(now % 7),
        Some(date),
        &age.split(|&b| b == b'\n').collect::<Vec<_>>(),
        Some(expires),
        Some(date),
    );
    for d in [Some(response), targeted].into_iter().flatten() {
        for heuristic in [false, true] {
            let lifetime = timing.freshness_lifetime(&d, 200, heuristic);
            assert!(lifetime <= DELTA_MAX);
            if d.conflicting || timing.age_invalid {
                assert_eq!(lifetime, 0);
            }
            let s = Staleness {
                age: timing.current_age(1_000_000 + now),
                lifetime,
            };
            let used = usable(&request, &d, s);
            if used == Use::Serve && request.max_stale.is_none() {
                assert!(s.is_fresh());
            }
            let _ = stale_if_error(&request, &d, s);
        }
    }
    let _ = vary_fields(&[rest]);
    let mut once = String::new();
    push_normalised(&mut once, rest);
    let mut twice = String::new();
    push_normalised(&mut twice, once.as_bytes());
    assert_eq!(once, twice);
});
