//! What checking a signed request costs, apart from the rest of the request's handling: the
//! `Authorization` value parsed, the date checked, the canonical request and string to sign
//! built, and the HMAC computed and compared, for a typical GET the bench rig sends
//! (`bench/auth.sh`'s signed route). Run with `cargo bench -p portico-policy --bench
//! signature`; results are recorded in docs/performance.md.

#![allow(clippy::unwrap_used)] // benchmarks: a failed unwrap is a broken benchmark

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_policy::signature::{
    Authorization, EMPTY_PAYLOAD_HASH, SignedRequest, SigningKey, check_date, sign_request,
    verify_with,
};

const SECRET: &[u8] = b"bench-secret-key-0123456789abcdef";
const PATH: &[u8] = b"/v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/signed";

fn signed(c: &mut Criterion) {
    let now = SystemTime::now();
    let headers = |name: &str| -> Vec<&[u8]> {
        match name {
            "host" => vec![b"127.0.0.1:28290"],
            _ => vec![],
        }
    };
    let unsigned = SignedRequest {
        method: "GET",
        path: PATH,
        query: None,
        headers: &headers,
        signed_headers: "host;x-sdk-date",
        payload_hash: EMPTY_PAYLOAD_HASH,
    };
    // The signer's date header is part of what it signs.
    let (date, _) = sign_request("AKBENCH01", SECRET, &unsigned, now);
    let with_date = |name: &str| -> Vec<&[u8]> {
        match name {
            "host" => vec![b"127.0.0.1:28290"],
            "x-sdk-date" => vec![date.as_bytes()],
            _ => vec![],
        }
    };
    let request = SignedRequest {
        headers: &with_date,
        ..unsigned
    };
    let (_, authorization) = sign_request("AKBENCH01", SECRET, &request, now);
    let key = SigningKey::new(SECRET);
    let auth = Authorization::parse(authorization.as_bytes()).unwrap();
    verify_with(&auth, &request, &date, &key, now).unwrap();

    let mut group = c.benchmark_group("signed request");
    group.bench_function("parse Authorization", |b| {
        b.iter(|| black_box(Authorization::parse(black_box(authorization.as_bytes())).unwrap()))
    });
    group.bench_function("check the date", |b| {
        b.iter(|| check_date(black_box(&date), now).unwrap())
    });
    group.bench_function(
        "verify (canonical request, string to sign, HMAC, compare)",
        |b| b.iter(|| verify_with(&auth, black_box(&request), &date, &key, now).unwrap()),
    );
    group.bench_function("the whole check: parse + verify", |b| {
        b.iter(|| {
            let auth = Authorization::parse(black_box(authorization.as_bytes())).unwrap();
            verify_with(&auth, black_box(&request), &date, &key, now).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, signed);
criterion_main!(benches);
