//! Request heads: finding where one ends, then parsing it strictly (RFC 9112 §2-§5).
//!
//! Two steps, both pure. [`HeadScanner`] runs as bytes arrive: it finds the blank line that ends
//! the head and stops early on what can be decided before that (a bare LF, a request line or
//! header section over its limit), so a hostile client cannot make Portico buffer more than the
//! limits allow. [`RequestHead::parse`] then parses the complete head once.
//!
//! Portico parses heads itself rather than with `httparse` because the contract needs a distinct
//! answer for each fault (obs-fold, bare CR, bare LF, NUL, whitespace before a colon, a version
//! other than 1.x → 505), and `httparse` folds these into a few generic errors and accepts bare
//! LF as a line end. The rules here are the strict reading of RFC 9112: anything a lenient peer
//! might interpret differently is refused, so what Portico forwards is never ambiguous.

use bytes::Bytes;
use memchr::memchr;

use crate::catalog::ErrorCode;
use crate::method::Method;

/// Limits applied while reading a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request target, in bytes (414 beyond).
    pub max_uri_bytes: usize,
    /// Largest header section (all field lines), in bytes (400 beyond, never 431).
    pub max_header_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_uri_bytes: 8192,
            max_header_bytes: 32768,
            max_headers: 100,
        }
    }
}

impl HeadLimits {
    /// The longest request line these limits allow: the target plus room for a method (32
    /// bytes), two spaces and the version.
    pub fn max_request_line(&self) -> usize {
        self.max_uri_bytes + MAX_METHOD_LEN + 2 + 8
    }

    /// The most bytes a complete head can take, leading empty lines included.
    pub fn max_head_bytes(&self) -> usize {
        MAX_LEADING_EMPTY + self.max_request_line() + 2 + self.max_header_bytes + 2
    }
}

/// Longest method token Portico reads before calling the request line malformed.
const MAX_METHOD_LEN: usize = 32;
/// How many bytes of empty lines may precede a request line (RFC 9112 §2.2 asks servers to
/// ignore at least one).
const MAX_LEADING_EMPTY: usize = 64;

/// Progress of a [`HeadScanner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// More bytes are needed.
    Partial,
    /// The head is `buf[start..end]`; `buf[..start]` were empty lines to drop.
    Complete {
        /// First byte of the request line.
        start: usize,
        /// One past the blank line that ends the head.
        end: usize,
    },
}

/// Finds the end of a request head incrementally, never rescanning bytes it has seen.
#[derive(Clone, Debug, Default)]
pub struct HeadScanner {
    pos: usize,
    line_start: usize,
    start: usize,
    request_line_end: usize,
    fields: usize,
}

impl HeadScanner {
    /// A scanner for a head that starts at offset 0 of the buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a request has begun: some byte other than a leading empty line was received.
    /// An idle connection that has not begun a request is closed silently, not with 408.
    pub fn started(&self, buf: &[u8]) -> bool {
        buf.len() > self.start
    }

    /// Scans what was added to `buf` since the last call.
    pub fn scan(&mut self, buf: &[u8], limits: &HeadLimits) -> Result<Scan, ErrorCode> {
        while let Some(off) = memchr(b'\n', &buf[self.pos..]) {
            let lf = self.pos + off;
            self.pos = lf + 1;
            if lf == self.line_start || buf[lf - 1] != b'\r' {
                return Err(ErrorCode::BareLf);
            }
            let line_len = lf - 1 - self.line_start;
            if self.request_line_end == 0 {
                if line_len == 0 {
                    // RFC 9112 §2.2: empty lines before a request line are ignored.
                    self.line_start = self.pos;
                    self.start = self.pos;
                    if self.start > MAX_LEADING_EMPTY {
                        return Err(ErrorCode::RequestLineMalformed);
                    }
                    continue;
                }
                if line_len > limits.max_request_line() {
                    return Err(long_request_line(&buf[self.line_start..lf - 1], limits));
                }
                self.request_line_end = self.pos;
            } else if line_len == 0 {
                return Ok(Scan::Complete {
                    start: self.start,
                    end: self.pos,
                });
            } else {
                self.fields += 1;
                if self.fields > limits.max_headers {
                    return Err(ErrorCode::TooManyHeaders);
                }
                if self.pos - self.request_line_end > limits.max_header_bytes {
                    return Err(ErrorCode::HeaderSectionTooLarge);
                }
            }
            self.line_start = self.pos;
        }
        self.pos = buf.len();
        if self.request_line_end == 0 {
            let line = &buf[self.line_start..];
            if line.len() > limits.max_request_line() {
                return Err(long_request_line(line, limits));
            }
        } else if buf.len() - self.request_line_end > limits.max_header_bytes {
            return Err(ErrorCode::HeaderSectionTooLarge);
        }
        Ok(Scan::Partial)
    }
}

