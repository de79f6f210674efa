//! Secrets: what a caller proves itself with. A [`Secret`] never prints (its `Debug` and
//! `Display` say `<redacted>`), so it cannot reach a log by accident; comparisons take the
//! same time whatever matches.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret value (a password, a signing key, an API key), kept out of every printout.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// SHA-256 of `bytes`: how API keys and tokens are kept (they are random and long, so a
/// digest is as good as the key for finding it, and useless for presenting it).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of `bytes` in lower-case hex: the names API keys and tokens are kept under.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

const LOWER: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` in lower-case hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(LOWER[usize::from(b >> 4)]));
        out.push(char::from(LOWER[usize::from(b & 15)]));
    }
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// 32 bytes from 64 hex digits.
pub fn from_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *slot = (portico_http::syntax::hex_digit(pair[0])? << 4)
            | portico_http::syntax::hex_digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_reads_back_what_it_wrote_and_nothing_looser() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(from_hex(&hex(&bytes)), Some(bytes));
        assert_eq!(from_hex(&hex(&bytes).to_uppercase()), Some(bytes));
        // A sign, a non-digit, a wrong length: not hex.
        let signed = format!("+f{}", &hex(&bytes)[2..]);
        assert_eq!(from_hex(&signed), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
        assert_eq!(from_hex(&hex(&bytes)[1..]), None);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(
            format!("{s} {s:?} {:?}", Some(&s)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(s.expose(), "hunter2-hunter2");
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }
}
