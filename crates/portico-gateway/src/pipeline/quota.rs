//! Every check has passed: the request is the project's to pay for, from its prepaid quota
//! (402 when the period's are spent). A job's state and result were paid for by the request
//! that made the job.

use std::time::SystemTime;

use portico_server::Error;

use super::{Ctx, Flow};
use crate::Gateway;
use crate::route::Answer;

/// Whether the request is the project's to pay for.
pub(super) fn applies(cx: &Ctx<'_>) -> bool {
    cx.quota.is_some() && !matches!(cx.route.answer, Answer::Job { .. })
}

pub(super) async fn run(gw: &Gateway, cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let Some((project, quota)) = cx.quota.as_ref().filter(|_| applies(cx)) else {
        return Ok(Flow::Next);
    };
    let take = gw.quotas.take(project, *quota, SystemTime::now());
    crate::timed(gw.metrics.as_deref(), "quota_take", take).await?;
    Ok(Flow::Next)
}
