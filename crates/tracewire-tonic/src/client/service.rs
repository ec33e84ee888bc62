use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracewire_core::{SpanKind, TraceContext};
use tracewire_http::HeaderInjector;

use super::ResponseFuture;
use super::layer::ClientConfig;
use crate::body::ResponseBody;
use crate::record::{self, CallState, RpcSpan};
use crate::status::Side;

/// The service made by [`GrpcClientLayer`](super::GrpcClientLayer).
#[derive(Clone, Debug)]
pub struct GrpcClientService<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S> GrpcClientService<S> {
    pub(crate) fn new(inner: S, config: Arc<ClientConfig>) -> Self {
        GrpcClientService { inner, config }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcClientService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let path = req.uri().path();
        let child = config
            .tracer
            .start_child(record::span_name(path), SpanKind::Client);
        let span = record::record_start(
            child.span,
            Side::Client,
            config.conventions,
            path,
            || config.server.clone().or_else(|| record::authority_of(&req)),
            || None,
        );
        if let Some(cx) = &child.context {
            config
                .tracer
                .inject(cx, &mut HeaderInjector(req.headers_mut()));
        }
        // Only a recorded status needs the deadline (DEADLINE_EXCEEDED vs CANCELLED).
        let deadline = child
            .context
            .as_ref()
            .is_some_and(TraceContext::is_sampled)
            .then(|| record::deadline(req.headers(), None))
            .flatten();
        let state = CallState {
            span: RpcSpan::new(span, Side::Client, config.conventions, deadline),
            context: None,
        };
        ResponseFuture::new(self.inner.call(req), state)
    }
}
