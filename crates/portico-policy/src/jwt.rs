//! JSON Web Tokens (`auth: jwt`): a bearer token signed by an identity provider whose keys
//! Portico holds as a JWKS, checked for `iss`, `aud`, `exp` and `nbf` over an injected clock,
//! and mapped to a project, a consumer and roles by its claims.
//!
//! Only RS256, ES256 (P-256) and HS256 are taken, and each key verifies only with the
//! algorithm of its own type: an RSA key never verifies an HS256 token (the "HS256 with the
//! public key" confusion), and `alg: none` is refused before any key is looked at. The
//! signature itself is checked by `jsonwebtoken` (ring).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// The longest token read.
pub const MAX_TOKEN: usize = 8192;

/// What the identity provider must have said, and where the identity is in its claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSettings {
    /// `iss` must be this.
    pub issuer: String,
    /// `aud` must be, or contain, this.
    pub audience: String,
    /// How far `exp` and `nbf` may be off.
    pub leeway: Duration,
    /// The claim holding the project's id.
    pub project_claim: String,
    /// The claim holding the consumer's name.
    pub consumer_claim: String,
    /// The claim holding the roles (a list, or names separated by spaces).
    pub roles_claim: String,
}

/// Why a token was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of JSON, too long, or not decodable.
    Malformed,
    /// `alg` is none, unknown, or not the algorithm of the key it names.
    AlgorithmRefused,
    /// No key has the token's `kid` (or, without one, no single key fits).
    KeyUnknown,
    /// The signature is not the token's.
    SignatureInvalid,
    /// Past `exp` (and the leeway), or without `exp`.
    Expired,
    /// Before `nbf` (less the leeway).
    NotYetValid,
    /// `iss` or `aud` is not what was expected, or the identity claims are missing.
    ClaimsInvalid,
}

/// Who a valid token says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtIdentity {
    /// The project's id.
    pub project_id: String,
    /// The consumer's name.
    pub consumer: String,
    /// Its roles.
    pub roles: Vec<String>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens against a key set.
pub struct JwtVerifier {
    keys: Vec<Key>,
    settings: JwtSettings,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("settings", &self.settings)
            .finish()
    }
}

impl JwtVerifier {
    /// Reads a JWKS (`{"keys": [...]}`): RSA keys (`n`, `e`), EC P-256 keys (`x`, `y`) and
    /// symmetric keys (`k`), each with a `kid` when there are several.
    pub fn from_jwks(jwks: &str, settings: JwtSettings) -> Result<JwtVerifier, String> {
        let doc: Value =
            serde_json::from_str(jwks).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWKS is an object with a `keys` list")?;
        if list.is_empty() {
            return Err("the JWKS has no keys".to_string());
        }
        let mut keys = Vec::new();
        for (i, k) in list.iter().enumerate() {
            let text = |name: &str| k.get(name).and_then(Value::as_str);
            let kid = text("kid").map(str::to_string);
            let (alg, key) = match text("kty") {
                Some("RSA") => {
                    let (Some(n), Some(e)) = (text("n"), text("e")) else {
                        return Err(format!("key {i}: an RSA key has `n` and `e`"));
                    };
                    let key = DecodingKey::from_rsa_components(n, e)
                        .map_err(|e| format!("key {i}: {e}"))?;
                    (Algorithm::RS256, key)
                }
                Some("EC") => {
                    if text("crv") != Some("P-256") {
                        return Err(format!("key {i}: only P-256 EC keys (ES256) are taken"));
                    }
                    let (Some(x), Some(y)) = (text("x"), text("y")) else {
                        return Err(format!("key {i}: an EC key has `x` and `y`"));
                    };
                    let key = DecodingKey::from_ec_components(x, y)
                        .map_err(|e| format!("key {i}: {e}"))?;
                    (Algorithm::ES256, key)
                }
                Some("oct") => {
                    let secret = text("k")
                        .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
                        .filter(|s| s.len() >= 32)
                        .ok_or(format!(
                            "key {i}: a symmetric key has `k`, base64url, of at least 32 bytes"
                        ))?;
                    (Algorithm::HS256, DecodingKey::from_secret(&secret))
                }
                _ => return Err(format!("key {i}: `kty` is RSA, EC or oct")),
            };
            if let Some(declared) = text("alg") {
                let expected = match alg {
                    Algorithm::RS256 => "RS256",
                    Algorithm::ES256 => "ES256",
                    _ => "HS256",
                };
                if declared != expected {
                    return Err(format!(
                        "key {i}: `alg` {declared} is not taken for this key (only {expected})"
                    ));
                }
            }
            if kid.is_some() && keys.iter().any(|o: &Key| o.kid == kid) {
                return Err(format!("key {i}: `kid` is used twice"));
            }
            keys.push(Key { kid, alg, key });
        }
        Ok(JwtVerifier { keys, settings })
    }

