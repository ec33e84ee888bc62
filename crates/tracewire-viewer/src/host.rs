//! Which `Host` a request may name: the defence against DNS rebinding.
//!
//! A web page cannot read a cross-origin response, but it can make its own name resolve to
//! 127.0.0.1 and then read "its own" origin — the viewer. Such requests carry the page's name
//! in `Host`. So the viewer answers only requests that name it: `localhost` (and
//! `*.localhost`), a loopback address, the address it is bound to (when not loopback; any IP
//! address when bound to all of them: an address is never rebound), and the names configured
//! with [`ViewerBuilder::allow_host`](crate::ViewerBuilder::allow_host). Every HTTP listener
//! checks this before anything else.

use std::net::IpAddr;

/// The hosts a viewer answers to.
#[derive(Clone, Debug)]
pub(crate) struct AllowedHosts {
    bind: IpAddr,
    /// Lowercase names, without a trailing dot.
    names: Vec<String>,
}

/// The host part of a `Host` value or URI authority (`[v6]:port`, `name:port`, `name`),
/// lowercase, without a trailing dot; `None` if malformed.
fn host_part(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if let Some(v6) = value.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        h
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => value,
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

impl AllowedHosts {
    pub(crate) fn new(bind: IpAddr, names: &[String]) -> Self {
        AllowedHosts {
            bind,
            names: names
                .iter()
                .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether a request naming `host` (a `Host` header value or URI authority) is answered.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let Some(host) = host_part(host) else {
            return false;
        };
        if is_loopback_host(&host) {
            return true;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return ip == self.bind || self.bind.is_unspecified();
        }
        self.names.contains(&host)
    }
}

/// `localhost`, `*.localhost` or a loopback address (a host part as [`host_part`] gives it).
fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an `Origin` header names a loopback host: `http` or `https`, and a host that is
/// `localhost`, `*.localhost` or a loopback address (any port).
pub(crate) fn is_local_origin(origin: &str) -> bool {
    match origin.split_once("://") {
        Some(("http" | "https", authority)) => {
            host_part(authority).is_some_and(|h| is_loopback_host(&h))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_only() {
        let local = AllowedHosts::new("127.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])), &[]);
        for ok in [
            "localhost",
            "localhost:16686",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1:16686",
            "127.0.0.2",
            "[::1]:16686",
            "[::1]",
        ] {
            assert!(local.allows(ok), "{ok}");
        }
        for no in [
            "evil.example",
            "evil.example:16686",
            "localhost.evil.example",
            "192.168.1.5:16686",
            "",
            ":16686",
            "[::1",
            "localhost:x",
            "[::1]x",
        ] {
            assert!(!local.allows(no), "{no}");
        }
    }

    #[test]
    fn local_origins() {
        assert!(is_local_origin("http://localhost:3000"));
        assert!(is_local_origin("http://app.localhost"));
        assert!(is_local_origin("https://127.0.0.1:8443"));
        assert!(is_local_origin("http://[::1]:5173"));
        assert!(!is_local_origin("http://localhost.evil.com"));
        assert!(!is_local_origin("https://example.com"));
        assert!(!is_local_origin("null"));
        assert!(!is_local_origin("file://localhost"));
        assert!(!is_local_origin("http://[::2]:80"));
        assert!(!is_local_origin("http://localhost:80/x"));
    }

    #[test]
    fn a_non_loopback_bind_adds_its_address_and_the_configured_names() {
        let lan = AllowedHosts::new(
            "192.168.1.5".parse().unwrap_or(IpAddr::from([0; 4])),
            &["Viewer.Lan.".to_owned()],
        );
        assert!(lan.allows("192.168.1.5:16686"));
        assert!(lan.allows("viewer.lan:16686"));
        assert!(lan.allows("localhost"));
        assert!(!lan.allows("192.168.1.6"));
        assert!(!lan.allows("evil.example"));
        let all = AllowedHosts::new("0.0.0.0".parse().unwrap_or(IpAddr::from([0; 4])), &[]);
        assert!(all.allows("10.1.2.3:4318"));
        assert!(all.allows("[fe80::1]:4318"));
        assert!(!all.allows("collector.internal:4318"));
    }
}