/// A request line longer than the limits allow: 414 when it is the target that is long, 400
/// when the line is not a request line at all.
fn long_request_line(line: &[u8], limits: &HeadLimits) -> ErrorCode {
    let method_end = line
        .iter()
        .take(MAX_METHOD_LEN + 1)
        .position(|&b| !is_tchar(b));
    match method_end {
        Some(n) if n > 0 && line[n] == b' ' => {
            let rest = &line[n + 1..];
            let target_len = memchr(b' ', rest).unwrap_or(rest.len());
            if target_len > limits.max_uri_bytes {
                ErrorCode::UriTooLong
            } else {
                ErrorCode::RequestLineMalformed
            }
        }
        _ => ErrorCode::RequestLineMalformed,
    }
}

/// The protocol version of a request Portico accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1 (and any later 1.x minor, RFC 9110 §6.2)
    Http11,
    /// HTTP/2, whose request heads Portico reads in HTTP/1.1 syntax
    /// ([`RequestHead::parse_http2`]).
    Http2,
}

impl Version {
    /// As written in a request line and in logs: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
        }
    }
}

/// The form of the request target (RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`
    Origin,
    /// `http://authority/path?query`
    Absolute,
    /// `host:port`, only with CONNECT
    Authority,
    /// `*`, only with OPTIONS
    Asterisk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Heads are bounded by HeadLimits far below 4 GiB; `parse` refuses longer input.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

#[derive(Clone, Copy, Debug)]
struct Field {
    name: Span,
    value: Span,
}

/// A header field of a parsed head: its name is a token and its value a field value, as the
/// parser checked. Only the parser makes these.
#[derive(Clone, Copy, Debug)]
pub struct ParsedField<'h> {
    name: &'h [u8],
    value: &'h [u8],
}

impl<'h> ParsedField<'h> {
    /// The field's name.
    pub fn name(&self) -> &'h [u8] {
        self.name
    }

    /// The field's value (OWS trimmed).
    pub fn value(&self) -> &'h [u8] {
        self.value
    }
}

/// A parsed request head. Field names and values are slices of the received bytes.
#[derive(Clone, Debug)]
pub struct RequestHead {
    buf: Bytes,
    method: Method,
    version: Version,
    form: TargetForm,
    target: Span,
    authority: Span,
    path: Span,
    query: Option<Span>,
    request_line_end: usize,
    fields: Vec<Field>,
}

impl RequestHead {
    /// Parses a complete head: `buf` runs from the first byte of the request line through the
    /// blank line that ends the head (as found by [`HeadScanner`]).
    pub fn parse(buf: Bytes, limits: &HeadLimits) -> Result<RequestHead, ErrorCode> {
        if buf.len() > u32::MAX as usize {
            return Err(ErrorCode::HeaderSectionTooLarge);
        }
        let lf = memchr(b'\n', &buf).ok_or(ErrorCode::RequestLineMalformed)?;
        if lf == 0 || buf[lf - 1] != b'\r' {
            return Err(ErrorCode::BareLf);
        }
        let line = &buf[..lf - 1];
        let rl = parse_request_line(line, limits)?;
        let request_line_end = lf + 1;
        let mut fields = Vec::with_capacity(16);
        let mut pos = request_line_end;
        loop {
            let off = memchr(b'\n', &buf[pos..]).ok_or(ErrorCode::HeaderNameInvalid)?;
            let lf = pos + off;
            if lf == pos || buf[lf - 1] != b'\r' {
                return Err(ErrorCode::BareLf);
            }
            let line = &buf[pos..lf - 1];
            if line.is_empty() {
                if lf + 1 != buf.len() {
                    return Err(ErrorCode::HeaderNameInvalid);
                }
                break;
            }
            let (name, value) = parse_field_line(line)?;
            fields.push(Field {
                name: Span::new(pos + name.0, pos + name.1),
                value: Span::new(pos + value.0, pos + value.1),
            });
            if fields.len() > limits.max_headers {
                return Err(ErrorCode::TooManyHeaders);
            }
            pos = lf + 1;
            if pos - request_line_end > limits.max_header_bytes {
                return Err(ErrorCode::HeaderSectionTooLarge);
            }
        }
        Ok(RequestHead {
            buf,
            method: rl.method,
            version: rl.version,
            form: rl.form,
            target: rl.target,
            authority: rl.authority,
            path: rl.path,
            query: rl.query,
            request_line_end,
            fields,
        })
    }

