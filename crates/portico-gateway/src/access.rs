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
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime};

use portico_config::{Access, ApiKeyPlace, AuthScheme, BillingState, Jwt, Plan, Project, Quota};
use portico_http::BodyFraming;
use portico_http::ErrorCode;
use portico_policy::cidr::any_contains;
use portico_policy::failures::{FailureLimiter, FailureRate};
use portico_policy::jwt::{JwtError, JwtVerifier};
use portico_policy::rules::{self, Subject};
use portico_policy::signature::{
    self, Authorization, SignatureError, SignedRequest, SigningKey, UNSIGNED_PAYLOAD,
};
use portico_policy::{Secret, ct_eq, sha256};
use portico_server::{Error, Request};

use crate::caller::{Caller, CredentialPlace};

use crate::tokens::{Login, ProjectScope, StoredGrant};

/// The fields credentials come in, made once: naming one on a request is a reference count,
/// not an allocation.
static AUTHORIZATION: LazyLock<Arc<str>> = LazyLock::new(|| "authorization".into());
static X_AUTH_TOKEN: LazyLock<Arc<str>> = LazyLock::new(|| "x-auth-token".into());

/// The longest credential read; anything longer is malformed, and not hashed.
const MAX_CREDENTIAL: usize = 512;

/// What a consumer's password is checked against.
#[derive(Clone)]
pub(crate) enum LoginSecret {
    /// The password itself (from the configuration file).
    Plain(Secret),
    /// Its kept form (from the admin API), `pbkdf2-sha256$…`.
    Hashed(String),
}

impl LoginSecret {
    /// Whether `password` is it. A hashed one costs hundreds of milliseconds of CPU: call
    /// this off the request threads.
    pub(crate) fn matches(&self, password: &str) -> bool {
        match self {
            LoginSecret::Plain(p) => ct_eq(p.expose().as_bytes(), password.as_bytes()),
            LoginSecret::Hashed(h) => portico_policy::password::verify_password(password, h),
        }
    }
}

/// A consumer: its project's id and its name.
type ConsumerKey = (Arc<str>, Arc<str>);

/// Every project and every credential the gateway knows, indexed for the request path.
#[derive(Default)]
pub(crate) struct Directory {
    /// Authentication failures by client address, shared by the gateways that reloads build.
    pub(crate) failures: Arc<FailureLimiter>,
    failure_rate: Option<FailureRate>,
    /// Every project's billing state and its plan's quota.
    projects: HashMap<Arc<str>, ProjectEntry>,
    /// Project names by id, and ids by name (for the token service's scopes).
    project_names: HashMap<Arc<str>, String>,
    project_ids: HashMap<String, Arc<str>>,
    /// Every consumer by (project id, name): whether it is enabled.
    consumers: HashMap<ConsumerKey, bool>,
    /// Consumers with a password, by (project id, name).
    logins: HashMap<ConsumerKey, (LoginSecret, Arc<str>)>,
    jwt: Option<JwtVerifier>,
    api_keys: HashMap<[u8; 32], KeyHolder>,
    access_keys: HashMap<String, (SigningKey, KeyHolder)>,
}

/// What the request path needs of a project.
struct ProjectEntry {
    state: BillingState,
    /// Its plan's name, and its quota.
    plan: Arc<str>,
    quota: Option<Quota>,
}

struct KeyHolder {
    project_id: Arc<str>,
    consumer: Arc<str>,
    roles: Arc<str>,
    usable: Usable,
    expires: Option<SystemTime>,
}

impl KeyHolder {
    fn caller(&self, credential: CredentialPlace) -> Caller {
        Caller {
            project_id: self.project_id.clone(),
            consumer: self.consumer.clone(),
            roles: self.roles.clone(),
            credential,
        }
    }
}

/// What must still be checked once the body has been read.
pub(crate) enum BodyCheck {
    /// The body's SHA-256 must be this (hex), as the signed `X-Sdk-Content-Sha256` says.
    Digest(String),
    /// The signature covers the body's SHA-256, which only the body can give.
    Signature(Box<PendingSignature>),
}

