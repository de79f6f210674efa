//! Rules for responses Portico receives from upstreams (RFC 9112 §6.3) and relays.

use crate::request::list_elements;
use crate::syntax::same_field_loosely;

/// How an upstream response's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, or 1xx/204/304.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// The meaning of an upstream response head for framing and connection reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseInfo {
    /// How the body is delimited.
    pub framing: ResponseFraming,
    /// Whether the connection can carry another request afterwards.
    pub reusable: bool,
}

/// Why a response head cannot be relayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidResponse {
    /// Content-Length values that are not numbers or disagree.
    ContentLength,
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), which are never forwarded in either direction.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is hop-by-hop, or listed in the message's `Connection` field. Names are
/// compared as CGI-style servers read them (`Keep_Alive` is `Keep-Alive`), so a look-alike
/// cannot pass where the real field is removed.
pub fn is_hop_by_hop(name: &[u8], connection_tokens: &[&[u8]]) -> bool {
    HOP_BY_HOP.iter().any(|h| same_field_loosely(name, h))
        || connection_tokens
            .iter()
            .any(|t| name.eq_ignore_ascii_case(t))
}

/// Fields a trailer section must not carry (RFC 9110 §6.5.1): framing, routing, controls,
/// authentication, and what describes the representation as a whole. An upstream's trailer
/// field of these names is not relayed, since a recipient could take it for a header.
const NOT_IN_TRAILERS: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-type",
    "content-range",
    "host",
    "cache-control",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "set-cookie",
    "www-authenticate",
    "authorization",
    "proxy-authenticate",
    "proxy-authorization",
    "age",
];

/// Whether an upstream's trailer field named `name` is relayed to the client: not
/// hop-by-hop, and not one RFC 9110 §6.5.1 keeps out of trailers.
pub fn is_relayable_trailer(name: &[u8]) -> bool {
    !is_hop_by_hop(name, &[]) && !NOT_IN_TRAILERS.iter().any(|n| same_field_loosely(name, n))
}

/// Decides framing and reuse for a response (RFC 9112 §6.3), given its status, version
/// (`http10`), whether the request was HEAD, and its fields.
pub fn response_info<'a>(
    status: u16,
    http10: bool,
    head_request: bool,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<ResponseInfo, InvalidResponse> {
    let mut content_length: Option<u64> = None;
    let mut te_chunked_last: Option<bool> = None;
    let mut close = http10;
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(b"content-length") {
            for v in list_elements(value) {
                if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                    return Err(InvalidResponse::ContentLength);
                }
                let n = v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                if content_length.is_some_and(|c| c != n) {
                    return Err(InvalidResponse::ContentLength);
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in list_elements(value) {
                te_chunked_last = Some(coding.eq_ignore_ascii_case(b"chunked"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_elements(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
    }
    // §6.3 (1): HEAD, 1xx, 204 and 304 have no content whatever the fields say.
    if head_request || status < 200 || status == 204 || status == 304 {
        return Ok(ResponseInfo {
            framing: ResponseFraming::None,
            reusable: !close,
        });
    }
    let framing = match (te_chunked_last, content_length) {
        // §6.3 (3): Transfer-Encoding overrides Content-Length; such a message is suspect, so
        // the connection is not reused.
        (Some(true), cl) => {
            return Ok(ResponseInfo {
                framing: ResponseFraming::Chunked,
                reusable: !close && cl.is_none(),
            });
        }
        // §6.3 (4) for a response: chunked not last means read until close.
        (Some(false), _) => ResponseFraming::Close,
        (None, Some(n)) => ResponseFraming::Length(n),
        (None, None) => ResponseFraming::Close,
    };
    let reusable = !close && framing != ResponseFraming::Close;
    Ok(ResponseInfo { framing, reusable })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(
        status: u16,
        head: bool,
        fields: &[(&str, &str)],
    ) -> Result<ResponseInfo, InvalidResponse> {
        response_info(
            status,
            false,
            head,
            fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        )
    }

    #[test]
    fn framing_follows_rfc9112_6_3() {
        assert_eq!(
            info(200, false, &[("Content-Length", "5")])
                .unwrap()
                .framing,
            ResponseFraming::Length(5)
        );
        assert_eq!(
            info(200, false, &[("Transfer-Encoding", "chunked")])
                .unwrap()
                .framing,
            ResponseFraming::Chunked
        );
        assert_eq!(
            info(200, false, &[]).unwrap(),
            ResponseInfo {
                framing: ResponseFraming::Close,
                reusable: false
            }
        );
        assert_eq!(
            info(200, true, &[("Content-Length", "5")]).unwrap().framing,
            ResponseFraming::None
        );
        assert_eq!(
            info(304, false, &[("Content-Length", "5")])
                .unwrap()
                .framing,
            ResponseFraming::None
        );
        assert_eq!(
            info(204, false, &[]).unwrap().framing,
            ResponseFraming::None
        );
        let both = info(
            200,
            false,
            &[("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
        )
        .unwrap();
        assert_eq!(
            both,
            ResponseInfo {
                framing: ResponseFraming::Chunked,
                reusable: false
            }
        );
        assert_eq!(
            info(200, false, &[("Transfer-Encoding", "gzip")])
                .unwrap()
                .framing,
            ResponseFraming::Close
        );
    }

    #[test]
    fn bad_content_length_is_invalid() {
        assert!(
            info(
                200,
                false,
                &[("Content-Length", "5"), ("Content-Length", "6")]
            )
            .is_err()
        );
        assert!(info(200, false, &[("Content-Length", "x")]).is_err());
        assert!(info(200, false, &[("Content-Length", "5, 5")]).is_ok());
    }

    #[test]
    fn reuse_rules() {
        assert!(
            !info(
                200,
                false,
                &[("Content-Length", "1"), ("Connection", "close")]
            )
            .unwrap()
            .reusable
        );
        let r = response_info(
            200,
            true,
            false,
            [(&b"Content-Length"[..], &b"1"[..])].into_iter(),
        )
        .unwrap();
        assert!(!r.reusable, "HTTP/1.0 closes by default");
        assert!(is_hop_by_hop(b"Keep-Alive", &[]));
        assert!(is_hop_by_hop(b"X-Private", &[b"x-private"]));
        assert!(is_hop_by_hop(b"Keep_Alive", &[]));
        assert!(!is_hop_by_hop(b"Content-Type", &[]));
    }

    #[test]
    fn trailers_carry_end_to_end_metadata_only() {
        assert!(is_relayable_trailer(b"grpc-status"));
        assert!(is_relayable_trailer(b"Server-Timing"));
        for name in [
            &b"Content-Length"[..],
            b"content_length",
            b"TE",
            b"Host",
            b"Set-Cookie",
        ] {
            assert!(
                !is_relayable_trailer(name),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }
}
