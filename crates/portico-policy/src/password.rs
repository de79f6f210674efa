//! Passwords the admin API keeps for consumers (the token service checks them): PBKDF2 with
//! HMAC-SHA256, a random salt per password, and enough iterations that a stolen store gives
//! up its passwords slowly. Kept as `pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64url), so the
//! cost can rise later without breaking the passwords already kept.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Sha256;

use crate::secret::ct_eq;

/// Iterations for new passwords (OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600,000).
pub const ITERATIONS: u32 = 600_000;

/// The kept form of `password` with `salt` (16 random bytes from the caller).
pub fn hash_password(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    format!(
        "pbkdf2-sha256${iterations}${}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(out)
    )
}

/// Whether `password` is the one `kept` was made from (compared in constant time); a kept
/// form that does not read is never matched.
pub fn verify_password(password: &str, kept: &str) -> bool {
    let mut parts = kept.split('$');
    let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>(),
        URL_SAFE_NO_PAD.decode(salt),
        URL_SAFE_NO_PAD.decode(hash),
    ) else {
        return false;
    };
    if iterations == 0 || hash.len() != 32 {
        return false;
    }
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out);
    ct_eq(&out, &hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_password_verifies_and_no_other() {
        // Few iterations: the test checks the form, not the cost.
        let kept = hash_password("correct horse", b"0123456789abcdef", 1000);
        assert!(kept.starts_with("pbkdf2-sha256$1000$"));
        assert!(!kept.contains("correct"));
        assert!(verify_password("correct horse", &kept));
        assert!(!verify_password("correct horsE", &kept));
        assert!(!verify_password("correct horse", "plain"));
        assert!(!verify_password(
            "correct horse",
            &kept.replace("$1000$", "$0$")
        ));
        // Another salt, another kept form.
        assert_ne!(
            kept,
            hash_password("correct horse", b"fedcba9876543210", 1000)
        );
    }

    #[test]
    fn rfc_6070_style_vector_for_sha256() {
        // PBKDF2-HMAC-SHA256("password", "salt", 1, 32), a published test vector.
        let kept = hash_password("password", b"salt", 1);
        let hash = kept.rsplit('$').next().unwrap_or_default();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(hash).unwrap_or_default(),
            [
                0x12, 0x0f, 0xb6, 0xcf, 0xfc, 0xf8, 0xb3, 0x2c, 0x43, 0xe7, 0x22, 0x52, 0x56, 0xc4,
                0xf8, 0x37, 0xa8, 0x65, 0x48, 0xc9, 0x2c, 0xcc, 0x35, 0x48, 0x08, 0x05, 0x98, 0x7c,
                0xb7, 0x0b, 0xe1, 0x7b
            ]
        );
    }
}
