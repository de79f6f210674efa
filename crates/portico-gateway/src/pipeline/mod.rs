//! The request path, as ordered phases.
//!
//! Routing (`routing.rs`) finds the route; then come the request phases of [`PHASES`] in
//! their order, the route's answer (`answer.rs`), and the response phases of
//! [`RESPONSE_PHASES`]. docs/architecture.md charts them with the codes each can answer (a
//! test keeps its tables equal to these lists).
//!
//! Routing finds the route and builds the request's [`Ctx`]; each phase then reads the
//! request and the route, records what it decided in the context (the caller, the deadline,
//! a claim on an idempotency key, places under concurrency limits) and either lets the
//! request go on or answers it ([`Flow`]). Every phase before `signature` decides from the
//! head alone, so its refusal comes before `100 Continue`, before the body is read and
//! before anything is sent upstream.
//!
//! A new capability is a module here and a line in [`PHASES`] (or [`RESPONSE_PHASES`]):
//! phases are an enum dispatched with a `match`, so the hot path pays no dynamic dispatch
//! and no allocation for running them.

mod access;
mod answer;
pub(crate) mod cache;
mod content;
mod cors;
mod deadline;
mod idempotency;
mod jobs;
mod limits;
mod openapi;
mod quota;
pub(crate) mod responses;
mod routing;

use std::sync::Arc;

use portico_config::Quota;
use portico_server::{Error, Permits, Request, RequestBody, Reservation, Response};
use portico_telemetry::{ChildSpan, RequestSpan, SpanKind};

use crate::access::BodyCheck;
use crate::caller::{Caller, Routing};
use crate::deadline::Deadline;
use crate::route::Route;
use crate::{Gateway, Handler};

/// The request phases, in the order a request meets them.
pub(crate) const PHASES: &[Phase] = &[
    Phase::Cors,
    Phase::Access,
    Phase::RateLimits,
    Phase::PlanLimits,
    Phase::Concurrency,
    Phase::BodyLimits,
    Phase::Content,
    Phase::Parameters,
    Phase::Deadline,
    Phase::Signature,
    Phase::Schema,
    Phase::JobBody,
    Phase::Idempotency,
    Phase::Quota,
    Phase::Cache,
];

/// The response phases, in order: each sees the answer (or the error) and may change it.
pub(crate) const RESPONSE_PHASES: &[ResponsePhase] = &[
    ResponsePhase::ResponseBody,
    ResponsePhase::CacheStore,
    ResponsePhase::KeepIdempotent,
];

/// One request phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A browser's cross-origin request: an origin the route does not allow is refused.
    Cors,
    /// Who calls, and whether it may.
    Access,
    /// The route's rate limits.
    RateLimits,
    /// The rate limits of the caller's plan.
    PlanLimits,
    /// `max_in_flight` of the route and its upstream.
    Concurrency,
    /// What the head says of the body against the route's limits.
    BodyLimits,
    /// What the route consumes and produces.
    Content,
    /// The OpenAPI operation's parameters, and a body it requires.
    Parameters,
    /// The client's deadline.
    Deadline,
    /// A signature that covers the body.
    Signature,
    /// A JSON body against the OpenAPI operation's schema.
    Schema,
    /// The body of a request that may become a job, read whole.
    JobBody,
    /// `Idempotency-Key`: a claim, a replay, or 409 / 422.
    Idempotency,
    /// The project's prepaid quota.
    Quota,
    /// The route's response cache: a stored response answers, or the request fills it.
    Cache,
}

