//! Routing: the API version's lifecycle (300 on an API's root, 410 retired, 503 in
//! maintenance, `Deprecation`/`Sunset` on the way), the target's form (`CONNECT` → 501,
//! `OPTIONS *` → 204), the route (404), `OPTIONS` on a route's path (204 with `Allow`, or a
//! CORS preflight) and the method (405 with `Allow`). What comes out is the request's
//! context, for the phases.

use std::time::SystemTime;

use portico_config::RouteGroup;
use portico_http::{ErrorCode, Method, MethodSet, TargetForm};
use portico_server::{Error, Permits, Request, Response};

use super::{Ctx, Outcome};
use crate::Gateway;
use crate::lifecycle::Step;

/// Where routing left a request.
// Nearly every request is routed: boxing its context would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(super) enum Routed<'r> {
    /// A route takes it.
    Route(Ctx<'r>),
    /// It is answered now (`OPTIONS`, version discovery).
    Answer(Box<Response>),
}

/// Routes a request whose normalised path is `path`.
pub(super) fn route<'r>(
    gw: &'r Gateway,
    req: &'r Request,
    path: &'r [u8],
    out: &mut Outcome,
) -> Result<Routed<'r>, Error> {
    if !gw.lifecycle.is_empty() {
        match gw
            .lifecycle
            .check(path, req.head.method(), SystemTime::now())?
        {
            Step::Answer(resp) => return Ok(Routed::Answer(resp)),
            Step::Proceed(fields) => out.fields.extend(fields),
        }
    }
    let method = req.head.method();
    match req.head.form() {
        TargetForm::Authority => return Err(Error::new(ErrorCode::ConnectNotSupported)),
        TargetForm::Asterisk => return Ok(Routed::Answer(Box::new(allow(gw.all_methods)))),
        TargetForm::Origin | TargetForm::Absolute => {}
    }
    // The parser admits only visible ASCII in a target, so this cannot fail.
    let path = std::str::from_utf8(path).map_err(|_| Error::new(ErrorCode::TargetCharInvalid))?;
    let matched = gw
        .router
        .at(path)
        .map_err(|_| Error::new(ErrorCode::RouteNotFound))?;
    let group = &gw.groups[*matched.value];
    if method == Method::Options {
        return options(gw, req, group).map(|resp| Routed::Answer(Box::new(resp)));
    }
    let Some(&index) = group
        .routes
        .iter()
        .find(|&&i| gw.routes[i].methods.allows(method))
    else {
        // A gRPC client that reached a gRPC service's path with another method learns it as
        // a gRPC status.
        out.grpc = group.routes.iter().all(|&i| gw.routes[i].grpc);
        return Err(
            Error::new(ErrorCode::MethodNotAllowed).with_allow(group.methods.allow_header())
        );
    };
    out.grpc = gw.routes[index].grpc;
    let params = matched.params;
    Ok(Routed::Route(Ctx {
        req,
        path,
        route: &gw.routes[index],
        project: params.get("project_id"),
        params,
        caller: None,
        body_check: None,
        quota: None,
        plan: None,
        deadline: None,
        reservation: None,
        claim: None,
        permits: Permits::default(),
        fields: Vec::new(),
        answered_by: None,
        cache: None,
    }))
}

/// `OPTIONS` on a route's path: a CORS preflight when it is one and the route that would take
/// the method asked has `cors` (204 with the CORS fields, or 403); else 204 with `Allow`.
fn options(gw: &Gateway, req: &Request, group: &RouteGroup) -> Result<Response, Error> {
    let head = &req.head;
    let (Some(origin), Some(asked)) = (
        head.field("origin"),
        head.field("access-control-request-method"),
    ) else {
        return Ok(allow(group.methods));
    };
    // The policy of the route that would take the method asked; when none would, of any
    // route here that has one (which then refuses the method).
    let routes = || group.routes.iter().map(|&i| &gw.routes[i]);
    let cors = Method::from_bytes(asked)
        .and_then(|m| routes().find(|r| r.methods.allows(m)))
        .and_then(|r| r.access.cors.as_ref())
        .or_else(|| routes().find_map(|r| r.access.cors.as_ref()));
    let Some(cors) = cors else {
        return Ok(allow(group.methods));
    };
    let text = |v: &[u8]| std::str::from_utf8(v).ok().map(str::to_string);
    let headers = head
        .field("access-control-request-headers")
        .and_then(text)
        .unwrap_or_default();
    match (text(origin), text(asked)) {
        (Some(origin), Some(asked)) => match cors.preflight(&origin, &asked, &headers) {
            Some(fields) => Ok(fields
                .into_iter()
                .fold(Response::new(204), |r, (n, v)| r.header(n, v))),
            None => Err(Error::new(ErrorCode::CorsPreflightDenied)),
        },
        _ => Err(Error::new(ErrorCode::CorsPreflightDenied)),
    }
}

/// 204 with `Allow`.
fn allow(methods: MethodSet) -> Response {
    Response::new(204).header("Allow", methods.allow_header())
}