    /// Parses the head of an HTTP/2 request written out in HTTP/1.1 syntax: the request line
    /// says `HTTP/1.1`, `:authority` is the `Host` field, and the head is held to the same
    /// rules and limits as one received on HTTP/1.1. Its version is [`Version::Http2`].
    pub fn parse_http2(buf: Bytes, limits: &HeadLimits) -> Result<RequestHead, ErrorCode> {
        let mut head = RequestHead::parse(buf, limits)?;
        if head.version != Version::Http11 {
            return Err(ErrorCode::RequestLineMalformed);
        }
        head.version = Version::Http2;
        Ok(head)
    }

    /// The request method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The form of the request target.
    pub fn form(&self) -> TargetForm {
        self.form
    }

    /// The request target as sent.
    pub fn target(&self) -> &[u8] {
        self.target.get(&self.buf)
    }

    /// The path of the target (`/` for an absolute-form target without one; empty for the
    /// asterisk and authority forms).
    pub fn path(&self) -> &[u8] {
        let p = self.path.get(&self.buf);
        if p.is_empty() && self.form == TargetForm::Absolute {
            b"/"
        } else {
            p
        }
    }

    /// The query of the target, without the `?`.
    pub fn query(&self) -> Option<&[u8]> {
        self.query.map(|q| q.get(&self.buf))
    }

    /// The authority of an absolute-form or authority-form target.
    pub fn authority(&self) -> Option<&[u8]> {
        match self.form {
            TargetForm::Absolute | TargetForm::Authority => Some(self.authority.get(&self.buf)),
            _ => None,
        }
    }

    /// All header fields, in order received.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|f| (f.name.get(&self.buf), f.value.get(&self.buf)))
    }

    /// All header fields, in order received, as fields the parser checked (which
    /// [`crate::fields::Fields::push_parsed`] takes without checking again).
    pub fn parsed_fields(&self) -> impl Iterator<Item = ParsedField<'_>> + '_ {
        self.fields.iter().map(|f| ParsedField {
            name: f.name.get(&self.buf),
            value: f.value.get(&self.buf),
        })
    }

    /// The first field named `name` (ASCII case-insensitive).
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every field named `name` (ASCII case-insensitive).
    pub fn fields_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Number of header fields.
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// Size of the whole head in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the head is empty (never, for a parsed head).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Size of the header section (field lines), in bytes.
    pub fn header_section_len(&self) -> usize {
        self.buf.len() - self.request_line_end
    }
}

struct RequestLine {
    method: Method,
    version: Version,
    form: TargetForm,
    target: Span,
    authority: Span,
    path: Span,
    query: Option<Span>,
}

/// Names the fault at a byte that broke a rule: the contract gives CR, NUL and other bytes
/// their own codes.
fn fault(b: u8, otherwise: ErrorCode) -> ErrorCode {
    match b {
        b'\r' => ErrorCode::BareCr,
        0 => ErrorCode::NulByte,
        _ => otherwise,
    }
}

