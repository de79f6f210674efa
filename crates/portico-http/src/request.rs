//! What a parsed head means for the connection: how its body is framed, whether the
//! connection stays open, whether the client waits for `100 Continue` (RFC 9112 §6, §9.3;
//! RFC 9110 §7.2, §10.1.1).
//!
//! Framing is where request smuggling lives, so every ambiguity is refused rather than
//! resolved: two Content-Lengths (even equal), Content-Length with Transfer-Encoding,
//! Transfer-Encoding in HTTP/1.0, any coding but a single final `chunked`.

use crate::catalog::ErrorCode;
use crate::head::{RequestHead, TargetForm, Version, valid_authority};
use crate::syntax::same_field_loosely;

/// How a request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// The connection-level meaning of a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// How the body is framed.
    pub framing: BodyFraming,
    /// Whether the client allows the connection to stay open after this exchange.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

impl RequestInfo {
    /// Applies the rules of RFC 9112 §6.1-§6.3, §3.2 and §9.3 and RFC 9110 §10.1.1 to a head.
    pub fn analyze(head: &RequestHead) -> Result<RequestInfo, ErrorCode> {
        let seen = Seen::read(head)?;
        let http10 = head.version() == Version::Http10;
        let framing = seen.framing(http10)?;
        check_host(head, seen.host)?;
        let expect_continue = seen.expects_continue(http10, framing)?;
        let keep_alive = if http10 {
            seen.keep_alive_token && !seen.close
        } else {
            !seen.close
        };
        Ok(RequestInfo {
            framing,
            keep_alive,
            expect_continue,
        })
    }
}

/// What a head's fields say of framing, Host, persistence and expectations, read in one pass
/// (refusing at once what is wrong whatever the rest says).
#[derive(Default)]
struct Seen<'h> {
    content_length: Option<u64>,
    te_seen: bool,
    chunked_count: usize,
    codings: usize,
    unsupported: bool,
    chunked_not_last: bool,
    host: Option<&'h [u8]>,
    close: bool,
    keep_alive_token: bool,
    expect: Option<&'h [u8]>,
    expect_count: usize,
}

