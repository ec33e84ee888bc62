//! The server hook: the span of one request from its head to the last byte of its response,
//! started by [`ServerConfig::start`].

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use fastrace::Span;
use fastrace::collector::{SpanId, TraceId};
use http::{HeaderMap, Method, StatusCode};
use tracewire_core::context;
use tracewire_core::{Abort, PendingSpan, SpanKind, TraceContext, semconv};

use crate::active::{self, ActiveGuard};
use crate::attributes::{record_status, request_attributes};
use crate::carrier::{HeaderExtractor, HeaderInjector};
use crate::config::ServerConfig;
use crate::head::RequestHead;
use crate::naming::{route_value, server_name};

impl ServerConfig {
    /// Starts the server span of a request (through
    /// [`Tracer::start_root_lazy`](tracewire_core::Tracer::start_root_lazy), the one root
    /// rule), named by [`server_span_name`](crate::server_span_name) and carrying every
    /// request attribute, or `None` when the request is excluded. `route` is the framework's
    /// route template, if one matched.
    pub fn start(&self, head: &RequestHead<'_>, route: Option<&str>) -> Option<ServerSpan> {
        self.start_with(head.headers, || (*head, route))
    }

    /// [`start`](ServerConfig::start) reading the request head and route only when they are
    /// needed: for the [exclude](ServerConfig::exclude) predicate, for a custom sampler (which
    /// sees the span name), and for a sampled request's name and attributes. An unsampled
    /// request costs the root rule (extracting `headers`) and nothing else, so `head` can do
    /// the framework's lookups (matched route, original URI, peer address) lazily. `headers`
    /// are the request headers (the same map as the head's).
    ///
    /// `head` is called at most once.
    ///
    /// ```
    /// use http::{HeaderMap, Method, Uri, Version};
    /// use tracewire_core::{Sampler, Tracer};
    /// use tracewire_http::{RequestHead, ServerConfig};
    ///
    /// let config = ServerConfig::new().tracer(Tracer::new().with_sampler(Sampler::AlwaysOff));
    /// let (uri, headers): (Uri, HeaderMap) = ("/users/7".parse().unwrap(), HeaderMap::new());
    /// let span = config
    ///     .start_with(&headers, || unreachable!("not sampled, nothing excluded: never read"))
    ///     .unwrap();
    /// assert!(!span.is_sampled());
    /// ```
    pub fn start_with<'a, H>(&self, headers: &HeaderMap, head: H) -> Option<ServerSpan>
    where
        H: Fn() -> (RequestHead<'a>, Option<&'a str>),
    {
        let inner = &*self.inner;
        let mut seen = None;
        if let Some(exclude) = &inner.exclude {
            if exclude(&seen.get_or_insert_with(&head).0) {
                return None;
            }
        }
        // The name, built by the root rule only for a recorded span or a custom sampler; the
        // normalised method and interned route come back out for the attributes.
        let mut named = None;
        let root = inner.tracer.start_root_lazy(
            || {
                let (h, route) = *seen.get_or_insert_with(&head);
                let (name, method, route) = server_name(&inner.known_methods, h.method, route);
                named = Some((method, route));
                name
            },
            SpanKind::Server,
            &HeaderExtractor(headers),
        );
        if !root.context.is_sampled() {
            return Some(ServerSpan {
                span: PendingSpan::default(),
                body_size: 0,
                context: Some(root.context),
                // Unsampled, the response only needs the configuration to inject headers.
                config: inner.inject_response_headers.then(|| self.clone()),
                sampled: false,
                bodiless: false,
                done: false,
            });
        }
        let (h, route) = *seen.get_or_insert_with(&head);
        let (method, route) = match named {
            Some(named) => named,
            None => {
                let (_, method, route) = server_name(&inner.known_methods, h.method, route);
                (method, route)
            }
        };
        let span =
            PendingSpan::with_attributes(root.span, request_attributes(inner, &h, method, route))
                .abort_on_drop(ABORT);
        Some(ServerSpan {
            span,
            body_size: 0,
            context: Some(root.context),
            config: Some(self.clone()),
            sampled: true,
            bodiless: h.method == Method::HEAD,
            done: false,
        })
    }
}

