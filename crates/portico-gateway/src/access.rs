//! The access phase: after a route is chosen and before anything else is read or sent (so
//! before `100 Continue` and before the upstream), who the caller is and whether it may call.
//!
//! In order: the client's address against the route's `deny_cidrs` and `allow_cidrs` (403);
//! the caller's credentials, tried in the order of the route's `auth` (401 with a
//! `WWW-Authenticate` challenge for each scheme when none is given or one fails, each failure
//! with its own code); the caller's project against the `{project_id}` in the URL (403); the
//! project's billing state (402 suspended, 403 closed).
//!
//! Credentials are found by digest: an API key's SHA-256 is looked up, never the key, so the
//! time a lookup takes says nothing about any stored key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use portico_config::{Access, ApiKeyPlace, AuthScheme, BillingState, Project};
use portico_http::ErrorCode;
use portico_policy::cidr::any_contains;
use portico_policy::sha256;
use portico_server::{Caller, CredentialPlace, Error, Request};

/// The longest credential read; anything longer is malformed, and not hashed.
const MAX_CREDENTIAL: usize = 512;

/// Every project and every credential the gateway knows, indexed for the request path.
#[derive(Default)]
pub(crate) struct Directory {
    projects: HashMap<Arc<str>, BillingState>,
    api_keys: HashMap<[u8; 32], KeyHolder>,
}

struct KeyHolder {
    project_id: Arc<str>,
    consumer: Arc<str>,
    roles: Arc<str>,
    usable: Usable,
    expires: Option<SystemTime>,
}

/// Whether a credential may be used, apart from its expiry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Usable {
    Yes,
    Revoked,
}

impl Directory {
    pub(crate) fn new(projects: &[Project]) -> Directory {
        let mut d = Directory::default();
        for p in projects {
            let id: Arc<str> = p.id.as_str().into();
            d.projects.insert(id.clone(), p.billing_state);
            for c in &p.consumers {
                let consumer: Arc<str> = c.name.as_str().into();
                let roles: Arc<str> = c.roles.join(",").into();
                for k in &c.api_keys {
                    let usable = if c.enabled && k.enabled {
                        Usable::Yes
                    } else {
                        Usable::Revoked
                    };
                    d.api_keys.insert(
                        k.sha256,
                        KeyHolder {
                            project_id: id.clone(),
                            consumer: consumer.clone(),
                            roles: roles.clone(),
                            usable,
                            expires: k.expires,
                        },
                    );
                }
            }
        }
        d
    }

    /// The access phase for a request on a route asking `access`; `project` is the URL's
    /// `{project_id}`, if the route has one. The caller, when it proved who it is.
    pub(crate) fn check(
        &self,
        access: &Access,
        req: &Request,
        project: Option<&str>,
        now: SystemTime,
    ) -> Result<Option<Caller>, Error> {
        let ip = req.peer.ip();
        if any_contains(&access.deny_cidrs, ip)
            || (!access.allow_cidrs.is_empty() && !any_contains(&access.allow_cidrs, ip))
        {
            return Err(Error::new(ErrorCode::ClientAddressDenied));
        }
        let challenge =
            |e: Error| challenges(access).fold(e, |e, c| e.with_header("WWW-Authenticate", c));
        let mut caller = None;
        for scheme in &access.schemes {
            let found = match scheme {
                AuthScheme::ApiKey => self.api_key(access, req, now).map_err(challenge)?,
                // Not accepted by the configuration yet.
                AuthScheme::Token | AuthScheme::Jwt | AuthScheme::Signature => None,
            };
            if found.is_some() {
                caller = found;
                break;
            }
        }
        match &caller {
            None if !access.schemes.is_empty() && !access.anonymous => {
                return Err(challenge(Error::new(ErrorCode::CredentialsMissing)));
            }
            Some(c) if project.is_some_and(|p| p != &*c.project_id) => {
                return Err(Error::new(ErrorCode::ProjectMismatch));
            }
            _ => {}
        }
        // The project is the caller's, or (on an open route) the URL's.
        let project = caller.as_ref().map(|c| &*c.project_id).or(project);
        match project.and_then(|p| self.projects.get(p)) {
            Some(BillingState::Suspended) => Err(Error::new(ErrorCode::BillingSuspended)),
            Some(BillingState::Closed) => Err(Error::new(ErrorCode::ProjectClosed)),
            _ => Ok(caller),
        }
    }

