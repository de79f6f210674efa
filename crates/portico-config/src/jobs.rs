//! How a proxied route treats slow and repeated requests: deadlines, asynchronous jobs and
//! idempotency keys.
//!
//! ```yaml
//! routes:
//!   - name: reports
//!     path: /v1/{project_id}/reports
//!     methods: [GET, POST]
//!     upstream: api
//!     timeout: 10s        # the deadline of a request whose client set none (504 when it passes)
//!     max_timeout: 60s    # the longest deadline a client may ask for (`timeout=`, `Timeout:`)
//!     pass_timeout: false # forward the client's `timeout=` and `Timeout` unchanged
//!     idempotency: {ttl: 24h, lease: 1m, required: false, max_response_bytes: 1MiB}
//!                         # or `idempotency: true` for these defaults
//!   - name: exports
//!     path: /v1/{project_id}/exports
//!     methods: [POST]
//!     upstream: api
//!     async: {sync_wait: 2s, retention: 24h, path: "/v1/{project_id}/jobs", lease: 30s,
//!             max_result_bytes: 8MiB}
//! ```

use std::time::Duration;

use crate::read::{Fields, Reader, join};
use crate::yaml::Node;

/// A route's deadlines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadline {
    /// The deadline of a request whose client set none (`timeout`).
    pub default: Option<Duration>,
    /// The longest deadline a client may set; a longer one is cut to this (`max_timeout`).
    pub max: Option<Duration>,
    /// The client's `timeout=` parameter and `Timeout` field go upstream unchanged
    /// (`pass_timeout`); by default they are removed, and the upstream is told the time left.
    pub pass: bool,
}

/// Reads `timeout`, `max_timeout` and `pass_timeout`; they are for routes with an upstream.
pub(crate) fn read_deadline(
    r: &mut Reader,
    node: &Node,
    path: &str,
    f: &Fields<'_>,
) -> Option<Deadline> {
    let proxied = f.get("upstream").is_some();
    let mut ok = true;
    let mut duration = |r: &mut Reader, key: &str| -> Option<Duration> {
        let n = f.get(key)?;
        if !proxied {
            r.problem(
                n,
                &join(path, key),
                format!("`{key}` is for routes with an `upstream`"),
            );
            ok = false;
            return None;
        }
        let d = r.duration(n, &join(path, key));
        ok &= d.is_some();
        d
    };
    let default = duration(r, "timeout");
    let max = duration(r, "max_timeout");
    let pass = match f.get("pass_timeout") {
        None => false,
        Some(n) => r.boolean(n, &join(path, "pass_timeout"))?,
    };
    if let (Some(d), Some(m)) = (default, max)
        && d > m
    {
        r.problem(
            f.get("timeout").unwrap_or(node),
            &join(path, "timeout"),
            "`timeout` is longer than `max_timeout`",
        );
        return None;
    }
    ok.then_some(Deadline { default, max, pass })
}

/// A route's `Idempotency-Key` handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idempotency {
    /// How long a key and its response are kept (`ttl`).
    pub ttl: Duration,
    /// How long a key stays in flight if the node handling its request dies (`lease`); a
    /// request's own deadline extends it.
    pub lease: Duration,
    /// Unsafe requests without a key are refused (`required`).
    pub required: bool,
    /// Largest response body kept for replay (`max_response_bytes`).
    pub max_response_bytes: u64,
}

impl Default for Idempotency {
    fn default() -> Self {
        Idempotency {
            ttl: Duration::from_secs(86_400),
            lease: Duration::from_secs(60),
            required: false,
            max_response_bytes: 1024 * 1024,
        }
    }
}

const IDEMPOTENCY_KEYS: &[&str] = &["ttl", "lease", "required", "max_response_bytes"];

/// Reads `idempotency`: `true`, `false`, or a mapping; for routes with an upstream.
pub(crate) fn read_idempotency(
    r: &mut Reader,
    path: &str,
    f: &Fields<'_>,
) -> Option<Option<Idempotency>> {
    let Some(n) = f.get("idempotency") else {
        return Some(None);
    };
    let ipath = join(path, "idempotency");
    if f.get("upstream").is_none() {
        r.problem(n, &ipath, "`idempotency` is for routes with an `upstream`");
        return None;
    }
    if let crate::yaml::Kind::Scalar { .. } = n.kind {
        return r.boolean(n, &ipath).map(|on| on.then(Idempotency::default));
    }
    let m = r.map(n, &ipath, IDEMPOTENCY_KEYS)?;
    let d = Idempotency::default();
    let ttl = m
        .get("ttl")
        .map_or(Some(d.ttl), |v| r.duration(v, &join(&ipath, "ttl")));
    let lease = m
        .get("lease")
        .map_or(Some(d.lease), |v| r.duration(v, &join(&ipath, "lease")));
    let required = m.get("required").map_or(Some(d.required), |v| {
        r.boolean(v, &join(&ipath, "required"))
    });
    let max = m
        .get("max_response_bytes")
        .map_or(Some(d.max_response_bytes), |v| {
            let p = join(&ipath, "max_response_bytes");
            match r.size(v, &p)? {
                n if n > 64 * 1024 * 1024 => {
                    r.problem(v, &p, "at most 64MiB");
                    None
                }
                n => Some(n),
            }
        });
    Some(Some(Idempotency {
        ttl: ttl?,
        lease: lease?,
        required: required?,
        max_response_bytes: max?,
    }))
}

