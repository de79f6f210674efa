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

/// The members every error body has; extension members never replace them.
const CORE_MEMBERS: [&str; 6] = [
    "error_code",
    "error_msg",
    "request_id",
    "status",
    "title",
    "detail",
];

/// The JSON body for `code`. `detail` defaults to the code's public message.
pub fn error_body(code: ErrorCode, request_id: &str, detail: Option<&str>) -> Vec<u8> {
    error_body_with(code, request_id, detail, &[])
}

/// The JSON body for `code` with RFC 9457 extension members (e.g. `available`, the media
/// types a 406 could have had). A member named like a core member is dropped.
pub fn error_body_with(
    code: ErrorCode,
    request_id: &str,
    detail: Option<&str>,
    members: &[(&str, serde_json::Value)],
) -> Vec<u8> {
    let title = status_row(code.status()).map_or("Error", |r| r.message);
    let mut body = serde_json::json!({
        "error_code": code.as_str(),
        "error_msg": code.message(),
        "request_id": request_id,
        "status": code.status(),
        "title": title,
        "detail": detail.unwrap_or(code.message()),
    });
    if let Some(map) = body.as_object_mut() {
        for (name, value) in members {
            if !CORE_MEMBERS.contains(name) {
                map.insert((*name).to_string(), value.clone());
            }
        }
    }
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

    #[test]
    fn extension_members_never_replace_core_ones() {
        let v: serde_json::Value = serde_json::from_slice(&error_body_with(
            ErrorCode::RouteNotFound,
            "abc",
            None,
            &[
                ("available", serde_json::json!(["application/json"])),
                ("status", serde_json::json!(200)),
            ],
        ))
        .unwrap();
        assert_eq!(v["available"][0], "application/json");
        assert_eq!(v["status"], 404);
    }
}
