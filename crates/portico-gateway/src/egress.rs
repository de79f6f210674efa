//! The egress (forward) proxy, on a listener of its own (`egress:`): the operator's clients
//! reach the hosts `allow_hosts` names through it, with absolute-form `http://` requests
//! (forwarded on a connection of their own) and `CONNECT host:port` tunnels (bytes relayed
//! both ways after a 200).
//!
//! In order, before anything leaves Portico:
//! 1. `Proxy-Authorization` (RFC 9110 §11.7.2) → 407 with `Proxy-Authenticate` when it is
//!    missing, malformed or not valid; 429 for a client address that failed too often; the
//!    caller's project must be open (402, 403).
//! 2. the destination's name and port against `allow_hosts` → 403 `EGRESS_HOST_DENIED`.
//! 3. its addresses (resolved once, here; the connection goes to an address that was checked,
//!    so a second DNS answer cannot change where it goes): internal ones are dropped unless
//!    listed by address → 403 `EGRESS_ADDRESS_DENIED` when none is left.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use portico_config::{Egress, EgressAuth};
use portico_http::{BodyFraming, ErrorCode, Method, TargetForm, Version};
use portico_policy::egress::{address_allowed, host_allowed};
use portico_server::client::{Transport, Upstream, UpstreamSettings, UpstreamTarget, connect_tcp};
use portico_server::{Body, Error, Request, RequestBody, Response};

use crate::caller::{Caller, CredentialPlace, Routing};

use crate::access::{Directory, LoginSecret, single};
use crate::tokens::{Login, ProjectScope, TokenStore, token_digest};

/// How long a destination may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a verified `Basic` credential is believed without checking its password again (a
/// stored password costs hundreds of milliseconds to check).
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// The most verified credentials remembered.
const VERIFIED_MAX: usize = 10_000;

/// The egress proxy's settings, and the credentials it verified lately.
pub(crate) struct EgressProxy {
    settings: Egress,
    /// `Basic` credentials that passed, by the SHA-256 of the field's value.
    verified: Mutex<HashMap<[u8; 32], (Login, Instant)>>,
}

/// Where a request goes.
struct Destination<'a> {
    host: &'a str,
    port: u16,
}

