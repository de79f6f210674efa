//! How a proxied route treats slow and repeated requests: deadlines and idempotency keys.
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
