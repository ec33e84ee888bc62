//! The client layer: one CLIENT span per request sent through a tower HTTP client (a hyper
//! client, or any `Service<http::Request<_>>`), with the trace headers injected from it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use tracewire_http::{ClientConfig, ClientSpan};

/// Put a `UrlTemplate` in a request's extensions to name its client span
/// `{method} {template}` and record `url.template`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate(pub Cow<'static, str>);

/// Layer for HTTP clients: see [`TraceClient`].
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    config: ClientConfig,
}

impl ClientLayer {
    /// [`Tracer::global`](tracewire_core::Tracer::global) and the defaults of
    /// [`ClientConfig::new`].
    pub fn new() -> Self {
        ClientLayer {
            config: ClientConfig::new(),
        }
    }

    /// Records what `config` says (the tracer, whose propagators write the outgoing headers;
    /// known methods; header capture).
    pub fn with_config(config: ClientConfig) -> Self {
        ClientLayer { config }
    }
}

impl From<ClientConfig> for ClientLayer {
    fn from(config: ClientConfig) -> Self {
        ClientLayer { config }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = TraceClient<S>;

    fn layer(&self, inner: S) -> TraceClient<S> {
        TraceClient {
            inner,
            config: self.config.clone(),
        }
    }
}

/// A traced HTTP client service: for each request, a CLIENT span (child of the current
/// context, a no-op without one) named `{method}`, with `url.full` (redacted),
/// `server.address`/`server.port`, the status code (4xx and 5xx are errors) or the transport
/// error (`error.type` = the error type name), and the trace headers written into the request.
/// The span ends when the response head arrives.
#[derive(Clone, Debug)]
pub struct TraceClient<S> {
    inner: S,
    config: ClientConfig,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for TraceClient<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let url = req.uri().to_string();
        let host = req.uri().host().map(str::to_owned);
        let port = req.uri().port_u16().or(match req.uri().scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let template = req.extensions().get::<UrlTemplate>().cloned();
        let method = req.method().clone();
        let span = self.config.start(
            &method,
            &url,
            host.as_deref(),
            port,
            template.as_ref().map(|t| &*t.0),
            None,
            req.headers_mut(),
        );
        ClientFuture {
            inner: self.inner.call(req),
            span: Some(span),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TraceClient`].
    pub struct ClientFuture<F> {
        #[pin]
        inner: F,
        span: Option<ClientSpan>,
    }
}

impl<F, B, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        if let Some(mut span) = this.span.take() {
            match &res {
                Ok(r) => {
                    span.record_response(r.status(), r.headers());
                    span.record_protocol_version(r.version());
                }
                Err(e) => span.record_error(std::any::type_name::<E>(), &e.to_string()),
            }
        }
        Poll::Ready(res)
    }
}
