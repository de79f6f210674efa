//! Rate limits (the route's, then the caller's plan's) and concurrency limits, once the
//! caller is known and before anything is read or sent on: 429 with `Retry-After`.

use portico_server::Error;

use super::{Ctx, Flow};
use crate::Gateway;

/// The route's rate limits; their `RateLimit` fields go on whatever the answer is.
pub(super) async fn rate_limits(cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let Some(limits) = &cx.route.limits else {
        return Ok(Flow::Next);
    };
    let (fields, verdict) = limits.check(cx.req, cx.caller.as_ref(), cx.project).await;
    cx.fields.extend(fields);
    verdict.map(|()| Flow::Next)
}

/// Whether the request's project has a plan with rate limits.
pub(super) fn plan_applies(gw: &Gateway, cx: &Ctx<'_>) -> bool {
    cx.plan
        .as_ref()
        .is_some_and(|(_, plan)| gw.plan_limits.contains_key(plan))
}

/// The plan's limits, on every route, for the request's project.
pub(super) async fn plan_limits(gw: &Gateway, cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let Some((project, plan)) = &cx.plan else {
        return Ok(Flow::Next);
    };
    let Some(limits) = gw.plan_limits.get(plan) else {
        return Ok(Flow::Next);
    };
    let (fields, verdict) = limits
        .check(cx.req, cx.caller.as_ref(), Some(project))
        .await;
    cx.fields.extend(fields);
    verdict.map(|()| Flow::Next)
}

/// A place under the route's `max_in_flight`, then under its upstream's.
pub(super) fn concurrency(gw: &Gateway, cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    if let Some(c) = &cx.route.in_flight {
        c.enter(&mut cx.permits)?;
    }
    if let Some(u) = cx.route.upstream()
        && let Some(c) = &gw.upstream_in_flight[u]
    {
        c.enter(&mut cx.permits)?;
    }
    Ok(Flow::Next)
}