/// A route's asynchronous jobs (`async`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsyncJobs {
    /// How long a request without a client deadline waits for the upstream's answer before
    /// it becomes a job (`sync_wait`).
    pub sync_wait: Duration,
    /// How long a finished job's result is served (`retention`); 410 after.
    pub retention: Duration,
    /// Where jobs are polled: `{path}/{job_id}` and `{path}/{job_id}/result` (`path`).
    pub path: String,
    /// How long a running job stays its node's without the node renewing it (`lease`): a
    /// node that dies leaves its jobs failed after this.
    pub lease: Duration,
    /// Largest result kept (`max_result_bytes`); a larger one fails the job.
    pub max_result_bytes: u64,
}

/// Where jobs are polled unless a route says otherwise.
pub const DEFAULT_JOBS_PATH: &str = "/v1/{project_id}/jobs";

const ASYNC_KEYS: &[&str] = &[
    "sync_wait",
    "retention",
    "path",
    "lease",
    "max_result_bytes",
];

/// Reads `async`; for routes with an upstream whose path has `{project_id}` (a job belongs to
/// a project).
pub(crate) fn read_async(
    r: &mut Reader,
    path: &str,
    f: &Fields<'_>,
    route_path: Option<&crate::PathTemplate>,
) -> Option<Option<AsyncJobs>> {
    let Some(n) = f.get("async") else {
        return Some(None);
    };
    let apath = join(path, "async");
    if f.get("upstream").is_none() {
        r.problem(n, &apath, "`async` is for routes with an `upstream`");
        return None;
    }
    if route_path.is_some_and(|t| !t.params.iter().any(|p| p == "project_id")) {
        r.problem(
            n,
            &apath,
            "a job belongs to a project: an `async` route's path has `{project_id}`",
        );
        return None;
    }
    if let Some(t) = f.get("timeout") {
        r.problem(
            t,
            &join(path, "timeout"),
            "an `async` route has no default deadline: a request without one becomes a job after `sync_wait`",
        );
        return None;
    }
    let m = r.map(n, &apath, ASYNC_KEYS)?;
    let duration = |r: &mut Reader, key: &str, default: u64| {
        m.get(key).map_or(Some(Duration::from_secs(default)), |v| {
            r.duration(v, &join(&apath, key))
        })
    };
    let sync_wait = duration(r, "sync_wait", 2);
    let retention = duration(r, "retention", 86_400);
    let lease = duration(r, "lease", 30);
    let max = m.get("max_result_bytes").map_or(Some(8 << 20), |v| {
        let p = join(&apath, "max_result_bytes");
        match r.size(v, &p)? {
            n if n > 64 << 20 => {
                r.problem(v, &p, "at most 64MiB");
                None
            }
            n => Some(n),
        }
    });
    let jobs_path = match m.get("path") {
        None => Some(DEFAULT_JOBS_PATH.to_string()),
        Some(v) => {
            let p = join(&apath, "path");
            r.string(v, &p).and_then(|text| {
                let ok = crate::PathTemplate::parse(text).is_ok_and(|t| {
                    t.catch_all.is_none() && t.params == ["project_id"] && !text.ends_with('/')
                });
                if ok {
                    Some(text.to_string())
                } else {
                    r.problem(
                        v,
                        &p,
                        "a jobs path is a route path whose one parameter is `{project_id}`, without a final `/`",
                    );
                    None
                }
            })
        }
    };
    if let (Some(l), Some(_)) = (lease, sync_wait)
        && l < Duration::from_secs(1)
    {
        r.problem(
            m.get("lease").unwrap_or(n),
            &join(&apath, "lease"),
            "at least 1s (nodes renew their jobs every second)",
        );
        return None;
    }
    Some(Some(AsyncJobs {
        sync_wait: sync_wait?,
        retention: retention?,
        path: jobs_path?,
        lease: lease?,
        max_result_bytes: max?,
    }))
}
