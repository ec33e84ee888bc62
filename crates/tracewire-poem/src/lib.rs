#![doc = include_str!("../README.md")]

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use poem::{EndpointExt as _, IntoEndpoint};
use tracewire_http::{RequestHead, ServerConfig, ServerSpan};

pub use tracewire_http::ServerConfig as Config;

/// poem middleware: one SERVER span per request, following the OpenTelemetry HTTP semantic
/// conventions (see the [crate docs](crate)).
///
/// Where to put it: poem matches the route *inside* [`poem::Route`], after middleware applied
/// to the whole route table has started, and a fastrace span cannot be renamed. So:
/// - on each endpoint (`.at("/users/:id", get(user).with(tracing.clone()))`), the span is
///   named `{method} {route}` from poem's [`PathPattern`] from the start;
/// - on the whole app (`Route::new()....with(tracing)`), every request, matched or not, gets a
///   span named `{method}`, and `http.route` is recorded from the response when a route
///   matched.
///
/// A request already traced by a tracewire server layer (stacked middleware, poem behind a
/// tracewire tower layer) gets no second span.
#[derive(Clone, Debug, Default)]
pub struct Tracing {
    config: ServerConfig,
}

impl Tracing {
    /// [`Tracer::global`](tracewire_core::Tracer::global) and the defaults of
    /// [`ServerConfig::new`].
    pub fn new() -> Self {
        Tracing {
            config: ServerConfig::new(),
        }
    }

    /// Records what `config` ([`Config`], the options every HTTP server integration shares)
    /// says: the tracer, header capture, exclusions, ...
    pub fn with_config(config: ServerConfig) -> Self {
        Tracing { config }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }
}

impl From<ServerConfig> for Tracing {
    fn from(config: ServerConfig) -> Self {
        Tracing { config }
    }
}

impl<E: Endpoint> Middleware<E> for Tracing {
    type Output = TracingEndpoint<E>;

    fn transform(&self, ep: E) -> TracingEndpoint<E> {
        TracingEndpoint {
            inner: ep,
            config: self.config.clone(),
        }
    }
}

/// The endpoint made by [`Tracing`].
#[derive(Debug)]
pub struct TracingEndpoint<E> {
    inner: E,
    config: ServerConfig,
}

impl<E: Endpoint> Endpoint for TracingEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let mut known_route = false;
        let mut span = None;
        // Stacked inside another tracewire server layer: that one traces the request.
        if !ServerSpan::active() {
            if let Some(Routed(flag)) = req.extensions().get::<Routed>() {
                flag.store(true, Ordering::Relaxed);
            }
            let route = req.data::<PathPattern>().map(|p| &*p.0);
            known_route = route.is_some();
            // The head is read only when needed: exclusion, a custom sampler, a sampled request.
            span = self.config.start_with(req.headers(), || {
                let head = RequestHead {
                    method: req.method(),
                    uri: req.original_uri(),
                    version: req.version(),
                    headers: req.headers(),
                    peer: req.remote_addr().as_socket_addr().copied(),
                };
                (head, route)
            });
        }
        // One call site and one await for every case, polled in place: the inner future (which
        // holds the request) is moved as little as possible.
        let inner = std::pin::pin!(self.inner.call(req));
        let result = poll_in_scope(span.as_mut(), inner).await;
        let Some(mut span) = span else {
            return result.map(IntoResponse::into_response);
        };
        match result {
            Ok(resp) => {
                let mut resp = resp.into_response();
                if !known_route {
                    if let Some(p) = resp.data::<PathPattern>() {
                        span.record_route(&p.0);
                    }
                }
                let status = resp.status();
                span.record_response(status, resp.headers_mut());
                if !span.is_sampled() {
                    // Nothing is recorded for an unsampled request: keep the body as it is.
                    span.end();
                    return Ok(resp);
                }
                // poem bodies are already boxed: re-boxing the traced body costs one allocation.
                let body: BoxBody<Bytes, std::io::Error> = resp.take_body().into();
                resp.set_body(BoxBody::new(span.wrap_body(body)));
                Ok(resp)
            }
            Err(err) => {
                if !known_route {
                    if let Some(p) = err.data::<PathPattern>() {
                        span.record_route(&p.0);
                    }
                }
                let status = err.status();
                span.record_response(status, &mut http::HeaderMap::new());
                if status.is_server_error() {
                    span.record_error(status.as_str(), &err.to_string());
                }
                span.end();
                Err(err)
            }
        }
    }
}

