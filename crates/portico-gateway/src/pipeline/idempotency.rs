//! `Idempotency-Key` on a POST or PATCH to a route with `idempotency`: the body is read, then
//! the key claimed (the request goes on holding it), or the kept response replayed, or 409 /
//! 422. Once the request is answered, the response phase keeps the upstream's response for
//! the key's retries (or gives the key up when the request failed).

use portico_server::{Error, RequestBody};

use super::{Answered, Ctx, Flow, Next};
use crate::Gateway;
use crate::idempotency::{self, Outcome};

/// Whether the request may carry a key to claim: a POST or PATCH to a proxied route with
/// `idempotency`.
pub(super) fn applies(cx: &Ctx<'_>) -> bool {
    cx.route.idempotency.is_some()
        && cx.route.upstream().is_some()
        && !cx.req.head.method().is_idempotent()
}

pub(super) async fn claim(
    gw: &Gateway,
    cx: &mut Ctx<'_>,
    body: &mut RequestBody<'_>,
) -> Result<Flow, Error> {
    let Some(settings) = cx.route.idempotency.as_ref().filter(|_| applies(cx)) else {
        return Ok(Flow::Next);
    };
    let Some(key) = idempotency::key_of(cx.req, settings)? else {
        return Ok(Flow::Next);
    };
    if cx.reservation.is_none() {
        cx.reservation = Some(body.buffer(&gw.budget).await?);
    }
    let attempt = idempotency::Attempt {
        route: &cx.route.name,
        settings,
        req: cx.req,
        caller: cx.caller.as_ref(),
        key: &key,
        body: body.buffered(),
        deadline: cx.deadline.as_ref(),
    };
    let claim = idempotency::claim(&*gw.keys, attempt);
    let outcome = crate::timed(gw.metrics.as_deref(), "idempotency_claim", claim).await?;
    match outcome {
        Outcome::Go(c) => {
            cx.claim = Some(c);
            Ok(Flow::Next)
        }
        Outcome::Answer(resp) => {
            if let Some(m) = &gw.metrics {
                m.idempotency("replayed");
            }
            Ok(Flow::Answer(Box::new(resp)))
        }
    }
}

/// The response phase: a claimed key keeps the answer (or is given up on an error).
pub(super) async fn keep(gw: &Gateway, cx: &mut Ctx<'_>, answer: Answered) -> Answered {
    let Some(claim) = cx.claim.take() else {
        return answer;
    };
    match answer {
        Ok(Next::Respond(resp)) => idempotency::settle(&*gw.keys, claim, Ok(resp))
            .await
            .map(Next::Respond),
        Ok(custom @ Next::Custom(_)) => {
            // An embedder's handler answers with a response the pipeline never sees.
            idempotency::give_up(&*gw.keys, &claim).await;
            Ok(custom)
        }
        Err(e) => idempotency::settle(&*gw.keys, claim, Err(e))
            .await
            .map(Next::Respond),
    }
}
