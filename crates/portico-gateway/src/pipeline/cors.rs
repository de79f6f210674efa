//! CORS on an actual (not preflight) request: a browser's cross-origin request from an origin
//! the route does not allow is refused (403); an allowed one is told so on whatever the
//! answer is, errors included.

use portico_http::ErrorCode;
use portico_server::Error;

use super::{Ctx, Flow};

pub(super) fn run(cx: &mut Ctx<'_>) -> Result<Flow, Error> {
    let (Some(cors), Some(origin)) = (&cx.route.access.cors, cx.req.head.field("origin")) else {
        return Ok(Flow::Next);
    };
    let origin = std::str::from_utf8(origin)
        .ok()
        .filter(|o| cors.allows_origin(o))
        .ok_or_else(|| Error::new(ErrorCode::CorsOriginDenied))?;
    cx.fields.extend(cors.response_fields(origin));
    Ok(Flow::Next)
}
