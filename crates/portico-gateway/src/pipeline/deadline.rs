//! The client's deadline on a proxied route (`timeout=`, `Timeout:`, cut to the route's
//! `max_timeout`; else the route's `timeout`), read from the head: a value that is not a
//! duration is 400 before anything is read or sent on. It bounds the wait for the upstream's
//! answer (504 when it passes).

use portico_server::Error;

use super::{Ctx, Flow};
use crate::deadline;

pub(super) fn run(cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    if cx.route.upstream().is_none() {
        return Ok(Flow::Next);
    }
    let route = cx.route;
    cx.deadline = deadline::of(cx.req, &route.deadline, route.async_jobs.is_none())?;
    Ok(Flow::Next)
}