fn parse_request_line(line: &[u8], limits: &HeadLimits) -> Result<RequestLine, ErrorCode> {
    let method_end = line
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(line.len());
    if method_end == 0 || method_end > MAX_METHOD_LEN || method_end == line.len() {
        return Err(line
            .get(method_end)
            .map_or(ErrorCode::RequestLineMalformed, |&b| {
                fault(b, ErrorCode::RequestLineMalformed)
            }));
    }
    if line[method_end] != b' ' {
        return Err(fault(line[method_end], ErrorCode::RequestLineMalformed));
    }
    let t_start = method_end + 1;
    let t_len = memchr(b' ', &line[t_start..]).ok_or_else(|| {
        // No second space: either an HTTP/0.9 request or a fault inside the target.
        line[t_start..]
            .iter()
            .find(|&&b| b == b'\r' || b == 0)
            .map_or(ErrorCode::RequestLineMalformed, |&b| {
                fault(b, ErrorCode::RequestLineMalformed)
            })
    })?;
    if t_len == 0 {
        return Err(ErrorCode::RequestLineMalformed);
    }
    if t_len > limits.max_uri_bytes {
        return Err(ErrorCode::UriTooLong);
    }
    let t_end = t_start + t_len;
    let version = parse_version(&line[t_end + 1..])?;
    let target = &line[t_start..t_end];
    for (i, &b) in target.iter().enumerate() {
        if !TARGET[b as usize] {
            return Err(fault(b, ErrorCode::TargetCharInvalid));
        }
        if b == b'%'
            && !(target.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && target.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(ErrorCode::TargetCharInvalid);
        }
    }
    let token = &line[..method_end];
    let Some(method) = Method::from_bytes(token) else {
        return Err(ErrorCode::MethodNotImplemented);
    };
    let (form, authority, path, query) = classify_target(method, target, t_start)?;
    Ok(RequestLine {
        method,
        version,
        form,
        target: Span::new(t_start, t_end),
        authority,
        path,
        query,
    })
}

fn parse_version(v: &[u8]) -> Result<Version, ErrorCode> {
    if let Some(&b) = v.iter().find(|&&b| b == b'\r' || b == 0) {
        return Err(fault(b, ErrorCode::VersionMalformed));
    }
    let Some(rest) = v.strip_prefix(b"HTTP/") else {
        return Err(ErrorCode::VersionMalformed);
    };
    match rest {
        [major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => match major {
            b'1' if *minor == b'0' => Ok(Version::Http10),
            b'1' => Ok(Version::Http11),
            _ => Err(ErrorCode::VersionNotSupported),
        },
        // `HTTP/2`, `HTTP/3`: how the later versions are written; never on HTTP/1.
        [major] if major.is_ascii_digit() && *major != b'1' => Err(ErrorCode::VersionNotSupported),
        _ => Err(ErrorCode::VersionMalformed),
    }
}

type Forms = (TargetForm, Span, Span, Option<Span>);

fn classify_target(method: Method, target: &[u8], at: usize) -> Result<Forms, ErrorCode> {
    let split_query = |from: usize| -> (Span, Option<Span>) {
        let rel = &target[from..];
        match memchr(b'?', rel) {
            Some(q) => (
                Span::new(at + from, at + from + q),
                Some(Span::new(at + from + q + 1, at + target.len())),
            ),
            None => (Span::new(at + from, at + target.len()), None),
        }
    };
    if method == Method::Connect {
        if target.first() == Some(&b'/') || !valid_authority(target) {
            return Err(ErrorCode::TargetFormInvalid);
        }
        let all = Span::new(at, at + target.len());
        return Ok((TargetForm::Authority, all, Span::default(), None));
    }
    if target[0] == b'/' {
        let (path, query) = split_query(0);
        return Ok((TargetForm::Origin, Span::default(), path, query));
    }
    if target == b"*" {
        if method != Method::Options {
            return Err(ErrorCode::TargetFormInvalid);
        }
        return Ok((TargetForm::Asterisk, Span::default(), Span::default(), None));
    }
    let scheme_len = if starts_with_ignore_case(target, b"http://") {
        7
    } else if starts_with_ignore_case(target, b"https://") {
        8
    } else {
        return Err(ErrorCode::TargetFormInvalid);
    };
    let rest = &target[scheme_len..];
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    if !valid_authority(authority) {
        return Err(ErrorCode::TargetFormInvalid);
    }
    let (path, query) = split_query(scheme_len + auth_len);
    Ok((
        TargetForm::Absolute,
        Span::new(at + scheme_len, at + scheme_len + auth_len),
        path,
        query,
    ))
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `host [":" port]` where host is a reg-name, an IPv4 address or a bracketed IPv6 literal.
/// Userinfo (`user@host`) is refused (RFC 9110 §4.2.4). An empty value is not an authority.
pub fn valid_authority(a: &[u8]) -> bool {
    if a.is_empty() {
        return false;
    }
    let (host, port) = if a[0] == b'[' {
        let Some(close) = memchr(b']', a) else {
            return false;
        };
        let inner = &a[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &a[close + 1..] {
            [] => (&a[..=close], None),
            [b':', port @ ..] => (&a[..=close], Some(port)),
            _ => return false,
        }
    } else {
        match memchr(b':', a) {
            Some(c) => (&a[..c], Some(&a[c + 1..])),
            None => (a, None),
        }
    };
    let host_ok = host.first() == Some(&b'[')
        || (!host.is_empty() && host.iter().all(|&b| REG_NAME[b as usize]));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

/// A `start..end` range within a line.
type Range = (usize, usize);

/// One field line: returns the name and the value (OWS trimmed) as ranges within `line`.
fn parse_field_line(line: &[u8]) -> Result<(Range, Range), ErrorCode> {
    if line[0] == b' ' || line[0] == b'\t' {
        return Err(ErrorCode::ObsFold);
    }
    let name_end = line
        .iter()
        .position(|&b| !is_tchar(b))
        .ok_or(ErrorCode::HeaderNameInvalid)?;
    if name_end == 0 {
        return Err(fault(line[0], ErrorCode::HeaderNameInvalid));
    }
    match line[name_end] {
        b':' => {}
        b' ' | b'\t' => return Err(ErrorCode::HeaderNameWhitespace),
        b => return Err(fault(b, ErrorCode::HeaderNameInvalid)),
    }
    let (start, end) = value_range(line, name_end + 1);
    if let Some(&b) = line[start..end].iter().find(|&&b| !FIELD_VALUE[b as usize]) {
        return Err(fault(b, ErrorCode::HeaderValueInvalid));
    }
    Ok(((0, name_end), (start, end)))
}

/// Where a field value lies in `line` from `from` (just past the colon): OWS trimmed from
/// both ends (RFC 9112 §5.1).
pub(crate) fn value_range(line: &[u8], from: usize) -> (usize, usize) {
    let (mut start, mut end) = (from, line.len());
    while start < end && (line[start] == b' ' || line[start] == b'\t') {
        start += 1;
    }
    while end > start && (line[end - 1] == b' ' || line[end - 1] == b'\t') {
        end -= 1;
    }
    (start, end)
}

/// `tchar` of RFC 9110 §5.6.2.
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// A byte a field value may hold (RFC 9110 §5.5: VCHAR, obs-text, SP, HTAB).
pub fn is_field_value_byte(b: u8) -> bool {
    FIELD_VALUE[b as usize]
}

macro_rules! byte_table {
    (|$b:ident| $e:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $e;
            i += 1;
        }
        t
    }};
}

static TCHAR: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ));

