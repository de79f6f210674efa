//! The per-request cost of the RFC 9110 decisions on typical headers: a conditional GET, a
//! Range, a browser's Accept, an Accept-Encoding. Run with
//! `cargo bench -p portico-http --bench semantics`; results are in docs/performance.md.

#![allow(clippy::unwrap_used)] // benchmarks: a failed unwrap is a broken benchmark

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portico_http::Method;
use portico_http::coding::{self, ContentCoding};
use portico_http::conditional::{Conditions, EntityTag, HttpDate, Validators};
use portico_http::negotiate::{self, MediaType};
use portico_http::range::{parse_range, resolve};
use portico_http::representation::{Representation, decide};

/// A browser revalidating a cached file: eight fields, two of them conditional.
const FIELDS: &[(&[u8], &[u8])] = &[
    (b"Host", b"static.example.com"),
    (
        b"User-Agent",
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (b"Accept", b"text/css,*/*;q=0.1"),
    (b"Accept-Language", b"en-US,en;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
    (b"Connection", b"keep-alive"),
    (b"If-Modified-Since", b"Tue, 01 Jun 2021 00:00:00 GMT"),
    (b"If-None-Match", b"\"60b57680.0-4000-52017d\""),
];

const BROWSER_ACCEPT: &[u8] =
    b"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn semantics(c: &mut Criterion) {
    let rep = Representation {
        validators: Validators {
            etag: EntityTag::parse(b"\"60b57680.0-4000-52017d\""),
            last_modified: Some(HttpDate(1_622_505_600)),
        },
        length: 16384,
    };
    let mut group = c.benchmark_group("semantics");
    group.bench_function("conditional GET: gather 8 fields + evaluate (304)", |b| {
        b.iter(|| {
            let conditions = Conditions::from_fields(black_box(FIELDS).iter().copied());
            black_box(decide(Method::Get, &conditions, &rep))
        })
    });
    group.bench_function("Range: bytes=0-1023 parse + resolve", |b| {
        b.iter(|| {
            let specs = parse_range(black_box(b"bytes=0-1023")).unwrap();
            black_box(resolve(&specs, 16384))
        })
    });
    group.bench_function("Range: three ranges parse + resolve", |b| {
        b.iter(|| {
            let specs = parse_range(black_box(b"bytes=0-99, 8000-8999, -500")).unwrap();
            black_box(resolve(&specs, 16384))
        })
    });
    let produces = [
        MediaType::parse("application/json").unwrap(),
        MediaType::parse("text/csv; charset=utf-8").unwrap(),
    ];
    group.bench_function("Accept: a browser's value against 2 produced types", |b| {
        b.iter(|| {
            black_box(negotiate::choose(
                Some(black_box(BROWSER_ACCEPT)),
                &produces,
            ))
        })
    });
    group.bench_function("Accept: application/json against 2 produced types", |b| {
        b.iter(|| {
            black_box(negotiate::choose(
                Some(black_box(&b"application/json"[..])),
                &produces,
            ))
        })
    });
    let offers: Vec<ContentCoding> = ["br", "zstd", "gzip", "identity"]
        .iter()
        .map(|c| ContentCoding::parse(c).unwrap())
        .collect();
    group.bench_function(
        "Accept-Encoding: gzip, deflate, br, zstd against 4 codings",
        |b| {
            b.iter(|| {
                black_box(coding::rank(
                    Some(black_box(&b"gzip, deflate, br, zstd"[..])),
                    &offers,
                ))
            })
        },
    );
    group.bench_function(
        "Content-Type: application/json; charset=utf-8 against consumes",
        |b| {
            b.iter(|| {
                black_box(negotiate::consumes(
                    &[black_box(&b"application/json; charset=utf-8"[..])],
                    &produces,
                ))
            })
        },
    );
    group.finish();
}

criterion_group!(benches, semantics);
criterion_main!(benches);
