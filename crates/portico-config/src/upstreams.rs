//! `upstreams`: the services routes proxy to, their targets, how targets are balanced and
//! checked, and how `https://` targets are verified.

use std::path::PathBuf;
use std::time::Duration;

use crate::read::{Reader, join, read_file, read_name};
use crate::yaml::Node;

/// An upstream service and its targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Unique name routes refer to.
    pub name: String,
    /// Where requests go (round-robin when several).
    pub targets: Vec<UpstreamTarget>,
    /// Longest a new connection may take (502 otherwise).
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per target.
    pub max_idle_per_target: usize,
    /// How many requests to it may be in progress at once (`max_in_flight`).
    pub max_in_flight: Option<u64>,
    /// How the next target is chosen: `round_robin` (the default) or `least_in_flight`.
    pub least_in_flight: bool,
    /// Passive health (`passive: {failures: N, eject: DURATION}`): consecutive failures, and
    /// how long a target is left out after them.
    pub passive: Option<(u32, Duration)>,
    /// Active health checks (`health: {path, interval, timeout, healthy, unhealthy}`).
    pub health: Option<HealthCheck>,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    /// How `https://` targets are verified.
    pub tls: UpstreamTls,
}

/// TLS to an upstream's `https://` targets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM file of the CA certificates trusted for the targets; the system's trust store
    /// when `None`.
    pub ca: Option<PathBuf>,
    /// The name the targets' certificates must carry; each target's host when `None`.
    pub server_name: Option<String>,
}

/// How a target is spoken to, from its URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `http://`: HTTP/1.1.
    Http,
    /// `h2c://`: HTTP/2 over TCP with prior knowledge.
    H2c,
    /// `https://`: TLS; HTTP/2 when the target chooses `h2` with ALPN, else HTTP/1.1.
    Https,
}

/// One `http://`, `h2c://` or `https://` `host:port` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `host:port` as it is written in a URL.
    pub authority: String,
    /// How it is spoken to.
    pub transport: Transport,
}

pub(crate) const UPSTREAM_KEYS: &[&str] = &[
    "name",
    "targets",
    "connect_timeout",
    "max_idle_per_target",
    "max_in_flight",
    "balance",
    "passive",
    "health",
    "idle_timeout",
    "tls",
];

const UPSTREAM_TLS_KEYS: &[&str] = &["ca", "server_name"];

const PASSIVE_KEYS: &[&str] = &["failures", "eject"];

const HEALTH_KEYS: &[&str] = &["path", "interval", "timeout", "healthy", "unhealthy"];

/// An upstream's active health checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path each target is asked for with `GET` (default `/`).
    pub path: String,
    /// How often (default 5s).
    pub interval: Duration,
    /// How long a check may take (default 2s).
    pub timeout: Duration,
    /// Passes in a row that bring a target back (default 2).
    pub healthy: u32,
    /// Failures in a row that leave it out (default 3).
    pub unhealthy: u32,
}

/// `upstreams[].tls`: `ca` and `server_name`.
fn read_upstream_tls(r: &mut Reader, node: Option<&Node>, path: &str) -> Option<UpstreamTls> {
    let Some(node) = node else {
        return Some(UpstreamTls::default());
    };
    let f = r.map(node, path, UPSTREAM_TLS_KEYS)?;
    let mut ok = true;
    let ca = match f.get("ca") {
        None => None,
        Some(n) => {
            let file = read_file(r, n, &join(path, "ca"));
            ok &= file.is_some();
            file
        }
    };
    let server_name = match f.get("server_name") {
        None => None,
        Some(n) => {
            let npath = join(path, "server_name");
            let name = r.string(n, &npath);
            match name {
                Some(s)
                    if portico_http::head::valid_authority(s.as_bytes()) && !s.contains(':') =>
                {
                    Some(s.to_string())
                }
                Some(s) => {
                    r.problem(n, &npath, format!("`{s}` is not a host name"));
                    ok = false;
                    None
                }
                None => {
                    ok = false;
                    None
                }
            }
        }
    };
    ok.then_some(UpstreamTls { ca, server_name })
}

