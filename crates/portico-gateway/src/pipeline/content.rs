//! What the head says of the body, against the route: its framing and declared length (411,
//! 413), its media type and content coding (415), and what the client accepts (406). All
//! decided before `100 Continue` and before anything is sent upstream.

use portico_http::{BodyFraming, ErrorCode, coding, negotiate};
use portico_server::{Error, RequestBody};

use super::{Ctx, Flow};
use crate::fields;

/// Chunked on a `require_content_length` route → 411; a declared length over the route's
/// limit → 413. The route's limit then bounds what the body may grow to as it streams.
pub(super) fn body_limits(cx: &mut Ctx<'_>, body: &mut RequestBody<'_>) -> Result<Flow, Error> {
    let route = cx.route;
    match cx.req.info.framing {
        BodyFraming::Chunked if route.require_content_length => {
            return Err(Error::new(ErrorCode::LengthRequired));
        }
        BodyFraming::Length(n) if n > route.max_body_bytes => {
            return Err(
                Error::new(ErrorCode::BodyTooLargeDeclared).with_detail(format!(
                    "The request body is larger than this route's limit of {} bytes.",
                    route.max_body_bytes
                )),
            );
        }
        _ => {}
    }
    body.set_limit(route.max_body_bytes);
    Ok(Flow::Next)
}

/// A body whose `Content-Type` the route does not consume, or whose `Content-Encoding` it
/// does not take → 415 (with `Accept` / `Accept-Encoding`); an `Accept` that matches nothing
/// the route produces → 406.
pub(super) fn media_types(cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let (route, head) = (cx.route, &cx.req.head);
    if cx.req.info.framing != BodyFraming::None {
        if !route.consumes.is_empty()
            && !negotiate::consumes(&fields::lines(head, "content-type"), &route.consumes)
        {
            return Err(Error::new(ErrorCode::UnsupportedMediaType)
                .with_detail(format!(
                    "This route takes request bodies of type: {}.",
                    negotiate::list(&route.consumes)
                ))
                .with_header("Accept", negotiate::list(&route.consumes)));
        }
        if let Some(supported) = &route.consumes_encodings
            && coding::unsupported_coding(&fields::lines(head, "content-encoding"), supported)
                .is_some()
        {
            let list = coding::list(supported);
            return Err(Error::new(ErrorCode::UnsupportedContentEncoding)
                .with_detail(format!(
                    "This route takes request bodies with content coding: {list}."
                ))
                .with_header("Accept-Encoding", list));
        }
    }
    if !route.produces.is_empty()
        && negotiate::choose(fields::combined(head, "accept").as_deref(), &route.produces).is_none()
    {
        let available: Vec<String> = route.produces.iter().map(ToString::to_string).collect();
        return Err(Error::new(ErrorCode::NotAcceptable)
            .with_detail(format!("Available media types: {}.", available.join(", ")))
            .with_member("available", serde_json::json!(available)));
    }
    Ok(Flow::Next)
}