pin_project_lite::pin_project! {
    /// Made by [`ServerSpan::in_span`]: polls the handler inside [`ServerSpan::scope`].
    pub struct InServerSpan<'a, F> {
        #[pin]
        inner: F,
        span: &'a mut ServerSpan,
    }
}

impl<F: std::future::Future> std::future::Future for InServerSpan<'_, F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        this.span.scope(|| inner.poll(cx))
    }
}

/// The span of one server request. Made by [`ServerConfig::start`]; the integration runs the
/// handler in its [`scope`](ServerSpan::scope), records the response on it, then either
/// [moves it into the response body](ServerSpan::wrap_body) so it ends when the body has been
/// sent, or [ends](ServerSpan::end) it.
///
/// Dropped without either (the request future was dropped: the client went away, or the
/// server shut down), it records the request as aborted: status `ERROR`, `error.type` =
/// [`ABORTED`].
///
/// Small when the request is not sampled (the context, a flag or two), since integrations
/// move it through the framework's response future: what a sampled request records lives
/// behind one box (the [`PendingSpan`]'s).
pub struct ServerSpan {
    /// Records nothing when not sampled.
    span: PendingSpan,
    /// Response bytes counted so far (sampled requests).
    body_size: u64,
    /// `None` only while lent to the thread by [`ServerSpan::scope`].
    context: Option<TraceContext>,
    /// Kept when the response needs it: a sampled request, or trace headers to inject.
    config: Option<ServerConfig>,
    sampled: bool,
    /// A HEAD request, or a status that has no body (1xx, 204, 304): the server drops the
    /// body unsent, which completes the response.
    pub(crate) bodiless: bool,
    done: bool,
}

/// `error.type` of a request whose response was not fully sent: the response future or body
/// was dropped first (the client went away, or the server shut down).
pub const ABORTED: &str = "aborted";

/// What a request dropped before its response was fully sent records.
const ABORT: Abort = Abort {
    error_type: ABORTED,
    description: "the request was abandoned before the response was fully sent",
};

impl fmt::Debug for ServerSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSpan")
            .field("context", &self.context)
            .field("sampled", &self.sampled)
            .finish()
    }
}

/// What [`ServerSpan::context`] lends in the (unobservable) moment its context is attached.
static NO_CONTEXT: LazyLock<TraceContext> =
    LazyLock::new(|| TraceContext::new(TraceId(0), SpanId(0), false));

impl ServerSpan {
    /// The server span's context (propagated by outgoing calls while the handler runs in
    /// [`scope`](ServerSpan::scope)).
    pub fn context(&self) -> &TraceContext {
        self.context.as_ref().unwrap_or(&NO_CONTEXT)
    }

    /// The fastrace span (a no-op span when not sampled, or once ended).
    pub fn span(&self) -> &Span {
        self.span.span()
    }

    /// True when the request is sampled (attributes are recorded).
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    /// True while the request of a tracewire server span is being handled on this thread,
    /// inside [`ServerSpan::scope`] (which integrations put around the inner service's call
    /// and every poll of the handler). A server integration that finds it set is stacked
    /// inside another one (two tracewire layers, or poem behind a tower layer) and makes no
    /// second span: one thread-local read, where marking the request (an extension insert)
    /// would cost an allocation or a rehash.
    ///
    /// It is per thread. A middleware between the two layers that moves the request to
    /// another task (spawns it) hides the outer span, and the inner layer traces the request
    /// again; a handler that calls another traced service in-process (`oneshot` on the same
    /// task) gets no second server span, its work nests under this one.
    #[inline]
    pub fn active() -> bool {
        active::active()
    }

