//! A route's rate limits: one or more GCRA limits, each keyed by who or what is counted.
//!
//! ```yaml
//! routes:
//!   - name: servers
//!     path: /v1/{project_id}/servers
//!     methods: [GET]
//!     upstream: compute
//!     rate_limit:                                  # one limit, or a list of them
//!       - {key: project, rate: 100/s, burst: 200}  # burst: how many at once (default: N)
//!       - {key: ip, rate: 20/s}
//!       - {key: "header:X-Tenant", rate: 1000/m, name: tenant}
//! ```

use portico_policy::ratelimit::Rate;

use crate::read::{Reader, join};
use crate::yaml::{Kind, Node};

/// One limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Its name in `RateLimit-Policy` and `RateLimit` (the key's, unless given).
    pub name: String,
    /// What is counted separately.
    pub key: LimitKey,
    /// How many per how long.
    pub rate: Rate,
    /// How many at once.
    pub burst: u64,
    /// What happens when the shared store (`cluster.redis`) cannot decide.
    pub on_store_failure: OnStoreFailure,
}

/// What a limit does when the shared store cannot decide in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStoreFailure {
    /// The request goes through, as if the limit were not there.
    #[default]
    Allow,
    /// 503 with `Retry-After`.
    Deny,
}

/// Where limits are shared by every node: `cluster: {redis: URL, budget: 50ms}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// `redis://host:port[/db]`.
    pub redis: String,
    /// How long one decision may take (connecting included) before it counts as a failure.
    pub budget: std::time::Duration,
}

const CLUSTER_KEYS: &[&str] = &["redis", "budget"];

/// Reads `cluster`.
pub(crate) fn read_cluster(r: &mut Reader, node: &Node) -> Option<Cluster> {
    let f = r.map(node, "cluster", CLUSTER_KEYS)?;
    let redis = match f.get("redis") {
        None => {
            r.missing(node, "cluster", "redis");
            None
        }
        Some(n) => r.string(n, "cluster.redis").and_then(|s| {
            let ok = (s.starts_with("redis://") && s.len() > "redis://".len())
                || (s.starts_with("rediss://") && s.len() > "rediss://".len());
            if !ok {
                r.problem(n, "cluster.redis", "`redis` is a redis:// URL");
            }
            ok.then(|| s.to_string())
        }),
    };
    let budget = match f.get("budget") {
        None => Some(std::time::Duration::from_millis(50)),
        Some(n) => r.duration(n, "cluster.budget").and_then(|d| {
            if d.is_zero() || d > std::time::Duration::from_secs(5) {
                r.problem(n, "cluster.budget", "`budget` is above 0 and at most 5s");
                None
            } else {
                Some(d)
            }
        }),
    };
    Some(Cluster {
        redis: redis?,
        budget: budget?,
    })
}

/// What a limit counts separately.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitKey {
    /// Each consumer (the caller the access phase found; anonymous callers by address).
    Consumer,
    /// Each project (the caller's, or the URL's `{project_id}`; else by address).
    Project,
    /// The route as a whole.
    Route,
    /// Each client address.
    Ip,
    /// Each value of this request header, lower case (absent: by address).
    Header(String),
}

impl LimitKey {
    fn parse(s: &str) -> Option<LimitKey> {
        Some(match s {
            "consumer" => LimitKey::Consumer,
            "project" => LimitKey::Project,
            "route" => LimitKey::Route,
            "ip" => LimitKey::Ip,
            _ => {
                let h = s.strip_prefix("header:")?;
                let token = !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !token {
                    return None;
                }
                LimitKey::Header(h.to_ascii_lowercase())
            }
        })
    }

    /// Its name in the file.
    fn name(&self) -> String {
        match self {
            LimitKey::Consumer => "consumer".into(),
            LimitKey::Project => "project".into(),
            LimitKey::Route => "route".into(),
            LimitKey::Ip => "ip".into(),
            LimitKey::Header(h) => format!("header-{h}"),
        }
    }
}

