//! What a server integration knows about a request before calling the handler.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri, Version};

use crate::intern;

/// What a server integration knows about a request before calling the handler.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request target (path and query; scheme and authority for HTTP/2 and absolute-form).
    pub uri: &'a Uri,
    /// The protocol version.
    pub version: Version,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The peer address of the connection, when the framework knows it.
    pub peer: Option<SocketAddr>,
}

/// Where a request was sent, as the semantic conventions read it for `server.address` and
/// `server.port`: the request's URI authority (HTTP/2's `:authority`, an absolute-form request
/// target), else its `Host` header.
///
/// ```
/// use tracewire_http::ServerAuthority;
///
/// let req = http::Request::get("http://[::1]:8080/x").body(()).unwrap();
/// let a = ServerAuthority::of(req.uri(), req.headers()).unwrap();
/// assert_eq!((a.address.as_ref(), a.port), ("::1", Some(8080)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAuthority {
    /// The host; an IPv6 literal without its brackets.
    pub address: Cow<'static, str>,
    /// The port, when the authority names one.
    pub port: Option<u16>,
    /// `port` as the value spells it, when that is how `server.port` writes it (a slice of the
    /// interned value: no text made per request).
    pub(crate) port_text: Option<&'static str>,
}

impl ServerAuthority {
    /// The authority of a request; `None` when neither the URI nor a `Host` header names a host.
    /// Each distinct value is split once and kept (a bounded set; past it, values are split on
    /// every call), so the common request makes no string.
    pub fn of(uri: &Uri, headers: &HeaderMap) -> Option<ServerAuthority> {
        let raw = match uri.authority() {
            Some(a) => a.as_str(),
            None => headers.get(http::header::HOST)?.to_str().ok()?,
        };
        match intern::host(raw) {
            Some(h) => Some(ServerAuthority {
                address: Cow::Borrowed(h.address),
                port: h.port,
                port_text: h.port_text,
            }),
            None => intern::split_host_port(raw).map(|(address, port)| ServerAuthority {
                address: Cow::Owned(address.to_owned()),
                port,
                port_text: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(uri: &str, host: Option<&str>) -> Option<(String, Option<u16>)> {
        let mut req = http::Request::get(uri);
        if let Some(h) = host {
            req = req.header(http::header::HOST, h);
        }
        let req = req.body(()).unwrap();
        ServerAuthority::of(req.uri(), req.headers()).map(|a| (a.address.into_owned(), a.port))
    }

    #[test]
    fn authority_from_the_uri_first_then_the_host_header() {
        let owned = |h: &str, p| Some((h.to_owned(), p));
        assert_eq!(
            of("http://a.example:81/x", Some("b.example")),
            owned("a.example", Some(81))
        );
        assert_eq!(
            of("/x", Some("b.example:8443")),
            owned("b.example", Some(8443))
        );
        assert_eq!(of("/x", Some("[2001:db8::1]")), owned("2001:db8::1", None));
        assert_eq!(of("/x", Some("b.example:http")), owned("b.example", None));
        assert_eq!(of("/x", None), None);
        assert_eq!(of("/x", Some("")), None);
    }
}
