//! The route's answer, once every phase has let the request through: its upstream (a
//! WebSocket relay, a job, or the request forwarded under its deadline), a built-in handler,
//! a redirect, 305, a job's state or result; or an embedder's handler, which the pipeline
//! hands the request to.

use portico_http::BodyFraming;
use portico_http::upgrade::{check_handshake, is_websocket_upgrade};
use portico_server::{Error, RequestBody, Response};
use portico_telemetry::SpanKind;

use super::{Answered, Ctx, Next};
use crate::route::Answer;
use crate::{Gateway, echo, jobs, proxy, tokens, websocket};

pub(super) async fn run(gw: &Gateway, cx: &mut Ctx<'_>, body: &mut RequestBody<'_>) -> Answered {
    let (req, route) = (cx.req, cx.route);
    let resp = match &route.answer {
        Answer::Upstream(u) => upstream(gw, cx, *u, body).await,
        Answer::Echo => {
            echo::echo(
                req,
                cx.caller.as_ref(),
                &route.name,
                cx.path,
                &cx.params,
                body,
            )
            .await
        }
        Answer::Static(files, catch_all) => {
            files.serve(req, cx.param(catch_all).unwrap_or("")).await
        }
        Answer::Redirect(r) => {
            let query = req.head.query().and_then(|q| std::str::from_utf8(q).ok());
            let location = r.location(|name| cx.params.get(name), query);
            Ok(Response::new(r.status).header("Location", location))
        }
        Answer::Tokens(ttl) => tokens::issue(&gw.directory, &*gw.tokens, *ttl, req, body).await,
        Answer::UseProxy(proxy) => Ok(Response::new(305).header("Location", proxy.to_string())),
        Answer::Job { base, result } => {
            let id = cx.param("job_id").unwrap_or("");
            let project = cx.project.unwrap_or_default();
            jobs::answer(&gw.jobs, base, project, id, *result, req).await
        }
        Answer::Custom(handler) => return Ok(Next::Custom(handler.clone())),
    };
    resp.map(Next::Respond)
}

/// A proxied route: a WebSocket handshake relayed, a request that may become a job sent from
/// a task of its own, or the request forwarded under its deadline.
async fn upstream(
    gw: &Gateway,
    cx: &mut Ctx<'_>,
    index: usize,
    body: &mut RequestBody<'_>,
) -> Result<Response, Error> {
    let upstream = &gw.upstreams[index];
    if let Some(idle) = cx.route.websocket
        && is_websocket_upgrade(&cx.req.head)
    {
        // Every phase has passed: now the handshake itself, then the upstream.
        if let Err(problem) = check_handshake(&cx.req.head) {
            return Err(websocket::refused(problem.describe()));
        }
        if cx.req.info.framing != BodyFraming::None {
            return Err(websocket::refused("A WebSocket handshake has no body."));
        }
        let outgoing = outgoing(cx, upstream.authority(), None, None)?;
        let (resp, target) = websocket::upgrade(upstream, outgoing, idle).await?;
        cx.answered_by = Some(target);
        return Ok(resp);
    }
    if let Some(settings) = cx.as_job() {
        let out = jobs::Outgoing {
            request: outgoing(cx, upstream.authority(), None, None)?,
            upstream: upstream.clone(),
            body: body.buffered().cloned().unwrap_or_default(),
            reservation: cx.reservation.take(),
            route: cx.route.name.clone(),
            project: cx.project.map(str::to_string).unwrap_or_default(),
            permits: cx.permits.clone(),
        };
        let prefer =
            portico_http::deadline::prefers_respond_async(cx.req.head.fields_named("prefer"));
        return jobs::run(&gw.jobs, settings, out, prefer).await;
    }
    // Held until the buffered body has been sent on.
    let _held = match cx.reservation.take() {
        Some(r) => Some(r),
        None if cx.route.buffer_body => Some(body.buffer(&gw.budget).await?),
        None => None,
    };
    let span = gw.span(cx.req, "upstream", SpanKind::Client, true);
    let outgoing = outgoing(
        cx,
        upstream.authority(),
        cx.deadline.as_ref(),
        span.as_ref(),
    )?;
    let sent = std::time::Instant::now();
    let forwarded = proxy::forward(upstream, outgoing, body, cx.deadline.as_ref()).await;
    if let Some(span) = span.as_ref().filter(|s| s.recording()) {
        span.set("portico.upstream", upstream.name().to_string());
        match &forwarded {
            Ok((resp, target)) => {
                span.set("server.address", target.to_string());
                span.set("http.response.status_code", i64::from(resp.status));
            }
            Err(e) => span.failed(e.code().as_str()),
        }
    }
    if let Some(series) = gw.upstream_series.get(index) {
        match &forwarded {
            Ok((resp, target)) => series.call(target, status_class(resp.status), sent.elapsed()),
            Err(e) => series.call(&crate::EMPTY, e.code().as_str(), sent.elapsed()),
        }
    }
    let (resp, target) = forwarded?;
    cx.answered_by = Some(target);
    Ok(resp)
}

/// The `outcome` label of an upstream's answer.
fn status_class(status: u16) -> &'static str {
    match status {
        ..200 => "1xx",
        200..300 => "2xx",
        300..400 => "3xx",
        400..500 => "4xx",
        _ => "5xx",
    }
}

/// The request for the upstream, as the phases left it.
fn outgoing(
    cx: &Ctx<'_>,
    authority: &str,
    deadline: Option<&crate::deadline::Deadline>,
    trace: Option<&portico_telemetry::ChildSpan>,
) -> Result<portico_server::client::UpstreamRequest, Error> {
    let path = cx.path.as_bytes();
    let fill = cx.cache.as_ref().and_then(|c| c.fill.as_deref());
    proxy::outgoing(
        cx.req,
        path,
        cx.caller.as_ref(),
        authority,
        deadline,
        fill,
        trace,
    )
}
