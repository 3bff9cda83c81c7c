//! Where the gateway may connect: the line between upstreams and the gateway's own host. The
//! gateway's own ports are never an upstream (a route to them would serve its metrics or admin
//! API to anyone, or loop back into the proxy); in Kubernetes mode neither are loopback (the
//! gateway's Pod, sidecars included), link-local addresses (cloud metadata) and, for static
//! endpoints, private addresses unless the configuration allows them.
//!
//! The rules are checked twice: on the endpoint as written, when the resource is compiled (a
//! refused endpoint refuses its upstream with a condition), and on the address a connection
//! actually reached (a name that resolves to loopback, `127.1`, the Pod's own IP): only that
//! check sees what DNS answered at the moment of the connection.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::TcpStream;

/// What endpoints may be; compiled from the settings and the mode, shared by every table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    /// The gateway's own listening ports and what each is (`metrics`, ...): never dialled on
    /// the gateway's own host.
    pub own_ports: Vec<(u16, &'static str)>,
    /// Loopback and the gateway's own addresses may be dialled (on other ports).
    pub allow_loopback: bool,
    /// `169.254.0.0/16` and `fe80::/10` may be dialled.
    pub allow_link_local: bool,
    /// Static endpoints may be private addresses (RFC 1918, `100.64.0.0/10`, `fc00::/7`).
    pub allow_private: bool,
}

impl Default for Egress {
    /// Anything goes (tables built without settings, tests).
    fn default() -> Self {
        Egress {
            own_ports: Vec::new(),
            allow_loopback: true,
            allow_link_local: true,
            allow_private: true,
        }
    }
}

/// Why an endpoint or a connection is refused; the text follows the endpoint or address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("port {0} is the gateway's own {1} port")]
    OwnPort(u16, &'static str),
    #[error("loopback and the gateway's own addresses are not upstreams here (tenancy.static_endpoints.allow_loopback)")]
    Loopback,
    #[error("link-local addresses (169.254.0.0/16, fe80::/10, where cloud metadata answers) are never upstreams here")]
    LinkLocal,
    #[error("private addresses (RFC 1918, 100.64.0.0/10, fc00::/7) are not static endpoints here (tenancy.static_endpoints.allow_private)")]
    Private,
}

/// What kind of address an IP is, as far as these rules go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Loopback or unspecified (`0.0.0.0` reaches the host itself).
    Local,
    LinkLocal,
    Private,
    Other,
}

fn class(ip: IpAddr) -> Class {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() || v4.is_unspecified() {
                Class::Local
            } else if v4.is_link_local() {
                Class::LinkLocal
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Class::Private
            } else {
                Class::Other
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() || v6.is_unspecified() {
                Class::Local
            } else if first & 0xffc0 == 0xfe80 {
                Class::LinkLocal
            } else if first & 0xfe00 == 0xfc00 {
                Class::Private
            } else {
                Class::Other
            }
        }
    }
}

impl Egress {
    /// True when nothing is refused: connections need no check.
    pub fn is_open(&self) -> bool {
        self.own_ports.is_empty() && self.allow_loopback && self.allow_link_local && self.allow_private
    }

    fn own_port(&self, port: u16) -> Result<(), Refusal> {
        match self.own_ports.iter().find(|(p, _)| *p == port) {
            Some(&(p, what)) => Err(Refusal::OwnPort(p, what)),
            None => Ok(()),
        }
    }

    /// The rules for an address of class `c` on the gateway's own host (`own`) or not.
    fn judge(&self, c: Class, own: bool, port: u16, by_name: bool) -> Result<(), Refusal> {
        if own || c == Class::Local {
            self.own_port(port)?;
            if !self.allow_loopback {
                return Err(Refusal::Loopback);
            }
        }
        match c {
            Class::LinkLocal if !self.allow_link_local => Err(Refusal::LinkLocal),
            Class::Private if by_name && !self.allow_private => Err(Refusal::Private),
            _ => Ok(()),
        }
    }

