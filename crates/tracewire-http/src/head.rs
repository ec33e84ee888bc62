//! What a server integration knows about a request before calling the handler.

use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri, Version};

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
