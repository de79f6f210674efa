//! What comes back from the upstream, on routes that look into it: checked against the
//! OpenAPI operation (`validate_responses`; `writeOnly` properties removed whatever the
//! setting), then reshaped by the route's `transform` (203 Non-Authoritative Information).
//!
//! A body is looked into only when it can be read whole within a bound (the transform's
//! `max_bytes`, else [`CHECK_MAX_BYTES`]); a larger one is relayed as it is, streaming, and
//! counted. Portico's own errors are never looked into.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use portico_config::ResponseCheck;
use portico_http::ErrorCode;
use portico_openapi::ResponseRule;
use portico_server::{Body, Error, Response};
use serde_json::{Value, json};

use super::{Answered, Ctx, Next};

/// The largest response body checked against an operation's schema when the route has no
/// `transform` saying otherwise.
pub(crate) const CHECK_MAX_BYTES: usize = 1 << 20;

/// What the response phases counted, for the admin API's metrics (shared by every gateway a
/// process builds, so a reload does not reset them).
#[derive(Debug, Default)]
pub struct BodyCounts {
    /// Upstream responses that broke their operation (reported or refused).
    response_violations: AtomicU64,
    /// Responses too large to check, relayed unchecked.
    responses_unchecked: AtomicU64,
    /// Responses transformed (203).
    transformed: AtomicU64,
    /// 200s a transform left untouched: not JSON, or over `max_bytes`.
    transform_skipped: AtomicU64,
}

impl BodyCounts {
    /// The counts, as JSON.
    pub fn snapshot(&self) -> Value {
        json!({
            "response_violations": self.response_violations.load(Ordering::Relaxed),
            "responses_unchecked": self.responses_unchecked.load(Ordering::Relaxed),
            "transformed": self.transformed.load(Ordering::Relaxed),
            "transform_skipped": self.transform_skipped.load(Ordering::Relaxed),
        })
    }
}

/// Whether the phase has anything to do: the route checks responses against its operation
/// (or removes `writeOnly` properties), or transforms them.
pub(super) fn applies(cx: &Ctx<'_>) -> bool {
    cx.route.transform.is_some()
        || cx.route.openapi.as_ref().is_some_and(|op| {
            cx.route.validate_responses != ResponseCheck::Off || op.strips_write_only()
        })
}

/// The response's `Content-Type`.
fn content_type(resp: &Response) -> Option<Bytes> {
    resp.header_value("content-type").cloned()
}

