//! The token service (`handler: tokens`) and the tokens it issues (`auth: token`).
//!
//! A client posts the Keystone v3 password-method request that OpenStack clients send
//! (keystoneauth1's `v3.Password`): a user name and password, an optional domain (Portico has
//! none; any is taken), and a scope by project id or name. Portico answers 201 in Keystone's
//! shape, the token in `X-Subject-Token`. The token is 32 random bytes; Portico keeps only its
//! SHA-256 (in the store when one is open, so any node can check it, else in this process),
//! with the project, the consumer and the roles it grants and when it expires. A route with
//! `auth: token` takes it in `X-Auth-Token`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_http::ErrorCode;
use portico_policy::{hex, sha256_hex};
use portico_server::{Error, Request, RequestBody, Response};
use portico_store::StoreError;
use serde_json::{Value, json};

use crate::access::Directory;
use crate::access_log::rfc3339_millis;

/// The largest token request read.
const MAX_REQUEST: u64 = 64 * 1024;

/// A token as kept: what it grants, until when, and whether it was revoked.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredGrant {
    /// `project_id`, `consumer` and `roles`, as the token service wrote them.
    pub body: Value,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_ms: i64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// A boxed future, for the token store's object-safe methods.
pub type TokenFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where issued tokens are kept, by the hex SHA-256 of the token.
pub trait TokenStore: Send + Sync + 'static {
    /// Keeps a new token.
    fn put<'a>(&'a self, digest: &'a str, grant: &'a Value, expires_ms: i64)
    -> TokenFuture<'a, ()>;
    /// The token under `digest`, if any.
    fn get<'a>(&'a self, digest: &'a str) -> TokenFuture<'a, Option<StoredGrant>>;
}

/// Tokens kept in this process: for a Portico without a store (one node). Expired tokens are
/// swept as new ones come.
#[derive(Default)]
pub struct MemoryTokens {
    map: Mutex<HashMap<String, StoredGrant>>,
}