/// A signature that needs the body's digest to be checked.
pub(crate) struct PendingSignature {
    auth: Authorization,
    date: String,
    key: SigningKey,
}

/// The outcome of the access phase.
pub(crate) struct Verdict {
    /// Who called, if the caller proved it.
    pub(crate) caller: Option<Caller>,
    /// What is left to check against the body, before anything is sent on.
    pub(crate) body: Option<BodyCheck>,
    /// The project the request is counted against, and its quota.
    pub(crate) quota: Option<(Arc<str>, Quota)>,
    /// The project the request is for, and its plan's name.
    pub(crate) plan: Option<(Arc<str>, Arc<str>)>,
}

/// Whether a credential may be used, apart from its expiry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Usable {
    Yes,
    Revoked,
}

impl Directory {
    pub(crate) fn new(
        projects: &[Project],
        plans: &[Plan],
        jwt: Option<&Jwt>,
        failure_rate: FailureRate,
    ) -> Result<Directory, String> {
        let jwt = match jwt {
            Some(j) => Some(JwtVerifier::from_jwks(&j.jwks, j.settings.clone())?),
            None => None,
        };
        let mut d = Directory {
            failure_rate: Some(failure_rate),
            jwt,
            ..Directory::default()
        };
        for p in projects {
            let id: Arc<str> = p.id.as_str().into();
            let quota = plans
                .iter()
                .find(|plan| plan.name == p.plan)
                .and_then(|plan| plan.quota);
            d.projects.insert(
                id.clone(),
                ProjectEntry {
                    state: p.billing_state,
                    plan: p.plan.as_str().into(),
                    quota,
                },
            );
            d.project_names.insert(id.clone(), p.name.clone());
            d.project_ids.insert(p.name.clone(), id.clone());
            for c in &p.consumers {
                let consumer: Arc<str> = c.name.as_str().into();
                let roles: Arc<str> = c.roles.join(",").into();
                d.consumers
                    .insert((id.clone(), consumer.clone()), c.enabled);
                let secret = match (&c.password, &c.password_hash) {
                    (Some(p), _) => Some(LoginSecret::Plain(p.clone())),
                    (None, Some(h)) => Some(LoginSecret::Hashed(h.clone())),
                    (None, None) => None,
                };
                if let Some(secret) = secret {
                    d.logins
                        .insert((id.clone(), consumer.clone()), (secret, roles.clone()));
                }
                for k in &c.access_keys {
                    let usable = if c.enabled && k.enabled {
                        Usable::Yes
                    } else {
                        Usable::Revoked
                    };
                    d.access_keys.insert(
                        k.id.clone(),
                        (
                            SigningKey::new(k.secret.expose().as_bytes()),
                            KeyHolder {
                                project_id: id.clone(),
                                consumer: consumer.clone(),
                                roles: roles.clone(),
                                usable,
                                expires: None,
                            },
                        ),
                    );
                }
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
        Ok(d)
    }

    /// The access phase for a request on a route asking `access`; `project` is the URL's
    /// `{project_id}`, if the route has one. The caller, when it proved who it is.
    pub(crate) fn check(
        &self,
        access: &Access,
        req: &Request,
        project: Option<&str>,
        path: &str,
        token: Option<Result<Option<StoredGrant>, Error>>,
        now: SystemTime,
    ) -> Result<Verdict, Error> {
        let ip = req.peer.ip();
        if any_contains(&access.deny_cidrs, ip)
            || (!access.allow_cidrs.is_empty() && !any_contains(&access.allow_cidrs, ip))
        {
            return Err(Error::new(ErrorCode::ClientAddressDenied));
        }
        if let Some(wait) = self.blocked(access, ip) {
            return Err(limited(wait));
        }
        let (caller, body) = self.identify(access, req, token, now)?;
        match &caller {
            None if !access.schemes.is_empty() && !access.anonymous => {
                return Err(self::challenge(
                    access,
                    Error::new(ErrorCode::CredentialsMissing),
                ));
            }
            Some(c) if project.is_some_and(|p| p != &*c.project_id) => {
                return Err(Error::new(ErrorCode::ProjectMismatch));
            }
            _ => {}
        }
        if !access.policy.is_empty() {
            let subject = Subject {
                consumer: caller.as_ref().map(|c| &*c.consumer),
                roles: caller.as_ref().map_or("", |c| &*c.roles),
                method: req.head.method().as_str(),
                path,
            };
            if !rules::allows(&access.policy, &subject) {
                return Err(Error::new(ErrorCode::PolicyDenied));
            }
        }
        // The project is the caller's, or (on an open route) the URL's.
        let project = caller.as_ref().map(|c| &*c.project_id).or(project);
        let Some((id, entry)) = project.and_then(|p| self.projects.get_key_value(p)) else {
            return Ok(Verdict {
                caller,
                body,
                quota: None,
                plan: None,
            });
        };
        match entry.state {
            BillingState::Suspended => Err(Error::new(ErrorCode::BillingSuspended)),
            BillingState::Closed => Err(Error::new(ErrorCode::ProjectClosed)),
            BillingState::Active => Ok(Verdict {
                caller,
                body,
                quota: entry.quota.map(|q| (id.clone(), q)),
                plan: Some((id.clone(), entry.plan.clone())),
            }),
        }
    }

    /// The caller, by the first of the route's schemes whose credentials the request carries
    /// (each failure with its own code and the route's challenges), and what is left to
    /// check against the body.
    fn identify(
        &self,
        access: &Access,
        req: &Request,
        mut token: Option<Result<Option<StoredGrant>, Error>>,
        now: SystemTime,
    ) -> Result<(Option<Caller>, Option<BodyCheck>), Error> {
        let challenge = |e: Error| self.failed(access, req.peer.ip(), e);
        for scheme in &access.schemes {
            let found = match scheme {
                AuthScheme::ApiKey => self.api_key(access, req, now).map_err(challenge)?,
                AuthScheme::Signature => match self.signature(req, now).map_err(challenge)? {
                    Some((c, check)) => return Ok((Some(c), check)),
                    None => None,
                },
                AuthScheme::Jwt => self.bearer(req, now).map_err(challenge)?,
                AuthScheme::Token => match token.take() {
                    None => None,
                    Some(lookup) => Some(
                        lookup
                            .and_then(|grant| self.token_caller(grant, now))
                            .map_err(challenge)?,
                    ),
                },
            };
            if found.is_some() {
                return Ok((found, None));
            }
        }
        Ok((None, None))
    }

    /// How long `ip` must wait before it may try to authenticate again, if it must.
    fn blocked(&self, access: &Access, ip: IpAddr) -> Option<u64> {
        if access.schemes.is_empty() {
            return None;
        }
        self.client_blocked(ip)
    }

    /// How long `ip` must wait before it may try to authenticate again, if it must, whatever
    /// it calls.
    pub(crate) fn client_blocked(&self, ip: IpAddr) -> Option<u64> {
        if self.failures.is_empty() {
            return None;
        }
        self.failures
            .blocked(ip, self.failure_rate?, Instant::now())
    }

    /// Counts a failed authentication by `ip`.
    pub(crate) fn count_failure(&self, ip: IpAddr) {
        if let Some(rate) = self.failure_rate {
            self.failures.failed(ip, rate, Instant::now());
        }
    }

    /// A failed authentication by `ip`: counted, and answered with the route's challenges.
    pub(crate) fn failed(&self, access: &Access, ip: IpAddr, e: Error) -> Error {
        self.count_failure(ip);
        challenge(access, e)
    }

    /// The caller a token names, from what the store kept of it.
    pub(crate) fn token_caller(
        &self,
        grant: Option<StoredGrant>,
        now: SystemTime,
    ) -> Result<Caller, Error> {
        let grant = grant.ok_or_else(|| Error::new(ErrorCode::TokenUnknown))?;
        if grant.revoked {
            return Err(Error::new(ErrorCode::CredentialRevoked));
        }
        let now_ms = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if grant.expires_ms <= now_ms {
            return Err(Error::new(ErrorCode::CredentialExpired));
        }
        let text = |k: &str| {
            grant
                .body
                .get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        };
        let (project_id, consumer): (Arc<str>, Arc<str>) =
            (text("project_id").into(), text("consumer").into());
        // A consumer that was disabled or removed since takes its tokens with it.
        if self.consumers.get(&(project_id.clone(), consumer.clone())) != Some(&true) {
            return Err(Error::new(ErrorCode::CredentialRevoked));
        }
        Ok(Caller {
            project_id,
            consumer,
            roles: text("roles").into(),
            credential: CredentialPlace::Field(X_AUTH_TOKEN.clone()),
        })
    }

    /// Finds the consumer a token request names, and what its password must be checked
    /// against; an unknown one counts as a failure. 429 while the client may not try.
    pub(crate) fn login_candidate(
        &self,
        ip: IpAddr,
        scope: &ProjectScope,
        name: &str,
    ) -> Result<(Login, LoginSecret), Error> {
        if let Some(wait) = self.client_blocked(ip) {
            return Err(limited(wait));
        }
        let candidates: Vec<&Arc<str>> = match scope {
            ProjectScope::Id(id) => self
                .projects
                .get_key_value(id.as_str())
                .map(|(k, _)| k)
                .into_iter()
                .collect(),
            ProjectScope::Name(n) => self.project_ids.get(n).into_iter().collect(),
            ProjectScope::None => self
                .logins
                .keys()
                .filter(|(_, c)| &**c == name)
                .map(|(p, _)| p)
                .collect(),
        };
        let found = match candidates.as_slice() {
            [project] => {
                let key = ((*project).clone(), Arc::from(name));
                self.logins
                    .get(&key)
                    .filter(|_| self.consumers.get(&key) == Some(&true))
                    .map(|(secret, roles)| {
                        (
                            Login {
                                project_id: project.to_string(),
                                project_name: self
                                    .project_names
                                    .get(*project)
                                    .cloned()
                                    .unwrap_or_default(),
                                consumer: name.to_string(),
                                roles: roles.to_string(),
                            },
                            secret.clone(),
                        )
                    })
            }
            _ => None,
        };
        found.ok_or_else(|| self.login_failed(ip))
    }

    /// A failed login: counted against the client, and the answer (which does not say
    /// whether the user or the password was wrong).
    pub(crate) fn login_failed(&self, ip: IpAddr) -> Error {
        self.count_failure(ip);
        Error::new(ErrorCode::LoginFailed)
    }

    /// A logged-in consumer's project must be open for business.
    pub(crate) fn login_project(&self, login: &Login) -> Result<(), Error> {
        self.open_project(&login.project_id)
    }

    /// A project that is not open for business: 402 suspended, 403 closed.
    pub(crate) fn open_project(&self, project_id: &str) -> Result<(), Error> {
        match self.projects.get(project_id).map(|p| &p.state) {
            Some(BillingState::Suspended) => Err(Error::new(ErrorCode::BillingSuspended)),
            Some(BillingState::Closed) => Err(Error::new(ErrorCode::ProjectClosed)),
            _ => Ok(()),
        }
    }

    /// The caller a JSON Web Token names, if the request has `Authorization: Bearer`.
    fn bearer(&self, req: &Request, now: SystemTime) -> Result<Option<Caller>, Error> {
        let mut values = req.head.fields_named("authorization");
        let Some(value) = values.next() else {
            return Ok(None);
        };
        let Some(token) = value
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..])
        else {
            return Ok(None);
        };
        let Some(verifier) = &self.jwt else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Error::new(ErrorCode::JwtMalformed));
        }
        let token = std::str::from_utf8(token.trim_ascii())
            .map_err(|_| Error::new(ErrorCode::JwtMalformed))?;
        let id = verifier.verify(token, now).map_err(|e| {
            Error::new(match e {
                JwtError::Malformed => ErrorCode::JwtMalformed,
                JwtError::AlgorithmRefused => ErrorCode::JwtAlgorithmRefused,
                JwtError::KeyUnknown => ErrorCode::JwtKeyUnknown,
                JwtError::SignatureInvalid => ErrorCode::JwtSignatureInvalid,
                JwtError::Expired => ErrorCode::JwtExpired,
                JwtError::NotYetValid => ErrorCode::JwtNotYetValid,
                JwtError::ClaimsInvalid => ErrorCode::JwtClaimsInvalid,
            })
        })?;
        Ok(Some(Caller {
            project_id: id.project_id.into(),
            consumer: id.consumer.into(),
            roles: id.roles.join(",").into(),
            credential: CredentialPlace::Field(AUTHORIZATION.clone()),
        }))
    }

    /// The caller named by a signed request, if the request is signed; and what is left to
    /// check once the body is read. Everything that the head alone decides is decided here.
    fn signature(
        &self,
        req: &Request,
        now: SystemTime,
    ) -> Result<Option<(Caller, Option<BodyCheck>)>, Error> {
        let head = &req.head;
        let mut values = head.fields_named("authorization");
        let Some(value) = values.next().filter(|v| Authorization::is_scheme(v)) else {
            return Ok(None);
        };
        let malformed = || Error::new(ErrorCode::SignatureMalformed);
        if values.next().is_some() {
            return Err(malformed());
        }
        let auth = Authorization::parse(value).map_err(|_| malformed())?;
        let date = single(head.fields_named("x-sdk-date"))
            .and_then(|d| std::str::from_utf8(d).ok())
            .ok_or_else(malformed)?
            .trim()
            .to_string();
        let Some((secret, holder)) = self.access_keys.get(&auth.access) else {
            return Err(Error::new(ErrorCode::AccessKeyUnknown));
        };
        if holder.usable == Usable::Revoked {
            return Err(Error::new(ErrorCode::CredentialRevoked));
        }
        signature::check_date(&date, now).map_err(signature_error)?;
        let declared = match head.fields_named("x-sdk-content-sha256").next() {
            None => None,
            Some(_)
                if !auth
                    .signed_headers
                    .split(';')
                    .any(|h| h == "x-sdk-content-sha256") =>
            {
                return Err(malformed());
            }
            Some(_) => Some(
                single(head.fields_named("x-sdk-content-sha256"))
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .map(|d| d.trim().to_string())
                    .filter(|d| {
                        d == UNSIGNED_PAYLOAD
                            || (d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
                    })
                    .ok_or_else(malformed)?,
            ),
        };
        let has_body = req.info.framing != BodyFraming::None;
        let caller = holder.caller(CredentialPlace::Field(AUTHORIZATION.clone()));
        let payload = match (&declared, has_body) {
            (Some(d), _) => d.clone(),
            (None, false) => signature::EMPTY_PAYLOAD_HASH.to_string(),
            (None, true) => {
                // Only the body can tell: checked once it is read, before it goes anywhere.
                let check = BodyCheck::Signature(Box::new(PendingSignature {
                    auth,
                    date,
                    key: secret.clone(),
                }));
                return Ok(Some((caller, Some(check))));
            }
        };
        verify_signature(req, &auth, &date, secret, &payload, now)?;
        let check = match declared {
            Some(d) if d != UNSIGNED_PAYLOAD => Some(BodyCheck::Digest(d.to_ascii_lowercase())),
            _ => None,
        };
        Ok(Some((caller, check)))
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
            ApiKeyPlace::Query(name) => {
                match query_param(req.head.query(), name, ErrorCode::CredentialsMalformed)? {
                    None => return Ok(None),
                    Some(v) => (v, CredentialPlace::Query(name.as_str().into())),
                }
            }
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
        Ok(Some(holder.caller(place)))
    }
}