impl Phase {
    /// The phase's name, as the docs' phase chart gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Cors => "cors",
            Phase::Access => "access",
            Phase::RateLimits => "rate_limits",
            Phase::PlanLimits => "plan_limits",
            Phase::Concurrency => "concurrency",
            Phase::BodyLimits => "body_limits",
            Phase::Content => "content",
            Phase::Parameters => "parameters",
            Phase::Deadline => "deadline",
            Phase::Signature => "signature",
            Phase::Schema => "schema",
            Phase::JobBody => "job_body",
            Phase::Idempotency => "idempotency",
            Phase::Quota => "quota",
            Phase::Cache => "cache",
        }
    }

    /// The phase's decision when it needs no waiting: a phase that reads only the head, or
    /// one with nothing to do for this request. `None` when it must wait (on a store, on the
    /// body); then [`Phase::wait`] decides. On the hot path most phases end here, without a
    /// future being built for them.
    fn decide_now(
        self,
        gw: &Gateway,
        cx: &mut Ctx<'_>,
        body: &mut RequestBody<'_>,
    ) -> Option<Result<Flow, Error>> {
        let waits = match self {
            Phase::Cors => return Some(cors::run(cx)),
            Phase::Concurrency => return Some(limits::concurrency(gw, cx)),
            Phase::BodyLimits => return Some(content::body_limits(cx, body)),
            Phase::Content => return Some(content::media_types(cx)),
            Phase::Parameters => return Some(openapi::parameters(cx)),
            Phase::Deadline => return Some(deadline::run(cx)),
            Phase::Access => access::applies(cx),
            Phase::RateLimits => cx.route.limits.is_some(),
            Phase::PlanLimits => limits::plan_applies(gw, cx),
            Phase::Signature => cx.body_check.is_some(),
            Phase::Schema => openapi::body_applies(cx),
            Phase::JobBody => jobs::applies(cx),
            Phase::Idempotency => idempotency::applies(cx),
            Phase::Quota => quota::applies(cx),
            Phase::Cache => cache::applies(cx),
        };
        (!waits).then_some(Ok(Flow::Next))
    }

    /// The decision of a phase that waits.
    async fn wait(
        self,
        gw: &Gateway,
        cx: &mut Ctx<'_>,
        body: &mut RequestBody<'_>,
    ) -> Result<Flow, Error> {
        match self {
            Phase::Access => access::run(gw, cx).await,
            Phase::RateLimits => limits::rate_limits(cx).await,
            Phase::PlanLimits => limits::plan_limits(gw, cx).await,
            Phase::Signature => access::signature(gw, cx, body).await,
            Phase::Schema => openapi::body(gw, cx, body).await,
            Phase::JobBody => jobs::job_body(gw, cx, body).await,
            Phase::Idempotency => idempotency::claim(gw, cx, body).await,
            Phase::Quota => quota::run(gw, cx).await,
            Phase::Cache => cache::lookup(gw, cx).await,
            // These decide at once (`decide_now`).
            Phase::Cors
            | Phase::Concurrency
            | Phase::BodyLimits
            | Phase::Content
            | Phase::Parameters
            | Phase::Deadline => Ok(Flow::Next),
        }
    }
}

/// One response phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponsePhase {
    /// The upstream's response against the OpenAPI operation (`validate_responses`,
    /// `writeOnly`), then the route's `transform` (203).
    ResponseBody,
    /// The upstream's response taken into the route's cache (and answered from it), stored
    /// responses invalidated by an unsafe method, `Cache-Status`.
    CacheStore,
    /// A claimed `Idempotency-Key`: the upstream's response kept for retries, or the key
    /// given up when the request failed.
    KeepIdempotent,
}

impl ResponsePhase {
    /// The phase's name, as the docs' phase chart gives it.
    #[cfg(test)]
    fn name(self) -> &'static str {
        match self {
            ResponsePhase::ResponseBody => "response_body",
            ResponsePhase::CacheStore => "cache_store",
            ResponsePhase::KeepIdempotent => "keep_idempotent",
        }
    }

    /// Whether the phase has anything to do for this request.
    fn applies(self, cx: &Ctx<'_>) -> bool {
        match self {
            ResponsePhase::ResponseBody => {
                responses::applies(cx) && !cx.cache.as_ref().is_some_and(|c| c.is_hit())
            }
            ResponsePhase::CacheStore => cache::store_applies(cx),
            ResponsePhase::KeepIdempotent => cx.claim.is_some(),
        }
    }

    async fn run(self, gw: &Gateway, cx: &mut Ctx<'_>, answer: Answered) -> Answered {
        match self {
            ResponsePhase::ResponseBody => responses::run(cx, &gw.body_counts, answer).await,
            ResponsePhase::CacheStore => cache::store(gw, cx, answer).await,
            ResponsePhase::KeepIdempotent => idempotency::keep(gw, cx, answer).await,
        }
    }
}

/// What a phase decided.
pub(crate) enum Flow {
    /// The request goes on to the next phase.
    Next,
    /// The request is answered now (a replayed response): rare, so boxed, which keeps every
    /// phase's result small.
    Answer(Box<Response>),
}

