//! Portico's HTTP decisions, as pure functions over bytes.
//!
//! Nothing here does I/O or knows about tokio: every rule of the status-code contract that can
//! be decided from bytes lives here, so it can be read against the RFC section by section and
//! tested from byte literals. The server feeds bytes in and acts on the answers.

#![forbid(unsafe_code)]

pub mod caching;
pub mod catalog;
pub mod chunked;
pub mod civil;
pub mod coding;
pub mod conditional;
pub mod deadline;
pub mod envelope;
pub mod fields;
pub mod grpc;
pub mod h2_blocks;
pub mod head;
pub mod method;
pub mod negotiate;
pub mod path;
pub mod range;
pub mod representation;
pub mod request;
pub mod response;
pub mod response_head;
pub mod status;
pub mod syntax;
pub mod upgrade;

pub use catalog::{ErrorCode, Retry, Source};
pub use head::{HeadLimits, HeadScanner, RequestHead, Scan, TargetForm, Version};
pub use method::{Method, MethodSet};
pub use request::{BodyFraming, RequestInfo};