/// The whole body, when it is in memory or can be read within `limit` (then it is kept in
/// memory for what follows); `None` when it has none or is larger.
async fn whole_body(resp: &mut Response, limit: usize) -> Result<Option<Bytes>, Error> {
    match &mut resp.body {
        Body::Full(b) => Ok(Some(b.clone())),
        Body::Upstream(up) => match up.read_up_to(limit).await? {
            Some(all) => {
                resp.body = Body::Full(all.clone());
                Ok(Some(all))
            }
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// A strong `ETag` made weak (RFC 9110 §8.8.3: the bytes changed, the resource did not), and
/// what the upstream said of its own bytes dropped (`Content-Length` is the writer's to say;
/// `Content-Digest`, `Repr-Digest` and `Content-MD5` no longer hold).
fn weaken(resp: &mut Response) {
    resp.headers.retain(|(n, _)| {
        !(n.eq_ignore_ascii_case(b"content-length")
            || n.eq_ignore_ascii_case(b"content-digest")
            || n.eq_ignore_ascii_case(b"repr-digest")
            || n.eq_ignore_ascii_case(b"content-md5"))
    });
    for (n, v) in &mut resp.headers {
        if n.eq_ignore_ascii_case(b"etag") && !v.starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(v);
            *v = Bytes::from(weak);
        }
    }
}

/// A 200 whose body Portico changed is 203 Non-Authoritative Information.
fn non_authoritative(resp: &mut Response) {
    if resp.status == 200 {
        resp.status = 203;
        resp.reason = None;
    }
}

/// The phase `response_body`: the upstream's response against the operation, its
/// `writeOnly` properties removed, then the route's `transform`. The body is read (and
/// parsed) once, whatever needs it.
pub(super) async fn run(cx: &mut Ctx<'_>, counts: &BodyCounts, answer: Answered) -> Answered {
    let Ok(Next::Respond(mut resp)) = answer else {
        return answer;
    };
    if resp.error.is_some() {
        return Ok(Next::Respond(resp));
    }
    let op = cx.route.openapi.clone();
    let mode = cx.route.validate_responses;
    let ct = content_type(&resp);
    let json = ct.as_deref().is_some_and(portico_openapi::is_json);
    let transform = cx.route.transform.as_ref().filter(|_| resp.status == 200);
    if let (Some(t), Body::Bodiless) = (transform, &resp.body) {
        // A HEAD: the GET's answer would be transformed when its declared length allows.
        let declared = resp
            .header_value("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
        if json && declared.is_none_or(|n| n <= t.max_bytes) {
            weaken(&mut resp);
            non_authoritative(&mut resp);
        }
    }
    let has_body = !matches!(resp.body, Body::Empty);
    let rule = op
        .as_ref()
        .map(|op| op.response_rule(resp.status, ct.as_deref().filter(|_| has_body)));
    let schema = match &rule {
        Some(ResponseRule::Schema(s)) => Some(*s),
        _ => None,
    };
    let limit = transform.map_or(CHECK_MAX_BYTES, |t| {
        usize::try_from(t.max_bytes).unwrap_or(usize::MAX)
    });
    let mut value = None;
    if json && (schema.is_some() || transform.is_some()) {
        match whole_body(&mut resp, limit).await? {
            Some(bytes) => value = Some(serde_json::from_slice::<Value>(&bytes)),
            None if schema.is_some() && matches!(resp.body, Body::Upstream(_)) => {
                counts.responses_unchecked.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
    let mut problem = match &rule {
        Some(ResponseRule::UndeclaredStatus) => {
            Some(format!("status {} is not declared", resp.status))
        }
        Some(ResponseRule::UndeclaredMedia) => Some(format!(
            "status {} is not declared with content type `{}`",
            resp.status,
            String::from_utf8_lossy(ct.as_deref().unwrap_or_default())
        )),
        Some(ResponseRule::Schema(_)) if matches!(value, Some(Err(_))) => {
            Some("the body is not JSON".to_string())
        }
        _ => None,
    };
    let mut changed = false;
    if let Some(Ok(v)) = value.as_mut() {
        if let Some(schema) = schema {
            if mode != ResponseCheck::Off {
                let violations = schema.violations(v);
                if !violations.is_empty() {
                    let list: Vec<String> = violations
                        .iter()
                        .map(|x| format!("{} ({})", x.pointer, x.keyword))
                        .collect();
                    problem = Some(format!("the body breaks the schema at {}", list.join(", ")));
                }
            }
            changed |= schema.strip_write_only(v);
        }
        if let Some(t) = transform
            && t.rules.apply(v)
        {
            changed = true;
            counts.transformed.fetch_add(1, Ordering::Relaxed);
        }
    }
    if transform.is_some() && !matches!(value, Some(Ok(_))) && !matches!(resp.body, Body::Bodiless)
    {
        counts.transform_skipped.fetch_add(1, Ordering::Relaxed);
    }
    if changed && let Some(Ok(v)) = &value {
        resp.body = Body::Full(Bytes::from(serde_json::to_vec(v).unwrap_or_default()));
        weaken(&mut resp);
        non_authoritative(&mut resp);
    }
    let Some(problem) = problem.filter(|_| mode != ResponseCheck::Off) else {
        return Ok(Next::Respond(resp));
    };
    counts.response_violations.fetch_add(1, Ordering::Relaxed);
    // Where, never what: the body is not logged.
    tracing::warn!(
        request_id = %cx.req.id,
        route = %cx.route.name,
        operation = op.as_ref().map_or("", |o| o.id.as_str()),
        status = resp.status,
        problem = %problem,
        "an upstream response its OpenAPI operation does not allow"
    );
    match mode {
        ResponseCheck::Enforce => Err(Error::new(ErrorCode::UpstreamResponseInvalid)),
        _ => Ok(Next::Respond(resp)),
    }
}
