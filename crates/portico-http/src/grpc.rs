//! gRPC statuses for Portico's own errors on routes marked `grpc: true`.
//!
//! A gRPC client reads the outcome of a call from `grpc-status` and `grpc-message`, not from
//! the HTTP status; a JSON error body means nothing to it. On a gRPC route each error Portico
//! generates keeps the HTTP status the contract gives it and is sent as a gRPC
//! "Trailers-Only" response: `content-type: application/grpc`, `grpc-status` and
//! `grpc-message` in the head, and no body (gRPC over HTTP/2, "Responses").
//!
//! The status is chosen by the HTTP status (a rate limit and a spent quota are both
//! `RESOURCE_EXHAUSTED`, every 503 is `UNAVAILABLE`), except for the few causes whose
//! meaning the status alone does not carry (see [`grpc_status`]). The mapping is published
//! as a table in docs/contract.md, generated from [`grpc_table_markdown`].

use crate::catalog::ErrorCode;

/// The gRPC status codes (`google.rpc.Code`), with their numbers on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GrpcStatus {
    /// The call was cancelled, typically by the caller.
    Cancelled = 1,
    /// An error with no better code.
    Unknown = 2,
    /// The request is malformed whatever the state of the system.
    InvalidArgument = 3,
    /// The deadline passed before the call completed.
    DeadlineExceeded = 4,
    /// The entity asked for does not exist.
    NotFound = 5,
    /// The entity a call tried to create exists already.
    AlreadyExists = 6,
    /// The caller is known and may not do this.
    PermissionDenied = 7,
    /// A limit, quota or size was exhausted.
    ResourceExhausted = 8,
    /// The system is not in the state the call requires.
    FailedPrecondition = 9,
    /// The call was aborted by a concurrency conflict.
    Aborted = 10,
    /// A range past what is valid.
    OutOfRange = 11,
    /// The operation is not implemented or not supported.
    Unimplemented = 12,
    /// An invariant of the system broke.
    Internal = 13,
    /// The service is unavailable for now; retrying may succeed.
    Unavailable = 14,
    /// Unrecoverable data loss.
    DataLoss = 15,
    /// The caller's identity could not be established.
    Unauthenticated = 16,
}

impl GrpcStatus {
    /// The number sent in `grpc-status`.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The canonical name, as in `google/rpc/code.proto`.
    pub const fn name(self) -> &'static str {
        match self {
            GrpcStatus::Cancelled => "CANCELLED",
            GrpcStatus::Unknown => "UNKNOWN",
            GrpcStatus::InvalidArgument => "INVALID_ARGUMENT",
            GrpcStatus::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcStatus::NotFound => "NOT_FOUND",
            GrpcStatus::AlreadyExists => "ALREADY_EXISTS",
            GrpcStatus::PermissionDenied => "PERMISSION_DENIED",
            GrpcStatus::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcStatus::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcStatus::Aborted => "ABORTED",
            GrpcStatus::OutOfRange => "OUT_OF_RANGE",
            GrpcStatus::Unimplemented => "UNIMPLEMENTED",
            GrpcStatus::Internal => "INTERNAL",
            GrpcStatus::Unavailable => "UNAVAILABLE",
            GrpcStatus::DataLoss => "DATA_LOSS",
            GrpcStatus::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

/// The gRPC status for an HTTP status Portico generates.
const fn by_http_status(status: u16) -> GrpcStatus {
    match status {
        400 | 406 | 411 | 414 | 415 | 422 => GrpcStatus::InvalidArgument,
        401 | 407 => GrpcStatus::Unauthenticated,
        402 | 413 | 429 => GrpcStatus::ResourceExhausted,
        403 => GrpcStatus::PermissionDenied,
        404 | 410 => GrpcStatus::NotFound,
        405 | 501 | 505 => GrpcStatus::Unimplemented,
        408 | 504 => GrpcStatus::DeadlineExceeded,
        409 => GrpcStatus::Aborted,
        412 | 417 => GrpcStatus::FailedPrecondition,
        416 => GrpcStatus::OutOfRange,
        500 => GrpcStatus::Internal,
        502 | 503 => GrpcStatus::Unavailable,
        _ => GrpcStatus::Unknown,
    }
}

/// The causes whose gRPC status is not the one their HTTP status gives.
const EXCEPTIONS: &[(ErrorCode, GrpcStatus)] = &[
    // A name that is taken: the thing exists already (not a lost race, which is ABORTED).
    (ErrorCode::NameTaken, GrpcStatus::AlreadyExists),
    // `only-if-cached` with nothing stored: no deadline passed; the answer is not available.
    (ErrorCode::NotCached, GrpcStatus::Unavailable),
    // A key reused with another request: the call cannot go on in this state.
    (
        ErrorCode::IdempotencyKeyReused,
        GrpcStatus::FailedPrecondition,
    ),
];

/// The gRPC status an error is sent with on a gRPC route.
pub fn grpc_status(code: ErrorCode) -> GrpcStatus {
    EXCEPTIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| by_http_status(code.status()), |(_, s)| *s)
}

/// `grpc-message` for a text: percent-encoded as the gRPC spec asks (every byte outside
/// printable ASCII, and `%` itself).
pub fn encode_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The mapping as a Markdown table (part of docs/contract.md): one row per HTTP status
/// Portico generates, with the error codes that are exceptions listed under their status.
pub fn grpc_table_markdown() -> String {
    let mut statuses: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    let mut out = String::from(
        "| HTTP status | gRPC status | exceptions |\n\
         |---:|---|---|\n",
    );
    for status in statuses {
        let usual = by_http_status(status);
        let exceptions: Vec<String> = ErrorCode::ALL
            .iter()
            .filter(|c| c.status() == status && grpc_status(**c) != usual)
            .map(|c| {
                let s = grpc_status(*c);
                format!("`{}`: {} ({})", c.as_str(), s.name(), s.number())
            })
            .collect();
        out.push_str(&format!(
            "| {status} | {} ({}) | {} |\n",
            usual.name(),
            usual.number(),
            if exceptions.is_empty() {
                "—".to_string()
            } else {
                exceptions.join("<br>")
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_portico_generates_has_a_definite_grpc_status() {
        for code in ErrorCode::ALL {
            assert_ne!(
                grpc_status(*code),
                GrpcStatus::Unknown,
                "{} has no gRPC status",
                code.as_str()
            );
        }
    }

    #[test]
    fn the_statuses_the_contract_names_map_as_grpc_clients_expect() {
        for (code, status) in [
            (ErrorCode::NoHealthyTarget, GrpcStatus::Unavailable),
            (ErrorCode::DeadlineExceeded, GrpcStatus::DeadlineExceeded),
            (ErrorCode::RateLimited, GrpcStatus::ResourceExhausted),
            (ErrorCode::CredentialsMissing, GrpcStatus::Unauthenticated),
            (ErrorCode::NameTaken, GrpcStatus::AlreadyExists),
        ] {
            assert_eq!(grpc_status(code), status, "{}", code.as_str());
        }
        assert_eq!(GrpcStatus::Unauthenticated.number(), 16);
    }

    #[test]
    fn messages_are_percent_encoded_outside_printable_ascii() {
        assert_eq!(encode_message("Too many requests."), "Too many requests.");
        assert_eq!(encode_message("100% é\n"), "100%25 %C3%A9%0A");
    }
}