/// What the pipeline answered.
// Nearly every request ends with the large variant: boxing it would cost an allocation per
// request to save stack space that the request's future holds anyway.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Next {
    /// This response.
    Respond(Response),
    /// An embedder's handler answers; it takes the request itself.
    Custom(Arc<dyn Handler>),
}

/// The pipeline's answer, or the error that ends the request.
pub(crate) type Answered = Result<Next, Error>;

/// A routed request on its way through the phases: the request (read-only: what the phases
/// decide is kept here), the route that took it, and what the phases decided so far.
pub(crate) struct Ctx<'r> {
    /// The request.
    pub(crate) req: &'r Request,
    /// Its path, dot segments removed.
    pub(crate) path: &'r str,
    /// The route that takes it.
    pub(crate) route: &'r Route,
    /// The path's parameters.
    pub(crate) params: matchit::Params<'r, 'r>,
    /// The URL's `{project_id}`, when the route has one.
    pub(crate) project: Option<&'r str>,
    /// Who called, once the access phase knows.
    pub(crate) caller: Option<Caller>,
    /// What the access phase left to check against the body.
    pub(crate) body_check: Option<BodyCheck>,
    /// The project the request is counted against, and its quota.
    pub(crate) quota: Option<(Arc<str>, Quota)>,
    /// The project the request is for, and its plan's name.
    pub(crate) plan: Option<(Arc<str>, Arc<str>)>,
    /// When the upstream must have answered.
    pub(crate) deadline: Option<Deadline>,
    /// The buffer budget a body read whole takes, held until it has been sent on.
    pub(crate) reservation: Option<Reservation>,
    /// The claim this request holds on its `Idempotency-Key`.
    pub(crate) claim: Option<crate::idempotency::Claim>,
    /// Places under concurrency limits, held until the exchange is over.
    pub(crate) permits: Permits,
    /// Fields for whatever the answer is, errors included (CORS, `RateLimit`).
    pub(crate) fields: Vec<(&'static str, String)>,
    /// The upstream target that answered.
    pub(crate) answered_by: Option<Arc<str>>,
    /// What the cache phase found, when the route caches.
    pub(crate) cache: Option<Box<cache::Lookup>>,
}

impl<'r> Ctx<'r> {
    /// The route's jobs, when this request may become one: an async route, and no client
    /// deadline (which keeps the request synchronous).
    pub(crate) fn as_job(&self) -> Option<&'r portico_config::AsyncJobs> {
        self.route
            .async_jobs
            .as_ref()
            .filter(|_| self.deadline.is_none())
    }

    /// The value of the path parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&'r str> {
        self.params.get(name)
    }
}

/// What survives the pipeline, whatever its answer: the facts the log line reads, what the
/// request holds, and the fields every answer gets.
#[derive(Default)]
pub(crate) struct Outcome {
    route: Option<Arc<str>>,
    series: Option<Arc<portico_telemetry::RouteSeries>>,
    caller: Option<Caller>,
    answered_by: Option<Arc<str>>,
    permits: Permits,
    /// Fields for whatever the answer is, errors included (a deprecated version's headers,
    /// CORS, `RateLimit`).
    pub(crate) fields: Vec<(&'static str, String)>,
    /// The request is a gRPC route's: an error is answered as a gRPC status.
    pub(crate) grpc: bool,
}

impl Outcome {
    /// Keeps what a routed request's phases decided.
    fn keep(&mut self, cx: Ctx<'_>) {
        self.route = Some(cx.route.name.clone());
        self.series = cx.route.series.clone();
        self.caller = cx.caller;
        self.answered_by = cx.answered_by;
        self.permits = cx.permits;
        self.fields.extend(cx.fields);
    }

    /// Attaches the facts to the request (its extensions, read by the log line) and what it
    /// holds (released once the response is written).
    pub(crate) fn attach(&mut self, req: &mut Request) {
        if self.route.is_some() || self.answered_by.is_some() {
            req.extensions.insert(Routing {
                route: self.route.take(),
                upstream: self.answered_by.take(),
                series: self.series.take(),
            });
        }
        if let Some(caller) = self.caller.take() {
            req.extensions.insert(caller);
        }
        req.permits = std::mem::take(&mut self.permits);
    }