/// Polls `fut` in the span's scope, if there is a span.
fn poll_in_scope<'a, F: Future>(
    mut span: Option<&'a mut ServerSpan>,
    mut fut: Pin<&'a mut F>,
) -> impl Future<Output = F::Output> + 'a {
    std::future::poll_fn(move |cx| match span.as_deref_mut() {
        Some(span) => span.scope(|| fut.as_mut().poll(cx)),
        None => fut.as_mut().poll(cx),
    })
}

/// Set by a per-route [`Tracing`] inside a [`TracedRoute`] when it traces the request.
#[derive(Clone)]
struct Routed(Arc<AtomicBool>);

/// A [`poem::Route`] whose every route is traced with a span named `{method} {route}` from the
/// start, and whose unmatched requests are traced too — the app-level placement without the
/// `{method}`-only names (see [`Tracing`]).
///
/// `at` puts the [`Tracing`] middleware on each endpoint; requests that match no route get a
/// span named `{method}` (started just after routing failed, microseconds late) with their
/// 404. Nest another `TracedRoute` (or any endpoint) with `nest`. To trace misses it keeps a
/// copy of the request head (one header-map clone per request); use per-endpoint
/// [`Tracing`] alone where misses need no span.
///
/// ```
/// use poem::{get, handler, test::TestClient};
/// use tracewire_core::{Sampler, Tracer};
/// use tracewire_poem::{Config, TracedRoute, Tracing};
///
/// #[handler]
/// fn user() -> &'static str { "alice" }
///
/// let config = Config::new().tracer(Tracer::new().with_sampler(Sampler::AlwaysOn));
/// let app = TracedRoute::new(Tracing::with_config(config))
///     .at("/users/:id", get(user));
/// let cap = tracewire_test::capture();
/// tokio::runtime::Runtime::new().unwrap().block_on(async {
///     let cli = TestClient::new(app);
///     cli.get("/users/7").send().await.assert_text("alice").await;
///     cli.get("/nowhere").send().await.assert_status(poem::http::StatusCode::NOT_FOUND);
/// });
/// assert_eq!(
///     cap.finish().tree(&["http.response.status_code"]),
///     "GET /users/:id [server] http.response.status_code=200\nGET [server] http.response.status_code=404\n"
/// );
/// ```
pub struct TracedRoute {
    route: poem::Route,
    tracing: Tracing,
}

impl std::fmt::Debug for TracedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedRoute")
            .field("tracing", &self.tracing)
            .finish_non_exhaustive()
    }
}

impl TracedRoute {
    /// An empty route table traced with `tracing`.
    pub fn new(tracing: Tracing) -> Self {
        TracedRoute {
            route: poem::Route::new(),
            tracing,
        }
    }

    /// Adds a traced endpoint at `path` (see [`poem::Route::at`]).
    pub fn at<E>(self, path: impl AsRef<str>, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        let ep = ep.into_endpoint().with(self.tracing.clone());
        TracedRoute {
            route: self.route.at(path, ep),
            tracing: self.tracing,
        }
    }

    /// Nests an endpoint under `path` (see [`poem::Route::nest`]); a nested `TracedRoute`
    /// traces its own routes with their full pattern.
    pub fn nest<E>(self, path: impl AsRef<str>, ep: E) -> Self
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        TracedRoute {
            route: self.route.nest(path, ep),
            tracing: self.tracing,
        }
    }
}

impl Endpoint for TracedRoute {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Response> {
        if ServerSpan::active() || req.extensions().get::<Routed>().is_some() {
            // Traced further out, or a nested table (the outer one handles misses).
            return self.route.call(req).await;
        }
        let flag = Arc::new(AtomicBool::new(false));
        req.extensions_mut().insert(Routed(flag.clone()));
        let (method, uri, version, headers, peer) = (
            req.method().clone(),
            req.original_uri().clone(),
            req.version(),
            req.headers().clone(),
            req.remote_addr().as_socket_addr().copied(),
        );
        let result = self.route.call(req).await;
        if !flag.load(Ordering::Relaxed) {
            // No route matched (or it was not a traced one): trace the miss.
            let head = RequestHead {
                method: &method,
                uri: &uri,
                version,
                headers: &headers,
                peer,
            };
            if let Some(mut span) = self.tracing.config.start(&head, None) {
                let status = match &result {
                    Ok(r) => r.status(),
                    Err(e) => e.status(),
                };
                span.record_response(status, &mut http::HeaderMap::new());
                span.end();
            }
        }
        result
    }
}