/// Field value bytes: VCHAR, SP, HTAB and obs-text (RFC 9110 §5.5).
static FIELD_VALUE: [bool; 256] =
    byte_table!(|b| b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f));

/// Request-target bytes: visible ASCII, except `#` (a fragment is never sent) and `\` (some
/// upstreams read it as `/`, which would let a path slip past routing).
static TARGET: [bool; 256] = byte_table!(|b| b >= 0x21 && b <= 0x7e && b != b'#' && b != b'\\');

/// reg-name and IPv4 bytes of a host (RFC 3986 §3.2.2), percent-encoding included.
static REG_NAME: [bool; 256] = byte_table!(|b| b.is_ascii_alphanumeric()
    || matches!(
        b,
        b'-' | b'.'
            | b'_'
            | b'~'
            | b'%'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    ));

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HeadLimits {
        HeadLimits {
            max_uri_bytes: 64,
            max_header_bytes: 256,
            max_headers: 8,
        }
    }

    fn scan_all(input: &[u8]) -> Result<Scan, ErrorCode> {
        HeadScanner::new().scan(input, &limits())
    }

    fn parse(input: &[u8]) -> Result<RequestHead, ErrorCode> {
        let l = limits();
        match scan_all(input)? {
            Scan::Complete { start, end } => {
                RequestHead::parse(Bytes::copy_from_slice(&input[start..end]), &l)
            }
            Scan::Partial => panic!("incomplete head in test input"),
        }
    }

    #[test]
    fn parses_a_simple_get() {
        let h = parse(b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A:  v  \r\n\r\n").unwrap();
        assert_eq!(h.method(), Method::Get);
        assert_eq!(h.version(), Version::Http11);
        assert_eq!(h.form(), TargetForm::Origin);
        assert_eq!(h.path(), b"/a/b");
        assert_eq!(h.query(), Some(&b"x=1"[..]));
        assert_eq!(h.field("host"), Some(&b"example.com"[..]));
        // RFC 9112 §5.1: OWS around the value is not part of it.
        assert_eq!(h.field("x-a"), Some(&b"v"[..]));
        assert_eq!(h.field_count(), 2);
    }

    #[test]
    fn scanner_finds_the_end_across_reads_without_rescanning() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
        let mut s = HeadScanner::new();
        let l = limits();
        for n in 1..27 {
            assert_eq!(s.scan(&input[..n], &l), Ok(Scan::Partial), "at {n}");
        }
        assert_eq!(
            s.scan(&input[..], &l),
            Ok(Scan::Complete { start: 0, end: 27 })
        );
    }

    #[test]
    fn leading_empty_lines_are_ignored() {
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
        let input = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            scan_all(input),
            Ok(Scan::Complete {
                start: 4,
                end: input.len()
            })
        );
        let mut s = HeadScanner::new();
        assert!(!s.started(b"\r\n") || s.scan(b"\r\n", &limits()).is_ok());
        assert_eq!(s.scan(b"\r\n", &limits()), Ok(Scan::Partial));
        assert!(!s.started(b"\r\n"));
        assert!(s.started(b"\r\nG"));
    }

    #[test]
    fn bare_lf_is_refused_as_soon_as_it_arrives() {
        // RFC 9112 §2.2 lets a recipient accept a bare LF; Portico refuses it so that no
        // upstream can read the message differently.
        assert_eq!(scan_all(b"GET / HTTP/1.1\n"), Err(ErrorCode::BareLf));
        assert_eq!(
            scan_all(b"GET / HTTP/1.1\r\nHost: a\n\r\n"),
            Err(ErrorCode::BareLf)
        );
        assert_eq!(scan_all(b"\n"), Err(ErrorCode::BareLf));
    }

    #[test]
    fn bare_cr_is_400() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n").unwrap_err(),
            ErrorCode::BareCr
        );
        assert_eq!(
            parse(b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err(),
            ErrorCode::BareCr
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA\rB: c\r\n\r\n").unwrap_err(),
            ErrorCode::BareCr
        );
    }

    #[test]
    fn nul_is_400() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n").unwrap_err(),
            ErrorCode::NulByte
        );
        assert_eq!(
            parse(b"GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap_err(),
            ErrorCode::NulByte
        );
    }

    #[test]
    fn obs_fold_is_400() {
        // RFC 9112 §5.2: a server MUST reject obs-fold with 400 or replace it; Portico rejects.
        let r = parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n");
        assert_eq!(r.unwrap_err(), ErrorCode::ObsFold);
        // RFC 9112 §2.2: whitespace between the start line and the first field is an error too.
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n").unwrap_err(),
            ErrorCode::ObsFold
        );
    }

    #[test]
    fn whitespace_before_colon_is_400() {
        // RFC 9112 §5.1: "A server MUST reject, with 400, any received request message that
        // contains whitespace between a header field name and colon."
        let r = parse(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n");
        assert_eq!(r.unwrap_err(), ErrorCode::HeaderNameWhitespace);
        let r = parse(b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n");
        assert_eq!(r.unwrap_err(), ErrorCode::HeaderNameWhitespace);
    }

    #[test]
    fn bad_field_names_and_values_are_400() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n: a\r\n\r\n").unwrap_err(),
            ErrorCode::HeaderNameInvalid
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n").unwrap_err(),
            ErrorCode::HeaderNameInvalid
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA(b: c\r\n\r\n").unwrap_err(),
            ErrorCode::HeaderNameInvalid
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n").unwrap_err(),
            ErrorCode::HeaderValueInvalid
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: b\x7fc\r\n\r\n").unwrap_err(),
            ErrorCode::HeaderValueInvalid
        );
        // obs-text is allowed in values (RFC 9110 §5.5).
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nA: caf\xc3\xa9\r\n\r\n").is_ok());
    }

    #[test]
    fn request_line_faults() {
        let bad: &[&[u8]] = &[
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
        ];
        for input in bad {
            let r = parse(input).unwrap_err();
            assert!(
                matches!(
                    r,
                    ErrorCode::RequestLineMalformed | ErrorCode::VersionMalformed
                ),
                "{:?} gave {r:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn version_rules() {
        // RFC 9110 §6.2: a higher minor version is treated as the highest we implement.
        assert_eq!(
            parse(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n")
                .unwrap()
                .version(),
            Version::Http11
        );
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().version(),
            Version::Http10
        );
        for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9", "HTTP/2", "HTTP/3"] {
            let line = format!("GET / {v}\r\nHost: a\r\n\r\n");
            assert_eq!(
                parse(line.as_bytes()).unwrap_err(),
                ErrorCode::VersionNotSupported,
                "{v}"
            );
        }
        for v in [
            "http/1.1",
            "HTTP/1",
            "HTTP/1.10",
            "HTTP/x.1",
            "HTTP/1.1.1",
            "HTTPS/1.1",
        ] {
            let line = format!("GET / {v}\r\nHost: a\r\n\r\n");
            assert_eq!(
                parse(line.as_bytes()).unwrap_err(),
                ErrorCode::VersionMalformed,
                "{v}"
            );
        }
    }

    #[test]
    fn unknown_method_is_501() {
        // RFC 9110 §9.1: an unrecognised method SHOULD get 501.
        assert_eq!(
            parse(b"BREW / HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::MethodNotImplemented
        );
        assert_eq!(
            parse(b"get / HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::MethodNotImplemented
        );
    }

    #[test]
    fn target_rules() {
        let l = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64));
        assert_eq!(parse(l.as_bytes()).unwrap_err(), ErrorCode::UriTooLong);
        assert_eq!(
            parse(b"GET /a#b HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetCharInvalid
        );
        assert_eq!(
            parse(b"GET /a\\b HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetCharInvalid
        );
        assert_eq!(
            parse(b"GET /%zz HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetCharInvalid
        );
        assert_eq!(
            parse(b"GET /%4 HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetCharInvalid
        );
        assert_eq!(
            parse(b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetCharInvalid
        );
        assert_eq!(
            parse(b"GET * HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetFormInvalid
        );
        assert_eq!(
            parse(b"GET a/b HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetFormInvalid
        );
        assert_eq!(
            parse(b"GET ftp://a/ HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetFormInvalid
        );
        assert_eq!(
            parse(b"GET http://u@a/ HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetFormInvalid
        );
        assert_eq!(
            parse(b"OPTIONS * HTTP/1.1\r\n\r\n").unwrap().form(),
            TargetForm::Asterisk
        );
        let h = parse(b"GET HTTP://Example.com:8080?q HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.form(), TargetForm::Absolute);
        assert_eq!(h.authority(), Some(&b"Example.com:8080"[..]));
        assert_eq!(h.path(), b"/");
        assert_eq!(h.query(), Some(&b"q"[..]));
        let h = parse(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.form(), TargetForm::Authority);
        assert_eq!(
            parse(b"CONNECT /x HTTP/1.1\r\n\r\n").unwrap_err(),
            ErrorCode::TargetFormInvalid
        );
    }

    #[test]
    fn long_request_line_is_414_before_it_ends() {
        let l = limits();
        let mut line = b"GET /".to_vec();
        line.extend(std::iter::repeat_n(b'a', l.max_request_line()));
        assert_eq!(scan_all(&line), Err(ErrorCode::UriTooLong));
        let garbage = vec![b'x'; l.max_request_line() + 1];
        assert_eq!(scan_all(&garbage), Err(ErrorCode::RequestLineMalformed));
    }

    #[test]
    fn header_section_limit_is_400_not_431() {
        // The contract: a too-large header section is 400 with its own code, never 431.
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        input.extend(std::iter::repeat_n(b'v', 300));
        assert_eq!(scan_all(&input), Err(ErrorCode::HeaderSectionTooLarge));
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(scan_all(&input), Err(ErrorCode::HeaderSectionTooLarge));
    }

    #[test]
    fn too_many_fields_is_400() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..9 {
            input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(scan_all(&input), Err(ErrorCode::TooManyHeaders));
    }

    #[test]
    fn authority_syntax() {
        assert!(valid_authority(b"example.com"));
        assert!(valid_authority(b"example.com:80"));
        assert!(valid_authority(b"127.0.0.1:8080"));
        assert!(valid_authority(b"[::1]:8080"));
        assert!(valid_authority(b"[::1]"));
        assert!(!valid_authority(b""));
        assert!(!valid_authority(b"a:b"));
        assert!(!valid_authority(b"a:123456"));
        assert!(!valid_authority(b"user@a"));
        assert!(!valid_authority(b"a b"));
        assert!(!valid_authority(b"[::1"));
        assert!(!valid_authority(b"[::1]x"));
    }
}