impl RateLimit {
    /// A limit from its parts as the admin API keeps them (`key`, `rate`, `burst`, `name`);
    /// `None` when one does not read.
    pub fn from_parts(
        key: &str,
        rate: &str,
        burst: Option<u64>,
        name: Option<&str>,
    ) -> Option<RateLimit> {
        let key = LimitKey::parse(key)?;
        let rate = Rate::parse(rate)?;
        Some(RateLimit {
            name: name.map_or_else(|| key.name(), str::to_string),
            burst: burst.filter(|b| *b > 0).unwrap_or(rate.count),
            key,
            rate,
            on_store_failure: OnStoreFailure::Allow,
        })
    }
}

const LIMIT_KEYS: &[&str] = &["key", "rate", "burst", "name", "on_store_failure"];

/// Reads `rate_limit` (one map or a list of maps).
pub(crate) fn read_rate_limits(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<RateLimit>> {
    let items: Vec<(&Node, String)> = match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (n, format!("{path}[{i}]")))
            .collect(),
        _ => vec![(node, path.to_string())],
    };
    let mut out: Vec<RateLimit> = Vec::new();
    let mut ok = true;
    for (item, ipath) in items {
        match read_limit(r, item, &ipath) {
            Some(l) if out.iter().any(|o| o.name == l.name) => {
                r.problem(
                    item,
                    &ipath,
                    format!("two limits are named `{}`: give one a `name`", l.name),
                );
                ok = false;
            }
            Some(l) => out.push(l),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_limit(r: &mut Reader, node: &Node, path: &str) -> Option<RateLimit> {
    let f = r.map(node, path, LIMIT_KEYS)?;
    let key = match f.get("key") {
        None => {
            r.missing(node, path, "key");
            None
        }
        Some(n) => r.string(n, &join(path, "key")).and_then(|s| {
            let k = LimitKey::parse(s);
            if k.is_none() {
                r.problem(
                    n,
                    &join(path, "key"),
                    "`key` is consumer, project, route, ip or header:NAME",
                );
            }
            k
        }),
    };
    let rate = match f.get("rate") {
        None => {
            r.missing(node, path, "rate");
            None
        }
        Some(n) => r.string(n, &join(path, "rate")).and_then(|s| {
            let rate = Rate::parse(s);
            if rate.is_none() {
                r.problem(
                    n,
                    &join(path, "rate"),
                    "`rate` is N/s, N/m, N/h or N/d with N above 0",
                );
            }
            rate
        }),
    };
    let burst = match f.get("burst") {
        None => Some(None),
        Some(n) => match r.uint(n, &join(path, "burst")) {
            Some(0) => {
                r.problem(n, &join(path, "burst"), "`burst` is a whole number above 0");
                None
            }
            b => b.map(Some),
        },
    };
    let name = match f.get("name") {
        None => Some(None),
        Some(n) => r.string(n, &join(path, "name")).and_then(|s| {
            let valid = !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid {
                r.problem(
                    n,
                    &join(path, "name"),
                    "a limit's name is 1 to 64 letters, digits, `-`, `_` or `.`",
                );
            }
            valid.then(|| Some(s.to_string()))
        }),
    };
    let on_store_failure = match f.get("on_store_failure") {
        None => Some(OnStoreFailure::Allow),
        Some(n) => r
            .string(n, &join(path, "on_store_failure"))
            .and_then(|s| match s {
                "allow" => Some(OnStoreFailure::Allow),
                "deny" => Some(OnStoreFailure::Deny),
                _ => {
                    r.problem(
                        n,
                        &join(path, "on_store_failure"),
                        "`on_store_failure` is allow or deny",
                    );
                    None
                }
            }),
    };
    let (key, rate) = (key?, rate?);
    Some(RateLimit {
        on_store_failure: on_store_failure?,
        name: name?.unwrap_or_else(|| key.name()),
        burst: burst?.unwrap_or(rate.count),
        key,
        rate,
    })
}
