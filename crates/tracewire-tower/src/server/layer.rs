use http::HeaderName;
use tower_layer::Layer;
use tracewire_core::Tracer;
use tracewire_http::{KnownMethods, RequestHead, ServerConfig, TrustedProxies};

use super::Trace;

/// Traces every request of the wrapped HTTP service (axum `Router`, a hyper service, any tower
/// `Service<http::Request<_>>`) with a SERVER span following the OpenTelemetry HTTP semantic
/// conventions. See the [crate docs](crate) for an example.
///
/// With axum, add it with `Router::layer` so that it runs after routing and reads the route
/// template from `MatchedPath` (span name `GET /users/{id}`); outside the router the span is
/// named by the method alone. Two stacked tracewire server layers make one span, not two.
#[derive(Clone, Debug, Default)]
pub struct TraceLayer {
    config: ServerConfig,
}

impl TraceLayer {
    /// [`Tracer::global`] and the defaults of [`ServerConfig::new`].
    pub fn new() -> Self {
        TraceLayer {
            config: ServerConfig::new(),
        }
    }

    /// Uses a complete [`ServerConfig`] (shared with other integrations).
    pub fn with_config(config: ServerConfig) -> Self {
        TraceLayer { config }
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
        TraceLayer {
            config: f(self.config),
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace::new(inner, self.config.clone())
    }
}