/// `upstreams`: each one read, names unique.
pub(crate) fn read_upstreams(r: &mut Reader, node: &Node) -> Vec<Upstream> {
    let mut upstreams: Vec<Upstream> = Vec::new();
    let Some(list) = r.seq(node, "upstreams") else {
        return upstreams;
    };
    for (i, node) in list.iter().enumerate() {
        let path = format!("upstreams[{i}]");
        if let Some(u) = read_upstream(r, node, &path) {
            if upstreams.iter().any(|o| o.name == u.name) {
                r.problem(
                    node,
                    &join(&path, "name"),
                    format!("upstream `{}` is defined twice", u.name),
                );
            }
            upstreams.push(u);
        }
    }
    upstreams
}

fn read_upstream(r: &mut Reader, node: &Node, path: &str) -> Option<Upstream> {
    let f = r.map(node, path, UPSTREAM_KEYS)?;
    let name = read_name(r, node, path, f.get("name"));
    let mut targets = Vec::new();
    match f.get("targets") {
        None => r.missing(node, path, "targets"),
        Some(n) => {
            let tpath = join(path, "targets");
            if let Some(items) = r.seq(n, &tpath) {
                if items.is_empty() {
                    r.problem(n, &tpath, "at least one target is needed");
                }
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{tpath}[{i}]");
                    if let Some(s) = r.string(item, &ipath) {
                        match parse_target(s) {
                            Ok(t) => targets.push(t),
                            Err(msg) => r.problem(item, &ipath, msg),
                        }
                    }
                }
            }
        }
    }
    let connect_timeout = f
        .get("connect_timeout")
        .map_or(Some(Duration::from_secs(5)), |n| {
            r.duration(n, &join(path, "connect_timeout"))
        });
    let max_idle = f
        .get("max_idle_per_target")
        .map_or(Some(128), |n| r.uint(n, &join(path, "max_idle_per_target")));
    let idle_timeout = f
        .get("idle_timeout")
        .map_or(Some(Duration::from_secs(30)), |n| {
            r.duration(n, &join(path, "idle_timeout"))
        });
    let max_in_flight = read_max_in_flight(r, f.get("max_in_flight"), path);
    let least_in_flight = match f.get("balance") {
        None => Some(false),
        Some(n) => r.string(n, &join(path, "balance")).and_then(|b| match b {
            "round_robin" => Some(false),
            "least_in_flight" => Some(true),
            _ => {
                r.problem(
                    n,
                    &join(path, "balance"),
                    "`balance` is round_robin or least_in_flight",
                );
                None
            }
        }),
    };
    let passive = match f.get("passive") {
        None => Some(None),
        Some(n) => read_passive(r, n, &join(path, "passive")).map(Some),
    };
    let health = match f.get("health") {
        None => Some(None),
        Some(n) => read_health(r, n, &join(path, "health")).map(Some),
    };
    let tls = read_upstream_tls(r, f.get("tls"), &join(path, "tls"));
    if let Some(n) = f.get("tls")
        && !targets.is_empty()
        && !targets.iter().any(|t| t.transport == Transport::Https)
    {
        r.problem(
            n,
            &join(path, "tls"),
            "`tls` applies to `https://` targets and this upstream has none",
        );
    }
    Some(Upstream {
        name: name?,
        targets,
        connect_timeout: connect_timeout?,
        max_idle_per_target: usize::try_from(max_idle?).ok()?,
        idle_timeout: idle_timeout?,
        tls: tls?,
        max_in_flight: max_in_flight?,
        least_in_flight: least_in_flight?,
        passive: passive?,
        health: health?,
    })
}

