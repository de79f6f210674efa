//! The rows this version probes, each a crafted request and the judgement of its answer.

use crate::wire::{Answer, H2Request, NoAnswer, Tls, exchange, exchange_h2, reach};
use crate::{Options, Outcome, Unprobeable, Verdict};

/// A check the prober makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// A refused head with `Expect: 100-continue`: the final error, never `100 Continue`.
    Continue,
    /// A WebSocket handshake on the `--websocket` path: 101 with `Upgrade: websocket` and
    /// `Sec-WebSocket-Accept`.
    Switching,
    /// OPTIONS on a known path: 204 with `Allow`.
    Options,
    /// `Range: bytes=0-0` on a resource that advertises `Accept-Ranges: bytes`: 206 with
    /// `Content-Range`.
    Partial,
    /// `GET` of the `--api-root`: 300 with `Location`.
    Versions,
    /// `If-None-Match` with the resource's own `ETag` (or `If-Modified-Since` with its
    /// `Last-Modified`): 304.
    NotModified,
    /// A malformed request line and a malformed header field: 400.
    Malformed,
    /// `Content-Length` with `Transfer-Encoding`, two different `Content-Length`s, an
    /// obs-folded field: refused with 400 (sends bodies: only when asked).
    Smuggling,
    /// A path that does not exist: 404.
    NotFound,
    /// A registered method a known path does not take: 405 with `Allow`.
    MethodNotAllowed,
    /// An `Accept` nothing matches, on a path that declares what it produces: 406 listing
    /// `available`.
    NotAcceptable,
    /// A head that never ends: 408 with `Connection: close`, within a bounded wait.
    RequestTimeout,
    /// A chunked body on a path that takes bodies: 411 when it requires a length (sends a
    /// head with a body announced, never the body: only with `--unsafe`).
    LengthRequired,
    /// `If-Match` with a tag the resource does not have: 412.
    PreconditionFailed,
    /// A declared `Content-Length` of 1 TiB: 413 before the body is read (`--unsafe`).
    TooLarge,
    /// A request target longer than any server takes: 414.
    UriTooLong,
    /// A range past the end of a resource that advertises ranges: 416 with
    /// `Content-Range: bytes */LENGTH`.
    RangeNotSatisfiable,
    /// A body of a media type nobody takes: 415 with `Accept` when the path says what it
    /// consumes (`--unsafe`).
    UnsupportedMedia,
    /// `Expect` with anything but `100-continue`: 417.
    Expectation,
    /// A burst on the first known path until a limit answers: 429 with `Retry-After`
    /// (`--unsafe`).
    TooMany,
    /// A method no server implements: 501.
    UnknownMethod,
    /// `HTTP/2.0` and `HTTP/3.1` request lines: 505.
    Version,
    /// Every 503 seen carried `Retry-After` (the contract's temporary kinds do; a disabled
    /// API's does not, which cannot be told from outside).
    Unavailable,
    /// Every error the target generated above has one JSON envelope and `X-Request-Id`.
    Envelope,
}

impl Row {
    /// Every row, in the contract's order (the envelope, which spans rows, last).
    pub const ALL: [Row; 24] = [
        Row::Continue,
        Row::Switching,
        Row::Options,
        Row::Partial,
        Row::Versions,
        Row::NotModified,
        Row::Malformed,
        Row::Smuggling,
        Row::NotFound,
        Row::MethodNotAllowed,
        Row::NotAcceptable,
        Row::RequestTimeout,
        Row::LengthRequired,
        Row::PreconditionFailed,
        Row::TooLarge,
        Row::UriTooLong,
        Row::UnsupportedMedia,
        Row::RangeNotSatisfiable,
        Row::Expectation,
        Row::TooMany,
        Row::UnknownMethod,
        Row::Version,
        Row::Unavailable,
        Row::Envelope,
    ];

