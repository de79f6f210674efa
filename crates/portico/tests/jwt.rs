//! JSON Web Tokens (`auth: jwt`) over real sockets: RS256, ES256 and HS256 tokens from an
//! identity provider name the caller; every bad token is its own 401 — `alg: none`, an HS256
//! token signed with an RSA key's public half, wrong issuer or audience, expired, not yet
//! valid, unknown key, garbage — and a token for another project is 403.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portico_testkit::{TestGateway, assert_error};
use serde_json::{Value, json};

const ACME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// The modulus of `tests/data/jwt-test-rsa-key.der` (a key made for these tests only).
const RSA_N: &str = "rm3bH3ZFD7j4SJz9wJQ17F3GQA7YQu2zNESQhgohHMXF0U6ZF9HaQm7-G_IC5NGQObhWTA9xtGs1tFq7RrKUhMaj1LTjIdEo1c3H5PC2k_kuTj-Zvs2C3ljqXW79VSunVB4uCvBTl6pSBytnWDeBQLuI-NsJ69pCMYjP2nj1FQFFgMDhsnNfd_HGh8kVqUVPQPN0OIeUTjkJsbyTWUja2dRL7wYnkQIYzgxMed2fOJU-nZNi-utLQDT9yuGNzO5QIAgM0II2nV55XeIvDbNqCMU5RXpNrjWAHRADjlaHT9oFxB4xhLwjlDEc8Oan3vQvvkgn0PKvYyTqo-VKqbtQow";
const RSA_KEY: &[u8] = include_bytes!("data/jwt-test-rsa-key.der");
const HS_SECRET: &[u8] = b"the-identity-providers-hs256-secret";

struct Provider {
    ec: rcgen::KeyPair,
    gw: TestGateway,
    _dir: tempfile::TempDir,
}

async fn start() -> Provider {
    let ec = rcgen::KeyPair::generate().unwrap();
    let point = ec.public_key_raw();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "n": RSA_N, "e": "AQAB", "alg": "RS256"},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])},
        {"kty": "oct", "kid": "hs", "k": URL_SAFE_NO_PAD.encode(HS_SECRET)},
    ]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let yaml = format!(
        "jwt:\n  jwks: {}\n  issuer: https://idp.example\n  audience: portico\n  leeway: 10s\nroutes:\n  - {{name: r, path: \"/v1/{{project_id}}/r\", methods: [GET], handler: echo, auth: jwt}}\n",
        file.display()
    );
    let gw = TestGateway::start(&yaml).await;
    Provider { ec, gw, _dir: dir }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"iss": "https://idp.example", "aud": "portico", "exp": now() + 300, "nbf": now() - 5,
           "sub": "alice", "project_id": ACME, "roles": ["member", "reader"]})
}

impl Provider {
    fn token(&self, kid: &str, claims: &Value) -> String {
        let (alg, key) = match kid {
            "rsa" => (Algorithm::RS256, EncodingKey::from_rsa_der(RSA_KEY)),
            "ec" => (
                Algorithm::ES256,
                EncodingKey::from_ec_der(&self.ec.serialize_der()),
            ),
            _ => (Algorithm::HS256, EncodingKey::from_secret(HS_SECRET)),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_string());
        encode(&header, claims, &key).unwrap()
    }

    async fn get(&self, project: &str, token: &str) -> portico_testkit::RawResponse {
        self.gw
            .request(&format!(
                "GET /v1/{project}/r HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n\r\n"
            ))
            .await
    }
}

#[tokio::test]
async fn tokens_signed_by_the_provider_name_the_caller() {
    let p = start().await;
    for kid in ["rsa", "ec", "hs"] {
        let resp = p.get(ACME, &p.token(kid, &claims())).await;
        assert_eq!(
            resp.status,
            200,
            "{kid}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let seen = resp.json();
        assert_eq!(
            seen["caller"],
            json!({"project_id": ACME, "consumer": "alice", "roles": "member,reader"}),
            "{kid}"
        );
        // The token stays at the gateway.
        assert!(seen["headers"].get("authorization").is_none());
    }
    // A token for another project than the URL's.
    let resp = p.get(OTHER, &p.token("ec", &claims())).await;
    assert_error(&resp, 403, "PTC.PROJECT_MISMATCH");
}

#[tokio::test]
async fn every_bad_token_is_its_own_401() {
    let p = start().await;
    let with = |key: &str, value: Value| {
        let mut c = claims();
        c[key] = value;
        c
    };
    let good = p.token("rsa", &claims());
    let payload = good.split('.').nth(1).unwrap().to_string();
    // HS256 "signed" with the RSA key's public modulus, naming the RSA key: the confusion
    // attack. An RSA key verifies RS256 only.
    let confused = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa".into());
        encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(RSA_N.as_bytes()),
        )
        .unwrap()
    };
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"rsa"}"#)
    );
    let mut tampered: Vec<&str> = good.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(with("sub", json!("root")).to_string());
    tampered[1] = &forged_payload;
    let unknown_kid = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("retired".into());
        encode(&header, &claims(), &EncodingKey::from_secret(HS_SECRET)).unwrap()
    };
    let cases = [
        (none, "PTC.JWT_ALGORITHM_REFUSED"),
        (confused, "PTC.JWT_ALGORITHM_REFUSED"),
        (tampered.join("."), "PTC.JWT_SIGNATURE_INVALID"),
        (unknown_kid, "PTC.JWT_KEY_UNKNOWN"),
        (
            p.token("ec", &with("exp", json!(now() - 60))),
            "PTC.JWT_EXPIRED",
        ),
        (
            p.token("ec", &with("nbf", json!(now() + 60))),
            "PTC.JWT_NOT_YET_VALID",
        ),
        (
            p.token("hs", &with("iss", json!("https://evil.example"))),
            "PTC.JWT_CLAIMS_INVALID",
        ),
        (
            p.token("hs", &with("aud", json!(["someone-else"]))),
            "PTC.JWT_CLAIMS_INVALID",
        ),
        (
            p.token("hs", &with("project_id", json!(null))),
            "PTC.JWT_CLAIMS_INVALID",
        ),
        ("not-a-token".to_string(), "PTC.JWT_MALFORMED"),
        ("e30.e30.e30.e30".to_string(), "PTC.JWT_MALFORMED"),
        ("x".repeat(9000), "PTC.JWT_MALFORMED"),
    ];
    for (token, code) in cases {
        let resp = p.get(ACME, &token).await;
        assert_error(&resp, 401, code);
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Bearer realm=\"portico\""),
            "{code}"
        );
    }
    let resp =
        p.gw.request(&format!("GET /v1/{ACME}/r HTTP/1.1\r\nHost: h\r\n\r\n"))
            .await;
    assert_error(&resp, 401, "PTC.CREDENTIALS_MISSING");
}