impl BodyCheck {
    /// Checks the body, read whole (`None` when there was none).
    pub(crate) fn check(
        &self,
        req: &Request,
        body: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<(), Error> {
        let digest = signature::payload_hash(body.unwrap_or_default());
        match self {
            BodyCheck::Digest(expected) => {
                if ct_eq(expected.as_bytes(), digest.as_bytes()) {
                    Ok(())
                } else {
                    Err(Error::new(ErrorCode::BodyDigestMismatch))
                }
            }
            BodyCheck::Signature(p) => {
                verify_signature(req, &p.auth, &p.date, &p.key, &digest, now)
            }
        }
    }
}

/// Verifies a signature with the payload hash `payload`.
fn verify_signature(
    req: &Request,
    auth: &Authorization,
    date: &str,
    key: &SigningKey,
    payload: &str,
    now: SystemTime,
) -> Result<(), Error> {
    let head = &req.head;
    let headers = |name: &str| {
        head.fields()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
    };
    let request = SignedRequest {
        method: head.method().as_str(),
        path: head.path(),
        query: head.query(),
        headers: &headers,
        signed_headers: &auth.signed_headers,
        payload_hash: payload,
    };
    signature::verify_with(auth, &request, date, key, now).map_err(signature_error)
}

fn signature_error(e: SignatureError) -> Error {
    Error::new(match e {
        SignatureError::Malformed => ErrorCode::SignatureMalformed,
        SignatureError::Skewed => ErrorCode::SignatureSkewed,
        SignatureError::Mismatch => ErrorCode::SignatureMismatch,
    })
}

/// 429 for a client that failed to authenticate too often: it may try again in `wait` seconds.
pub(crate) fn limited(wait: u64) -> Error {
    Error::new(ErrorCode::AuthFailuresLimited).with_header("Retry-After", wait.to_string())
}

/// The one value of a field sent once; `None` when absent or repeated.
pub(crate) fn single<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// `e` with a `WWW-Authenticate` challenge for each scheme of the route.
pub(crate) fn challenge(access: &Access, e: Error) -> Error {
    challenges(access).fold(e, |e, c| e.with_header("WWW-Authenticate", c))
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
/// The percent-decoded value of the query parameter `name`, if the query has it; a parameter
/// given twice, or badly encoded, is the request's mistake: `invalid`.
pub(crate) fn query_param(
    query: Option<&[u8]>,
    name: &str,
    invalid: ErrorCode,
) -> Result<Option<Vec<u8>>, Error> {
    let mut found = None;
    for pair in query.unwrap_or_default().split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if k == name.as_bytes() {
            if found.is_some() {
                return Err(Error::new(invalid));
            }
            found = Some(percent_decode(v).ok_or_else(|| Error::new(invalid))?);
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
    without_params(query, &[Some(name)])
}

/// The query without the parameters named in `names` (`None` when nothing is left).
pub(crate) fn without_params(query: &[u8], names: &[Option<&str>]) -> Option<Vec<u8>> {
    let kept: Vec<&[u8]> = query
        .split(|b| *b == b'&')
        .filter(|pair| {
            let key = pair.split(|b| *b == b'=').next().unwrap_or_default();
            !names.iter().flatten().any(|n| key == n.as_bytes())
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(&b'&'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_decoded_and_removed() {
        const CODE: ErrorCode = ErrorCode::CredentialsMalformed;
        assert_eq!(
            query_param(Some(b"a=1&api_key=pk%5Fx+y&b"), "api_key", CODE).ok(),
            Some(Some(b"pk_x y".to_vec()))
        );
        assert_eq!(query_param(Some(b"a=1"), "api_key", CODE).ok(), Some(None));
        assert!(query_param(Some(b"api_key=1&api_key=2"), "api_key", CODE).is_err());
        assert!(query_param(Some(b"api_key=%zz"), "api_key", CODE).is_err());
        assert_eq!(
            without_param(b"a=1&api_key=s&b=2&api_key", "api_key").as_deref(),
            Some(&b"a=1&b=2"[..])
        );
        assert_eq!(without_param(b"api_key=s", "api_key"), None);
    }
}