    /// Checks `token` as of `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<JwtIdentity, JwtError> {
        if token.len() > MAX_TOKEN {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(JwtError::Malformed)?;
        let alg = match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some("HS256") => Algorithm::HS256,
            _ => return Err(JwtError::AlgorithmRefused),
        };
        if header.get("crit").is_some() {
            // Extensions Portico does not know must not be ignored (RFC 7515 §4.1.11).
            return Err(JwtError::Malformed);
        }
        let key = match header.get("kid").and_then(Value::as_str) {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(JwtError::KeyUnknown)?,
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.alg == alg);
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => k,
                    _ => return Err(JwtError::KeyUnknown),
                }
            }
        };
        if key.alg != alg {
            return Err(JwtError::AlgorithmRefused);
        }
        let mut validation = Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => JwtError::SignatureInvalid,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    JwtError::AlgorithmRefused
                }
                _ => JwtError::Malformed,
            })?
            .claims;
        self.check_claims(&claims, now)
    }

    fn check_claims(&self, claims: &Value, now: SystemTime) -> Result<JwtIdentity, JwtError> {
        let s = &self.settings;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let leeway = s.leeway.as_secs();
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(JwtError::Expired)?;
        if now > exp.saturating_add(leeway) {
            return Err(JwtError::Expired);
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_u64().ok_or(JwtError::ClaimsInvalid)?;
            if now.saturating_add(leeway) < nbf {
                return Err(JwtError::NotYetValid);
            }
        }
        if claims.get("iss").and_then(Value::as_str) != Some(s.issuer.as_str()) {
            return Err(JwtError::ClaimsInvalid);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == s.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&s.audience)),
            _ => false,
        };
        if !audience_ok {
            return Err(JwtError::ClaimsInvalid);
        }
        // The identity travels to upstreams in header fields (`X-Portico-Consumer`, ...):
        // a claim with a control byte could end a field early, so it is refused.
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && v.len() <= 256 && !v.chars().any(char::is_control))
                .map(str::to_string)
                .ok_or(JwtError::ClaimsInvalid)
        };
        let roles: Vec<String> = match claims.get(&s.roles_claim) {
            None => Vec::new(),
            Some(Value::String(list)) => list.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|r| {
                    r.as_str()
                        .map(str::to_string)
                        .ok_or(JwtError::ClaimsInvalid)
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(JwtError::ClaimsInvalid),
        };
        // Roles are joined with commas for upstreams and matched by name in policies: each
        // is a token, so none can pass for two.
        if !roles.iter().all(|r| is_role(r)) {
            return Err(JwtError::ClaimsInvalid);
        }
        Ok(JwtIdentity {
            project_id: text(&s.project_claim)?,
            consumer: text(&s.consumer_claim)?,
            roles,
        })
    }
}

