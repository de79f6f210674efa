//! Networks in CIDR notation (RFC 4632 for IPv4, RFC 4291 §2.3 for IPv6), for the routes'
//! `allow_cidrs` and `deny_cidrs`.

use std::fmt;
use std::net::IpAddr;

/// A network: an address and how many of its leading bits are the network's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Reads `10.0.0.0/8`, `2001:db8::/32`, or a single address (all of its bits). Host bits
    /// set beyond the prefix are refused: `10.0.0.1/8` is more likely a mistake than a
    /// network.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or network such as 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length is 0 to {max}"))?,
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network_bits(addr) != bits(addr) {
            return Err(format!(
                "`{s}` has bits set past its /{prefix}; the network is {}",
                Cidr {
                    addr: from_bits(cidr.network_bits(addr), addr.is_ipv4()),
                    prefix
                }
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is inside. An IPv4 client seen on an IPv6 socket (`::ffff:a.b.c.d`) is
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && self.network_bits(ip) == bits(self.addr)
    }

    /// `ip`'s bits with everything past the prefix cleared.
    fn network_bits(&self, ip: IpAddr) -> u128 {
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let host = width - u32::from(self.prefix);
        let mask = if host >= 128 { 0 } else { u128::MAX << host };
        bits(ip) & mask
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(b: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(u32::try_from(b).unwrap_or(u32::MAX).into())
    } else {
        IpAddr::V6(b.into())
    }
}

/// Whether `ip` is inside any of `networks`.
pub fn any_contains(networks: &[Cidr], ip: IpAddr) -> bool {
    networks.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_hold_their_addresses_and_no_others() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.0.0")));
        assert!(net.contains(ip("10.1.255.255")));
        assert!(!net.contains(ip("10.2.0.0")));
        assert!(!net.contains(ip("::1")));
        // An IPv4 client on an IPv6 socket.
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("10.1.0.0")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("ffff::")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert_eq!(one.to_string(), "127.0.0.1/32");
    }

    #[test]
    fn mistakes_are_refused_with_what_was_meant() {
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(Cidr::parse("::/129").unwrap_err().contains("0 to 128"));
        assert!(Cidr::parse("example.com/8").is_err());
        assert!(Cidr::parse("10.0.0.0/x").is_err());
        let e = Cidr::parse("10.0.0.1/8").unwrap_err();
        assert!(e.contains("10.0.0.0/8"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn a_network_holds_exactly_the_addresses_sharing_its_prefix(a: u32, b: u32, prefix in 0u8..=32) {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            let net = Cidr::parse(&format!("{}/{prefix}", std::net::Ipv4Addr::from(a & mask))).unwrap();
            let inside = net.contains(IpAddr::V4(b.into()));
            proptest::prop_assert_eq!(inside, a & mask == b & mask);
        }
    }
}
