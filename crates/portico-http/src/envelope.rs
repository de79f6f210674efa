//! The error body every generated 4xx/5xx carries: the cloud convention's `error_code`,
//! `error_msg`, `request_id`, together with RFC 9457's `status`, `title` and `detail`.
//!
//! Only catalog text and values Portico computed itself (limits, method lists) go in; no
//! internal error message can, because this function takes none.

use crate::catalog::{ErrorCode, status_row};

/// `application/json`
pub const JSON: &str = "application/json";
/// `application/problem+json` (RFC 9457)
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The JSON body for `code`. `detail` defaults to the code's public message.
pub fn error_body(code: ErrorCode, request_id: &str, detail: Option<&str>) -> Vec<u8> {
    let title = status_row(code.status()).map_or("Error", |r| r.message);
    let body = serde_json::json!({
        "error_code": code.as_str(),
        "error_msg": code.message(),
        "request_id": request_id,
        "status": code.status(),
        "title": title,
        "detail": detail.unwrap_or(code.message()),
    });
    // Serialising a json! value built from strings and numbers cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_cloud_and_rfc9457_members() {
        let v: serde_json::Value =
            serde_json::from_slice(&error_body(ErrorCode::RouteNotFound, "abc", None)).unwrap();
        assert_eq!(v["error_code"], "PTC.ROUTE_NOT_FOUND");
        assert_eq!(v["error_msg"], ErrorCode::RouteNotFound.message());
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["status"], 404);
        assert_eq!(v["title"], "NotFound");
        assert_eq!(v["detail"], ErrorCode::RouteNotFound.message());
        let v: serde_json::Value = serde_json::from_slice(&error_body(
            ErrorCode::BodyTooLargeDeclared,
            "abc",
            Some("limit is 10 bytes"),
        ))
        .unwrap();
        assert_eq!(v["detail"], "limit is 10 bytes");
    }
}