impl EgressProxy {
    pub(crate) fn new(settings: &Egress) -> EgressProxy {
        EgressProxy {
            settings: settings.clone(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Answers a request to the egress listener.
    pub(crate) async fn handle(
        &self,
        directory: &Directory,
        tokens: &dyn TokenStore,
        req: &mut Request,
        body: &mut RequestBody<'_>,
    ) -> Result<Response, Error> {
        let caller = self.caller(directory, tokens, req).await?;
        let connect = req.head.method() == Method::Connect;
        let dest = destination(req)?;
        if !host_allowed(&self.settings.allow_hosts, dest.host, dest.port) {
            return Err(Error::new(ErrorCode::EgressHostDenied));
        }
        let addr = self.address(&dest).await?;
        let answer = if connect {
            if req.info.framing != BodyFraming::None {
                return Err(Error::new(ErrorCode::EgressTargetUnsupported)
                    .with_detail("A CONNECT request has no body."));
            }
            let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
            let stream = connect_tcp(addr, deadline).await?;
            let idle = self.settings.idle_timeout;
            Response {
                status: 200,
                reason: None,
                headers: Vec::new(),
                body: Body::Upgrade(Box::new(move |client| {
                    Box::pin(crate::relay::relay(
                        client,
                        stream,
                        bytes::Bytes::new(),
                        idle,
                    ))
                })),
                close: false,
                error: None,
            }
        } else {
            let upstream = Upstream::new(&UpstreamSettings {
                name: "egress".to_string(),
                targets: vec![UpstreamTarget {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    transport: Transport::Http,
                }],
                tls: None,
                connect_timeout: CONNECT_TIMEOUT,
                max_idle_per_target: 0,
                idle_timeout: Duration::ZERO,
                balance: Default::default(),
                passive: None,
                active: None,
            });
            // The destination is not told who called (no X-Portico-* fields).
            let outgoing = crate::proxy::outgoing(
                req,
                req.head.path(),
                None,
                upstream.authority(),
                None,
                None,
                None,
            )?;
            crate::proxy::forward(&upstream, outgoing, body, None)
                .await?
                .0
        };
        let target = format!("{}:{}", dest.host, dest.port);
        req.extensions.insert(Routing {
            route: None,
            upstream: Some(target.into()),
            series: None,
        });
        req.extensions.insert(caller);
        Ok(answer)
    }

    /// Who calls, from `Proxy-Authorization`.
    async fn caller(
        &self,
        directory: &Directory,
        tokens: &dyn TokenStore,
        req: &Request,
    ) -> Result<Caller, Error> {
        let ip = req.peer.ip();
        if let Some(wait) = directory.client_blocked(ip) {
            return Err(crate::access::limited(wait));
        }
        let challenge = |code: ErrorCode| {
            let scheme = match self.settings.auth {
                EgressAuth::Basic => "Basic realm=\"portico egress\", charset=\"UTF-8\"",
                EgressAuth::Token => "Bearer realm=\"portico egress\"",
            };
            Error::new(code).with_header("Proxy-Authenticate", scheme)
        };
        let mut values = req.head.fields_named("proxy-authorization").peekable();
        if values.peek().is_none() {
            return Err(challenge(ErrorCode::ProxyCredentialsMissing));
        }
        let value = single(values)
            .filter(|v| v.len() <= 1024)
            .ok_or_else(|| challenge(ErrorCode::ProxyCredentialsMalformed))?;
        let invalid = || {
            directory.count_failure(ip);
            challenge(ErrorCode::ProxyCredentialsInvalid)
        };
        let login = match self.settings.auth {
            EgressAuth::Basic => {
                let (scope, name, password) =
                    basic(value).ok_or_else(|| challenge(ErrorCode::ProxyCredentialsMalformed))?;
                let key = portico_policy::sha256(value);
                match self.remembered(&key) {
                    Some(login) => login,
                    None => {
                        let (login, secret) = directory
                            .login_candidate(ip, &scope, &name)
                            .map_err(|e| match e.code() {
                                ErrorCode::LoginFailed => {
                                    challenge(ErrorCode::ProxyCredentialsInvalid)
                                }
                                _ => e,
                            })?;
                        if !check_password(secret, password).await {
                            return Err(invalid());
                        }
                        self.remember(key, &login);
                        login
                    }
                }
            }
            EgressAuth::Token => {
                let token =
                    bearer(value).ok_or_else(|| challenge(ErrorCode::ProxyCredentialsMalformed))?;
                let grant = tokens
                    .get(&token_digest(token))
                    .await
                    .map_err(|e| Error::new(ErrorCode::Internal).with_cause(e))?;
                let caller = directory
                    .token_caller(grant, SystemTime::now())
                    .map_err(|_| invalid())?;
                directory.open_project(&caller.project_id)?;
                return Ok(proxied(caller));
            }
        };
        directory.login_project(&login)?;
        Ok(proxied(Caller {
            project_id: login.project_id.as_str().into(),
            consumer: login.consumer.as_str().into(),
            roles: login.roles.as_str().into(),
            credential: CredentialPlace::Field("proxy-authorization".into()),
        }))
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<Login> {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified
            .get(key)
            .filter(|(_, at)| at.elapsed() < VERIFIED_FOR)
            .map(|(login, _)| login.clone())
    }

    fn remember(&self, key: [u8; 32], login: &Login) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(key, (login.clone(), Instant::now()));
    }

    /// The address to connect to: the destination's, resolved once and checked.
    async fn address(&self, dest: &Destination<'_>) -> Result<SocketAddr, Error> {
        let candidates: Vec<SocketAddr> = match dest.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, dest.port)],
            // Bounded, like every lookup: a client naming hosts that never resolve must not
            // take the threads other work needs.
            Err(_) => portico_server::client::resolve(dest.host, dest.port)
                .await
                .map_err(|e| Error::new(ErrorCode::EgressResolveFailed).with_cause(e))?,
        };
        candidates
            .into_iter()
            .find(|a| address_allowed(&self.settings.allow_hosts, a.ip(), a.port()))
            .ok_or_else(|| Error::new(ErrorCode::EgressAddressDenied))
    }
}

