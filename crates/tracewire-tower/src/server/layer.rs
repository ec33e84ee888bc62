use std::fmt;
use std::marker::PhantomData;

use tower_layer::Layer;
use tracewire_http::ServerConfig;

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
/// What to record is a [`ServerConfig`], the options every HTTP server integration shares:
/// [`TraceLayer::with_config`] takes it whole (`TraceLayer::new()` uses the defaults).
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
    /// [`Tracer::global`](tracewire_core::Tracer::global) and the defaults of
    /// [`ServerConfig::new`]; responses carry
    /// [`TracedBody`](tracewire_http::TracedBody) (see [`TraceLayer::axum`] for axum).
    pub fn new() -> Self {
        TraceLayer::from_config(ServerConfig::new())
    }

    /// Records what `config` says (the tracer, header capture, exclusions, ...); for axum,
    /// follow with [`for_axum`](TraceLayer::for_axum).
    ///
    /// ```
    /// use tracewire_core::{Sampler, Tracer};
    /// use tracewire_tower::{ServerConfig, TraceLayer};
    ///
    /// let config = ServerConfig::new()
    ///     .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
    ///     .exclude(|head| head.uri.path() == "/health");
    /// let layer = TraceLayer::with_config(config);
    /// assert!(matches!(layer.config().get_tracer().sampler(), Sampler::AlwaysOn));
    /// ```
    pub fn with_config(config: ServerConfig) -> Self {
        TraceLayer::from_config(config)
    }
}

impl<K> From<ServerConfig> for TraceLayer<K> {
    fn from(config: ServerConfig) -> Self {
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

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }
}

impl<S, K> Layer<S> for TraceLayer<K> {
    type Service = Trace<S, K>;

    fn layer(&self, inner: S) -> Trace<S, K> {
        Trace::with_body(inner, self.config.clone())
    }
}
