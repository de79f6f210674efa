//! The listeners: the data plane's address (`listen`), its TLS listener (`tls`), HTTP/2 on
//! both (`http2`), and the admin API's own listener (`admin`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::read::{Fields, Reader, join, read_file};
use crate::yaml::Node;

/// The admin API's listener.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminListener {
    /// Address and port (never the data plane's).
    pub listen: SocketAddr,
    /// SHA-256 of the admin token given in the file, if one is (the token itself is not
    /// kept); `PORTICO_ADMIN_TOKEN` may give it instead.
    pub token_sha256: Option<[u8; 32]>,
    /// How long a deleted resource answers 410 before it is forgotten (then 404).
    pub tombstone_retention: Duration,
}

impl std::fmt::Debug for AdminListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminListener")
            .field("listen", &self.listen)
            .field("token_sha256", &self.token_sha256.map(|_| "<redacted>"))
            .field("tombstone_retention", &self.tombstone_retention)
            .finish()
    }
}

/// A TLS listener: where, and the certificate chain and key it presents (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListener {
    /// Address and port.
    pub listen: SocketAddr,
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
}

/// HTTP/2: by ALPN on the TLS listener, by prior knowledge on the plain one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http2 {
    /// Whether clients may speak HTTP/2.
    pub enabled: bool,
    /// Whether the plain listener speaks HTTP/2 only (`cleartext: only`), rather than
    /// HTTP/1.1 and HTTP/2 by prior knowledge (`both`, the default).
    pub cleartext_only: bool,
    /// Most streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// A stream's flow-control window: request-body bytes a client may send ahead of Portico
    /// reading them.
    pub stream_window: u32,
    /// A connection's flow-control window: the most request-body bytes one connection's
    /// streams together may have sent ahead of Portico reading them.
    pub connection_window: u32,
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 {
            enabled: true,
            cleartext_only: false,
            max_concurrent_streams: 128,
            stream_window: 256 * 1024,
            connection_window: 1024 * 1024,
        }
    }
}

/// The largest flow-control window HTTP/2 allows (RFC 9113 §6.9.1).
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// The window every HTTP/2 connection starts with, which it can only grow.
const INITIAL_WINDOW: u64 = 65_535;

const ADMIN_KEYS: &[&str] = &["listen", "token", "tombstone_retention"];

const TLS_KEYS: &[&str] = &["listen", "cert", "key"];

const HTTP2_KEYS: &[&str] = &[
    "enabled",
    "cleartext",
    "max_concurrent_streams",
    "stream_window",
    "connection_window",
];

