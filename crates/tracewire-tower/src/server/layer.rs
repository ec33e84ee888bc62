use std::fmt;
use std::marker::PhantomData;

use http::HeaderName;
use tower_layer::Layer;
use tracewire_core::Tracer;
use tracewire_http::{KnownMethods, RequestHead, ServerConfig, TrustedProxies};

use super::Trace;
#[cfg(feature = "axum")]
use super::body::Axum;
use super::body::Generic;

/// Traces every request of the wrapped HTTP service (axum `Router`, a hyper service, any tower
/// `Service<http::Request<_>>`) with a SERVER span following the OpenTelemetry HTTP semantic
/// conventions. See the [crate docs](crate) for an example.
///
/// With axum, use [`TraceLayer::axum`] and add it with `Router::layer`, so that it runs after
/// routing and reads the route template from `MatchedPath` (span name `GET /users/{id}`);
/// outside the router the span is named by the method alone. Two stacked tracewire server
/// layers make one span, not two (see [`ServerSpan::active`](tracewire_http::ServerSpan::active)
/// for how, and its limits).
///
/// `K` is what the response body becomes: [`Generic`] (`TracedBody<B>`, for hyper and any
/// tower service, from [`TraceLayer::new`]) or [`Axum`] (axum's own `Body`, from
/// [`TraceLayer::axum`]).
pub struct TraceLayer<K = Generic> {
    config: ServerConfig,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for TraceLayer<K> {
    fn clone(&self) -> Self {
        TraceLayer::from_config(self.config.clone())
    }
}

impl<K> fmt::Debug for TraceLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceLayer")
            .field("config", &self.config)
            .field("body", &std::any::type_name::<K>())
            .finish()
    }
}

impl Default for TraceLayer {
    fn default() -> Self {
        TraceLayer::new()
    }
}

impl TraceLayer {
    /// [`Tracer::global`] and the defaults of [`ServerConfig::new`]; responses carry
    /// [`TracedBody`](tracewire_http::TracedBody) (see [`TraceLayer::axum`] for axum).
    pub fn new() -> Self {
        TraceLayer::from_config(ServerConfig::new())
    }

    /// Uses a complete [`ServerConfig`] (shared with other integrations).
    pub fn with_config(config: ServerConfig) -> Self {
        TraceLayer::from_config(config)
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl TraceLayer<Axum> {
    /// The layer for axum: as [`TraceLayer::new`], but the traced service returns axum's own
    /// `Body`, so axum does not box the response body again. An unsampled request's body
    /// passes through untouched; a sampled one is boxed once, with its span. Convert a
    /// configured layer with [`TraceLayer::for_axum`].
    pub fn axum() -> Self {
        TraceLayer::from_config(ServerConfig::new())
    }
}

impl<K> TraceLayer<K> {
    fn from_config(config: ServerConfig) -> Self {
        TraceLayer {
            config,
            kind: PhantomData,
        }
    }

    /// The same layer returning axum's own `Body` (see [`TraceLayer::axum`]).
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn for_axum(self) -> TraceLayer<Axum> {
        TraceLayer::from_config(self.config)
    }

    /// Uses this tracer (propagators, sampler, root options).
    pub fn tracer(self, tracer: Tracer) -> Self {
        self.map(|c| c.tracer(tracer))
    }

    /// Never continue inbound traces: start a new trace linked to the inbound context.
    pub fn force_new_trace(self, yes: bool) -> Self {
        self.map(|c| c.force_new_trace(yes))
    }

    /// Writes the server span's trace headers into every response.
    pub fn inject_response_headers(self, yes: bool) -> Self {
        self.map(|c| c.inject_response_headers(yes))
    }

    /// Requests for which `predicate` returns true get no span (health checks).
    pub fn exclude<F>(self, predicate: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        self.map(|c| c.exclude(predicate))
    }

    /// Records these request headers as `http.request.header.<name>`.
    pub fn capture_request_headers(self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.map(|c| c.capture_request_headers(names))
    }

    /// Records these response headers as `http.response.header.<name>`.
    pub fn capture_response_headers(self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.map(|c| c.capture_response_headers(names))
    }

    /// Records `http.request.body.size` and `http.response.body.size`.
    pub fn body_sizes(self, yes: bool) -> Self {
        self.map(|c| c.body_sizes(yes))
    }

    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client.
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.map(|c| c.trusted_proxies(proxies))
    }

    /// The methods recorded as themselves.
    pub fn known_methods(self, known: KnownMethods) -> Self {
        self.map(|c| c.known_methods(known))
    }

    /// `url.scheme` when the request target has none (`http` by default).
    pub fn url_scheme(self, scheme: &'static str) -> Self {
        self.map(|c| c.url_scheme(scheme))
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    fn map(self, f: impl FnOnce(ServerConfig) -> ServerConfig) -> Self {
        TraceLayer::from_config(f(self.config))
    }
}

impl<S, K> Layer<S> for TraceLayer<K> {
    type Service = Trace<S, K>;

    fn layer(&self, inner: S) -> Trace<S, K> {
        Trace::with_body(inner, self.config.clone())
    }
}
