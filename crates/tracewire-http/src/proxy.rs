//! Trusted proxies: where `client.address` may come from `Forwarded` / `X-Forwarded-For`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use http::HeaderMap;

/// The proxies whose `Forwarded` / `X-Forwarded-For` headers are believed. Empty by default:
/// `client.address` is then the peer address of the connection, whatever the headers say.
///
/// ```
/// use tracewire_http::TrustedProxies;
///
/// let proxies: TrustedProxies = "10.0.0.0/8, 192.168.1.1, ::1".parse().unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("11.0.0.1".parse().unwrap()));
/// let err = "10.0.0.0/33".parse::<TrustedProxies>().unwrap_err();
/// assert!(err.is_prefix());
/// ```
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Arc<[(IpAddr, u8)]>,
}

/// A trusted-proxy entry that is not an IP address or `address/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProxy {
    entry: String,
    prefix: bool,
}

impl InvalidProxy {
    /// True when the address parsed but the prefix length did not.
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }
}

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix {
            write!(f, "trusted proxy {:?}: invalid prefix length", self.entry)
        } else {
            write!(f, "trusted proxy {:?}: not an IP address", self.entry)
        }
    }
}

impl std::error::Error for InvalidProxy {}

impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    /// Comma-separated IP addresses and CIDR networks.
    fn from_str(s: &str) -> Result<Self, InvalidProxy> {
        let mut nets = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |prefix| InvalidProxy {
                entry: entry.to_owned(),
                prefix,
            };
            let (addr, len) = match entry.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (entry, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad(false))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or(bad(true))?,
                None => max,
            };
            nets.push((addr, len));
        }
        Ok(TrustedProxies { nets: nets.into() })
    }
}

impl TrustedProxies {
    /// No trusted proxy.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// True when `ip` is in one of the trusted networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets
            .iter()
            .any(|&(net, len)| match (canonical(net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    masked(n.to_bits().into(), a.to_bits().into(), len, 32)
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => masked(n.to_bits(), a.to_bits(), len, 128),
                _ => false,
            })
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// `client.address`: the original client named by a trusted proxy (walking
    /// `Forwarded` `for=`, else `X-Forwarded-For`, from the right, past trusted proxies), else
    /// the peer address.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<String> {
        let peer = peer?;
        if self.is_empty() || !self.contains(peer) {
            return Some(peer.to_string());
        }
        let mut hops: Vec<&str> = Vec::new();
        for v in headers.get_all(http::header::FORWARDED) {
            let Ok(v) = v.to_str() else { continue };
            for element in v.split(',') {
                for pair in element.split(';') {
                    if let Some((k, val)) = pair.trim().split_once('=') {
                        if k.trim().eq_ignore_ascii_case("for") {
                            hops.push(val.trim().trim_matches('"'));
                        }
                    }
                }
            }
        }
        if hops.is_empty() {
            for v in headers.get_all("x-forwarded-for") {
                let Ok(v) = v.to_str() else { continue };
                hops.extend(v.split(',').map(str::trim).filter(|h| !h.is_empty()));
            }
        }
        // From the right: the last hop not itself a trusted proxy is the client.
        let mut client = None;
        for hop in hops.iter().rev() {
            client = Some(*hop);
            match parse_hop(hop) {
                Some(ip) if self.contains(ip) => continue,
                _ => break,
            }
        }
        Some(match client {
            Some(hop) => match parse_hop(hop) {
                Some(ip) => ip.to_string(),
                None => hop.to_owned(),
            },
            None => peer.to_string(),
        })
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn masked(net: u128, addr: u128, len: u8, bits: u32) -> bool {
    if len == 0 {
        return true;
    }
    let shift = bits - u32::from(len);
    (net >> shift) == (addr >> shift)
}

/// An IP from a `for=` / `X-Forwarded-For` hop: `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']').and_then(|(a, _)| a.parse().ok());
    }
    hop.rsplit_once(':').and_then(|(a, _)| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_ignores_headers() {
        let p: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(
            p.client_address(Some("9.9.9.9".parse().unwrap()), &h)
                .as_deref(),
            Some("9.9.9.9")
        );
        assert_eq!(
            TrustedProxies::none()
                .client_address(Some("10.0.0.1".parse().unwrap()), &h)
                .as_deref(),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn trusted_peer_walks_hops() {
        let p: TrustedProxies = "10.0.0.0/8, ::1".parse().unwrap();
        let peer = Some("10.0.0.1".parse().unwrap());
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2, 10.0.0.9")]);
        assert_eq!(p.client_address(peer, &h).as_deref(), Some("2.2.2.2"));
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=10.1.1.1",
            ),
            ("x-forwarded-for", "3.3.3.3"),
        ]);
        assert_eq!(p.client_address(peer, &h).as_deref(), Some("2001:db8::1"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(p.client_address(peer, &h).as_deref(), Some("_hidden"));
        assert_eq!(
            p.client_address(peer, &HeaderMap::new()).as_deref(),
            Some("10.0.0.1")
        );
        let mapped = Some("::ffff:10.0.0.1".parse().unwrap());
        let h = headers(&[("x-forwarded-for", "4.4.4.4:80")]);
        assert_eq!(p.client_address(mapped, &h).as_deref(), Some("4.4.4.4"));
    }

    #[test]
    fn parse_errors() {
        assert!(!"x".parse::<TrustedProxies>().unwrap_err().is_prefix());
        assert!("::/129".parse::<TrustedProxies>().unwrap_err().is_prefix());
        assert!(
            "0.0.0.0/0"
                .parse::<TrustedProxies>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }
}