    /// A static endpoint as written (`host` as in its URL, IPv6 in brackets). IP addresses,
    /// their numeric spellings (`127.1`, `2130706433`) and `localhost` are judged here; other
    /// names when a connection has reached their address.
    pub fn check_endpoint(&self, host: &str, port: u16) -> Result<(), Refusal> {
        let c = match literal_ip(host) {
            Some(ip) => class(ip),
            None if is_localhost(host) => Class::Local,
            None => return Ok(()),
        };
        self.judge(c, false, port, true)
    }

    /// A connection from `local` to `peer`; `by_name`: the endpoint was a DNS name (only
    /// static endpoints are; discovered ones are addresses). The gateway's own host is
    /// loopback, or an address the connection came from (Linux picks the destination itself
    /// as the source of a connection to a local address).
    pub fn check_connected(&self, by_name: bool, peer: SocketAddr, local: SocketAddr) -> Result<(), Refusal> {
        let own = peer.ip().to_canonical() == local.ip().to_canonical();
        self.judge(class(peer.ip()), own, peer.port(), by_name)
    }

    /// `check_connected` on an open stream, as the I/O error a refused connection fails with.
    /// A stream whose addresses cannot be read is let through (it is closed already).
    pub fn check_stream(&self, by_name: bool, stream: &TcpStream) -> io::Result<()> {
        if self.is_open() {
            return Ok(());
        }
        let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
            return Ok(());
        };
        self.check_connected(by_name, peer, local).map_err(|r| {
            tracing::warn!(%peer, "upstream connection refused: {r}");
            io::Error::new(io::ErrorKind::PermissionDenied, format!("{peer}: {r}"))
        })
    }
}

/// Whether an endpoint's host (as in its URL) is a DNS name rather than an address.
pub fn is_name(host: &str) -> bool {
    literal_ip(host).is_none()
}

/// The address a host of a URL spells: an IP literal (IPv6 in brackets) or a numeric IPv4 form
/// that resolvers accept (`127.1`, `0x7f.1`, `2130706433`).
fn literal_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>()
        .ok()
        .or_else(|| numeric_ipv4(bare).map(IpAddr::V4))
}

/// `inet_aton`'s forms: one to four parts, each decimal, octal (`0` prefix) or hex (`0x`); the
/// last fills the bytes left.
fn numeric_ipv4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        let v = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u32::from_str_radix(&p[1..], 8).ok()?
        } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u32>().ok()?
        } else {
            return None;
        };
        values.push(v);
    }
    let (last, head) = values.split_last()?;
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if rest_bits < 32 && u64::from(*last) >= 1u64 << rest_bits {
        return None;
    }
    let mut n: u32 = 0;
    for (i, v) in head.iter().enumerate() {
        n |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(n | last))
}

