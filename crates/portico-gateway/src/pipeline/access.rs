//! The access phase (who calls, and whether it may: `crate::access`), and the check a
//! signature that covers the body leaves for once the body has been read.

use std::time::SystemTime;

use portico_config::AuthScheme;
use portico_http::ErrorCode;
use portico_server::{Error, Request, RequestBody};

use super::{Ctx, Flow};
use crate::Gateway;
use crate::tokens::{self, StoredGrant};

/// Whether there is anything to check: a route that asks something of its callers, or one
/// whose URL names a project (whose billing state then applies).
pub(super) fn applies(cx: &Ctx<'_>) -> bool {
    !cx.route.access.is_open() || cx.project.is_some()
}

/// Who calls, before anything is read or sent on: 401, 402 or 403 when it may not.
pub(super) async fn run(gw: &Gateway, cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let access = &cx.route.access;
    let token = if access.schemes.contains(&AuthScheme::Token) {
        lookup_token(gw, cx.req).await
    } else {
        None
    };
    let verdict = gw.directory.check(
        access,
        cx.req,
        cx.project,
        cx.path,
        token,
        SystemTime::now(),
    )?;
    cx.caller = verdict.caller;
    cx.body_check = verdict.body;
    cx.quota = verdict.quota;
    cx.plan = verdict.plan;
    Ok(Flow::Next)
}

/// A signature that covers the body: the body is read (within the buffer budget) and checked
/// before any of it goes anywhere, and held until it has been sent on.
pub(super) async fn signature(
    gw: &Gateway,
    cx: &mut Ctx<'_>,
    body: &mut RequestBody<'_>,
) -> Result<Flow, Error> {
    let Some(check) = cx.body_check.take() else {
        return Ok(Flow::Next);
    };
    cx.reservation = Some(body.buffer(&gw.budget).await?);
    check
        .check(cx.req, body.buffered().map(|b| &b[..]), SystemTime::now())
        .map_err(|e| gw.directory.failed(&cx.route.access, cx.req.peer.ip(), e))?;
    Ok(Flow::Next)
}

/// What the token store holds for the request's `X-Auth-Token`, if it has one.
async fn lookup_token(gw: &Gateway, req: &Request) -> Option<Result<Option<StoredGrant>, Error>> {
    let mut values = req.head.fields_named("x-auth-token");
    let first = values.next()?;
    let token = first.trim_ascii();
    if values.next().is_some() || token.is_empty() || token.len() > 512 {
        return Some(Err(Error::new(ErrorCode::CredentialsMalformed)));
    }
    let digest = tokens::token_digest(token);
    Some(
        gw.tokens
            .get(&digest)
            .await
            .map_err(|e| Error::new(ErrorCode::Internal).with_cause(e)),
    )
}