impl MemoryTokens {
    /// Revokes a token; whether there was one not revoked yet.
    pub fn revoke(&self, digest: &str) -> bool {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(digest) {
            Some(g) if !g.revoked => {
                g.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// Keeps a grant as it is (tests use this to plant expired or revoked tokens).
    pub fn insert(&self, digest: &str, grant: StoredGrant) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest.to_string(), grant);
    }
}

impl TokenStore for MemoryTokens {
    fn put<'a>(
        &'a self,
        digest: &'a str,
        grant: &'a Value,
        expires_ms: i64,
    ) -> TokenFuture<'a, ()> {
        Box::pin(async move {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= 100_000 {
                let now = now_ms();
                map.retain(|_, g| g.expires_ms > now);
            }
            map.insert(
                digest.to_string(),
                StoredGrant {
                    body: grant.clone(),
                    expires_ms,
                    revoked: false,
                },
            );
            Ok(())
        })
    }

    fn get<'a>(&'a self, digest: &'a str) -> TokenFuture<'a, Option<StoredGrant>> {
        Box::pin(async move {
            Ok(self
                .map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(digest)
                .cloned())
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The hex SHA-256 under which a token is kept.
pub fn token_digest(token: &[u8]) -> String {
    sha256_hex(token)
}

/// How a token request names the project.
pub(crate) enum ProjectScope {
    Id(String),
    Name(String),
    None,
}

/// Answers a token request: checks the password, issues a token valid for `ttl`, keeps it.
pub(crate) async fn issue(
    directory: &Directory,
    store: &dyn TokenStore,
    ttl: Duration,
    req: &Request,
    body: &mut RequestBody<'_>,
) -> Result<Response, Error> {
    let asked = PasswordRequest::read(body).await?;
    let ip = req.peer.ip();
    let (login, secret) = directory.login_candidate(ip, &asked.scope, &asked.name)?;
    // A hashed password costs hundreds of milliseconds: never on a request thread.
    let given = asked.password;
    let matches = tokio::task::spawn_blocking(move || secret.matches(&given))
        .await
        .unwrap_or(false);
    if !matches {
        return Err(directory.login_failed(ip));
    }
    directory.login_project(&login)?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)
        .map_err(|e| Error::new(ErrorCode::Internal).with_cause(e.to_string()))?;
    let token = format!("pt_{}", hex(&raw));
    let issued = SystemTime::now();
    let expires = issued + ttl;
    let expires_ms = i64::try_from(
        expires
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let grant = json!({
        "project_id": login.project_id,
        "consumer": login.consumer,
        "roles": login.roles,
    });
    store
        .put(&token_digest(token.as_bytes()), &grant, expires_ms)
        .await
        .map_err(|e| Error::new(ErrorCode::Internal).with_cause(e))?;
    let answer = keystone_token(&login, issued, expires, &raw);
    Ok(Response::new(201)
        .header("X-Subject-Token", token)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(answer.to_string().into_bytes()))
}

/// What a Keystone v3 password-method request asks for.
struct PasswordRequest {
    name: String,
    password: String,
    scope: ProjectScope,
}

impl PasswordRequest {
    /// Reads the request's JSON body: 400 when it is not JSON, or not a password request.
    async fn read(body: &mut RequestBody<'_>) -> Result<PasswordRequest, Error> {
        body.set_limit(MAX_REQUEST);
        let mut bytes = Vec::new();
        while let Some(chunk) = body.chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|_| Error::new(ErrorCode::JsonMalformed))?;
        let invalid = || Error::new(ErrorCode::TokenRequestInvalid);
        let identity = doc.pointer("/auth/identity").ok_or_else(invalid)?;
        let password_method = identity
            .get("methods")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("password")));
        if !password_method {
            return Err(invalid());
        }
        let user = identity.pointer("/password/user").ok_or_else(invalid)?;
        let text = |key: &str| {
            user.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(invalid)
        };
        let (name, password) = (text("name")?, text("password")?);
        let scope = match doc.pointer("/auth/scope/project") {
            None => ProjectScope::None,
            Some(p) => match (
                p.get("id").and_then(Value::as_str),
                p.get("name").and_then(Value::as_str),
            ) {
                (Some(id), _) => ProjectScope::Id(id.to_string()),
                (None, Some(name)) => ProjectScope::Name(name.to_string()),
                (None, None) => return Err(invalid()),
            },
        };
        Ok(PasswordRequest {
            name,
            password,
            scope,
        })
    }
}

/// The token's description, as Keystone answers it.
fn keystone_token(login: &Login, issued: SystemTime, expires: SystemTime, raw: &[u8]) -> Value {
    let domain = json!({"id": "default", "name": "Default"});
    let roles: Vec<Value> = login
        .roles
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| json!({"id": r, "name": r}))
        .collect();
    let user_id: String =
        token_digest(format!("{}/{}", login.project_id, login.consumer).as_bytes())[..32]
            .to_string();
    let audit: String = token_digest(raw)[..22].to_string();
    json!({"token": {
        "methods": ["password"],
        "issued_at": keystone_time(issued),
        "expires_at": keystone_time(expires),
        "user": {"id": user_id, "name": login.consumer, "domain": domain, "password_expires_at": null},
        "project": {"id": login.project_id, "name": login.project_name, "domain": domain},
        "roles": roles,
        "catalog": [],
        "audit_ids": [audit],
    }})
}

/// `2026-11-26T09:13:00.000000Z`, as Keystone writes times.
fn keystone_time(t: SystemTime) -> String {
    let millis = rfc3339_millis(t);
    // `…:00.123Z` → `…:00.123000Z`
    format!("{}000Z", millis.trim_end_matches('Z'))
}

/// Who a successful login is.
#[derive(Clone)]
pub(crate) struct Login {
    pub(crate) project_id: String,
    pub(crate) project_name: String,
    pub(crate) consumer: String,
    pub(crate) roles: String,
}