/// A role name: an RFC 9110 token (no comma, no space, no control byte).
fn is_role(r: &str) -> bool {
    !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"a-symmetric-key-of-32-bytes-or-more!";

    fn settings() -> JwtSettings {
        JwtSettings {
            issuer: "https://idp.example".into(),
            audience: "portico".into(),
            leeway: Duration::from_secs(30),
            project_claim: "project_id".into(),
            consumer_claim: "sub".into(),
            roles_claim: "roles".into(),
        }
    }

    fn verifier() -> JwtVerifier {
        let jwks =
            json!({"keys": [{"kty": "oct", "kid": "hs", "k": URL_SAFE_NO_PAD.encode(SECRET)}]});
        JwtVerifier::from_jwks(&jwks.to_string(), settings()).unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn token(claims: Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("hs".into());
        encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn good() -> Value {
        json!({"iss": "https://idp.example", "aud": ["other", "portico"], "exp": 2000, "nbf": 1000,
               "sub": "alice", "project_id": "p1", "roles": "member reader"})
    }

    #[test]
    fn a_good_token_names_its_caller() {
        let id = verifier().verify(&token(good()), at(1500)).unwrap();
        assert_eq!(
            id,
            JwtIdentity {
                project_id: "p1".into(),
                consumer: "alice".into(),
                roles: vec!["member".into(), "reader".into()],
            }
        );
    }

    #[test]
    fn time_claims_hold_with_the_leeway_and_not_beyond() {
        let v = verifier();
        let t = token(good());
        assert!(v.verify(&t, at(2030)).is_ok());
        assert_eq!(v.verify(&t, at(2031)), Err(JwtError::Expired));
        assert!(v.verify(&t, at(970)).is_ok());
        assert_eq!(v.verify(&t, at(969)), Err(JwtError::NotYetValid));
        let mut no_exp = good();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(v.verify(&token(no_exp), at(1500)), Err(JwtError::Expired));
    }

    /// Each claim set to its value, alone, makes the token's claims refused.
    fn assert_claims_refused<const N: usize>(changes: [(&str, Value); N]) {
        let v = verifier();
        for (key, value) in changes {
            let mut claims = good();
            claims[key] = value;
            assert_eq!(
                v.verify(&token(claims), at(1500)),
                Err(JwtError::ClaimsInvalid),
                "{key}"
            );
        }
    }

    #[test]
    fn issuer_audience_and_identity_must_be_there() {
        assert_claims_refused([
            ("iss", json!("https://evil.example")),
            ("aud", json!("other")),
            ("sub", json!("")),
            ("project_id", json!(7)),
            ("roles", json!({"a": 1})),
        ]);
    }

    #[test]
    fn an_identity_that_could_break_a_header_field_is_refused() {
        // The identity goes upstream in header fields: a CR or LF would end one early, and a
        // comma in a role would make two roles of one.
        assert_claims_refused([
            ("sub", json!("alice\r\nX-Portico-Roles: admin")),
            ("project_id", json!("p1\n")),
            ("sub", json!("a\u{0}b")),
            ("roles", json!(["member", "reader,admin"])),
            ("roles", json!(["member\r\nX-A: 1"])),
            ("roles", json!([""])),
        ]);
    }

    #[test]
    fn forged_and_garbled_tokens_are_refused() {
        let v = verifier();
        let t = token(good());
        // Another key's signature.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("hs".into());
        let forged = encode(
            &header,
            &good(),
            &EncodingKey::from_secret(b"another-key-of-32-bytes-or-more!!!"),
        )
        .unwrap();
        assert_eq!(v.verify(&forged, at(1500)), Err(JwtError::SignatureInvalid));
        // alg: none, with and without a signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"hs"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(v.verify(&none, at(1500)), Err(JwtError::AlgorithmRefused));
        // An unknown key, an unknown extension, garbage.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("nobody".into());
        let unknown = encode(&header, &good(), &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(v.verify(&unknown, at(1500)), Err(JwtError::KeyUnknown));
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"x".repeat(MAX_TOKEN + 1)] {
            assert_eq!(
                v.verify(garbage, at(1500)),
                Err(JwtError::Malformed),
                "{garbage:.20}"
            );
        }
        // The payload changed after signing.
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut claims = good();
        claims["project_id"] = json!("p2");
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        parts[1] = &payload;
        assert_eq!(
            v.verify(&parts.join("."), at(1500)),
            Err(JwtError::SignatureInvalid)
        );
    }

    #[test]
    fn bad_key_sets_are_refused_with_why() {
        for (jwks, why) in [
            ("[]", "`keys` list"),
            (r#"{"keys": []}"#, "no keys"),
            (
                r#"{"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}"#,
                "at least 32 bytes",
            ),
            (
                r#"{"keys": [{"kty": "EC", "crv": "P-384", "x": "a", "y": "b"}]}"#,
                "P-256",
            ),
            (r#"{"keys": [{"kty": "OKP"}]}"#, "RSA, EC or oct"),
            (r#"{"keys": [{"kty": "RSA", "n": "AQAB"}]}"#, "`n` and `e`"),
        ] {
            let e = JwtVerifier::from_jwks(jwks, settings()).unwrap_err();
            assert!(e.contains(why), "{jwks}: {e}");
        }
        let k = URL_SAFE_NO_PAD.encode(SECRET);
        let e = JwtVerifier::from_jwks(
            &json!({"keys": [{"kty": "oct", "k": k, "alg": "HS512"}]}).to_string(),
            settings(),
        )
        .unwrap_err();
        assert!(e.contains("only HS256"), "{e}");
    }
}