    /// The contract row it judges (0 for the envelope, which every error row shares).
    pub fn code(self) -> u16 {
        match self {
            Row::Continue => 100,
            Row::Switching => 101,
            Row::Versions => 300,
            Row::TooMany => 429,
            Row::Options => 204,
            Row::Partial => 206,
            Row::NotModified => 304,
            Row::Malformed | Row::Smuggling => 400,
            Row::NotFound => 404,
            Row::MethodNotAllowed => 405,
            Row::NotAcceptable => 406,
            Row::RequestTimeout => 408,
            Row::LengthRequired => 411,
            Row::PreconditionFailed => 412,
            Row::TooLarge => 413,
            Row::UriTooLong => 414,
            Row::UnsupportedMedia => 415,
            Row::RangeNotSatisfiable => 416,
            Row::Expectation => 417,
            Row::UnknownMethod => 501,
            Row::Version => 505,
            Row::Unavailable => 503,
            Row::Envelope => 0,
        }
    }

    /// What it checks, in reports.
    pub fn check(self) -> &'static str {
        match self {
            Row::Continue => "a refused head with Expect: 100-continue gets its error, not 100",
            Row::Switching => "a WebSocket handshake is 101 with Sec-WebSocket-Accept",
            Row::Versions => "the root of a versioned API is 300 with Location",
            Row::TooMany => "a burst past a limit is 429 with Retry-After",
            Row::Options => "OPTIONS on a known path is 204 with Allow",
            Row::Partial => "Range on a resource with Accept-Ranges is 206 with Content-Range",
            Row::NotModified => "If-None-Match with the resource's own validator is 304",
            Row::NotAcceptable => "an Accept nothing matches is 406 listing what is available",
            Row::RequestTimeout => "a head that never ends is 408 with Connection: close",
            Row::PreconditionFailed => "If-Match with a tag the resource lacks is 412",
            Row::LengthRequired => "a chunked body where a length is required is 411",
            Row::TooLarge => "a declared 1 TiB body is 413 before it is read",
            Row::UnsupportedMedia => "a body of a media type nobody takes is 415 with Accept",
            Row::RangeNotSatisfiable => "a range past the end is 416 with Content-Range",
            Row::Malformed => "a malformed request line or header field is 400",
            Row::Smuggling => "CL+TE, conflicting Content-Length and obs-fold are refused (400)",
            Row::NotFound => "a path that does not exist is 404",
            Row::MethodNotAllowed => "a method a known path does not take is 405 with Allow",
            Row::UriTooLong => "a 16 KiB request target is 414",
            Row::Expectation => "an Expect other than 100-continue is 417",
            Row::UnknownMethod => "an unknown method is 501",
            Row::Version => "HTTP/2.0 and HTTP/3.1 request lines are 505",
            Row::Unavailable => "a 503 carries Retry-After",
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
    tls: Option<Tls>,
    sent: u32,
    /// The error answers seen, with the request that got each, for the envelope check.
    errors: Vec<(String, Answer)>,
    /// The `Allow` a known path gave to OPTIONS.
    allow: Option<String>,
    /// The first known path that has a validator, once looked for.
    resource: Option<Option<Resource>>,
    /// Every 503 answered, with its request.
    unavailable: Vec<(String, Answer)>,
    /// Nothing is sent before this: a `Retry-After` asked for quiet.
    quiet_until: Option<tokio::time::Instant>,
    /// Nothing more is sent: a `Retry-After` asked for longer than `--timeout`.
    stopped: Option<String>,
}

/// A known path's representation, as a plain GET showed it.
#[derive(Clone, Debug)]
struct Resource {
    path: String,
    etag: Option<String>,
    last_modified: Option<String>,
    ranges: bool,
    length: Option<u64>,
}

/// A row's exchange: the request sent, and what came back.
type Sent = (String, Result<Answer, String>);

impl<'a> Prober<'a> {
    pub(crate) fn new(opts: &'a Options, tls: Option<Tls>) -> Prober<'a> {
        Prober {
            opts,
            tls,
            sent: 0,
            errors: Vec::new(),
            allow: None,
            resource: None,
            unavailable: Vec::new(),
            quiet_until: None,
            stopped: None,
        }
    }

    /// Whether anything listens at the target (a connection, and a TLS handshake for
    /// `https://`; no request).
    pub(crate) async fn reachable(&self) -> Result<(), Unprobeable> {
        let addr = &self.opts.base.addr;
        reach(addr, self.tls.as_ref(), self.opts.timeout)
            .await
            .map_err(|e| Unprobeable(format!("cannot connect to {addr}: {e}")))
    }

    /// Judges every row asked for, telling `progress` (rows done, rows in all) after each.
    pub(crate) async fn run(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Vec<Verdict> {
        let rows: Vec<Row> = Row::ALL
            .into_iter()
            .filter(|r| self.opts.rows.is_empty() || self.opts.rows.contains(&r.code()))
            .collect();
        let planned = match &self.opts.openapi {
            Some(spec) => crate::operations::plan(
                &spec.operations,
                &self.opts.base.base_path,
                self.opts.unsafe_probes,
            )
            .into_iter()
            .filter(|p| self.opts.rows.is_empty() || self.opts.rows.contains(&p.code))
            .collect(),
            None => Vec::new(),
        };
        let total = rows.len() + planned.len();
        let mut out = Vec::with_capacity(total);
        // The per-operation rows go before the envelope, which judges their errors too.
        let (before, envelope): (Vec<Row>, Vec<Row>) =
            rows.iter().partition(|r| **r != Row::Envelope);
        for row in before {
            out.push(self.judge(row).await);
            progress(out.len(), total);
        }
        for p in planned {
            out.push(self.operation(p).await);
            progress(out.len(), total);
        }
        for row in envelope {
            out.push(self.judge(row).await);
            progress(out.len(), total);
        }
        out
    }

    /// A per-operation row (`--openapi`).
    async fn operation(&mut self, p: crate::operations::Planned) -> Verdict {
        let check = match p.code {
            405 => "per operation: a method the path does not take is 405 with Allow",
            400 => "per operation: a parameter its schema refuses is 400",
            415 => "per operation: a media type the body does not take is 415",
            _ => "per operation: a JSON body its schema refuses is 422",
        };
        let line = format!("{} {} HTTP/1.1", p.method, p.target);
        let mut req = self.head(&line, &p.fields);
        if let Some(body) = &p.body {
            req.push_str(body);
        }
        let sent = self.send(req).await;
        let verdict = |outcome, why: String| Verdict {
            code: p.code,
            check,
            outcome,
            why: format!("{}: {why}", p.about),
            request: Some(printable(&sent.0)),
            response: sent.1.as_ref().ok().map(|a| a.head.clone()),
        };
        match &sent.1 {
            Err(why) => verdict(Outcome::Unknown, why.clone()),
            Ok(a) if a.status != p.code => verdict(
                Outcome::Fail,
                format!(
                    "answered {} where the document makes it {}",
                    a.status, p.code
                ),
            ),
            Ok(a) if p.code == 405 && a.field("allow").is_none() => {
                verdict(Outcome::Fail, "405 without Allow".into())
            }
            Ok(_) => verdict(Outcome::Pass, format!("answered {}", p.code)),
        }
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

    /// A 429 or 503 with `Retry-After`: the next request waits that long when it is within
    /// `--timeout`; a longer wait ends the probing (the rows left are `unknown`).
    fn honour(&mut self, a: &Answer) {
        if !matches!(a.status, 429 | 503) {
            return;
        }
        let Some(secs) = a
            .field("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return;
        };
        let wait = std::time::Duration::from_secs(secs);
        if wait <= self.opts.timeout {
            self.quiet_until = Some(tokio::time::Instant::now() + wait);
        } else {
            self.stopped = Some(format!(
                "not asked: the target asked for {secs} s of quiet (Retry-After on a {}), longer than --timeout",
                a.status
            ));
        }
    }

    /// Sends a request the front door decides (its framing, its method, its route): an
    /// error it answers is the gateway's own, held to the envelope.
    async fn send(&mut self, request: String) -> Sent {
        let timeout = self.opts.timeout;
        self.send_waiting(request, timeout).await
    }

    /// Sends a request about a resource (its validators, its ranges, what it produces, a
    /// burst of GETs): the answer may be the origin's, relayed as it is, so it is not held to
    /// the envelope.
    async fn send_to_resource(&mut self, request: String) -> Sent {
        let timeout = self.opts.timeout;
        self.exchange(request, timeout, false).await
    }

    async fn send_waiting(&mut self, request: String, timeout: std::time::Duration) -> Sent {
        self.exchange(request, timeout, true).await
    }

    async fn exchange(
        &mut self,
        request: String,
        timeout: std::time::Duration,
        front_door: bool,
    ) -> Sent {
        if self.sent >= self.opts.max_requests {
            return (
                request,
                Err("the request budget (--max-requests) is spent".into()),
            );
        }
        if let Some(why) = &self.stopped {
            return (request, Err(why.clone()));
        }
        // Honour the last Retry-After (never longer than --timeout: see below).
        if let Some(until) = self.quiet_until.take() {
            tokio::time::sleep_until(until).await;
        }
        self.sent += 1;
        let answer = if self.opts.http2 || self.opts.base.http2 {
            match H2Request::from_http1(&request) {
                Some(r) => {
                    let scheme = if self.opts.base.tls { "https" } else { "http" };
                    exchange_h2(&self.opts.base.addr, self.tls.as_ref(), scheme, &r, timeout)
                        .await
                        .map_err(|e: NoAnswer| e.to_string())
                }
                None => Err("about HTTP/1.1 framing: not sent over HTTP/2".to_string()),
            }
        } else {
            exchange(
                &self.opts.base.addr,
                self.tls.as_ref(),
                request.as_bytes(),
                timeout,
            )
            .await
            .map_err(|e: NoAnswer| e.to_string())
        };
        if let Ok(a) = &answer {
            if a.status >= 400 && front_door {
                self.errors.push((request.clone(), a.clone()));
            }
            if a.status == 503 {
                self.unavailable.push((request.clone(), a.clone()));
            }
            self.honour(a);
        }
        (request, answer)
    }

    async fn judge(&mut self, row: Row) -> Verdict {
        let verdict =
            |outcome, why: String, sent: Option<&Sent>| verdict_of(row, outcome, why, sent);
        // Rows about HTTP/1.1's own framing, `Expect` and upgrades have no HTTP/2 form.
        if (self.opts.http2 || self.opts.base.http2)
            && matches!(
                row,
                Row::Continue
                    | Row::Switching
                    | Row::Malformed
                    | Row::Smuggling
                    | Row::RequestTimeout
                    | Row::LengthRequired
                    | Row::Expectation
                    | Row::Version
            )
        {
            return verdict(
                Outcome::NotApplicable,
                "about HTTP/1.1 framing, Expect or Upgrade: not probed over HTTP/2".into(),
                None,
            );
        }
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
            Row::Unavailable => return self.unavailable(),
            Row::Continue => {
                let missing = format!("/portico-probe-{:016x}-missing", fastrand::u64(..));
                let req = self.head(
                    &format!("GET {} HTTP/1.1", self.path(&missing)),
                    "Content-Length: 16\r\nExpect: 100-continue\r\n",
                );
                let sent = self.send(req).await;
                return match &sent.1 {
                    Err(why) => verdict(Outcome::Unknown, why.clone(), Some(&sent)),
                    Ok(a) if a.status == 100 => verdict(
                        Outcome::Fail,
                        "100 Continue before the head was judged (the path does not exist)".into(),
                        Some(&sent),
                    ),
                    Ok(a) if a.status >= 400 => verdict(
                        Outcome::Pass,
                        format!("{} at once, the body never asked for", a.status),
                        Some(&sent),
                    ),
                    Ok(a) => verdict(
                        Outcome::Fail,
                        format!("answered {} to a path that does not exist", a.status),
                        Some(&sent),
                    ),
                };
            }
            Row::NotAcceptable => return self.not_acceptable().await,
            Row::RequestTimeout => {
                let req = format!(
                    "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n",
                    self.path("/"),
                    self.opts.base.host
                );
                let sent = self.send_waiting(req, self.opts.timeout * 3).await;
                return match &sent.1 {
                    Err(why) => verdict(Outcome::Unknown, why.clone(), Some(&sent)),
                    Ok(a) if a.status != 408 => verdict(
                        Outcome::Fail,
                        format!("answered {} where the contract says 408", a.status),
                        Some(&sent),
                    ),
                    Ok(a)
                        if !a
                            .field("connection")
                            .is_some_and(|c| c.eq_ignore_ascii_case("close")) =>
                    {
                        verdict(
                            Outcome::Fail,
                            "408 without Connection: close".into(),
                            Some(&sent),
                        )
                    }
                    Ok(_) => verdict(
                        Outcome::Pass,
                        "408 with Connection: close".into(),
                        Some(&sent),
                    ),
                };
            }
            Row::Partial
            | Row::NotModified
            | Row::PreconditionFailed
            | Row::RangeNotSatisfiable => {
                return self.conditional(row).await;
            }
            Row::LengthRequired | Row::TooLarge | Row::UnsupportedMedia => {
                return self.body_row(row).await;
            }
            Row::Switching => return self.switching().await,
            Row::Versions => return self.versions().await,
            Row::TooMany => return self.burst().await,
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

    /// 406 on the first known path that answers it; not applicable when every path answers
    /// 2xx whatever `Accept` says (it declares nothing it produces).
    async fn not_acceptable(&mut self) -> Verdict {
        let row = Row::NotAcceptable;
        let verdict =
            |outcome, why: String, sent: Option<&Sent>| verdict_of(row, outcome, why, sent);
        if self.opts.paths.is_empty() {
            return verdict(
                Outcome::NotApplicable,
                "no known path was given (--path)".into(),
                None,
            );
        }
        let mut last = None;
        for p in self.opts.paths.clone() {
            let req = self.head(
                &format!("GET {p} HTTP/1.1"),
                "Accept: application/x-portico-probe-nothing\r\n",
            );
            let sent = self.send_to_resource(req).await;
            match &sent.1 {
                Err(why) => return verdict(Outcome::Unknown, why.clone(), Some(&sent)),
                Ok(a) if a.status == 406 => {
                    let body: Option<serde_json::Value> = serde_json::from_slice(&a.body).ok();
                    return if body.as_ref().and_then(|b| b.get("available")).is_some() {
                        verdict(
                            Outcome::Pass,
                            "406, listing what is available".into(),
                            Some(&sent),
                        )
                    } else {
                        verdict(
                            Outcome::Fail,
                            "406 without `available` in its body".into(),
                            Some(&sent),
                        )
                    };
                }
                Ok(a) if (200..300).contains(&a.status) || a.status == 404 => {}
                Ok(a) => {
                    return verdict(
                        Outcome::Fail,
                        format!("answered {} where the contract says 406", a.status),
                        Some(&sent),
                    );
                }
            }
            last = Some(sent);
        }
        verdict(
            Outcome::NotApplicable,
            "no path given declares what it produces (each answered whatever Accept said)".into(),
            last.as_ref(),
        )
    }

    /// 411, 413 and 415: a head that announces a body on a known path that takes one (its
    /// `Allow` lists POST, PUT or PATCH), with `Expect: 100-continue`; the body is never sent.
    /// A `100 Continue` means the server would read it: for 413 a failure (it would take a
    /// terabyte), for 411 and 415 a sign the path takes chunked bodies or any media type
    /// (not applicable). Another refusal (401, 403, 429) came first and says nothing of the
    /// row.
    async fn body_row(&mut self, row: Row) -> Verdict {
        let verdict =
            |outcome, why: String, sent: Option<&Sent>| verdict_of(row, outcome, why, sent);
        if !self.opts.unsafe_probes {
            return verdict(
                Outcome::NotApplicable,
                "announces a request body: only with --unsafe".into(),
                None,
            );
        }
        let (Some(path), Some(allow)) = (self.opts.paths.first().cloned(), self.allow.clone())
        else {
            return verdict(
                Outcome::NotApplicable,
                "no known path with an Allow (--path, and its OPTIONS)".into(),
                None,
            );
        };
        let allow = allow.to_ascii_uppercase();
        let Some(method) = ["POST", "PUT", "PATCH"]
            .into_iter()
            .find(|m| allow.split(',').any(|a| a.trim() == *m))
        else {
            return verdict(
                Outcome::NotApplicable,
                format!("the path takes no body (Allow: {allow})"),
                None,
            );
        };
        let fields = match row {
            Row::LengthRequired => {
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            }
            Row::TooLarge => "Content-Type: application/json\r\nContent-Length: 1099511627776\r\n",
            _ => "Content-Type: application/x-portico-probe\r\nContent-Length: 16\r\n",
        };
        let req = self.head(
            &format!("{method} {path} HTTP/1.1"),
            &format!("{fields}Expect: 100-continue\r\n"),
        );
        let sent = self.send(req).await;
        let want = row.code();
        match &sent.1 {
            Err(why) => verdict(Outcome::Unknown, why.clone(), Some(&sent)),
            Ok(a) if a.status == want => {
                if row == Row::UnsupportedMedia && a.field("accept").is_none() {
                    verdict(Outcome::Fail, "415 without Accept".into(), Some(&sent))
                } else {
                    verdict(
                        Outcome::Pass,
                        format!("answered {want}, the body never read"),
                        Some(&sent),
                    )
                }
            }
            Ok(a) if a.status == 100 || (200..300).contains(&a.status) => match row {
                Row::TooLarge => verdict(
                    Outcome::Fail,
                    format!("answered {} to a declared 1 TiB body", a.status),
                    Some(&sent),
                ),
                Row::LengthRequired => verdict(
                    Outcome::NotApplicable,
                    "the path takes chunked bodies".into(),
                    Some(&sent),
                ),
                _ => verdict(
                    Outcome::NotApplicable,
                    "the path takes any media type".into(),
                    Some(&sent),
                ),
            },
            Ok(a) => verdict(
                Outcome::NotApplicable,
                format!("refused with {} before the row could be judged", a.status),
                Some(&sent),
            ),
        }
    }

    /// 101: a WebSocket handshake on the `--websocket` path.
    async fn switching(&mut self) -> Verdict {
        let row = Row::Switching;
        let verdict =
            |outcome, why: String, sent: Option<&Sent>| verdict_of(row, outcome, why, sent);
        let Some(p) = self.opts.websocket.clone() else {
            return verdict(
                Outcome::NotApplicable,
                "no WebSocket path was given (--websocket)".into(),
                None,
            );
        };
        let req = self.head(
            &format!("GET {p} HTTP/1.1"),
            "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        );
        // A handshake names `Upgrade` in `Connection`, not `close`.
        let req = req.replacen("Connection: close\r\n", "Connection: Upgrade\r\n", 1);
        let sent = self.send(req).await;
        match &sent.1 {
            Err(why) => verdict(Outcome::Unknown, why.clone(), Some(&sent)),
            Ok(a) if a.status != 101 => verdict(
                Outcome::Fail,
                format!("answered {} to a WebSocket handshake", a.status),
                Some(&sent),
            ),
            Ok(a)
                if !a
                    .field("upgrade")
                    .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
                    || a.field("sec-websocket-accept").is_none() =>
            {
                verdict(
                    Outcome::Fail,
                    "101 without Upgrade: websocket and Sec-WebSocket-Accept".into(),
                    Some(&sent),
                )
            }
            Ok(_) => verdict(Outcome::Pass, "answered 101".into(), Some(&sent)),
        }
    }

    /// 300: `GET` of the `--api-root`.
    async fn versions(&mut self) -> Verdict {
        let row = Row::Versions;
        let verdict =
            |outcome, why: String, sent: Option<&Sent>| verdict_of(row, outcome, why, sent);
        let Some(p) = self.opts.api_root.clone() else {
            return verdict(
                Outcome::NotApplicable,
                "no API root was given (--api-root)".into(),
                None,
            );
        };
        let req = self.head(&format!("GET {p} HTTP/1.1"), "");
        let sent = self.send(req).await;
        match &sent.1 {
            Err(why) => verdict(Outcome::Unknown, why.clone(), Some(&sent)),
            Ok(a) if a.status == 300 && a.field("location").is_some() => verdict(
                Outcome::Pass,
                "answered 300 with Location".into(),
                Some(&sent),
            ),
            Ok(a) if a.status == 300 => {
                verdict(Outcome::Fail, "300 without Location".into(), Some(&sent))
            }
            Ok(a) => verdict(
                Outcome::Fail,
                format!("answered {} where the contract says 300", a.status),
                Some(&sent),
            ),
        }
    }

    /// 429: GETs of the first known path, one after another, until one is 429 (then it
    /// stops: its `Retry-After` is honoured by not asking again), at most half of what is
    /// left of the budget. Not applicable when no limit answers within that.
    async fn burst(&mut self) -> Verdict {
        let row = Row::TooMany;
        let verdict =
            |outcome, why: String, sent: Option<&Sent>| verdict_of(row, outcome, why, sent);
        if !self.opts.unsafe_probes {
            return verdict(
                Outcome::NotApplicable,
                "sends a burst of requests: only with --unsafe".into(),
                None,
            );
        }
        let Some(p) = self.opts.paths.first().cloned() else {
            return verdict(
                Outcome::NotApplicable,
                "no known path was given (--path)".into(),
                None,
            );
        };
        let room = self.opts.max_requests.saturating_sub(self.sent) / 2;
        let mut last = None;
        for _ in 0..room {
            let req = self.head(&format!("GET {p} HTTP/1.1"), "");
            let sent = self.send_to_resource(req).await;
            match &sent.1 {
                Err(why) => return verdict(Outcome::Unknown, why.clone(), Some(&sent)),
                Ok(a) if a.status == 429 => {
                    let retry = a
                        .field("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    return match retry {
                        Some(s) if s >= 1 => verdict(
                            Outcome::Pass,
                            format!("429 with Retry-After: {s}"),
                            Some(&sent),
                        ),
                        _ => verdict(
                            Outcome::Fail,
                            "429 without a Retry-After of whole seconds".into(),
                            Some(&sent),
                        ),
                    };
                }
                Ok(_) => {}
            }
            last = Some(sent);
        }
        verdict(
            Outcome::NotApplicable,
            format!("no limit answered within {room} requests"),
            last.as_ref(),
        )
    }

    /// The first known path whose GET shows a validator, looked for once.
    async fn resource(&mut self) -> Option<Resource> {
        if let Some(r) = &self.resource {
            return r.clone();
        }
        let mut found = None;
        for p in self.opts.paths.clone() {
            let req = self.head(&format!("GET {p} HTTP/1.1"), "");
            if let (_, Ok(a)) = self.send_to_resource(req).await
                && a.status == 200
            {
                let r = Resource {
                    path: p,
                    etag: a.field("etag").map(str::to_string),
                    last_modified: a.field("last-modified").map(str::to_string),
                    ranges: a
                        .field("accept-ranges")
                        .is_some_and(|v| v.eq_ignore_ascii_case("bytes")),
                    length: a
                        .field("content-length")
                        .and_then(|v| v.trim().parse().ok()),
                };
                if r.etag.is_some() || r.last_modified.is_some() || r.ranges {
                    found = Some(r);
                    break;
                }
            }
        }
        self.resource = Some(found.clone());
        found
    }

    /// 304 and 412 from the resource's validators, 206 and 416 from its ranges.
    async fn conditional(&mut self, row: Row) -> Verdict {
        let verdict =
            |outcome, why: String, sent: Option<&Sent>| verdict_of(row, outcome, why, sent);
        let Some(r) = self.resource().await else {
            return verdict(
                Outcome::NotApplicable,
                "no path given shows a validator or Accept-Ranges (--path)".into(),
                None,
            );
        };
        let extra = match row {
            Row::NotModified => match (&r.etag, &r.last_modified) {
                (Some(e), _) => format!("If-None-Match: {e}\r\n"),
                (None, Some(lm)) => format!("If-Modified-Since: {lm}\r\n"),
                (None, None) => {
                    return verdict(
                        Outcome::NotApplicable,
                        "the resource has no validator".into(),
                        None,
                    );
                }
            },
            Row::PreconditionFailed => {
                if r.etag.is_none() && r.last_modified.is_none() {
                    return verdict(
                        Outcome::NotApplicable,
                        "the resource has no validator".into(),
                        None,
                    );
                }
                "If-Match: \"portico-probe-no-such-tag\"\r\n".to_string()
            }
            Row::Partial | Row::RangeNotSatisfiable if !r.ranges => {
                return verdict(
                    Outcome::NotApplicable,
                    "the resource does not advertise Accept-Ranges: bytes".into(),
                    None,
                );
            }
            Row::Partial => "Range: bytes=0-0\r\n".to_string(),
            _ => match r.length {
                Some(n) => format!("Range: bytes={}-\r\n", n + 1000),
                None => {
                    return verdict(
                        Outcome::NotApplicable,
                        "the resource's length is not known".into(),
                        None,
                    );
                }
            },
        };
        let req = self.head(&format!("GET {} HTTP/1.1", r.path), &extra);
        let sent = self.send_to_resource(req).await;
        let want = row.code();
        let a = match &sent.1 {
            Err(why) => return verdict(Outcome::Unknown, why.clone(), Some(&sent)),
            Ok(a) => a,
        };
        if a.status != want {
            return verdict(
                Outcome::Fail,
                format!("answered {} where the contract says {want}", a.status),
                Some(&sent),
            );
        }
        let problem = match row {
            Row::Partial if a.field("content-range").is_none() => Some("206 without Content-Range"),
            Row::RangeNotSatisfiable
                if !a
                    .field("content-range")
                    .is_some_and(|v| v.starts_with("bytes */")) =>
            {
                Some("416 without Content-Range: bytes */LENGTH")
            }
            Row::NotModified if r.etag.is_some() && a.field("etag").is_none() => {
                Some("304 without the ETag a 200 would carry")
            }
            _ => None,
        };
        match problem {
            Some(p) => verdict(Outcome::Fail, p.into(), Some(&sent)),
            None => verdict(Outcome::Pass, format!("answered {want}"), Some(&sent)),
        }
    }

    /// The 503s seen so far: each with `Retry-After`.
    fn unavailable(&self) -> Verdict {
        let row = Row::Unavailable;
        let evidence = |sent: &(String, Answer)| Verdict {
            code: row.code(),
            check: row.check(),
            outcome: Outcome::Pass,
            why: String::new(),
            request: Some(printable(&sent.0)),
            response: Some(sent.1.head.clone()),
        };
        match self
            .unavailable
            .iter()
            .find(|(_, a)| a.field("retry-after").is_none())
        {
            Some(sent) => Verdict {
                outcome: Outcome::Unknown,
                why: "a 503 without Retry-After: right only for a disabled API (do not retry \
                      unchanged), which cannot be told from outside"
                    .into(),
                ..evidence(sent)
            },
            None => match self.unavailable.last() {
                Some(sent) => Verdict {
                    why: format!("{} 503s, each with Retry-After", self.unavailable.len()),
                    ..evidence(sent)
                },
                None => verdict_of(row, Outcome::NotApplicable, "no 503 was seen".into(), None),
            },
        }
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

/// A row's verdict, with the exchange that decided it as evidence.
fn verdict_of(row: Row, outcome: Outcome, why: String, sent: Option<&Sent>) -> Verdict {
    Verdict {
        code: row.code(),
        check: row.check(),
        outcome,
        why,
        request: sent.map(|(r, _)| printable(r)),
        response: sent.and_then(|(_, a)| a.as_ref().ok().map(|a| a.head.clone())),
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
