//! Where the egress (forward) proxy may go: `allow_hosts` patterns, and the addresses no
//! destination may reach unless the operator lists them (the SSRF guard).
//!
//! A pattern is a host name (`api.example.com`), every name under a domain (`*.example.com`,
//! not the domain itself), an IP address or a network (`10.1.0.0/16`), each optionally with a
//! port (`api.example.com:443`, `127.0.0.1:8080`, `[::1]:8080`); without one, any port.
//! Names are compared case-insensitively, without a trailing dot.
//!
//! A destination that is allowed by name is still refused when it resolves to an internal
//! address (loopback, private, link-local, shared, multicast, reserved, unspecified; IPv4 inside
//! IPv6 is judged as IPv4), unless that address is inside an IP or network pattern: a name
//! cannot smuggle a client onto the operator's own network, whatever its DNS says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cidr::Cidr;

/// One `allow_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostMatch {
    /// Exactly this name (lowercase, no trailing dot).
    Name(String),
    /// Any name ending in `.` + this.
    Under(String),
    /// An address inside this network.
    Network(Cidr),
}

impl HostPattern {
    /// Reads a pattern; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let bad = || {
            format!(
                "`{s}` is not a host pattern: a name, `*.domain`, an IP address or network, with an optional `:port`"
            )
        };
        // A bracketed IPv6 address, a network (its `/` comes before any port), or the rest.
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (addr, port)
        } else if s.parse::<IpAddr>().is_ok() || s.contains('/') {
            (s, None)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        };
        let host = if host.parse::<IpAddr>().is_ok() || host.contains('/') {
            HostMatch::Network(Cidr::parse(host)?)
        } else if let Some(domain) = host.strip_prefix("*.") {
            HostMatch::Under(valid_name(domain).ok_or_else(bad)?)
        } else {
            HostMatch::Name(valid_name(host).ok_or_else(bad)?)
        };
        Ok(HostPattern { host, port })
    }

    /// Whether the destination `host` (a name, or an IP literal without brackets) and `port`
    /// match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, host.parse::<IpAddr>()) {
            (HostMatch::Network(n), Ok(ip)) => n.contains(ip),
            (HostMatch::Network(_), Err(_)) | (_, Ok(_)) => false,
            (HostMatch::Name(n), Err(_)) => normalized(host) == *n,
            (HostMatch::Under(d), Err(_)) => {
                let h = normalized(host);
                h.len() > d.len() + 1
                    && h.ends_with(d.as_str())
                    && h[..h.len() - d.len()].ends_with('.')
            }
        }
    }

    /// Whether `ip` is inside this pattern's network (for the SSRF guard: an internal address
    /// is reachable only when listed by address).
    pub fn lists_address(&self, ip: IpAddr, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
            && matches!(&self.host, HostMatch::Network(n) if n.contains(ip))
    }
}

/// Whether the destination is allowed by any pattern.
pub fn host_allowed(patterns: &[HostPattern], host: &str, port: u16) -> bool {
    patterns.iter().any(|p| p.matches(host, port))
}

/// Whether a resolved address may be connected to: a public one always, an internal one only
/// when a pattern lists it by address.
pub fn address_allowed(patterns: &[HostPattern], ip: IpAddr, port: u16) -> bool {
    !is_internal(ip) || patterns.iter().any(|p| p.lists_address(ip, port))
}

fn normalized(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A host name as RFC 1123 allows (letters, digits, `-`, `_` tolerated, dot-separated labels).
fn valid_name(s: &str) -> Option<String> {
    let s = normalized(s);
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(s)
}

/// Whether `ip` is not a public unicast address: what a forward proxy must not reach on a
/// client's behalf unless told to.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(v6),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network" (RFC 791)
        || ip.is_loopback()
        || ip.is_private() // RFC 1918
        || ip.is_link_local() // 169.254/16
        || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || ip.is_multicast()
        || a >= 240 // reserved, and broadcast
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let o = ip.octets();
    let embedded = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local, RFC 4193
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xff00) == 0xff00 // multicast
        // NAT64 (RFC 6052) and IPv4-compatible addresses carry an IPv4 address: judge it.
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && internal_v4(embedded))
        || (s[..6] == [0, 0, 0, 0, 0, 0] && internal_v4(embedded))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_domains_addresses_and_ports() {
        assert!(p("api.example.com").matches("API.Example.com.", 443));
        assert!(!p("api.example.com").matches("example.com", 443));
        assert!(p("*.example.com").matches("a.b.example.com", 80));
        assert!(!p("*.example.com").matches("example.com", 80));
        assert!(!p("*.example.com").matches("badexample.com", 80));
        assert!(p("api.example.com:443").matches("api.example.com", 443));
        assert!(!p("api.example.com:443").matches("api.example.com", 80));
        assert!(p("127.0.0.1:8080").matches("127.0.0.1", 8080));
        assert!(!p("127.0.0.1:8080").matches("127.0.0.2", 8080));
        assert!(p("10.1.0.0/16").matches("10.1.200.3", 1));
        assert!(p("[::1]:8080").matches("::1", 8080));
        assert!(p("::1").matches("::1", 1));
        // A name pattern never matches an address, nor an address pattern a name.
        assert!(!p("localhost").matches("127.0.0.1", 80));
        assert!(!p("127.0.0.1").matches("localhost", 80));
        for bad in [
            "",
            "*.",
            "a..b",
            "host:0",
            "host:x",
            "[::1",
            "10.0.0.1/8",
            "a b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_refused_unless_listed_by_address() {
        for internal in [
            "127.0.0.1",
            "10.2.3.4",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254", // cloud metadata
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "::127.0.0.1",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
            assert!(
                !address_allowed(&[p("localhost")], ip(internal), 80),
                "{internal}"
            );
        }
        for public in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_internal(ip(public)), "{public}");
            assert!(address_allowed(&[], ip(public), 80), "{public}");
        }
        let listed = [p("127.0.0.1:8080"), p("10.0.0.0/8")];
        assert!(address_allowed(&listed, ip("127.0.0.1"), 8080));
        assert!(!address_allowed(&listed, ip("127.0.0.1"), 8081));
        assert!(address_allowed(&listed, ip("10.9.9.9"), 1));
        assert!(!address_allowed(&listed, ip("192.168.0.1"), 1));
    }
}
