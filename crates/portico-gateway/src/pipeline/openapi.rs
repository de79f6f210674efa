//! Requests against the route's OpenAPI operation: its parameters (400
//! `PTC.PARAMETER_INVALID`, decided from the head, so before `100 Continue`), a body it
//! requires (400 `PTC.BODY_REQUIRED`), and a JSON body against its schema (400
//! `PTC.BODY_MALFORMED`, 422 `PTC.SCHEMA_INVALID`). The operation's validators were compiled
//! when the configuration was loaded; here they only run.

use portico_http::{BodyFraming, ErrorCode};
use portico_openapi::{Operation, ParamProblem, Parts, Violation};
use portico_server::{Error, RequestBody};
use serde_json::{Value, json};

use super::{Ctx, Flow};
use crate::Gateway;

/// A request's parameters, as the operation reads them.
struct RequestParts<'a, 'r> {
    cx: &'a Ctx<'r>,
}

impl Parts for RequestParts<'_, '_> {
    fn path_param(&self, name: &str) -> Option<&str> {
        // Route parameters are named as `route_param` names OpenAPI's.
        match self.cx.param(name) {
            Some(v) => Some(v),
            None => self.cx.param(&portico_config::route_param(name)),
        }
    }

    fn query(&self) -> Option<&str> {
        self.cx
            .req
            .head
            .query()
            .and_then(|q| std::str::from_utf8(q).ok())
    }

    fn header(&self, name: &str) -> Vec<&str> {
        self.cx
            .req
            .head
            .fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect()
    }
}

/// The phase `parameters`: a body the operation requires, and its parameters.
pub(super) fn parameters(cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let Some(op) = cx.route.openapi.as_deref() else {
        return Ok(Flow::Next);
    };
    if op.body_required()
        && matches!(
            cx.req.info.framing,
            BodyFraming::None | BodyFraming::Length(0)
        )
    {
        return Err(Error::new(ErrorCode::BodyRequired).with_detail(format!(
            "The operation `{}` needs a request body ({}).",
            op.id,
            portico_http::negotiate::list(&op.consumes())
        )));
    }
    let problems = op.check_parameters(&RequestParts { cx });
    if problems.is_empty() {
        return Ok(Flow::Next);
    }
    Err(parameter_error(op, &problems))
}

fn parameter_error(op: &Operation, problems: &[ParamProblem]) -> Error {
    let first = &problems[0];
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| {
            json!({"in": p.location.as_str(), "name": p.name, "pointer": p.pointer, "detail": p.detail})
        })
        .collect();
    Error::new(ErrorCode::ParameterInvalid)
        .with_detail(format!(
            "The {} parameter `{}` of `{}`: {}{}",
            first.location.as_str(),
            first.name,
            op.id,
            first.detail,
            more(problems.len())
        ))
        .with_member("errors", Value::Array(errors))
}

/// ` (and N more problems)`, when there are more.
fn more(n: usize) -> String {
    match n {
        0 | 1 => String::new(),
        2 => " (and 1 more problem)".to_string(),
        n => format!(" (and {} more problems)", n - 1),
    }
}

/// Whether the request has a body and the operation declares one (whether its media type
/// has a schema is the phase's to find, once).
pub(super) fn body_applies(cx: &Ctx<'_>) -> bool {
    cx.req.info.framing != BodyFraming::None
        && cx
            .route
            .openapi
            .as_ref()
            .is_some_and(|op| op.body.is_some())
}

/// The schema the request's body is checked against: a JSON body whose media type the
/// operation gives a schema.
fn schema_for<'r>(cx: &Ctx<'r>) -> Option<&'r portico_openapi::Schema> {
    let op = cx.route.openapi.as_deref()?;
    let mut types = cx.req.head.fields_named("content-type");
    match (types.next(), types.next()) {
        (Some(ct), None) => op.body_schema(ct),
        _ => None,
    }
}

/// The phase `schema`: the body, read whole (within `limits.body_buffer_bytes`), is JSON that
/// its schema allows.
pub(super) async fn body(
    gw: &Gateway,
    cx: &mut Ctx<'_>,
    body: &mut RequestBody<'_>,
) -> Result<Flow, Error> {
    let Some(schema) = schema_for(cx) else {
        return Ok(Flow::Next);
    };
    if cx.reservation.is_none() && body.buffered().is_none() {
        cx.reservation = Some(body.buffer(&gw.budget).await?);
    }
    let bytes = body.buffered().map(|b| &b[..]).unwrap_or_default();
    // serde_json refuses nesting past 128 levels: a body nested 10,000 deep is an error here,
    // never a deep recursion anywhere.
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::new(ErrorCode::BodyMalformed).with_detail(format!("The body is not JSON: {e}."))
    })?;
    let violations = schema.violations(&value);
    if violations.is_empty() {
        return Ok(Flow::Next);
    }
    Err(schema_error(&violations))
}

fn schema_error(violations: &[Violation]) -> Error {
    let first = &violations[0];
    let errors: Vec<Value> = violations
        .iter()
        .map(|v| json!({"pointer": v.pointer, "schema": v.schema, "keyword": v.keyword, "detail": v.detail}))
        .collect();
    let at = if first.pointer.is_empty() {
        "the body".to_string()
    } else {
        format!("`{}`", first.pointer)
    };
    Error::new(ErrorCode::SchemaInvalid)
        .with_detail(format!("{at}: {}{}", first.detail, more(violations.len())))
        .with_member("errors", Value::Array(errors))
}