    /// Runs `f` as part of the request: this span as fastrace's local parent (when sampled),
    /// its context attached (moved in for the call and back out: no clone), and
    /// [`ServerSpan::active`] set. Integrations call the inner service and poll its future in
    /// it; restored on return and on unwind.
    #[inline]
    pub fn scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _active = ActiveGuard::enter();
        if self.span.is_recording() {
            let _parent = self.span.span().set_local_parent();
            context::scope(&mut self.context, f)
        } else {
            // No fastrace parent to set or restore (not even an empty guard to drop).
            context::scope(&mut self.context, f)
        }
    }

    /// Runs `f` with only [`ServerSpan::active`] set: neither the context nor the fastrace
    /// parent. For an integration whose inner service does no request work in its `call` (an
    /// axum route defers everything to its future), so that a tracewire layer reached
    /// synchronously from there still sees the request as traced.
    #[inline]
    pub fn mark_active<R>(f: impl FnOnce() -> R) -> R {
        let _active = ActiveGuard::enter();
        f()
    }

    /// Runs `fut` (the handler) in [`scope`](ServerSpan::scope) on every poll, borrowing the
    /// span so it can outlive the handler and end with the response body.
    pub fn in_span<F: std::future::Future>(&mut self, fut: F) -> InServerSpan<'_, F> {
        InServerSpan {
            inner: fut,
            span: self,
        }
    }

    /// Counts response body bytes (for `http.response.body.size`).
    pub(crate) fn add_body_bytes(&mut self, n: usize) {
        if self.span.is_recording() {
            self.body_size += n as u64;
        }
    }

    /// Records `http.route` when the framework learns the route after the span started.
    pub fn record_route(&mut self, route: &str) {
        self.span
            .extend(|| [(Cow::Borrowed(semconv::HTTP_ROUTE), route_value(route))]);
    }

    /// Records the response head: `http.response.status_code`, status `ERROR` and
    /// `error.type` for 5xx (4xx is not a server error), captured response headers; and, when
    /// configured, writes the trace headers into `headers`.
    #[inline]
    pub fn record_response(&mut self, status: StatusCode, headers: &mut HeaderMap) {
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            self.bodiless = true;
        }
        // Inlined up to here: an unsampled request without response trace headers has no
        // configuration kept, and nothing to record.
        if self.config.is_some() {
            self.record_response_headers(status, headers);
        }
    }

    /// [`record_response`](ServerSpan::record_response) with a configuration: the trace
    /// headers written, the status and captured headers recorded.
    fn record_response_headers(&mut self, status: StatusCode, headers: &mut HeaderMap) {
        let Some(config) = &self.config else {
            return;
        };
        let inner = &*config.inner;
        if inner.inject_response_headers {
            if let Some(cx) = &self.context {
                inner.tracer.inject(cx, &mut HeaderInjector(headers));
            }
        }
        if !self.span.is_recording() {
            return;
        }
        record_status(&mut self.span, status, status.is_server_error());
        if !inner.response_headers.is_empty() {
            self.span
                .extend(|| inner.response_headers.properties(headers));
        }
    }

    /// Records a failure: status `ERROR` with `description`, and `error.type` (a low
    /// cardinality identifier: an error type name, or a status code).
    pub fn record_error(&mut self, error_type: &str, description: &str) {
        if self.span.is_recording() {
            self.span
                .record_error(error_type.to_owned(), description.to_owned());
        }
    }

    /// Ends the span now (a response without a body to wait for).
    #[inline]
    pub fn end(mut self) {
        self.complete();
    }

    // Inlined, with `finish` and `PendingSpan::end`: an unsampled span ends and drops
    // without a call.
    #[inline]
    pub(crate) fn complete(&mut self) {
        if self.finish() {
            self.span.end();
        }
    }

    /// Adds the response size, once; false when already done.
    #[inline]
    fn finish(&mut self) -> bool {
        if std::mem::replace(&mut self.done, true) {
            return false;
        }
        if self.span.is_recording() {
            self.record_body_size();
        }
        true
    }

    /// `http.response.body.size`, when configured.
    fn record_body_size(&mut self) {
        if self.config.as_ref().is_some_and(|c| c.inner.body_sizes) {
            let size = self.body_size;
            self.span
                .set(semconv::HTTP_RESPONSE_BODY_SIZE, size.to_string());
        }
    }
}

