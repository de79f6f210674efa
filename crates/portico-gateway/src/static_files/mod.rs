//! The built-in `static` handler: files under a root directory, with the semantics of RFC 9110
//! that a careful file server has (validators, conditional requests, ranges, negotiation of
//! precompressed siblings) and no way out of its root.
//!
//! Order of decisions, each a status of the contract:
//!
//! 1. the path names no regular file inside the root → 404 `PTC.FILE_NOT_FOUND`;
//! 2. `Accept` refuses the file's type → 406 `PTC.NOT_ACCEPTABLE`;
//! 3. `Accept-Encoding` refuses identity and no sibling it accepts exists → 406
//!    `PTC.ENCODING_NOT_ACCEPTABLE`;
//! 4. preconditions → 304 / 412; ranges → 206 / 416; otherwise 200 (see `represent`).
//!
//! Preconditions come after negotiation because they apply to the selected representation
//! and only when the answer would otherwise be 2xx (RFC 9110 §13.2.1).

#[cfg(target_os = "linux")]
mod cached;
pub(crate) mod mime;
pub(crate) mod open;
mod path;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use portico_config::{PRECOMPRESSED, StaticFiles};
use portico_http::ErrorCode;
use portico_http::coding::{self, ContentCoding};
use portico_http::conditional::{Conditions, HttpDate};
use portico_http::negotiate;
use portico_server::{Error, Request, Response};

use self::open::{Opened, Sibling};
use self::path::RelPath;
use crate::BuildError;
use crate::fields::combined;
use crate::represent::{self, Meta, Source};

/// A static route, ready to serve.
pub(crate) struct StaticRoute {
    /// The root, canonical (symlinks resolved), so containment is a prefix check.
    root: PathBuf,
    cache_control: Option<Bytes>,
    siblings: Vec<Sibling>,
    /// What can be offered: the siblings' codings in preference order, then identity.
    offers: Vec<ContentCoding>,
    /// The root as a directory for the non-blocking path, when the platform has one.
    #[cfg(target_os = "linux")]
    cached: Option<cached::Root>,
}

impl StaticRoute {
    pub(crate) fn new(settings: &StaticFiles) -> Result<StaticRoute, BuildError> {
        let root =
            std::fs::canonicalize(&settings.root).map_err(|source| BuildError::StaticRoot {
                root: settings.root.clone(),
                source,
            })?;
        let siblings: Vec<Sibling> = settings
            .precompressed
            .iter()
            .filter_map(|c| {
                PRECOMPRESSED
                    .iter()
                    .find(|(name, _)| *name == c.as_str())
                    .map(|&(coding, suffix)| Sibling { coding, suffix })
            })
            .collect();
        let mut offers = settings.precompressed.clone();
        offers.push(ContentCoding::identity());
        Ok(StaticRoute {
            #[cfg(target_os = "linux")]
            cached: cached::Root::open(&root),
            root,
            cache_control: settings.cache_control.clone().map(Bytes::from),
            siblings,
            offers,
        })
    }

    /// The file, opened without leaving the event loop, when the kernel's caches hold all it
    /// takes (`cached.rs`); `None` sends the request to the blocking pool.
    fn open_cached(&self, rel: &RelPath, candidates: &[Option<Sibling>]) -> Option<Opened> {
        #[cfg(target_os = "linux")]
        if let Some(root) = &self.cached {
            return root.open_file(rel, candidates, &self.siblings).ok();
        }
        let _ = (rel, candidates);
        None
    }

    /// What the response says of the variant: its type, validators, length, coding.
    fn meta(&self, variant: &open::Variant, content_type: &'static str) -> Meta {
        let modified = variant.meta.modified().unwrap_or(UNIX_EPOCH);
        // RFC 9110 §8.8.2.1: a modification time in the future "MUST" be replaced by the
        // time the response is made, so Last-Modified is never later than Date.
        let last_modified = HttpDate::from_system_time(modified.min(SystemTime::now()));
        let since_epoch = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let length = variant.meta.len();
        let coding = variant.sibling.map(|s| s.coding);
        // A strong tag (RFC 9110 §8.8.3): the same tag means the same bytes. Modification
        // time to the nanosecond, length and the file's identity (see `file_identity`) change
        // whenever the content can have; a sibling's tag names its coding, since its bytes
        // differ from the file's.
        let etag = format!(
            "\"{:x}.{:x}-{:x}-{:x}{}{}\"",
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
            length,
            open::file_identity(&variant.meta),
            if coding.is_some() { "-" } else { "" },
            coding.unwrap_or(""),
        );
        Meta {
            content_type: Some(Bytes::from_static(content_type.as_bytes())),
            etag: Some(etag),
            last_modified: Some(last_modified),
            length,
            cache_control: self.cache_control.clone(),
            vary: (!self.siblings.is_empty()).then_some("Accept-Encoding"),
            content_encoding: coding,
            fields: Vec::new(),
        }
    }

