use std::fmt;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracewire_http::{RequestHead, ServerConfig, ServerSpanMarker, TracedBody};

use super::ResponseFuture;

/// The service made by [`TraceLayer`](super::TraceLayer).
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
    config: ServerConfig,
}

impl<S> Trace<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, config: ServerConfig) -> Self {
        Trace { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Trace<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: http_body::Body,
{
    type Response = Response<TracedBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        if req.extensions().get::<ServerSpanMarker>().is_some() {
            return ResponseFuture::untraced(self.inner.call(req));
        }
        let ext = req.extensions();
        let route = matched_path(ext);
        let uri = original_uri(ext).unwrap_or(req.uri());
        let head = RequestHead {
            method: req.method(),
            uri,
            version: req.version(),
            headers: req.headers(),
            peer: peer_addr(ext),
        };
        let Some(span) = self.config.start(&head, route) else {
            return ResponseFuture::untraced(self.inner.call(req));
        };
        req.extensions_mut().insert(ServerSpanMarker);
        let cx = span.context().clone();
        let fut = {
            // Work done synchronously inside `call` belongs to the request too.
            let _parent = span.span().set_local_parent();
            let _cx = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::traced(fut, cx, span)
    }
}

#[cfg(feature = "axum")]
fn matched_path(ext: &http::Extensions) -> Option<&str> {
    ext.get::<axum::extract::MatchedPath>().map(|m| m.as_str())
}

#[cfg(not(feature = "axum"))]
fn matched_path(_: &http::Extensions) -> Option<&str> {
    None
}

#[cfg(feature = "axum")]
fn original_uri(ext: &http::Extensions) -> Option<&http::Uri> {
    ext.get::<axum::extract::OriginalUri>().map(|o| &o.0)
}

#[cfg(not(feature = "axum"))]
fn original_uri(_: &http::Extensions) -> Option<&http::Uri> {
    None
}

/// The peer address: a `SocketAddr` extension (put there by a hyper accept loop), or axum's
/// `ConnectInfo<SocketAddr>`.
fn peer_addr(ext: &http::Extensions) -> Option<SocketAddr> {
    if let Some(a) = ext.get::<SocketAddr>() {
        return Some(*a);
    }
    #[cfg(feature = "axum")]
    if let Some(a) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(a.0);
    }
    None
}