    /// The answer with the fields every answer gets.
    pub(crate) fn finish(self, mut result: Result<Response, Error>) -> Result<Response, Error> {
        if let (true, Err(e)) = (self.grpc, &mut result) {
            e.set_grpc();
        }
        if self.fields.is_empty() {
            return result;
        }
        let fields = self.fields.into_iter();
        match result {
            Ok(resp) => Ok(fields.fold(resp, |r, (n, v)| r.header(n, v))),
            Err(e) => Err(fields.fold(e, |e, (n, v)| e.with_header(n, v))),
        }
    }
}

impl Gateway {
    /// A child of the request's span named `name`, when the request is traced; with
    /// `propagated`, also when it is not sampled (its ids then go upstream in `traceparent`,
    /// flagged not sampled, and nothing is recorded).
    pub(crate) fn span(
        &self,
        req: &Request,
        name: &'static str,
        kind: SpanKind,
        propagated: bool,
    ) -> Option<ChildSpan> {
        let tracing = self.tracing.as_ref()?;
        let parent = req.extensions.get::<RequestSpan>()?;
        (propagated || parent.sampled()).then(|| tracing.child(parent, name, kind))
    }

    /// Answers a request: the pipeline's answer, or an embedder's handler's.
    pub(crate) async fn answer(
        &self,
        req: &mut Request,
        body: &mut RequestBody<'_>,
        out: &mut Outcome,
    ) -> Result<Response, Error> {
        match self.pipeline(req, body, out).await? {
            Next::Respond(resp) => Ok(resp),
            Next::Custom(handler) => {
                out.attach(req);
                handler.handle(req, body).await
            }
        }
    }

    /// Routing, the request phases, the answer, the response phases.
    async fn pipeline(
        &self,
        req: &Request,
        body: &mut RequestBody<'_>,
        out: &mut Outcome,
    ) -> Answered {
        let normalized = portico_http::path::remove_dot_segments(req.head.path());
        let path = normalized.as_deref().unwrap_or(req.head.path());
        let mut cx = match routing::route(self, req, path, out)? {
            routing::Routed::Route(cx) => cx,
            routing::Routed::Answer(resp) => return Ok(Next::Respond(*resp)),
        };
        let mut answer = self.request_phases(&mut cx, body).await;
        for phase in RESPONSE_PHASES {
            if phase.applies(&cx) {
                answer = phase.run(self, &mut cx, answer).await;
            }
        }
        out.keep(cx);
        answer
    }

    /// The request phases in order, then the route's answer.
    async fn request_phases(&self, cx: &mut Ctx<'_>, body: &mut RequestBody<'_>) -> Answered {
        for phase in PHASES {
            let decided = match phase.decide_now(self, cx, body) {
                Some(decided) => decided,
                None => {
                    let span = self.span(cx.req, phase.name(), SpanKind::Internal, false);
                    let decided = phase.wait(self, cx, body).await;
                    if let (Some(span), Err(e)) = (&span, &decided) {
                        span.failed(e.code().as_str());
                    }
                    decided
                }
            };
            match decided {
                Ok(Flow::Next) => {}
                Ok(Flow::Answer(resp)) => return Ok(Next::Respond(*resp)),
                Err(e) => {
                    tracing::debug!(request_id = %cx.req.id, phase = phase.name(), code = %e.code(), "refused");
                    return Err(e);
                }
            }
        }
        answer::run(self, cx, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The phase names of the table that follows `heading` in the document, in order.
    fn table_after<'a>(doc: &'a str, heading: &str) -> Vec<&'a str> {
        let at = doc
            .find(heading)
            .unwrap_or_else(|| panic!("no `{heading}` in the doc"));
        doc[at..]
            .lines()
            .skip_while(|l| !l.trim_start().starts_with('|'))
            .take_while(|l| l.trim_start().starts_with('|'))
            .filter_map(|l| l.trim_start().strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect()
    }

    #[test]
    fn the_architecture_doc_charts_the_phases_in_their_order() {
        let doc = include_str!("../../../../docs/architecture.md");
        let names: Vec<&str> = PHASES.iter().map(|p| p.name()).collect();
        assert_eq!(table_after(doc, "in the order of `PHASES`"), names);
        let names: Vec<&str> = RESPONSE_PHASES.iter().map(|p| p.name()).collect();
        assert_eq!(table_after(doc, "in the order of `RESPONSE_PHASES`"), names);
    }
}
