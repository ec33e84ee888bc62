//! Attribute values as text, without `fmt` and, for the common values, without allocating:
//! shared by the server and the client span.

use std::borrow::Cow;
use std::net::IpAddr;

use http::StatusCode;
use tracewire_core::intern::Decimal;

/// The standard method names (and `http`, `https`) as `&'static str` (no allocation), others
/// owned.
pub(crate) fn static_or_owned(s: &str) -> Cow<'static, str> {
    // A `match` compiles to a switch on the length and one comparison.
    Cow::Borrowed(match s {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        "HTTP" => "HTTP",
        "_OTHER" => "_OTHER",
        "http" => "http",
        "https" => "https",
        "" => "",
        _ => return Cow::Owned(s.to_owned()),
    })
}

/// A status code as a string, without allocating for the common ones.
pub(crate) fn status_str(status: StatusCode) -> Cow<'static, str> {
    const COMMON: [&str; 24] = [
        "200", "201", "202", "204", "206", "301", "302", "303", "304", "307", "308", "400", "401",
        "403", "404", "405", "409", "410", "422", "429", "500", "502", "503", "504",
    ];
    let s = status.as_str();
    match COMMON.iter().find(|c| **c == s) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(s.to_owned()),
    }
}

/// An IP address as text, as `ip.to_string()` writes it; IPv4 without `fmt` (the common case,
/// ~5x faster). For the framework crates' `client.address`/`network.peer.address`.
///
/// ```
/// let ip = std::net::IpAddr::from([10, 0, 0, 1]);
/// assert_eq!(tracewire_http::ip_string(ip), "10.0.0.1");
/// ```
pub fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_u16(&mut s, u16::from(octet));
            }
            s
        }
        v6 => v6.to_string(),
    }
}

/// A number (a port) as text, as `n.to_string()` writes it, without `fmt`.
///
/// ```
/// assert_eq!(tracewire_http::u16_string(50051), "50051");
/// ```
pub fn u16_string(n: u16) -> String {
    let mut s = String::with_capacity(5);
    push_u16(&mut s, n);
    s
}

fn push_u16(s: &mut String, n: u16) {
    s.push_str(Decimal::new(n.into(), 1).as_str());
}

/// A server port as a string, without allocating for the common ones.
pub(crate) fn port_str(port: u16) -> Cow<'static, str> {
    match port {
        80 => Cow::Borrowed("80"),
        443 => Cow::Borrowed("443"),
        3000 => Cow::Borrowed("3000"),
        8000 => Cow::Borrowed("8000"),
        8080 => Cow::Borrowed("8080"),
        8443 => Cow::Borrowed("8443"),
        p => Cow::Owned(u16_string(p)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fast_formatting_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.20.30.4",
            "::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_string(ip), ip.to_string());
        }
        for n in [0u16, 7, 10, 99, 100, 65535, 8080] {
            assert_eq!(u16_string(n), n.to_string());
            assert_eq!(port_str(n), n.to_string());
        }
        for s in ["GET", "PURGE", "https", ""] {
            assert_eq!(static_or_owned(s), s);
        }
        for code in [200u16, 404, 418, 503, 599] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(status_str(status), status.as_str());
        }
    }
}
