//! The configuration every HTTP server integration shares: the tracer and what to record.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use tracewire_core::{Tracer, semconv};

use crate::head::RequestHead;
use crate::headers::HeaderCapture;
use crate::method::KnownMethods;
use crate::proxy::TrustedProxies;

pub(crate) type Exclude = Arc<dyn Fn(&RequestHead<'_>) -> bool + Send + Sync>;

/// What a [`ServerConfig`] holds.
#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) tracer: Tracer,
    pub(crate) force_new_trace: Option<bool>,
    pub(crate) known_methods: KnownMethods,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) request_headers: HeaderCapture,
    pub(crate) response_headers: HeaderCapture,
    pub(crate) body_sizes: bool,
    pub(crate) inject_response_headers: bool,
    pub(crate) scheme: &'static str,
    pub(crate) exclude: Option<Exclude>,
}

/// Options of an HTTP server integration (poem, tower/axum/hyper): the [`Tracer`], and what to
/// record. Cheap to clone (one `Arc`). Integrations take it whole
/// (`tracewire_tower::TraceLayer::with_config`, `tracewire_poem::Tracing::with_config`).
///
/// ```
/// use http::{HeaderMap, Method, StatusCode, Uri, Version};
/// use tracewire_core::{Sampler, Tracer};
/// use tracewire_http::{RequestHead, ServerConfig};
///
/// let config = ServerConfig::new()
///     .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
///     .exclude(|head| head.uri.path() == "/health");
/// let uri: Uri = "/users/7?sig=secret".parse().unwrap();
/// let headers = HeaderMap::new();
/// let head = RequestHead {
///     method: &Method::GET,
///     uri: &uri,
///     version: Version::HTTP_11,
///     headers: &headers,
///     peer: Some("127.0.0.1:50000".parse().unwrap()),
/// };
/// let mut span = config.start(&head, Some("/users/{id}")).expect("not excluded");
/// assert!(span.context().is_sampled());
/// let mut response_headers = HeaderMap::new();
/// span.record_response(StatusCode::OK, &mut response_headers);
/// span.end();
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("ServerConfig")
            .field("tracer", &i.tracer)
            .field("known_methods", &i.known_methods)
            .field("trusted_proxies", &i.trusted_proxies)
            .field("request_headers", &i.request_headers)
            .field("response_headers", &i.response_headers)
            .field("body_sizes", &i.body_sizes)
            .field("inject_response_headers", &i.inject_response_headers)
            .field("scheme", &i.scheme)
            .field("exclude", &i.exclude.is_some())
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::new()
    }
}

impl ServerConfig {
    /// [`Tracer::global`], known methods from `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`, no
    /// trusted proxy, no header capture, no body sizes, no response trace headers, scheme
    /// `http`, nothing excluded.
    pub fn new() -> Self {
        ServerConfig {
            inner: Arc::new(Inner {
                tracer: Tracer::global(),
                force_new_trace: None,
                known_methods: KnownMethods::from_env(),
                trusted_proxies: TrustedProxies::none(),
                request_headers: HeaderCapture::default(),
                response_headers: HeaderCapture::default(),
                body_sizes: false,
                inject_response_headers: false,
                scheme: "http",
                exclude: None,
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Uses this tracer (propagators, sampler, root options).
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        let inner = self.inner_mut();
        inner.tracer = match inner.force_new_trace {
            Some(yes) => tracer.force_new_trace(yes),
            None => tracer,
        };
        self
    }

    /// Never continue inbound traces (an untrusted edge): see [`Tracer::force_new_trace`].
    pub fn force_new_trace(mut self, yes: bool) -> Self {
        let inner = self.inner_mut();
        inner.force_new_trace = Some(yes);
        inner.tracer = inner.tracer.clone().force_new_trace(yes);
        self
    }

    /// The methods recorded as themselves (others are `_OTHER`).
    pub fn known_methods(mut self, known: KnownMethods) -> Self {
        self.inner_mut().known_methods = known;
        self
    }

    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers name the client.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.inner_mut().trusted_proxies = proxies;
        self
    }

    /// Records these request headers as `http.request.header.<name>`.
    pub fn capture_request_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.inner_mut().request_headers =
            HeaderCapture::new(semconv::HTTP_REQUEST_HEADER_PREFIX, names);
        self
    }

    /// Records these response headers as `http.response.header.<name>`.
    pub fn capture_response_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.inner_mut().response_headers =
            HeaderCapture::new(semconv::HTTP_RESPONSE_HEADER_PREFIX, names);
        self
    }

    /// Records `http.request.body.size` (from `Content-Length`) and `http.response.body.size`
    /// (bytes actually sent).
    pub fn body_sizes(mut self, yes: bool) -> Self {
        self.inner_mut().body_sizes = yes;
        self
    }

    /// Writes the server span's trace headers (with the configured propagators) into every
    /// response, so a caller without tracing can still find the trace.
    pub fn inject_response_headers(mut self, yes: bool) -> Self {
        self.inner_mut().inject_response_headers = yes;
        self
    }

    /// `url.scheme` when the request target has none (`http` by default; set `https` behind
    /// TLS).
    pub fn url_scheme(mut self, scheme: &'static str) -> Self {
        self.inner_mut().scheme = scheme;
        self
    }

    /// Requests for which the predicate returns true get no span and no context (health
    /// checks, metrics scrapes).
    pub fn exclude<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        self.inner_mut().exclude = Some(Arc::new(predicate));
        self
    }

    /// The tracer.
    pub fn get_tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    /// True when the request is excluded.
    pub fn is_excluded(&self, head: &RequestHead<'_>) -> bool {
        self.inner.exclude.as_ref().is_some_and(|f| f(head))
    }
}
