//! Request ids: 128 random bits as 32 lowercase hex characters, made without allocating.

use std::fmt;

/// The id of one request, sent as `X-Request-Id` and written in the error body and access log.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId([u8; 32]);

impl RequestId {
    /// A fresh random id. Ids only need to be unique, not secret, so a fast thread-local
    /// generator is enough.
    pub fn new() -> RequestId {
        let mut n = fastrand::u128(..);
        let mut out = [0u8; 32];
        for b in out.iter_mut().rev() {
            *b = b"0123456789abcdef"[(n & 0xf) as usize];
            n >>= 4;
        }
        RequestId(out)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Every byte is an ASCII hex digit.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_and_differ() {
        let a = RequestId::new();
        let b = RequestId::new();
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
