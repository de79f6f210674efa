//! A request that may become a job (an async route, no client deadline) is read whole before
//! anything is sent on: its client may be answered before the upstream has read it.

use portico_server::{Error, RequestBody};

use super::{Ctx, Flow};
use crate::Gateway;

/// Whether the request may become a job and its body has not been read whole already.
pub(super) fn applies(cx: &Ctx<'_>) -> bool {
    cx.as_job().is_some() && cx.reservation.is_none()
}

pub(super) async fn job_body(
    gw: &Gateway,
    cx: &mut Ctx<'_>,
    body: &mut RequestBody<'_>,
) -> Result<Flow, Error> {
    if applies(cx) {
        cx.reservation = Some(body.buffer(&gw.budget).await?);
    }
    Ok(Flow::Next)
}