pub(crate) fn read_http2(r: &mut Reader, node: &Node) -> Option<Http2> {
    let f = r.map(node, "http2", HTTP2_KEYS)?;
    let mut h2 = Http2::default();
    let mut ok = true;
    if let Some(n) = f.get("enabled") {
        match r.boolean(n, "http2.enabled") {
            Some(v) => h2.enabled = v,
            None => ok = false,
        }
    }
    if let Some(n) = f.get("cleartext") {
        match r.string(n, "http2.cleartext") {
            Some("both") => h2.cleartext_only = false,
            Some("only") if h2.enabled => h2.cleartext_only = true,
            Some("only") => {
                r.problem(n, "http2.cleartext", "`only` needs HTTP/2 enabled");
                ok = false;
            }
            Some(other) => {
                r.problem(
                    n,
                    "http2.cleartext",
                    format!("`{other}` is not `both` or `only`"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    if let Some(n) = f.get("max_concurrent_streams") {
        match r.uint(n, "http2.max_concurrent_streams") {
            Some(v @ 1..=10_000) => h2.max_concurrent_streams = v as u32,
            Some(_) => {
                r.problem(n, "http2.max_concurrent_streams", "must be from 1 to 10000");
                ok = false;
            }
            None => ok = false,
        }
    }
    for (key, min, slot) in [
        ("stream_window", 1024, &mut h2.stream_window),
        (
            "connection_window",
            INITIAL_WINDOW,
            &mut h2.connection_window,
        ),
    ] {
        let Some(n) = f.get(key) else { continue };
        let path = join("http2", key);
        match r.size(n, &path) {
            Some(v) if (min..=MAX_WINDOW).contains(&v) => *slot = v as u32,
            Some(_) => {
                r.problem(
                    n,
                    &path,
                    format!("must be from {min} to {MAX_WINDOW} bytes"),
                );
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(h2)
}

pub(crate) fn read_tls(r: &mut Reader, node: &Node) -> Option<TlsListener> {
    let f = r.map(node, "tls", TLS_KEYS)?;
    let listen = required_listen(r, node, &f, "tls", Some("127.0.0.1:8443"));
    let mut file = |key: &str| -> Option<PathBuf> {
        let Some(n) = f.get(key) else {
            r.missing(node, "tls", key);
            return None;
        };
        read_file(r, n, &join("tls", key))
    };
    let cert = file("cert");
    let key = file("key");
    Some(TlsListener {
        listen: listen?,
        cert: cert?,
        key: key?,
    })
}

/// `admin: {listen, token}`; the token is hashed at once and not kept.
pub(crate) fn read_admin(r: &mut Reader, node: &Node) -> Option<AdminListener> {
    use sha2::Digest;
    let f = r.map(node, "admin", ADMIN_KEYS)?;
    let listen = required_listen(r, node, &f, "admin", None);
    let token = match f.get("token") {
        None => Some(None),
        Some(n) => r.string(n, "admin.token").and_then(|t| {
            if t.len() < 16 {
                // The message never repeats the token.
                r.problem(
                    n,
                    "admin.token",
                    "the admin token must be at least 16 characters",
                );
                None
            } else {
                Some(Some(sha2::Sha256::digest(t.as_bytes()).into()))
            }
        }),
    };
    let retention = f
        .get("tombstone_retention")
        .map_or(Some(Duration::from_secs(7 * 24 * 3600)), |n| {
            r.duration(n, "admin.tombstone_retention")
        });
    Some(AdminListener {
        listen: listen?,
        token_sha256: token?,
        tombstone_retention: retention?,
    })
}

/// A listener's address: an IP address and port (`example` shows one in the message).
pub(crate) fn read_listen(
    r: &mut Reader,
    n: &Node,
    path: &str,
    example: Option<&str>,
) -> Option<SocketAddr> {
    let s = r.string(n, path)?;
    let addr = s.parse::<SocketAddr>().ok();
    if addr.is_none() {
        let example = example.map(|e| format!(", e.g. {e}")).unwrap_or_default();
        r.problem(
            n,
            path,
            format!("`{s}` is not an IP address and port{example}"),
        );
    }
    addr
}

/// The `listen` key a section must have.
pub(crate) fn required_listen(
    r: &mut Reader,
    node: &Node,
    f: &Fields<'_>,
    section: &str,
    example: Option<&str>,
) -> Option<SocketAddr> {
    match f.get("listen") {
        None => {
            r.missing(node, section, "listen");
            None
        }
        Some(n) => read_listen(r, n, &join(section, "listen"), example),
    }
}

/// The addresses of every listener the configuration opens.
pub(crate) struct Listeners {
    pub(crate) listen: SocketAddr,
    pub(crate) tls: Option<SocketAddr>,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) egress: Option<SocketAddr>,
    pub(crate) metrics: Option<SocketAddr>,
}

/// Each listener has a port of its own (port 0, "any free port", never clashes); false after
/// reporting the first clash.
pub(crate) fn check_ports(r: &mut Reader, top: &Fields<'_>, l: &Listeners) -> bool {
    let clash = |a: Option<SocketAddr>, others: &[Option<SocketAddr>]| {
        a.filter(|a| a.port() != 0 && others.contains(&Some(*a)))
    };
    let found = if let Some(admin) = clash(l.admin, &[Some(l.listen), l.tls]) {
        Some((
            "admin",
            format!("{admin} is a data-plane listener: the admin API needs its own port"),
        ))
    } else if let Some(tls) = clash(l.tls, &[Some(l.listen)]) {
        Some((
            "tls",
            format!("{tls} is also `listen`: give TLS its own port"),
        ))
    } else {
        clash(l.egress, &[Some(l.listen), l.tls, l.admin])
            .map(|egress| {
                (
                    "egress",
                    format!("{egress} is another listener's: the egress proxy needs its own port"),
                )
            })
            .or_else(|| {
                clash(l.metrics, &[Some(l.listen), l.tls, l.admin, l.egress]).map(|m| {
                    (
                        "metrics",
                        format!("{m} is another listener's: metrics need their own port"),
                    )
                })
            })
    };
    match found {
        Some((section, message)) => {
            if let Some(n) = top.get(section) {
                r.problem(n, &join(section, "listen"), message);
            }
            false
        }
        None => true,
    }
}