    /// The caller named by an API key, if the request has one.
    fn api_key(
        &self,
        access: &Access,
        req: &Request,
        now: SystemTime,
    ) -> Result<Option<Caller>, Error> {
        let (key, place) = match &access.api_key {
            ApiKeyPlace::Header(name) => {
                let mut values = req.head.fields_named(name);
                let Some(first) = values.next() else {
                    return Ok(None);
                };
                if values.next().is_some() {
                    return Err(Error::new(ErrorCode::CredentialsMalformed));
                }
                // Lower case, as the proxy compares field names.
                let lower: Arc<str> = name.to_ascii_lowercase().into();
                (first.to_vec(), CredentialPlace::Field(lower))
            }
            ApiKeyPlace::Query(name) => match query_param(req.head.query(), name)? {
                None => return Ok(None),
                Some(v) => (v, CredentialPlace::Query(name.as_str().into())),
            },
        };
        let key = key.trim_ascii();
        if key.is_empty() || key.len() > MAX_CREDENTIAL {
            return Err(Error::new(ErrorCode::CredentialsMalformed));
        }
        let Some(holder) = self.api_keys.get(&sha256(key)) else {
            return Err(Error::new(ErrorCode::ApiKeyUnknown));
        };
        if holder.usable == Usable::Revoked {
            return Err(Error::new(ErrorCode::CredentialRevoked));
        }
        if holder.expires.is_some_and(|e| e <= now) {
            return Err(Error::new(ErrorCode::CredentialExpired));
        }
        Ok(Some(Caller {
            project_id: holder.project_id.clone(),
            consumer: holder.consumer.clone(),
            roles: holder.roles.clone(),
            credential: place,
        }))
    }
}

/// The `WWW-Authenticate` challenges of a route's schemes (RFC 9110 §11.6.1).
fn challenges(access: &Access) -> impl Iterator<Item = String> + '_ {
    access.schemes.iter().map(move |s| match s {
        AuthScheme::ApiKey => match &access.api_key {
            ApiKeyPlace::Header(h) => format!("ApiKey realm=\"portico\", header=\"{h}\""),
            ApiKeyPlace::Query(q) => format!("ApiKey realm=\"portico\", query=\"{q}\""),
        },
        AuthScheme::Token => "Keystone realm=\"portico\"".to_string(),
        AuthScheme::Jwt => "Bearer realm=\"portico\"".to_string(),
        AuthScheme::Signature => "SDK-HMAC-SHA256 realm=\"portico\"".to_string(),
    })
}

/// The value of query parameter `name`, percent-decoded; given twice is malformed.
fn query_param(query: Option<&[u8]>, name: &str) -> Result<Option<Vec<u8>>, Error> {
    let mut found = None;
    for pair in query.unwrap_or_default().split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if k == name.as_bytes() {
            if found.is_some() {
                return Err(Error::new(ErrorCode::CredentialsMalformed));
            }
            found =
                Some(percent_decode(v).ok_or_else(|| Error::new(ErrorCode::CredentialsMalformed))?);
        }
    }
    Ok(found)
}

fn percent_decode(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' => {
                let hex = v.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// `query` without the parameter `name` (every occurrence); `None` when nothing is left.
pub(crate) fn without_param(query: &[u8], name: &str) -> Option<Vec<u8>> {
    let kept: Vec<&[u8]> = query
        .split(|b| *b == b'&')
        .filter(|pair| {
            let key = pair.split(|b| *b == b'=').next().unwrap_or_default();
            key != name.as_bytes()
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(&b'&'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_decoded_and_removed() {
        assert_eq!(
            query_param(Some(b"a=1&api_key=pk%5Fx+y&b"), "api_key").ok(),
            Some(Some(b"pk_x y".to_vec()))
        );
        assert_eq!(query_param(Some(b"a=1"), "api_key").ok(), Some(None));
        assert!(query_param(Some(b"api_key=1&api_key=2"), "api_key").is_err());
        assert!(query_param(Some(b"api_key=%zz"), "api_key").is_err());
        assert_eq!(
            without_param(b"a=1&api_key=s&b=2&api_key", "api_key").as_deref(),
            Some(&b"a=1&b=2"[..])
        );
        assert_eq!(without_param(b"api_key=s", "api_key"), None);
    }
}
