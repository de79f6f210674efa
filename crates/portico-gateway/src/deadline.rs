//! A proxied request's deadline: the client's `Timeout` parameter (`Timeout: <seconds>` or
//! `?timeout=<duration>`, the shorter when both are given), cut to the route's `max_timeout`;
//! else the route's `timeout`. When it passes before the upstream's response head arrives the
//! answer is 504 and the upstream request is dropped (its connection closed, or its HTTP/2
//! stream reset), so the upstream can stop working on it.

use std::time::Duration;

use portico_http::ErrorCode;
use portico_http::deadline::{parse_timeout_field, parse_timeout_param, whole_millis};
use portico_server::{Error, Request};
use tokio::time::Instant;

use crate::access::query_param;

/// The query parameter that carries a client's deadline.
pub(crate) const PARAM: &str = "timeout";
/// The field that carries a client's deadline.
pub(crate) const FIELD: &str = "timeout";
/// The field that tells the upstream how long it has, in whole milliseconds.
pub(crate) const REMAINING_FIELD: &str = "X-Portico-Timeout-Ms";

/// When a request must have its upstream's answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    /// The instant it passes.
    pub(crate) at: Instant,
    /// The client's own `timeout=` and `Timeout` go upstream unchanged.
    pub(crate) pass: bool,
}

impl Deadline {
    /// What is left of it now.
    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The remaining time in whole milliseconds, as the upstream is told it.
    pub(crate) fn remaining_millis(&self) -> u64 {
        whole_millis(self.remaining())
    }
}

/// The deadline the client asked for, if it asked (400 when what it wrote is not a duration).
pub(crate) fn requested(req: &Request) -> Result<Option<Duration>, Error> {
    let invalid = || Error::new(ErrorCode::TimeoutInvalid);
    let from_query = match query_param(req.head.query(), PARAM, ErrorCode::TimeoutInvalid)? {
        Some(v) => Some(parse_timeout_param(&v).ok_or_else(invalid)?),
        None => None,
    };
    let mut fields = req.head.fields_named(FIELD);
    let from_field = match (fields.next(), fields.next()) {
        (None, _) => None,
        (Some(v), None) => Some(parse_timeout_field(v).ok_or_else(invalid)?),
        (Some(_), Some(_)) => return Err(invalid()),
    };
    Ok(match (from_query, from_field) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The request's deadline on a route with these settings: the client's, cut to the route's
/// maximum; else the route's default (`None` for a route with none, when `default` applies).
pub(crate) fn of(
    req: &Request,
    route: &portico_config::Deadline,
    default_applies: bool,
) -> Result<Option<Deadline>, Error> {
    let wanted = match requested(req)? {
        Some(d) => Some(route.max.map_or(d, |m| d.min(m))),
        None if default_applies => route.default,
        None => None,
    };
    Ok(wanted.map(|d| Deadline {
        at: Instant::now() + d,
        pass: route.pass,
    }))
}

/// The 504 for a deadline that passed.
pub(crate) fn exceeded() -> Error {
    Error::new(ErrorCode::DeadlineExceeded)
}
