//! How a proxied route treats slow and repeated requests: deadlines.
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
