//! The rows this version probes, each a crafted request and the judgement of its answer.

use crate::wire::{Answer, NoAnswer, exchange};
use crate::{Options, Outcome, Unprobeable, Verdict};

/// A check the prober makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// OPTIONS on a known path: 204 with `Allow`.
    Options,
    /// A malformed request line and a malformed header field: 400.
    Malformed,
    /// `Content-Length` with `Transfer-Encoding`, two different `Content-Length`s, an
    /// obs-folded field: refused with 400 (sends bodies: only when asked).
    Smuggling,
    /// A path that does not exist: 404.
    NotFound,
    /// A registered method a known path does not take: 405 with `Allow`.
    MethodNotAllowed,
    /// A request target longer than any server takes: 414.
    UriTooLong,
    /// `Expect` with anything but `100-continue`: 417.
    Expectation,
    /// A method no server implements: 501.
    UnknownMethod,
    /// `HTTP/2.0` and `HTTP/3.1` request lines: 505.
    Version,
    /// Every error the target generated above has one JSON envelope and `X-Request-Id`.
    Envelope,
}

impl Row {
    /// Every row, in the contract's order (the envelope, which spans rows, last).
    pub const ALL: [Row; 10] = [
        Row::Options,
        Row::Malformed,
        Row::Smuggling,
        Row::NotFound,
        Row::MethodNotAllowed,
        Row::UriTooLong,
        Row::Expectation,
        Row::UnknownMethod,
        Row::Version,
        Row::Envelope,
    ];

    /// The contract row it judges (0 for the envelope, which every error row shares).
    pub fn code(self) -> u16 {
        match self {
            Row::Options => 204,
            Row::Malformed | Row::Smuggling => 400,
            Row::NotFound => 404,
            Row::MethodNotAllowed => 405,
            Row::UriTooLong => 414,
            Row::Expectation => 417,
            Row::UnknownMethod => 501,
            Row::Version => 505,
            Row::Envelope => 0,
        }
    }

    /// What it checks, in reports.
    pub fn check(self) -> &'static str {
        match self {
            Row::Options => "OPTIONS on a known path is 204 with Allow",
            Row::Malformed => "a malformed request line or header field is 400",
            Row::Smuggling => "CL+TE, conflicting Content-Length and obs-fold are refused (400)",
            Row::NotFound => "a path that does not exist is 404",
            Row::MethodNotAllowed => "a method a known path does not take is 405 with Allow",
            Row::UriTooLong => "a 16 KiB request target is 414",
            Row::Expectation => "an Expect other than 100-continue is 417",
            Row::UnknownMethod => "an unknown method is 501",
            Row::Version => "HTTP/2.0 and HTTP/3.1 request lines are 505",
            Row::Envelope => "every generated error has the JSON envelope and X-Request-Id",
        }
    }
}

/// What the prober sends with every request.
const USER_AGENT: &str = concat!("portico-probe/", env!("CARGO_PKG_VERSION"));

/// Safe methods a path may not take, tried in order for 405 (never one that changes state).
const SAFE_UNUSUAL: [&str; 4] = ["TRACE", "QUERY", "SEARCH", "PROPFIND"];

/// One probing run.
pub(crate) struct Prober<'a> {
    opts: &'a Options,
    sent: u32,
    /// The error answers seen, with the request that got each, for the envelope check.
    errors: Vec<(String, Answer)>,
    /// The `Allow` a known path gave to OPTIONS.
    allow: Option<String>,
}

/// A row's exchange: the request sent, and what came back.
type Sent = (String, Result<Answer, String>);

impl<'a> Prober<'a> {
    pub(crate) fn new(opts: &'a Options) -> Prober<'a> {
        Prober {
            opts,
            sent: 0,
            errors: Vec::new(),
            allow: None,
        }
    }

    /// Whether anything listens at the target (a connection, no request).
    pub(crate) async fn reachable(&self) -> Result<(), Unprobeable> {
        let addr = &self.opts.base.addr;
        match tokio::time::timeout(self.opts.timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Unprobeable(format!("cannot connect to {addr}: {e}"))),
            Err(_) => Err(Unprobeable(format!(
                "cannot connect to {addr}: no answer within {:?}",
                self.opts.timeout
            ))),
        }
    }