fn is_localhost(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kube() -> Egress {
        Egress {
            own_ports: vec![(8080, "proxy"), (9090, "metrics")],
            allow_loopback: false,
            allow_link_local: false,
            allow_private: false,
        }
    }

    fn folder() -> Egress {
        Egress {
            own_ports: vec![(8080, "proxy"), (9090, "metrics")],
            ..Egress::default()
        }
    }

    #[test]
    fn numeric_forms_are_the_addresses_resolvers_make_of_them() {
        let ip = |s: &str| numeric_ipv4(s).map(|a| a.to_string());
        assert_eq!(ip("127.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("2130706433").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("0x7f.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("0177.0.0.01").as_deref(), Some("127.0.0.1"));
        assert_eq!(ip("169.254.43518").as_deref(), Some("169.254.169.254"));
        assert_eq!(ip("10.0.0.256"), None);
        assert_eq!(ip("256.0.0.1"), None);
        assert_eq!(ip("api.example.com"), None);
        assert_eq!(ip("1.2.3.4.5"), None);
        assert_eq!(ip("08.1.1.1"), None, "not octal");
    }

    #[test]
    fn endpoints_as_written() {
        let k = kube();
        assert_eq!(k.check_endpoint("127.0.0.1", 3000), Err(Refusal::Loopback));
        assert_eq!(
            k.check_endpoint("127.0.0.1", 9090),
            Err(Refusal::OwnPort(9090, "metrics"))
        );
        assert_eq!(k.check_endpoint("localhost", 3000), Err(Refusal::Loopback));
        assert_eq!(k.check_endpoint("127.1", 3000), Err(Refusal::Loopback));
        assert_eq!(k.check_endpoint("0.0.0.0", 3000), Err(Refusal::Loopback));
        assert_eq!(k.check_endpoint("[::1]", 3000), Err(Refusal::Loopback));
        assert_eq!(
            k.check_endpoint("[::ffff:127.0.0.1]", 3000),
            Err(Refusal::Loopback)
        );
        assert_eq!(k.check_endpoint("169.254.169.254", 80), Err(Refusal::LinkLocal));
        assert_eq!(k.check_endpoint("[fe80::1]", 80), Err(Refusal::LinkLocal));
        assert_eq!(k.check_endpoint("10.0.0.5", 3002), Err(Refusal::Private));
        assert_eq!(k.check_endpoint("100.64.1.1", 80), Err(Refusal::Private));
        assert_eq!(k.check_endpoint("[fd00::5]", 80), Err(Refusal::Private));
        assert_eq!(k.check_endpoint("203.0.113.7", 443), Ok(()));
        assert_eq!(
            k.check_endpoint("api.example.com", 443),
            Ok(()),
            "names: at connect time"
        );
        let private = Egress {
            allow_private: true,
            ..kube()
        };
        assert_eq!(private.check_endpoint("10.0.0.5", 3002), Ok(()));

        let f = folder();
        assert_eq!(f.check_endpoint("127.0.0.1", 3000), Ok(()));
        assert_eq!(
            f.check_endpoint("localhost", 8080),
            Err(Refusal::OwnPort(8080, "proxy"))
        );
        assert_eq!(
            f.check_endpoint("127.0.0.1", 9090),
            Err(Refusal::OwnPort(9090, "metrics"))
        );
        assert_eq!(f.check_endpoint("10.0.0.5", 9090), Ok(()), "another host's 9090");
        assert!(Egress::default().is_open() && !f.is_open());
    }

    #[test]
    fn connections_as_reached() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        let k = kube();
        let pod = a("10.1.2.3:40000");
        // The Pod's own IP on its metrics port: the own host, whatever the address class.
        assert_eq!(
            k.check_connected(false, a("10.1.2.3:9090"), pod),
            Err(Refusal::OwnPort(9090, "metrics"))
        );
        assert_eq!(
            k.check_connected(false, a("10.1.2.3:3000"), pod),
            Err(Refusal::Loopback)
        );
        assert_eq!(
            k.check_connected(true, a("127.0.0.1:3000"), a("127.0.0.1:1")),
            Err(Refusal::Loopback)
        );
        // Another Pod: fine when discovered, refused when a static name resolved to it.
        assert_eq!(k.check_connected(false, a("10.1.9.9:3000"), pod), Ok(()));
        assert_eq!(
            k.check_connected(true, a("10.1.9.9:3000"), pod),
            Err(Refusal::Private)
        );
        assert_eq!(
            k.check_connected(true, a("169.254.169.254:80"), pod),
            Err(Refusal::LinkLocal)
        );
        let f = folder();
        assert_eq!(
            f.check_connected(true, a("127.0.0.1:3000"), a("127.0.0.1:1")),
            Ok(())
        );
        assert_eq!(
            f.check_connected(true, a("127.0.0.1:9090"), a("127.0.0.1:1")),
            Err(Refusal::OwnPort(9090, "metrics"))
        );
        assert_eq!(
            f.check_connected(false, a("[::ffff:127.0.0.1]:8080"), a("[::1]:1")),
            Err(Refusal::OwnPort(8080, "proxy"))
        );
    }
}