/// The caller as noted for the log; its credential field is not passed on.
fn proxied(caller: Caller) -> Caller {
    Caller {
        credential: CredentialPlace::Field("proxy-authorization".into()),
        ..caller
    }
}

/// Checks a password off the request threads (a stored one costs hundreds of milliseconds).
async fn check_password(secret: LoginSecret, password: String) -> bool {
    tokio::task::spawn_blocking(move || secret.matches(&password))
        .await
        .unwrap_or(false)
}

/// `Basic base64(user:password)` (RFC 7617): the project scope and consumer the user names
/// (`project/consumer`, or the consumer alone), and the password.
fn basic(value: &[u8]) -> Option<(ProjectScope, String, String)> {
    let encoded = scheme_param(value, b"basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    let (scope, name) = match user.split_once('/') {
        Some((project, consumer)) => (ProjectScope::Name(project.to_string()), consumer),
        None => (ProjectScope::None, user),
    };
    (!name.is_empty()).then(|| (scope, name.to_string(), password.to_string()))
}

/// `Bearer TOKEN`.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    scheme_param(value, b"bearer ").filter(|t| !t.is_empty())
}

/// What follows an auth scheme (compared case-insensitively, RFC 9110 §11.1) and its space.
fn scheme_param<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| value[scheme.len()..].trim_ascii())
}

/// Where the request goes: `CONNECT host:port`, or an absolute-form `http://` target (port 80
/// unless it says).
fn destination(req: &Request) -> Result<Destination<'_>, Error> {
    let unsupported = || Error::new(ErrorCode::EgressTargetUnsupported);
    if req.head.version() == Version::Http2 {
        return Err(unsupported().with_detail("The egress proxy speaks HTTP/1.1."));
    }
    let authority = req.head.authority().ok_or_else(unsupported)?;
    let default_port = match req.head.form() {
        TargetForm::Authority => None,
        TargetForm::Absolute
            if req
                .head
                .target()
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"http://")) =>
        {
            Some(80)
        }
        _ => return Err(unsupported()),
    };
    // The parser admits only visible ASCII in a target.
    let authority = std::str::from_utf8(authority).map_err(|_| unsupported())?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(unsupported)?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0),
        None => default_port,
    }
    .ok_or_else(|| unsupported().with_detail("The destination needs a port."))?;
    if host.is_empty() {
        return Err(unsupported());
    }
    Ok(Destination { host, port })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn basic_credentials_name_a_consumer_with_or_without_its_project() {
        let encode = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let (scope, name, password) = basic(encode("acme/alice:pa:ss").as_bytes()).unwrap();
        assert!(matches!(scope, ProjectScope::Name(p) if p == "acme"));
        assert_eq!((name.as_str(), password.as_str()), ("alice", "pa:ss"));
        let (scope, name, _) = basic(encode("alice:x").as_bytes()).unwrap();
        assert!(matches!(scope, ProjectScope::None));
        assert_eq!(name, "alice");
        assert!(basic(b"Basic !!!").is_none());
        assert!(basic(encode("no-colon").as_bytes()).is_none());
        assert!(basic(encode(":empty-user").as_bytes()).is_none());
        assert!(basic(b"Bearer abc").is_none());
        assert_eq!(bearer(b"bearer  tok "), Some(&b"tok"[..]));
        assert_eq!(bearer(b"Bearer "), None);
    }
}
