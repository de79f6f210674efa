//! The closure and envelope rules, walked over the whole catalog through the one function
//! that turns errors into responses.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use portico_http::ErrorCode;
use portico_http::catalog::{STATUS_TABLE, status_row};
use portico_server::rescue::error_response;
use portico_server::{Body, Error, RequestId};

fn body_json(body: &Body) -> serde_json::Value {
    match body {
        Body::Full(b) => serde_json::from_slice(b).unwrap(),
        _ => panic!("an error response carries its body in memory"),
    }
}

#[test]
fn every_generated_error_has_a_table_status_and_the_envelope() {
    let id = RequestId::new();
    for &code in ErrorCode::ALL {
        for accept in [None, Some(&b"application/problem+json"[..])] {
            let resp = error_response(&Error::new(code), &id, accept);
            let row = status_row(resp.status)
                .unwrap_or_else(|| panic!("{code}: {} is outside the table", resp.status));
            assert!(row.in_table && resp.status >= 400, "{code}");
            assert!(![306, 431, 418, 499].contains(&resp.status));
            let ct = resp.header_value("content-type").unwrap();
            let expected: &[u8] = if accept.is_some() {
                b"application/problem+json"
            } else {
                b"application/json"
            };
            assert_eq!(&ct[..], expected);
            let v = body_json(&resp.body);
            assert_eq!(v["error_code"], code.as_str());
            assert_eq!(v["error_msg"], code.message());
            assert_eq!(v["request_id"], id.as_str());
            assert_eq!(v["status"], code.status());
            assert_eq!(v["title"], row.message);
            assert_eq!(v["detail"], code.message());
            assert_eq!(resp.error, Some(code));
            assert_eq!(resp.close, code.closes_connection());
        }
    }
}

#[test]
fn internal_causes_never_reach_the_body() {
    let err = Error::new(ErrorCode::UpstreamReset)
        .with_cause("connection reset by 10.0.0.7:5432 (secret-host)");
    let resp = error_response(&err, &RequestId::new(), None);
    let text = match &resp.body {
        Body::Full(b) => String::from_utf8(b.to_vec()).unwrap(),
        _ => unreachable!(),
    };
    assert!(
        !text.contains("10.0.0.7") && !text.contains("secret"),
        "{text}"
    );
}

#[test]
fn allow_travels_with_405() {
    let err = Error::new(ErrorCode::MethodNotAllowed).with_allow("GET, HEAD, OPTIONS");
    let resp = error_response(&err, &RequestId::new(), None);
    assert_eq!(
        &resp.header_value("allow").unwrap()[..],
        b"GET, HEAD, OPTIONS"
    );
}

#[test]
fn the_contract_rows_portico_can_generate_are_the_table_plus_200() {
    let generatable: Vec<u16> = STATUS_TABLE.iter().map(|r| r.code).collect();
    assert!(generatable.contains(&200));
    assert_eq!(generatable.len(), 42);
}
