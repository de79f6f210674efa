//! The per-request cost of Portico's own HTTP/1.1 parsing: a typical API request head, and a
//! chunked body. Run with `cargo bench -p portico-http --bench parse`; results are recorded in
//! docs/performance.md.

#![allow(clippy::unwrap_used)] // benchmarks: a failed unwrap is a broken benchmark

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portico_http::chunked::{ChunkedDecoder, LAST_CHUNK, encode_chunk_head};
use portico_http::{HeadLimits, HeadScanner, RequestHead, RequestInfo, Scan};

const HEAD: &[u8] =
    b"GET /v1/0123456789abcdef0123456789abcdef/servers/detail?limit=50&marker=abc HTTP/1.1\r\n\
Host: compute.example.com\r\n\
User-Agent: python-novaclient/18.4.0 keystoneauth1/5.3.0 python-requests/2.31.0 CPython/3.11.7\r\n\
Accept: application/json\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
X-Auth-Token: gAAAAABlZ3x1cWJkZmVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU2Nzg5\r\n\
X-OpenStack-Nova-API-Version: 2.79\r\n\r\n";

fn head(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let mut group = c.benchmark_group("request head");
    group.throughput(Throughput::Bytes(HEAD.len() as u64));
    group.bench_function("scan + parse + analyze (8 fields, 405 B)", |b| {
        b.iter(|| {
            let mut scanner = HeadScanner::new();
            let Ok(Scan::Complete { start, end }) = scanner.scan(black_box(HEAD), &limits) else {
                unreachable!()
            };
            let head = RequestHead::parse(Bytes::from_static(&HEAD[start..end]), &limits).unwrap();
            black_box(RequestInfo::analyze(&head).unwrap())
        })
    });
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let data = vec![b'x'; 64 * 1024];
    let mut wire = Vec::new();
    for piece in data.chunks(4096) {
        encode_chunk_head(piece.len(), &mut wire);
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(LAST_CHUNK);
    let mut group = c.benchmark_group("chunked body");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("decode 64 KiB in 4 KiB chunks", |b| {
        b.iter(|| {
            let mut d = ChunkedDecoder::new();
            let mut at = 0;
            let mut total = 0;
            while !d.is_done() {
                let s = d.decode(black_box(&wire[at..])).unwrap();
                total += s.data;
                at += s.skip + s.data;
            }
            black_box(total)
        })
    });
    group.finish();
}

criterion_group!(benches, head, chunked);
criterion_main!(benches);
