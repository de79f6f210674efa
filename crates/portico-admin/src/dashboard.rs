//! The dashboard: one HTML page at `/admin/` with its script and style, embedded in the
//! binary, served without the token (the page asks for it, keeps it in `sessionStorage` and
//! sends it as `Bearer` to the API, never in a URL). A strict `Content-Security-Policy` lets
//! the page load only its own script and style and talk only to this listener.

use bytes::Bytes;
use portico_http::{ErrorCode, Method};
use portico_server::{Error, Response};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// What the page may load and where it may connect: its own files and this listener only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The asset at `path`, if it is one of the dashboard's.
fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/admin" | "/admin/" => Some(("text/html; charset=utf-8", PAGE)),
        "/admin/dashboard.js" => Some(("text/javascript; charset=utf-8", SCRIPT)),
        "/admin/dashboard.css" => Some(("text/css; charset=utf-8", STYLE)),
        _ => None,
    }
}

/// Serves `path` when it is one of the dashboard's files: `GET` and `HEAD` only.
pub(crate) fn serve(path: &str, method: Method) -> Option<Result<Response, Error>> {
    let (media, text) = asset(path)?;
    Some(match method {
        Method::Get | Method::Head => Ok(Response::new(200)
            .header("Content-Type", media)
            .header("Content-Security-Policy", CSP)
            .header("X-Content-Type-Options", "nosniff")
            .header("Referrer-Policy", "no-referrer")
            .header("Cache-Control", "no-cache")
            .body(Bytes::from_static(text.as_bytes()))),
        Method::Options => Ok(Response::new(204).header("Allow", "GET, HEAD, OPTIONS")),
        _ => Err(Error::new(ErrorCode::MethodNotAllowed).with_allow("GET, HEAD, OPTIONS")),
    })
}
