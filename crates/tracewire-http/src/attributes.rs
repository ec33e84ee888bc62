//! The attributes of a request and of a response status, as the HTTP semantic conventions
//! name them. Values repeated across requests (method, scheme, route, host, user agent,
//! common ports and statuses) are static or interned.

use std::borrow::Cow;

use http::StatusCode;
use tracewire_core::span::Attribute;
use tracewire_core::{PendingSpan, semconv};

use crate::config::Inner;
use crate::format::{ip_string, port_str, static_or_owned, status_str, u16_string};
use crate::head::{RequestHead, ServerAuthority};
use crate::headers::protocol_version;
use crate::intern;
use crate::method::Normalized;
use crate::redact::redact_query;

/// The request attributes of a server span. The path, query and client address are copied.
pub(crate) fn request_attributes(
    config: &Inner,
    head: &RequestHead<'_>,
    method: Normalized<'_>,
    route: Option<Cow<'static, str>>,
) -> Vec<Attribute> {
    // Room for the response attributes too: the list goes to fastrace once, at the end.
    // (20 entries are 960 bytes: still a small, thread-cached allocation.)
    let mut p: Vec<Attribute> =
        Vec::with_capacity(20 + config.request_headers.len() + config.response_headers.len());
    let mut put = |k: &'static str, v: Cow<'static, str>| p.push((Cow::Borrowed(k), v));
    put(semconv::HTTP_REQUEST_METHOD, static_or_owned(method.method));
    if let Some(orig) = method.original {
        put(
            semconv::HTTP_REQUEST_METHOD_ORIGINAL,
            Cow::Owned(orig.to_owned()),
        );
    }
    let path = head.uri.path();
    put(
        semconv::URL_PATH,
        match &route {
            // A route without parameters is its own path: share the interned string.
            Some(Cow::Borrowed(r)) if *r == path => Cow::Borrowed(r),
            _ => Cow::Owned(path.to_owned()),
        },
    );
    if let Some(q) = head.uri.query() {
        put(semconv::URL_QUERY, Cow::Owned(redact_query(q).into_owned()));
    }
    let scheme = head.uri.scheme_str();
    put(
        semconv::URL_SCHEME,
        match scheme {
            Some(s) => static_or_owned(s),
            None => Cow::Borrowed(config.scheme),
        },
    );
    if let Some(route) = route {
        put(semconv::HTTP_ROUTE, route);
    }
    if let Some(authority) = ServerAuthority::of(head.uri, head.headers) {
        put(semconv::SERVER_ADDRESS, authority.address);
        let port = authority.port.or(match scheme.unwrap_or(config.scheme) {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        });
        if let Some(port) = port {
            put(
                semconv::SERVER_PORT,
                authority
                    .port_text
                    .map_or_else(|| port_str(port), Cow::Borrowed),
            );
            // (other ports go through `u16_string`, no `fmt`)
        }
    }
    if let Some(peer) = head.peer {
        let peer_ip = ip_string(peer.ip());
        let client = if config.trusted_proxies.is_empty() {
            None
        } else {
            config
                .trusted_proxies
                .client_address(Some(peer.ip()), head.headers)
        };
        match client {
            // Behind a trusted proxy: the client named by it, and the proxy as the peer.
            Some(client) if client != peer_ip => {
                put(semconv::CLIENT_ADDRESS, Cow::Owned(client));
                put(semconv::NETWORK_PEER_ADDRESS, Cow::Owned(peer_ip));
                put(
                    semconv::NETWORK_PEER_PORT,
                    Cow::Owned(u16_string(peer.port())),
                );
            }
            // A direct connection: the peer is the client; `network.peer.*` would repeat it
            // (and its ephemeral port says nothing), so it is not recorded.
            _ => put(semconv::CLIENT_ADDRESS, Cow::Owned(peer_ip)),
        }
    }
    put(
        semconv::NETWORK_PROTOCOL_VERSION,
        Cow::Borrowed(protocol_version(head.version)),
    );
    if let Some(ua) = head
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        put(semconv::USER_AGENT_ORIGINAL, intern::USER_AGENTS.cow(ua));
    }
    if config.body_sizes {
        if let Some(len) = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            put(semconv::HTTP_REQUEST_BODY_SIZE, Cow::Owned(len.to_string()));
        }
    }
    p.extend(config.request_headers.properties(head.headers));
    p
}

/// Records a response status on a server or client span: `http.response.status_code`, and
/// when `error`, status `ERROR` with `error.type` = the code (no description: the code says
/// it all).
pub(crate) fn record_status(span: &mut PendingSpan, status: StatusCode, error: bool) {
    span.extend(|| {
        let code = status_str(status);
        let error = error.then(|| {
            [
                (
                    Cow::Borrowed(semconv::OTEL_STATUS_CODE),
                    Cow::Borrowed(semconv::STATUS_ERROR),
                ),
                (Cow::Borrowed(semconv::ERROR_TYPE), code.clone()),
            ]
        });
        error
            .into_iter()
            .flatten()
            .chain([(Cow::Borrowed(semconv::HTTP_RESPONSE_STATUS_CODE), code)])
    });
}
