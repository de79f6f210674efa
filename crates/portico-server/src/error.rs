//! The one error type handlers return. Its public face is fixed by its [`ErrorCode`]; whatever
//! else it carries (the cause) is for logs only.

use std::fmt;

use portico_http::ErrorCode;

/// An error that ends a request with a generated response.
pub struct Error {
    code: ErrorCode,
    detail: Option<String>,
    headers: Vec<(&'static str, String)>,
    members: Vec<(&'static str, serde_json::Value)>,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    grpc: bool,
}

impl Error {
    /// An error with the code's fixed public text.
    pub fn new(code: ErrorCode) -> Error {
        Error {
            code,
            detail: None,
            headers: Vec::new(),
            members: Vec::new(),
            cause: None,
            grpc: false,
        }
    }

    /// Marks the error as one of a gRPC route: it is answered as a gRPC status
    /// ([`portico_http::grpc`]) rather than with a JSON body. In place: the error travels
    /// inside the request's whole result, which is not moved for it.
    pub fn set_grpc(&mut self) {
        self.grpc = true;
    }

    /// Whether the error is answered as a gRPC status.
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// Adds a public detail. Only text Portico composed itself from its own values (limits,
    /// names from the configuration) may go here: it is sent to the client.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// The `Allow` header value for a 405.
    pub fn with_allow(self, allow: impl Into<String>) -> Error {
        self.with_header("Allow", allow)
    }

    /// A header the response needs (`Content-Range` on a 416, `Accept` on a 415). Like a
    /// detail, only values Portico composed itself.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Error {
        self.headers.push((name, value.into()));
        self
    }

    /// An RFC 9457 extension member of the body (`available` on a 406). Only values Portico
    /// composed itself.
    pub fn with_member(mut self, name: &'static str, value: serde_json::Value) -> Error {
        self.members.push((name, value));
        self
    }

    /// Records the underlying cause, which is logged and never sent.
    pub fn with_cause(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        self.cause = Some(cause.into());
        self
    }

    /// The catalog code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The public detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The `Allow` value, if any.
    pub fn allow(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == "Allow")
            .map(|(_, v)| v.as_str())
    }

    /// The headers the response carries besides the envelope's own.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The extension members of the body.
    pub fn members(&self) -> &[(&'static str, serde_json::Value)] {
        &self.members
    }

    /// The logged cause, if any.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync)> {
        self.cause.as_deref()
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::new(code)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.code.as_str());
        if let Some(detail) = &self.detail {
            d.field("detail", detail);
        }
        if let Some(cause) = &self.cause {
            d.field("cause", &cause.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}