/// `http://`, `h2c://` or `https://` and `host[:port]`, with nothing after the authority.
pub fn parse_target(s: &str) -> Result<UpstreamTarget, String> {
    let schemes = [
        ("http://", Transport::Http, "80"),
        ("h2c://", Transport::H2c, "80"),
        ("https://", Transport::Https, "443"),
    ];
    let Some((rest, scheme, default_port)) = schemes
        .iter()
        .find_map(|(prefix, scheme, port)| Some((s.strip_prefix(prefix)?, *scheme, *port)))
    else {
        return Err(format!(
            "`{s}`: a target is `http://host:port`, `h2c://host:port` or `https://host:port`"
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "`{s}`: a target is a scheme and `host:port`, without path, query or user"
        ));
    }
    if !portico_http::head::valid_authority(authority.as_bytes()) {
        return Err(format!("`{s}`: `{authority}` is not a valid host and port"));
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority.ends_with(']') => (&authority[..i], &authority[i + 1..]),
        _ => (authority, default_port),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{s}`: invalid port `{port}`"))?;
    if port == 0 {
        return Err(format!("`{s}`: port 0 is not a target"));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(UpstreamTarget {
        host,
        port,
        authority: authority.to_string(),
        transport: scheme,
    })
}

fn read_health(r: &mut Reader, node: &Node, path: &str) -> Option<HealthCheck> {
    let f = r.map(node, path, HEALTH_KEYS)?;
    let check_path = match f.get("path") {
        None => Some("/".to_string()),
        Some(n) => r.string(n, &join(path, "path")).and_then(|p| {
            let ok = p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                r.problem(
                    n,
                    &join(path, "path"),
                    "`path` is an absolute path such as /healthz",
                );
            }
            ok.then(|| p.to_string())
        }),
    };
    let mut duration = |key: &str, default: u64| match f.get(key) {
        None => Some(Duration::from_secs(default)),
        Some(n) => r.duration(n, &join(path, key)).and_then(|d| {
            if d.is_zero() {
                r.problem(
                    n,
                    &join(path, key),
                    format!("`{key}` is a duration above 0"),
                );
                None
            } else {
                Some(d)
            }
        }),
    };
    let interval = duration("interval", 5);
    let timeout = duration("timeout", 2);
    let mut count = |key: &str, default: u32| match f.get(key) {
        None => Some(default),
        Some(n) => match r.uint(n, &join(path, key)) {
            Some(v @ 1..=100) => u32::try_from(v).ok(),
            Some(_) => {
                r.problem(n, &join(path, key), format!("`{key}` is 1 to 100"));
                None
            }
            None => None,
        },
    };
    let healthy = count("healthy", 2);
    let unhealthy = count("unhealthy", 3);
    Some(HealthCheck {
        path: check_path?,
        interval: interval?,
        timeout: timeout?,
        healthy: healthy?,
        unhealthy: unhealthy?,
    })
}

/// `passive: {failures: N, eject: DURATION}` (defaults 5 and 30s).
fn read_passive(r: &mut Reader, node: &Node, path: &str) -> Option<(u32, Duration)> {
    let f = r.map(node, path, PASSIVE_KEYS)?;
    let failures = match f.get("failures") {
        None => Some(5),
        Some(n) => match r.uint(n, &join(path, "failures")) {
            Some(v @ 1..=1000) => u32::try_from(v).ok(),
            Some(_) => {
                r.problem(n, &join(path, "failures"), "`failures` is 1 to 1000");
                None
            }
            None => None,
        },
    };
    let eject = match f.get("eject") {
        None => Some(Duration::from_secs(30)),
        Some(n) => r.duration(n, &join(path, "eject")).and_then(|d| {
            if d.is_zero() {
                r.problem(n, &join(path, "eject"), "`eject` is a duration above 0");
                None
            } else {
                Some(d)
            }
        }),
    };
    Some((failures?, eject?))
}

/// `max_in_flight`: a whole number above 0, when given.
pub(crate) fn read_max_in_flight(
    r: &mut Reader,
    node: Option<&Node>,
    path: &str,
) -> Option<Option<u64>> {
    match node {
        None => Some(None),
        Some(n) => match r.uint(n, &join(path, "max_in_flight"))? {
            0 => {
                r.problem(
                    n,
                    &join(path, "max_in_flight"),
                    "`max_in_flight` is a whole number above 0",
                );
                None
            }
            v => Some(Some(v)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("127.0.0.1", 9000, "127.0.0.1:9000")
        );
        let t = parse_target("http://[::1]:9000/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert_eq!(parse_target("http://example.com").unwrap().port, 80);
        assert_eq!(
            parse_target("http://a:1").unwrap().transport,
            Transport::Http
        );
        let t = parse_target("h2c://a:81").unwrap();
        assert_eq!((t.transport, t.port), (Transport::H2c, 81));
        let t = parse_target("https://api.example.com").unwrap();
        assert_eq!((t.transport, t.port), (Transport::Https, 443));
        assert_eq!(t.authority, "api.example.com");
        for bad in [
            "ftp://a:1",
            "h2://a:1",
            "HTTPS://a:1",
            "https://a:1/x",
            "a:1",
            "http://a:1/x",
            "http://u@a:1",
            "http://a:0",
            "http://a:99999",
            "http://",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
