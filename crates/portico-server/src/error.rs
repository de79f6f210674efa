//! The one error type handlers return. Its public face is fixed by its [`ErrorCode`]; whatever
//! else it carries (the cause) is for logs only.

use std::fmt;

use portico_http::ErrorCode;

/// An error that ends a request with a generated response.
pub struct Error {
    code: ErrorCode,
    detail: Option<String>,
    allow: Option<String>,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error with the code's fixed public text.
    pub fn new(code: ErrorCode) -> Error {
        Error {
            code,
            detail: None,
            allow: None,
            cause: None,
        }
    }

    /// Adds a public detail. Only text Portico composed itself from its own values (limits,
    /// names from the configuration) may go here: it is sent to the client.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// The `Allow` header value for a 405.
    pub fn with_allow(mut self, allow: impl Into<String>) -> Error {
        self.allow = Some(allow.into());
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
        self.allow.as_deref()
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
