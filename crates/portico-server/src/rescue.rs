//! The one place where errors become responses (the contract's rules 2-4): every generated
//! 4xx/5xx, whether the connection layer or a handler raised it, is built here.

use std::any::Any;

use portico_http::ErrorCode;
use portico_http::envelope::{JSON, PROBLEM_JSON, error_body_with};
use portico_http::grpc::{encode_message, grpc_status};
use portico_http::negotiate::prefers_problem_json;

use crate::error::Error;
use crate::id::RequestId;
use crate::response::{Body, Response};

/// The response for `err`. `accept` is the request's `Accept` value, when there was a request.
/// An error of a gRPC route ([`Error::is_grpc`]) keeps its status and is a gRPC Trailers-Only
/// response instead of a JSON body: the status and message in the head, no body, which is
/// what a gRPC client reads.
pub fn error_response(err: &Error, id: &RequestId, accept: Option<&[u8]>) -> Response {
    let code = err.code();
    let mut resp = Response::new(code.status());
    if err.is_grpc() {
        resp = resp
            .header("Content-Type", "application/grpc")
            .header("grpc-status", grpc_status(code).number().to_string())
            .header("grpc-message", encode_message(code.message()))
            .header("X-Portico-Error-Code", code.as_str());
    } else {
        let content_type = if prefers_problem_json(accept) {
            PROBLEM_JSON
        } else {
            JSON
        };
        resp = resp.header("Content-Type", content_type);
        resp.body =
            Body::Full(error_body_with(code, id.as_str(), err.detail(), err.members()).into());
    }
    for (name, value) in err.headers() {
        resp = resp.header(name, value.clone());
    }
    resp.close = code.closes_connection();
    resp.error = Some(code);
    resp
}

/// What a handler's run came to: its response, or the response for its error (logged with
/// its cause), or for its panic a 500 (logged with the panic's message); and whether it
/// panicked, since then nothing it left behind can be trusted.
pub(crate) fn settle(
    outcome: Result<Result<Response, Error>, Box<dyn Any + Send>>,
    id: &RequestId,
    accept: Option<&[u8]>,
) -> (Response, bool) {
    match outcome {
        Ok(Ok(resp)) => (resp, false),
        Ok(Err(err)) => {
            if let Some(cause) = err.cause() {
                tracing::info!(request_id = %id, code = %err.code(), cause = %cause, "request failed");
            }
            (error_response(&err, id, accept), false)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(request_id = %id, panic = %what, "a handler panicked; answered 500");
            let resp = error_response(&Error::new(ErrorCode::Internal), id, accept);
            (resp, true)
        }
    }
}