    /// Serves the file that the route's catch-all parameter (`raw`, still percent-encoded)
    /// names.
    pub(crate) async fn serve(&self, req: &Request, raw: &str) -> Result<Response, Error> {
        let not_found = || Error::new(ErrorCode::FileNotFound);
        let rel = RelPath::parse(raw).ok_or_else(not_found)?;
        let (content_type, media_type) = mime::for_file(rel.file_name());

        let accept_encoding = combined(&req.head, "accept-encoding");
        let candidates: Vec<Option<Sibling>> =
            coding::rank(accept_encoding.as_deref(), &self.offers)
                .into_iter()
                .map(|c| {
                    self.siblings
                        .iter()
                        .find(|s| s.coding == c.as_str())
                        .copied()
                })
                .collect();
        let opened = match self.open_cached(&rel, &candidates) {
            Some(opened) => opened,
            None => {
                let (root, siblings) = (self.root.clone(), self.siblings.clone());
                tokio::task::spawn_blocking(move || open::open(&root, &rel, &candidates, &siblings))
                    .await
                    .map_err(|e| Error::new(ErrorCode::Internal).with_cause(e))?
                    .map_err(|e| Error::new(ErrorCode::Internal).with_cause(e))?
            }
        };

        if matches!(opened, Opened::Missing) {
            return Err(not_found());
        }
        // The file exists: its type, then its codings, against what the client accepts.
        let accept = combined(&req.head, "accept");
        if negotiate::quality_of(accept.as_deref(), media_type) == 0 {
            return Err(Error::new(ErrorCode::NotAcceptable)
                .with_detail(format!("Available media types: {content_type}."))
                .with_member("available", serde_json::json!([content_type])));
        }
        let variant = match opened {
            Opened::Found(v) => v,
            Opened::NoAcceptableCoding(available) => {
                return Err(Error::new(ErrorCode::EncodingNotAcceptable)
                    .with_detail(format!(
                        "Available content codings: {}.",
                        available.join(", ")
                    ))
                    .with_member("available", serde_json::json!(available)));
            }
            Opened::Missing => return Err(not_found()),
        };

        let meta = self.meta(&variant, content_type);
        let source = match variant.data {
            Some(data) => Source::Memory(data),
            None => Source::File(Arc::new(variant.file)),
        };
        let conditions = Conditions::from_fields(req.head.fields());
        represent::respond(req.head.method(), &conditions, &meta, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_http::{HeadLimits, RequestHead, RequestInfo};
    use portico_server::{Body, RequestId};

    fn request(raw: &str) -> Request {
        let head = RequestHead::parse(Bytes::from(raw.to_string()), &HeadLimits::default())
            .expect("a valid head");
        let info = RequestInfo::analyze(&head).expect("valid framing");
        let peer = "127.0.0.1:1".parse().expect("an address");
        Request::new(head, info, peer, false, RequestId::new())
    }

    fn route(root: &std::path::Path) -> StaticRoute {
        StaticRoute::new(&StaticFiles {
            root: root.to_path_buf(),
            cache_control: None,
            precompressed: Vec::new(),
        })
        .expect("a usable root")
    }

    #[tokio::test]
    async fn large_files_are_streamed_and_small_ones_read_whole() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("small"), vec![1u8; SMALL as usize]).expect("write");
        std::fs::write(dir.path().join("large"), vec![2u8; SMALL as usize + 1]).expect("write");
        let files = route(dir.path());
        let get = |name: &str| request(&format!("GET /f/{name} HTTP/1.1\r\nHost: a\r\n\r\n"));

        let small = files.serve(&get("small"), "small").await.expect("200");
        assert!(matches!(small.body, Body::Full(ref b) if b.len() as u64 == SMALL));
        // Past the threshold the body is a stream of known length: the file is read as it is
        // sent, never held whole in memory.
        let large = files.serve(&get("large"), "large").await.expect("200");
        assert!(matches!(large.body, Body::Stream(ref s) if s.len() == SMALL + 1));
        let ranged = request("GET /f/large HTTP/1.1\r\nHost: a\r\nRange: bytes=0-9,-10\r\n\r\n");
        let multi = files.serve(&ranged, "large").await.expect("206");
        assert_eq!(multi.status, 206);
        assert!(matches!(multi.body, Body::Stream(_)));
    }

    const SMALL: u64 = open::SMALL_FILE;
}
