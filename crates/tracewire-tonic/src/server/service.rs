use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracewire_core::SpanKind;

use super::ResponseFuture;
use super::layer::ServerConfig;
use crate::body::ResponseBody;
use crate::metadata::GrpcHeaders;
use crate::record::{self, CallState, RpcSpan};
use crate::status::Side;

/// The service made by [`GrpcServerLayer`](super::GrpcServerLayer).
#[derive(Clone, Debug)]
pub struct GrpcServerService<S> {
    inner: S,
    config: Arc<ServerConfig>,
}

impl<S> GrpcServerService<S> {
    pub(crate) fn new(inner: S, config: Arc<ServerConfig>) -> Self {
        GrpcServerService { inner, config }
    }

    /// Gets a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

#[cfg(feature = "transport")]
fn connect_info<B>(req: &Request<B>) -> Option<&tonic::transport::server::TcpConnectInfo> {
    req.extensions()
        .get::<tonic::transport::server::TcpConnectInfo>()
}

#[cfg(feature = "transport")]
fn peer_of<B>(req: &Request<B>) -> Option<SocketAddr> {
    connect_info(req).and_then(|i| i.remote_addr())
}

#[cfg(not(feature = "transport"))]
fn peer_of<B>(_req: &Request<B>) -> Option<SocketAddr> {
    None
}

/// `server.address`/`server.port`: the `:authority` the client called; the port falls back to
/// the local port of the connection.
fn server_of<B>(req: &Request<B>) -> Option<(std::borrow::Cow<'static, str>, Option<u16>)> {
    let (host, port) = record::authority_of(req)?;
    #[cfg(feature = "transport")]
    let port = port.or_else(|| {
        connect_info(req)
            .and_then(|i| i.local_addr())
            .map(|a| a.port())
    });
    Some((host, port))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcServerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let path = req.uri().path();
        if config.is_excluded(path) {
            return ResponseFuture::new(self.inner.call(req), None);
        }
        let root = config.tracer.start_root_lazy(
            || record::span_name(path),
            SpanKind::Server,
            &GrpcHeaders(req.headers()),
        );
        let span = record::record_start(
            root.span,
            Side::Server,
            config.conventions,
            path,
            || server_of(&req),
            || peer_of(&req),
        );
        // Only a recorded status needs the deadline (DEADLINE_EXCEEDED vs CANCELLED).
        let deadline = root
            .context
            .is_sampled()
            .then(|| record::deadline(req.headers(), config.timeout))
            .flatten();
        let mut state = CallState {
            span: RpcSpan::new(span, Side::Server, config.conventions, deadline),
            context: Some(root.context),
        };
        // Services may do work in `call` already (interceptors): run it in the span too.
        let inner = state.scope(|| self.inner.call(req));
        ResponseFuture::new(inner, Some(state))
    }
}