    pub(crate) async fn run(&mut self) -> Vec<Verdict> {
        let mut out = Vec::new();
        for row in Row::ALL {
            let wanted = if self.opts.rows.is_empty() {
                true
            } else {
                self.opts.rows.contains(&row.code())
            };
            if !wanted {
                continue;
            }
            out.push(self.judge(row).await);
        }
        out
    }

    /// A request head: the line, `Host`, `User-Agent`, `Connection: close`, then `extra`
    /// (whole lines), then the blank line.
    fn head(&self, line: &str, extra: &str) -> String {
        format!(
            "{line}\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n{extra}\r\n",
            self.opts.base.host
        )
    }

    /// A path under the base.
    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.opts.base.base_path)
    }

    async fn send(&mut self, request: String) -> Sent {
        if self.sent >= self.opts.max_requests {
            return (
                request,
                Err("the request budget (--max-requests) is spent".into()),
            );
        }
        self.sent += 1;
        let answer = exchange(&self.opts.base.addr, request.as_bytes(), self.opts.timeout)
            .await
            .map_err(|e: NoAnswer| e.to_string());
        if let Ok(a) = &answer
            && a.status >= 400
        {
            self.errors.push((request.clone(), a.clone()));
        }
        (request, answer)
    }

    async fn judge(&mut self, row: Row) -> Verdict {
        let verdict = |outcome, why: String, sent: Option<&Sent>| Verdict {
            code: row.code(),
            check: row.check(),
            outcome,
            why,
            request: sent.map(|(r, _)| printable(r)),
            response: sent.and_then(|(_, a)| a.as_ref().ok().map(|a| a.head.clone())),
        };
        let known = self.opts.paths.first().cloned();
        let sends: Vec<Sent> = match row {
            Row::Options => {
                let Some(p) = known else {
                    return verdict(
                        Outcome::NotApplicable,
                        "no known path was given (--path)".into(),
                        None,
                    );
                };
                let req = self.head(&format!("OPTIONS {p} HTTP/1.1"), "");
                let sent = self.send(req).await;
                self.allow = sent
                    .1
                    .as_ref()
                    .ok()
                    .and_then(|a| a.field("allow"))
                    .map(str::to_string);
                vec![sent]
            }
            Row::Malformed => {
                let line = self.head(&format!("GET {} x HTTP/1.1", self.path("/a")), "");
                let field = self.head(&format!("GET {} HTTP/1.1", self.path("/")), "Bad Field\r\n");
                vec![self.send(line).await, self.send(field).await]
            }
            Row::Smuggling => {
                if !self.opts.unsafe_probes {
                    return verdict(
                        Outcome::NotApplicable,
                        "sends request bodies: only with --unsafe".into(),
                        None,
                    );
                }
                let p = self.path("/");
                let te = self.head(
                    &format!("GET {p} HTTP/1.1"),
                    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                ) + "0\r\n\r\n";
                let cl = self.head(
                    &format!("GET {p} HTTP/1.1"),
                    "Content-Length: 1\r\nContent-Length: 2\r\n",
                ) + "ab";
                let fold = self.head(&format!("GET {p} HTTP/1.1"), "X-Folded: a\r\n b\r\n");
                vec![
                    self.send(te).await,
                    self.send(cl).await,
                    self.send(fold).await,
                ]
            }
            Row::NotFound => {
                let missing = format!("/portico-probe-{:016x}-missing", fastrand::u64(..));
                let req = self.head(&format!("GET {} HTTP/1.1", self.path(&missing)), "");
                vec![self.send(req).await]
            }
            Row::MethodNotAllowed => {
                let Some(p) = known else {
                    return verdict(
                        Outcome::NotApplicable,
                        "no known path was given (--path)".into(),
                        None,
                    );
                };
                let allow = self.allow.clone().unwrap_or_default().to_ascii_uppercase();
                let taken: Vec<&str> = allow.split(',').map(str::trim).collect();
                let Some(method) = SAFE_UNUSUAL.into_iter().find(|m| !taken.contains(m)) else {
                    return verdict(
                        Outcome::NotApplicable,
                        format!("the path takes every safe method tried ({allow})"),
                        None,
                    );
                };
                let req = self.head(&format!("{method} {p} HTTP/1.1"), "");
                vec![self.send(req).await]
            }
            Row::UriTooLong => {
                let long = format!("/{}", "a".repeat(16 * 1024));
                let req = self.head(&format!("GET {} HTTP/1.1", self.path(&long)), "");
                vec![self.send(req).await]
            }
            Row::Expectation => {
                let req = self.head(
                    &format!("GET {} HTTP/1.1", self.path("/")),
                    "Expect: portico-probe\r\n",
                );
                vec![self.send(req).await]
            }
            Row::UnknownMethod => {
                let req = self.head(&format!("PORTICOPROBE {} HTTP/1.1", self.path("/")), "");
                vec![self.send(req).await]
            }
            Row::Version => {
                let mut sent = Vec::new();
                for v in ["HTTP/2.0", "HTTP/3.1"] {
                    let req = self.head(&format!("GET {} {v}", self.path("/")), "");
                    sent.push(self.send(req).await);
                }
                sent
            }
            Row::Envelope => return self.envelope(),
        };
        let want = row.code();
        // The first exchange that did not give what the row wants decides; otherwise the
        // last one is the evidence.
        for sent in &sends {
            match &sent.1 {
                Err(why) => return verdict(Outcome::Unknown, why.clone(), Some(sent)),
                Ok(a) if a.status == 404 && matches!(row, Row::Options | Row::MethodNotAllowed) => {
                    return verdict(
                        Outcome::NotApplicable,
                        "the path given (--path) is not found (404)".into(),
                        Some(sent),
                    );
                }
                Ok(a) if a.status != want => {
                    return verdict(
                        Outcome::Fail,
                        format!("answered {} where the contract says {want}", a.status),
                        Some(sent),
                    );
                }
                Ok(a)
                    if matches!(row, Row::Options | Row::MethodNotAllowed)
                        && a.field("allow").is_none() =>
                {
                    return verdict(Outcome::Fail, format!("{want} without Allow"), Some(sent));
                }
                Ok(_) => {}
            }
        }
        verdict(Outcome::Pass, format!("answered {want}"), sends.last())
    }

    /// The errors seen so far against the envelope: a JSON object with `error_code`,
    /// `error_msg` and `request_id`, the last equal to `X-Request-Id`.
    fn envelope(&self) -> Verdict {
        let verdict = |outcome, why: String, sent: Option<&(String, Answer)>| Verdict {
            code: 0,
            check: Row::Envelope.check(),
            outcome,
            why,
            request: sent.map(|(r, _)| printable(r)),
            response: sent.map(|(_, a)| a.head.clone()),
        };
        if self.errors.is_empty() {
            return verdict(Outcome::NotApplicable, "no error was provoked".into(), None);
        }
        for sent in &self.errors {
            let a = &sent.1;
            let body: Option<serde_json::Value> = serde_json::from_slice(&a.body).ok();
            let member = |k: &str| {
                body.as_ref()
                    .and_then(|b| b.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            let problem = if body.is_none() {
                Some("the body is not JSON".to_string())
            } else if let Some(missing) = ["error_code", "error_msg", "request_id"]
                .into_iter()
                .find(|k| member(k).is_none())
            {
                Some(format!("the body has no `{missing}`"))
            } else if a.field("x-request-id").is_none() {
                Some("no X-Request-Id".to_string())
            } else if a.field("x-request-id").map(str::to_string) != member("request_id") {
                Some("X-Request-Id is not the body's request_id".to_string())
            } else {
                None
            };
            if let Some(p) = problem {
                return verdict(Outcome::Fail, format!("{}: {p}", a.status), Some(sent));
            }
        }
        verdict(
            Outcome::Pass,
            format!("{} errors, each with the envelope", self.errors.len()),
            self.errors.last(),
        )
    }
}

/// A request as evidence: its head (long lines cut), without the body.
fn printable(request: &str) -> String {
    let head = request.split("\r\n\r\n").next().unwrap_or(request);
    head.lines()
        .map(|l| {
            if l.len() > 120 {
                let cut = l.char_indices().nth(100).map_or(l.len(), |(i, _)| i);
                format!("{}… ({} bytes)", &l[..cut], l.len())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
