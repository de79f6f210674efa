//! Portico's end-to-end tests, each file under `tests/` a module of this one test binary.
//!
//! One binary rather than one per file: every test binary links the whole gateway, so forty
//! of them cost forty links and gigabytes of disk for the same code. nextest still runs each
//! test in a process of its own, so no test sees another's statics; a test is named
//! `file::function`, as docs/contract.md cites it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod served;

mod access;
mod api_lifecycle;
mod buffering;
mod cache;
mod cli;
mod clients;
mod cors;
mod dashboard;
mod deadlines;
mod docs;
mod echo;
mod egress;
mod grpc;
mod h2spec;
mod health;
mod http2;
mod idempotency;
mod jobs;
mod jwt;
mod lifecycle;
mod logs;
mod metrics;
mod negotiation;
mod openapi;
mod panic;
mod protocol;
mod proxy;
mod rate_limits;
mod redirect;
mod routing;
mod signature;
mod smuggling;
mod static_files;
mod timeouts;
mod tls;
mod tokens;
mod tracing;
mod upstream_h2;
mod websocket;