impl Drop for ServerSpan {
    /// Unfinished: the span records the abort as it drops (`error.type` = [`ABORTED`]).
    #[inline]
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::{HeaderName, Uri, Version};
    use std::cell::Cell;
    use tracewire_core::{Sampler, Tracer};

    /// A `GET` without a known peer.
    fn get_head<'a>(uri: &'a Uri, headers: &'a HeaderMap, version: Version) -> RequestHead<'a> {
        RequestHead {
            method: &Method::GET,
            uri,
            version,
            headers,
            peer: None,
        }
    }

    const ALL: &[&str] = &[
        "http.request.method",
        "http.request.method_original",
        "url.path",
        "url.query",
        "url.scheme",
        "http.route",
        "server.address",
        "server.port",
        "client.address",
        "network.peer.address",
        "network.peer.port",
        "network.protocol.version",
        "user_agent.original",
        "http.request.header.x-id",
        "http.request.body.size",
        "http.response.status_code",
        "http.response.header.x-out",
        "error.type",
        "otel.status_code",
    ];

    fn head_parts() -> (Uri, HeaderMap) {
        let uri: Uri = "/users/7?sig=s3cret&a=1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", "api.example:8080".parse().unwrap());
        h.insert("user-agent", "curl/8".parse().unwrap());
        h.insert("x-id", "42".parse().unwrap());
        h.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        h.insert("content-length", "3".parse().unwrap());
        (uri, h)
    }

    #[test]
    fn sampled_request_records_the_full_attribute_set() {
        let cap = tracewire_test::capture();
        let config = ServerConfig::new()
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
            .trusted_proxies("127.0.0.0/8".parse().unwrap())
            .capture_request_headers([HeaderName::from_static("x-id")])
            .capture_response_headers([HeaderName::from_static("x-out")])
            .body_sizes(true);
        let (uri, h) = head_parts();
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let head = RequestHead {
            method: &purge,
            uri: &uri,
            version: Version::HTTP_10,
            headers: &h,
            peer: Some("127.0.0.1:4000".parse().unwrap()),
        };
        let mut span = config.start(&head, Some("/users/{id}")).unwrap();
        let mut out = HeaderMap::new();
        out.insert("x-out", "v".parse().unwrap());
        span.record_response(StatusCode::SERVICE_UNAVAILABLE, &mut out);
        assert!(
            out.get("traceparent").is_none(),
            "not injected unless enabled"
        );
        span.end();
        assert_eq!(
            cap.finish().tree(ALL),
            "HTTP /users/{id} [server] http.request.method=_OTHER http.request.method_original=PURGE \
             url.path=/users/7 url.query=sig=REDACTED&a=1 url.scheme=http http.route=/users/{id} \
             server.address=api.example server.port=8080 client.address=203.0.113.9 \
             network.peer.address=127.0.0.1 network.peer.port=4000 network.protocol.version=1.0 \
             user_agent.original=curl/8 http.request.header.x-id=[\"42\"] http.request.body.size=3 \
             http.response.status_code=503 http.response.header.x-out=[\"v\"] error.type=503 \
             otel.status_code=ERROR\n"
        );
    }

    #[test]
    fn client_errors_are_not_server_errors_and_excluded_requests_get_nothing() {
        let cap = tracewire_test::capture();
        let config = ServerConfig::new()
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
            .exclude(|h| h.uri.path() == "/users/7");
        let (uri, h) = head_parts();
        let head = get_head(&uri, &h, Version::HTTP_2);
        assert!(config.start(&head, None).is_none());
        let config = config.exclude(|_| false);
        let mut span = config.start(&head, None).unwrap();
        span.record_response(StatusCode::NOT_FOUND, &mut HeaderMap::new());
        drop(span.wrap_body(http_body_util::Empty::<bytes::Bytes>::new()));
        assert_eq!(
            cap.finish().tree(ALL),
            "GET [server] http.request.method=GET url.path=/users/7 url.query=sig=REDACTED&a=1 \
             url.scheme=http server.address=api.example server.port=8080 \
             network.protocol.version=2 user_agent.original=curl/8 http.response.status_code=404\n"
        );
    }

    #[test]
    fn unsampled_records_nothing_but_injects_minus_00() {
        let cap = tracewire_test::capture();
        let config = ServerConfig::new()
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOff))
            .inject_response_headers(true);
        let (uri, h) = head_parts();
        let head = get_head(&uri, &h, Version::HTTP_11);
        let mut span = config.start(&head, Some("/users/{id}")).unwrap();
        assert!(!span.is_sampled());
        let mut out = HeaderMap::new();
        span.record_response(StatusCode::OK, &mut out);
        drop(span);
        // Sampled bit clear (the W3C Level 2 random bit may be set: `-02`).
        let tp = out["traceparent"].to_str().unwrap();
        let flags = u8::from_str_radix(&tp[tp.len() - 2..], 16).unwrap();
        assert_eq!(flags & 1, 0, "{tp}");
        assert!(cap.finish().is_empty());
    }

    #[test]
    fn start_with_reads_the_head_only_when_needed_and_once() {
        let cap = tracewire_test::capture();
        let (uri, h) = head_parts();
        let calls = Cell::new(0);
        let head = || {
            calls.set(calls.get() + 1);
            let head = get_head(&uri, &h, Version::HTTP_11);
            (head, Some("/users/{id}"))
        };
        let off = ServerConfig::new().tracer(Tracer::new().with_sampler(Sampler::AlwaysOff));
        assert!(!off.start_with(&h, head).unwrap().is_sampled());
        assert_eq!(calls.get(), 0, "unsampled, nothing excluded: never read");
        let off = off.exclude(|h| h.uri.path() == "/nowhere");
        drop(off.start_with(&h, head));
        assert_eq!(calls.get(), 1, "read for the predicate");
        let on = ServerConfig::new()
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
            .exclude(|h| h.uri.path() == "/nowhere");
        calls.set(0);
        let mut span = on.start_with(&h, head).unwrap();
        assert_eq!(
            calls.get(),
            1,
            "predicate, name and attributes share one read"
        );
        span.record_response(StatusCode::OK, &mut HeaderMap::new());
        span.end();
        assert_eq!(
            cap.finish().tree(&["http.route", "url.path"]),
            "GET /users/{id} [server] http.route=/users/{id} url.path=/users/7\n"
        );
    }

    #[test]
    fn scope_attaches_the_context_marks_the_thread_and_restores_both() {
        let config = ServerConfig::new().tracer(Tracer::new().with_sampler(Sampler::AlwaysOff));
        let (uri, h) = head_parts();
        let head = get_head(&uri, &h, Version::HTTP_11);
        let mut span = config.start(&head, None).unwrap();
        let id = span.context().trace_id;
        assert!(!ServerSpan::active());
        let seen = span.scope(|| (ServerSpan::active(), TraceContext::current()));
        assert!(seen.0);
        assert_eq!(seen.1.map(|c| c.trace_id), Some(id));
        assert_eq!(span.context().trace_id, id, "given back");
        assert!(!ServerSpan::active() && TraceContext::current().is_none());
        assert!(ServerSpan::mark_active(ServerSpan::active));
        assert!(
            TraceContext::current().is_none(),
            "marking attaches nothing"
        );
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            span.scope(|| panic!("handler bug"))
        }));
        assert!(caught.is_err());
        assert!(!ServerSpan::active() && TraceContext::current().is_none());
    }

    #[test]
    fn a_static_route_is_its_own_path() {
        let cap = tracewire_test::capture();
        let config = ServerConfig::new().tracer(Tracer::new().with_sampler(Sampler::AlwaysOn));
        let uri: Uri = "/health".parse().unwrap();
        let h = HeaderMap::new();
        let head = get_head(&uri, &h, Version::HTTP_11);
        config.start(&head, Some("/health")).unwrap().end();
        config.start(&head, Some("/{page}")).unwrap().end();
        assert_eq!(
            cap.finish().tree(&["http.route", "url.path"]),
            "GET /health [server] http.route=/health url.path=/health\n\
             GET /{page} [server] http.route=/{page} url.path=/health\n"
        );
    }
}
