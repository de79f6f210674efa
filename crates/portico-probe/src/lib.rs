//! `portico probe`: checks an HTTP API, from outside, against the status-code contract that
//! Portico keeps (`docs/contract.md`), row by row.
//!
//! Each row is provoked by a crafted request on a fresh connection (`wire.rs`) and judged
//! from the answer: `pass`, `fail`, `not applicable` (the target has nothing the row needs,
//! such as a known path) or `unknown` (no answer to judge: a timeout, a reset), each with the
//! request sent and the response head received as evidence. Probes are safe by default:
//! bodiless requests with safe methods (`GET`, `HEAD`, `OPTIONS`, and methods the target
//! cannot know), one connection at a time, at most `max_requests` in all, every wait bounded;
//! rows that need a body (request smuggling hygiene) run only when asked (`unsafe_probes`).
//!
//! What this version covers is [`Row`]'s list; the rest of the contract's rows are reported
//! as not probed rather than passed.

mod operations;
mod report;
mod rows;
pub mod wire;

use std::time::Duration;

pub use report::{Format, render};
pub use rows::Row;

/// What to probe and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// The API's base URL (`http://host[:port][/base]`).
    pub base: Target,
    /// Paths the API serves (for the rows that need a known resource), relative to the host.
    pub paths: Vec<String>,
    /// Only these rows (all when empty).
    pub rows: Vec<u16>,
    /// Also the probes that send request bodies.
    pub unsafe_probes: bool,
    /// The most requests sent in all.
    pub max_requests: u32,
    /// The longest wait for one answer.
    pub timeout: Duration,
    /// A path that takes WebSocket handshakes (for 101).
    pub websocket: Option<String>,
    /// The root of an API with several versions (for 300).
    pub api_root: Option<String>,
    /// For `https://` targets: a PEM file of the certificates to trust (the system's roots
    /// when `None`).
    pub ca: Option<std::path::PathBuf>,
    /// The API's OpenAPI document, for the per-operation rows (`--openapi`).
    pub openapi: Option<std::sync::Arc<portico_openapi::Spec>>,
    /// Speak HTTP/2: with prior knowledge on `http://`, chosen by ALPN on `https://`. The
    /// rows about HTTP/1.1 framing are then not applicable.
    pub http2: bool,
}

/// A base URL, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// Over TLS (`https://`, `h2://`).
    pub tls: bool,
    /// HTTP/2 asked for by the URL: `h2c://` (prior knowledge) or `h2://` (TLS, `h2` by
    /// ALPN).
    pub http2: bool,
    /// The host, without port or brackets: the TLS server name.
    pub server_name: String,
    /// The `Host` to send.
    pub host: String,
    /// The path prefix, without a trailing `/` (empty for the root).
    pub base_path: String,
}

/// Why the target cannot be probed at all.
#[derive(Debug, PartialEq, Eq)]
pub struct Unprobeable(pub String);

impl std::fmt::Display for Unprobeable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unprobeable {}

impl Target {
    /// Parses `http://host[:port][/path]`. A URL with userinfo or a fragment, another scheme,
    /// or no host is refused with the reason.
    pub fn parse(url: &str) -> Result<Target, Unprobeable> {
        let bad = |why: &str| Err(Unprobeable(format!("{url}: {why}")));
        let (rest, tls, http2) = match url.split_once("://") {
            Some(("http", rest)) => (rest, false, false),
            Some(("https", rest)) => (rest, true, false),
            Some(("h2c", rest)) => (rest, false, true),
            Some(("h2", rest)) => (rest, true, true),
            Some((scheme, _)) => {
                return bad(&format!("`{scheme}` is not http, https, h2c or h2"));
            }
            None => return bad("not a URL (http(s)://host[:port][/path])"),
        };
        if url.contains('#') {
            return bad("a URL to probe has no fragment");
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return bad("a URL to probe has no userinfo (credentials do not go in URLs)");
        }
        if authority.is_empty() || authority.starts_with(':') {
            return bad("no host");
        }
        if path.contains('?') {
            return bad("a base URL has no query");
        }
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let addr = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let host_only = if has_port {
            &authority[..authority.rfind(':').unwrap_or(authority.len())]
        } else {
            authority
        };
        let server_name = host_only
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if has_port
            && authority
                .rsplit(':')
                .next()
                .is_none_or(|p| p.parse::<u16>().is_err())
        {
            return bad("the port is not a number");
        }
        Ok(Target {
            addr,
            tls,
            http2,
            server_name,
            host: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }
}

/// How a row turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The target keeps the row.
    Pass,
    /// It does not.
    Fail,
    /// The row cannot be judged here (nothing it needs, or not asked for).
    NotApplicable,
    /// No answer to judge.
    Unknown,
}

impl Outcome {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NotApplicable => "not applicable",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One row's verdict, with its evidence.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The row's status code (the contract's row), or 0 for checks across rows.
    pub code: u16,
    /// What was checked.
    pub check: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// Why.
    pub why: String,
    /// The request sent (its head, printable).
    pub request: Option<String>,
    /// The response head received.
    pub response: Option<String>,
}

/// Probes the target: every row asked for, in the contract's order. `Err` when the target
/// cannot be probed at all (nothing answers at its address).
pub async fn probe(opts: &Options) -> Result<Vec<Verdict>, Unprobeable> {
    probe_with_progress(opts, &mut |_, _| {}).await
}

/// Like [`probe`], telling `progress` (rows done, rows in all) after each row.
pub async fn probe_with_progress(
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Verdict>, Unprobeable> {
    let tls = if opts.base.tls {
        Some(wire::Tls::new(
            opts.ca.as_deref(),
            &opts.base.server_name,
            opts.http2 || opts.base.http2,
        )?)
    } else {
        None
    };
    let mut prober = rows::Prober::new(opts, tls);
    prober.reachable().await?;
    Ok(prober.run(progress).await)
}

/// The exit status a report gives: 0 when nothing failed, 1 when a row failed.
pub fn exit_status(verdicts: &[Verdict]) -> u8 {
    u8::from(verdicts.iter().any(|v| v.outcome == Outcome::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_parsed_and_bad_ones_refused_with_why() {
        let t = Target::parse("http://api.example:8080/v1/").expect("parsed");
        assert_eq!(
            t,
            Target {
                addr: "api.example:8080".into(),
                tls: false,
                http2: false,
                server_name: "api.example".into(),
                host: "api.example:8080".into(),
                base_path: "/v1".into()
            }
        );
        assert_eq!(Target::parse("http://h").expect("parsed").addr, "h:80");
        let s = Target::parse("https://[::1]").expect("parsed");
        assert_eq!(
            (s.addr.as_str(), s.tls, s.server_name.as_str()),
            ("[::1]:443", true, "::1")
        );
        let h = Target::parse("h2c://h:8080").expect("parsed");
        assert!(h.http2 && !h.tls);
        let h = Target::parse("h2://h").expect("parsed");
        assert!(h.http2 && h.tls && h.addr == "h:443");
        assert_eq!(
            Target::parse("http://[::1]:9/").expect("parsed").addr,
            "[::1]:9"
        );
        for (url, why) in [
            ("http://u:p@h/", "userinfo"),
            ("http://h/#x", "fragment"),
            ("ftp://h/", "not http, https, h2c or h2"),
            ("h:80", "not a URL"),
            ("http:///x", "no host"),
            ("http://h:x/", "port"),
            ("http://h/?q", "query"),
        ] {
            let e = Target::parse(url).expect_err(url);
            assert!(e.0.contains(why), "{url}: {e}");
        }
    }
}
