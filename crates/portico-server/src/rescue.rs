//! The one place where errors become responses (the contract's rules 2-4): every generated
//! 4xx/5xx, whether the connection layer or a handler raised it, is built here.

use portico_http::envelope::{JSON, PROBLEM_JSON, error_body_with};
use portico_http::negotiate::prefers_problem_json;

use crate::error::Error;
use crate::id::RequestId;
use crate::response::{Body, Response};

/// The response for `err`. `accept` is the request's `Accept` value, when there was a request.
pub fn error_response(err: &Error, id: &RequestId, accept: Option<&[u8]>) -> Response {
    let code = err.code();
    let content_type = if prefers_problem_json(accept) {
        PROBLEM_JSON
    } else {
        JSON
    };
    let mut resp = Response::new(code.status()).header("Content-Type", content_type);
    for (name, value) in err.headers() {
        resp = resp.header(name, value.clone());
    }
    resp.body = Body::Full(error_body_with(code, id.as_str(), err.detail(), err.members()).into());
    resp.close = code.closes_connection();
    resp.error = Some(code);
    resp
}
