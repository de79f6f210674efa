//! `limits`: what one request, one connection and all of them together may take.

use std::time::Duration;

use portico_http::HeadLimits;
use portico_policy::failures::FailureRate;

use crate::read::{Reader, join};
use crate::yaml::Node;

/// Server-wide limits on requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request-head limits (target, header section, header count).
    pub head: HeadLimits,
    /// The whole request head must arrive within this, from its first byte (408 otherwise).
    pub header_timeout: Duration,
    /// Longest a request body may make no progress (408 otherwise).
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection is kept before it is closed silently.
    pub idle_timeout: Duration,
    /// Default largest request body; routes may override it.
    pub max_body_bytes: u64,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Memory all requests together may hold in buffered bodies.
    pub body_buffer_bytes: u64,
    /// What the results of all jobs not expired may take in the store together.
    pub job_results_bytes: u64,
    /// Authentication failures one client address may have before it must wait (429).
    pub auth_failures: FailureRate,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head: HeadLimits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_body_bytes: 10 << 20,
            max_connections: 10_000,
            body_buffer_bytes: 64 << 20,
            job_results_bytes: 1 << 30,
            auth_failures: FailureRate {
                max: 20,
                per: Duration::from_secs(60),
            },
        }
    }
}

const LIMIT_KEYS: &[&str] = &[
    "max_uri_bytes",
    "max_header_bytes",
    "max_headers",
    "header_timeout",
    "body_timeout",
    "idle_timeout",
    "max_body_bytes",
    "max_connections",
    "body_buffer_bytes",
    "job_results_bytes",
    "auth_failures",
];

/// `auth_failures: {max: 20, per: 1m}`.
fn read_failure_rate(r: &mut Reader, node: &Node) -> Option<FailureRate> {
    let path = "limits.auth_failures";
    let f = r.map(node, path, &["max", "per"])?;
    let max = match f.get("max") {
        None => {
            r.missing(node, path, "max");
            None
        }
        Some(n) => match r.uint(n, &join(path, "max")) {
            Some(v @ 1..=1_000_000) => u32::try_from(v).ok(),
            Some(_) => {
                r.problem(n, &join(path, "max"), "must be from 1 to 1000000");
                None
            }
            None => None,
        },
    };
    let per = match f.get("per") {
        None => {
            r.missing(node, path, "per");
            None
        }
        Some(n) => r.duration(n, &join(path, "per")),
    };
    Some(FailureRate {
        max: max?,
        per: per?,
    })
}

pub(crate) fn read_limits(r: &mut Reader, node: Option<&Node>) -> Option<Limits> {
    let mut limits = Limits::default();
    let Some(node) = node else {
        return Some(limits);
    };
    let f = r.map(node, "limits", LIMIT_KEYS)?;
    let mut ok = true;
    let mut size = |r: &mut Reader, key: &str, min: u64| -> Option<u64> {
        let n = f.get(key)?;
        let path = join("limits", key);
        let v = r.size(n, &path);
        match v {
            Some(v) if v < min => {
                r.problem(n, &path, format!("must be at least {min}"));
                ok = false;
                None
            }
            None => {
                ok = false;
                None
            }
            v => v,
        }
    };
    if let Some(v) = size(r, "max_uri_bytes", 16) {
        limits.head.max_uri_bytes = v as usize;
    }
    if let Some(v) = size(r, "max_header_bytes", 256) {
        limits.head.max_header_bytes = v as usize;
    }
    if let Some(v) = size(r, "max_body_bytes", 0) {
        limits.max_body_bytes = v;
    }
    if let Some(v) = size(r, "body_buffer_bytes", 0) {
        limits.body_buffer_bytes = v;
    }
    if let Some(v) = size(r, "job_results_bytes", 0) {
        limits.job_results_bytes = v;
    }
    if let Some(n) = f.get("auth_failures") {
        match read_failure_rate(r, n) {
            Some(rate) => limits.auth_failures = rate,
            None => ok = false,
        }
    }
    if let Some(n) = f.get("max_connections") {
        match r.uint(n, "limits.max_connections") {
            Some(v) if v >= 1 => limits.max_connections = usize::try_from(v).unwrap_or(usize::MAX),
            Some(_) => {
                r.problem(n, "limits.max_connections", "must be at least 1");
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = f.get("max_headers") {
        match r.uint(n, "limits.max_headers") {
            Some(v) if v >= 1 => limits.head.max_headers = v as usize,
            Some(_) => {
                r.problem(n, "limits.max_headers", "must be at least 1");
                ok = false;
            }
            None => ok = false,
        }
    }
    for (key, slot) in [
        ("header_timeout", &mut limits.header_timeout),
        ("body_timeout", &mut limits.body_timeout),
        ("idle_timeout", &mut limits.idle_timeout),
    ] {
        if let Some(n) = f.get(key) {
            match r.duration(n, &join("limits", key)) {
                Some(d) => *slot = d,
                None => ok = false,
            }
        }
    }
    ok.then_some(limits)
}