impl<'h> Seen<'h> {
    fn read(head: &'h RequestHead) -> Result<Seen<'h>, ErrorCode> {
        let mut s = Seen::default();
        for (name, value) in head.fields() {
            // A name that only underscores tell apart from a framing field is two framings
            // to an upstream that reads names CGI-style.
            if name.contains(&b'_')
                && (same_field_loosely(name, "content-length")
                    || same_field_loosely(name, "transfer-encoding"))
            {
                return Err(ErrorCode::HeaderNameAmbiguous);
            }
            if name.eq_ignore_ascii_case(b"content-length") {
                if s.content_length.is_some() || value.contains(&b',') {
                    return Err(ErrorCode::ContentLengthMultiple);
                }
                s.content_length = Some(parse_content_length(value)?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                s.transfer_codings(value);
            } else if name.eq_ignore_ascii_case(b"host") {
                if s.host.is_some() {
                    return Err(ErrorCode::HostMultiple);
                }
                s.host = Some(value);
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in list_elements(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        s.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        s.keep_alive_token = true;
                    }
                }
            } else if name.eq_ignore_ascii_case(b"expect") {
                s.expect_count += 1;
                s.expect = Some(value);
            }
        }
        Ok(s)
    }

    fn transfer_codings(&mut self, value: &[u8]) {
        self.te_seen = true;
        for coding in list_elements(value) {
            self.codings += 1;
            if self.chunked_count > 0 {
                self.chunked_not_last = true;
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked_count += 1;
            } else {
                self.unsupported = true;
            }
        }
    }

    /// RFC 9112 §6.1-§6.3: a single final `chunked`, or a length, or no body.
    fn framing(&self, http10: bool) -> Result<BodyFraming, ErrorCode> {
        if !self.te_seen {
            return Ok(match self.content_length {
                None | Some(0) => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
            });
        }
        if http10 {
            return Err(ErrorCode::TransferEncodingInHttp10);
        }
        if self.content_length.is_some() {
            return Err(ErrorCode::ContentLengthWithTransferEncoding);
        }
        if self.codings == 0 {
            return Err(ErrorCode::TransferEncodingInvalid);
        }
        if self.unsupported {
            return Err(ErrorCode::TransferEncodingUnsupported);
        }
        if self.chunked_count > 1 || self.chunked_not_last {
            return Err(ErrorCode::TransferEncodingInvalid);
        }
        Ok(BodyFraming::Chunked)
    }

    /// RFC 9110 §10.1.1: only `100-continue` may be expected, once; it is ignored in an
    /// HTTP/1.0 request, and on a request without a body.
    fn expects_continue(&self, http10: bool, framing: BodyFraming) -> Result<bool, ErrorCode> {
        if self.expect_count == 0 {
            return Ok(false);
        }
        let only_continue = self.expect_count == 1
            && self
                .expect
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        if !only_continue {
            return Err(ErrorCode::ExpectationFailed);
        }
        Ok(!http10 && framing != BodyFraming::None)
    }
}

/// RFC 9112 §3.2: HTTP/1.1 needs a Host; it names an authority; an absolute-form target's
/// authority is the Host.
fn check_host(head: &RequestHead, host: Option<&[u8]>) -> Result<(), ErrorCode> {
    match (host, head.version()) {
        (None, Version::Http11) => return Err(ErrorCode::HostMissing),
        // RFC 9112 §3.2: an empty Host is allowed when the target has no authority.
        (Some(h), _) if !h.is_empty() && !valid_authority(h) => {
            return Err(ErrorCode::HostInvalid);
        }
        _ => {}
    }
    if head.form() == TargetForm::Absolute {
        let authority = head.authority().unwrap_or_default();
        if let Some(h) = host
            && !same_authority(authority, h)
        {
            return Err(ErrorCode::HostMismatch);
        }
    }
    Ok(())
}

/// A Content-Length value: 1 to 18 decimal digits (anything longer could overflow and is not a
/// body Portico would accept anyway).
fn parse_content_length(v: &[u8]) -> Result<u64, ErrorCode> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return Err(ErrorCode::ContentLengthInvalid);
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Elements of a comma-separated list (RFC 9110 §5.6.1), OWS trimmed, empty ones skipped.
pub fn list_elements(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// `v` without leading and trailing spaces and tabs.
pub fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Authorities compare case-insensitively, with an omitted port equal to the default one.
fn same_authority(a: &[u8], b: &[u8]) -> bool {
    fn strip_default_port(x: &[u8]) -> &[u8] {
        x.strip_suffix(b":80")
            .or_else(|| x.strip_suffix(b":443"))
            .unwrap_or(x)
    }
    a.eq_ignore_ascii_case(b) || strip_default_port(a).eq_ignore_ascii_case(strip_default_port(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::HeadLimits;
    use bytes::Bytes;

    fn info(head: &str) -> Result<RequestInfo, ErrorCode> {
        let h = RequestHead::parse(Bytes::from(head.to_string()), &HeadLimits::default())?;
        RequestInfo::analyze(&h)
    }

    #[test]
    fn content_length_frames_the_body() {
        let i = info("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(i.framing, BodyFraming::Length(5));
        let i = info("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(i.framing, BodyFraming::None);
        let i = info("GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(i.framing, BodyFraming::None);
    }

    #[test]
    fn conflicting_or_repeated_content_length_is_400() {
        // RFC 9112 §6.3 (5): an invalid Content-Length is an unrecoverable framing error.
        for cl in [
            "Content-Length: 5\r\nContent-Length: 6",
            "Content-Length: 5\r\nContent-Length: 5",
            "Content-Length: 5, 5",
        ] {
            let r = info(&format!("POST / HTTP/1.1\r\nHost: a\r\n{cl}\r\n\r\n"));
            assert_eq!(r, Err(ErrorCode::ContentLengthMultiple), "{cl}");
        }
        for cl in ["-1", "+5", "0x10", "5 5", "", "1234567890123456789", "٣"] {
            let r = info(&format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n"
            ));
            assert_eq!(r, Err(ErrorCode::ContentLengthInvalid), "{cl:?}");
        }
    }

    #[test]
    fn transfer_encoding_rules() {
        let te = |v: &str| {
            info(&format!(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n"
            ))
        };
        assert_eq!(te("chunked").unwrap().framing, BodyFraming::Chunked);
        assert_eq!(te("Chunked").unwrap().framing, BodyFraming::Chunked);
        // RFC 9112 §6.1: a coding the server does not understand SHOULD get 501.
        assert_eq!(te("gzip"), Err(ErrorCode::TransferEncodingUnsupported));
        assert_eq!(
            te("gzip, chunked"),
            Err(ErrorCode::TransferEncodingUnsupported)
        );
        assert_eq!(te("identity"), Err(ErrorCode::TransferEncodingUnsupported));
        assert_eq!(te("xchunked"), Err(ErrorCode::TransferEncodingUnsupported));
        assert_eq!(
            te("chunked;q=1"),
            Err(ErrorCode::TransferEncodingUnsupported)
        );
        // RFC 9112 §6.3 (4): chunked must be the final coding, applied once.
        assert_eq!(
            te("chunked, chunked"),
            Err(ErrorCode::TransferEncodingInvalid)
        );
        assert_eq!(te(","), Err(ErrorCode::TransferEncodingInvalid));
        let two = info(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(two, Err(ErrorCode::TransferEncodingInvalid));
    }

    #[test]
    fn content_length_with_transfer_encoding_is_400() {
        // RFC 9112 §6.3 (3): a server MAY reject such a message; Portico always does.
        let r = info(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert_eq!(r, Err(ErrorCode::ContentLengthWithTransferEncoding));
    }

    #[test]
    fn transfer_encoding_in_http10_is_400() {
        // RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding is faulty framing.
        let r = info("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r, Err(ErrorCode::TransferEncodingInHttp10));
    }

    #[test]
    fn host_rules() {
        // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host or with
        // more than one.
        assert_eq!(info("GET / HTTP/1.1\r\n\r\n"), Err(ErrorCode::HostMissing));
        assert_eq!(
            info("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(ErrorCode::HostMultiple)
        );
        assert_eq!(
            info("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            Err(ErrorCode::HostInvalid)
        );
        assert!(info("GET / HTTP/1.1\r\nHost:\r\n\r\n").is_ok());
        assert!(info("GET / HTTP/1.0\r\n\r\n").is_ok());
        assert!(info("GET http://A.com/x HTTP/1.1\r\nHost: a.com:80\r\n\r\n").is_ok());
        assert_eq!(
            info("GET http://a.com/x HTTP/1.1\r\nHost: b.com\r\n\r\n"),
            Err(ErrorCode::HostMismatch)
        );
    }

    #[test]
    fn expect_rules() {
        let e = |v: &str| {
            info(&format!(
                "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: {v}\r\n\r\n"
            ))
        };
        assert!(e("100-continue").unwrap().expect_continue);
        assert!(e("100-Continue").unwrap().expect_continue);
        // RFC 9110 §10.1.1: any other expectation MAY get 417.
        assert_eq!(e("200-ok"), Err(ErrorCode::ExpectationFailed));
        assert_eq!(e("100-continue, x"), Err(ErrorCode::ExpectationFailed));
        // ... and HTTP/1.0 ignores 100-continue.
        let r =
            info("PUT / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert!(!r.expect_continue);
        // Nothing to wait for when there is no body.
        assert!(
            !info("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")
                .unwrap()
                .expect_continue
        );
    }

    #[test]
    fn persistence_rules() {
        // RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
        assert!(
            info("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !info("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!info("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            info("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !info("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }
}
