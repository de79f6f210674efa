//! The WebSocket opening handshake as a server reads it (RFC 6455 §4.2.1): whether a request
//! asks to switch to WebSocket, and whether it asks properly.
//!
//! Portico relays the handshake to the upstream, which answers it (and computes
//! `Sec-WebSocket-Accept`); what Portico checks here is that the request is one an upstream
//! can only read one way, before any upstream sees it.

use crate::head::{RequestHead, Version};
use crate::method::Method;
use crate::request::list_elements;

/// What is wrong with a WebSocket handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeProblem {
    /// Not a GET (§4.1: "The method of the request MUST be GET").
    Method,
    /// Not HTTP/1.1 or later (§4.1).
    Version,
    /// No `Sec-WebSocket-Key`, or not the base64 of 16 bytes (§4.2.1 item 5).
    Key,
    /// `Sec-WebSocket-Version` is not 13 (§4.2.1 item 6; the answer names 13).
    WebSocketVersion,
}

impl HandshakeProblem {
    /// The public description, for the error detail.
    pub fn describe(self) -> &'static str {
        match self {
            HandshakeProblem::Method => "A WebSocket handshake uses GET.",
            HandshakeProblem::Version => "A WebSocket handshake needs HTTP/1.1.",
            HandshakeProblem::Key => "Sec-WebSocket-Key must be the base64 encoding of 16 bytes.",
            HandshakeProblem::WebSocketVersion => "Sec-WebSocket-Version must be 13.",
        }
    }
}

/// Whether `head` asks to switch to WebSocket: `Upgrade` lists `websocket` and `Connection`
/// lists `upgrade` (§4.2.1 items 3 and 4; both tokens case-insensitive).
pub fn is_websocket_upgrade(head: &RequestHead) -> bool {
    let upgrade = head
        .fields_named("upgrade")
        .flat_map(list_elements)
        .any(|p| p.eq_ignore_ascii_case(b"websocket"));
    let connection = head
        .fields_named("connection")
        .flat_map(list_elements)
        .any(|t| t.eq_ignore_ascii_case(b"upgrade"));
    upgrade && connection
}

/// Checks the rest of a WebSocket handshake (§4.2.1); `Host` was checked with the head.
pub fn check_handshake(head: &RequestHead) -> Result<(), HandshakeProblem> {
    if head.method() != Method::Get {
        return Err(HandshakeProblem::Method);
    }
    if head.version() != Version::Http11 {
        return Err(HandshakeProblem::Version);
    }
    let mut keys = head.fields_named("sec-websocket-key");
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_nonce(key) => {}
        _ => return Err(HandshakeProblem::Key),
    }
    let mut versions = head.fields_named("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(b"13"), None) => Ok(()),
        _ => Err(HandshakeProblem::WebSocketVersion),
    }
}

/// Whether `key` is the base64 encoding of 16 bytes: 22 characters of the base64 alphabet,
/// the last of which carries no bits past the 128th, then `==`.
fn is_nonce(key: &[u8]) -> bool {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|&c| value(c).is_some())
        && value(key[21]).is_some_and(|v| v & 0x0f == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::HeadLimits;
    use bytes::Bytes;

    fn head(extra: &str) -> RequestHead {
        let text = format!("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n{extra}\r\n");
        RequestHead::parse(Bytes::from(text), &HeadLimits::default()).unwrap()
    }

    /// The handshake of RFC 6455 §1.3.
    const SAMPLE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

    #[test]
    fn the_sample_handshake_of_rfc6455_1_3_is_valid() {
        let h = head(SAMPLE);
        assert!(is_websocket_upgrade(&h));
        assert_eq!(check_handshake(&h), Ok(()));
    }

    #[test]
    fn upgrade_needs_both_tokens_4_2_1() {
        assert!(is_websocket_upgrade(&head(
            "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
        )));
        assert!(!is_websocket_upgrade(&head("Upgrade: websocket\r\n")));
        assert!(!is_websocket_upgrade(&head("Connection: Upgrade\r\n")));
        assert!(!is_websocket_upgrade(&head(
            "Upgrade: h2c\r\nConnection: Upgrade\r\n"
        )));
    }

    #[test]
    fn a_malformed_handshake_is_named() {
        let bad_key = SAMPLE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short");
        assert_eq!(check_handshake(&head(&bad_key)), Err(HandshakeProblem::Key));
        let no_key = SAMPLE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        assert_eq!(check_handshake(&head(&no_key)), Err(HandshakeProblem::Key));
        // 17 bytes of base64 would need a different length; 16 with stray low bits is not a
        // canonical encoding.
        let stray = SAMPLE.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZR==");
        assert_eq!(check_handshake(&head(&stray)), Err(HandshakeProblem::Key));
        let two_keys = format!("{SAMPLE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
        assert_eq!(
            check_handshake(&head(&two_keys)),
            Err(HandshakeProblem::Key)
        );
        let v8 = SAMPLE.replace("Version: 13", "Version: 8");
        assert_eq!(
            check_handshake(&head(&v8)),
            Err(HandshakeProblem::WebSocketVersion)
        );
        let post = RequestHead::parse(
            Bytes::from(format!("POST /chat HTTP/1.1\r\nHost: a\r\n{SAMPLE}\r\n")),
            &HeadLimits::default(),
        )
        .unwrap();
        assert_eq!(check_handshake(&post), Err(HandshakeProblem::Method));
        let http10 = RequestHead::parse(
            Bytes::from(format!("GET /chat HTTP/1.0\r\nHost: a\r\n{SAMPLE}\r\n")),
            &HeadLimits::default(),
        )
        .unwrap();
        assert_eq!(check_handshake(&http10), Err(HandshakeProblem::Version));
    }
}
