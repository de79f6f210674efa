//! The egress (forward) proxy: a listener of its own through which the operator's clients
//! reach the hosts `allow_hosts` names, absolute-form HTTP requests and `CONNECT` tunnels,
//! after proving who they are in `Proxy-Authorization`.
//!
//! ```yaml
//! egress:
//!   listen: 127.0.0.1:3128
//!   allow_hosts: [api.example.com:443, "*.storage.example.com", 10.20.0.0/16]
//!   auth: basic              # a consumer's name and password; or `token` (the token service's)
//!   idle_timeout: 5m         # a tunnel with no byte either way for this long is closed
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use portico_policy::egress::HostPattern;

use crate::read::{Reader, join};
use crate::yaml::Node;

/// The egress proxy's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    /// Its own listener (never the data plane's or the admin API's).
    pub listen: SocketAddr,
    /// Where clients may go; nothing else.
    pub allow_hosts: Vec<HostPattern>,
    /// How clients prove who they are.
    pub auth: EgressAuth,
    /// How long a tunnel may carry nothing before it is closed.
    pub idle_timeout: Duration,
}

/// How egress clients prove who they are, in `Proxy-Authorization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EgressAuth {
    /// `Basic`: a consumer's name (`project/consumer`, or the consumer alone when its name is
    /// unique) and its password.
    Basic,
    /// `Bearer`: a token from the token service.
    Token,
}

const EGRESS_KEYS: &[&str] = &["listen", "allow_hosts", "auth", "idle_timeout"];

/// Reads `egress`.
pub(crate) fn read_egress(r: &mut Reader, node: &Node) -> Option<Egress> {
    let f = r.map(node, "egress", EGRESS_KEYS)?;
    let listen = crate::listen::required_listen(r, node, &f, "egress", None);
    let mut allow_hosts = Vec::new();
    let mut ok = true;
    match f.get("allow_hosts") {
        None => {
            r.missing(node, "egress", "allow_hosts");
            ok = false;
        }
        Some(n) => match r.seq(n, "egress.allow_hosts") {
            None => ok = false,
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("egress.allow_hosts[{i}]");
                    match r.string(item, &path).map(HostPattern::parse) {
                        Some(Ok(p)) => allow_hosts.push(p),
                        Some(Err(e)) => {
                            r.problem(item, &path, e);
                            ok = false;
                        }
                        None => ok = false,
                    }
                }
            }
        },
    }
    let auth = match f.get("auth") {
        None => {
            r.missing(node, "egress", "auth");
            None
        }
        Some(n) => r.string(n, &join("egress", "auth")).and_then(|s| match s {
            "basic" => Some(EgressAuth::Basic),
            "token" => Some(EgressAuth::Token),
            _ => {
                r.problem(n, "egress.auth", "`auth` is `basic` or `token`");
                None
            }
        }),
    };
    let idle_timeout = f
        .get("idle_timeout")
        .map_or(Some(Duration::from_secs(300)), |n| {
            r.duration(n, "egress.idle_timeout")
        });
    if !ok {
        return None;
    }
    Some(Egress {
        listen: listen?,
        allow_hosts,
        auth: auth?,
        idle_timeout: idle_timeout?,
    })
}
