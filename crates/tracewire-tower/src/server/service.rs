use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracewire_http::{RequestHead, ServerConfig, ServerSpan};

use super::ResponseFuture;
use super::body::{Generic, ResponseBody};

/// The service made by [`TraceLayer`](super::TraceLayer). `K` is what the response body
/// becomes (see [`ResponseBody`]).
#[derive(Debug)]
pub struct Trace<S, K = Generic> {
    inner: S,
    config: ServerConfig,
    kind: PhantomData<fn() -> K>,
}

impl<S: Clone, K> Clone for Trace<S, K> {
    fn clone(&self) -> Self {
        Trace {
            inner: self.inner.clone(),
            config: self.config.clone(),
            kind: PhantomData,
        }
    }
}

impl<S> Trace<S> {
    /// Wraps `inner`; responses carry [`TracedBody`](tracewire_http::TracedBody).
    pub fn new(inner: S, config: ServerConfig) -> Self {
        Trace::with_body(inner, config)
    }
}

impl<S, K> Trace<S, K> {
    /// Wraps `inner`, with response bodies of kind `K`.
    pub(crate) fn with_body(inner: S, config: ServerConfig) -> Self {
        Trace {
            inner,
            config,
            kind: PhantomData,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, K, ReqB, ResB> Service<Request<ReqB>> for Trace<S, K>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    K: ResponseBody<ResB>,
{
    type Response = Response<K::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, K>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        if ServerSpan::active() {
            // Stacked inside another tracewire server layer: that one traces the request.
            return ResponseFuture::new(self.inner.call(req), None);
        }
        // The extension lookups run only when the head is needed: exclusion, a custom
        // sampler, or a sampled request.
        let span = self.config.start_with(req.headers(), || {
            let ext = req.extensions();
            let head = RequestHead {
                method: req.method(),
                uri: original_uri(ext).unwrap_or(req.uri()),
                version: req.version(),
                headers: req.headers(),
                peer: peer_addr(ext),
            };
            (head, matched_path(ext))
        });
        let Some(mut span) = span else {
            return ResponseFuture::new(self.inner.call(req), None);
        };
        if K::SCOPED_CALL {
            // Work done synchronously inside `call` belongs to the request too.
            let fut = span.scope(|| self.inner.call(req));
            ResponseFuture::new(fut, Some(span))
        } else {
            ResponseFuture::new(ServerSpan::mark_active(|| self.inner.call(req)), Some(span))
        }
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
