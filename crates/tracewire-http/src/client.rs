//! The client side: one CLIENT span per outgoing request, and the headers that carry it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use fastrace::Span;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use tracewire_core::span::Attribute;
use tracewire_core::{PendingSpan, SpanKind, TraceContext, Tracer, semconv};

use crate::attributes::record_status;
use crate::carrier::HeaderInjector;
use crate::format::static_or_owned;
use crate::headers::{HeaderCapture, protocol_version};
use crate::method::{KnownMethods, Normalized};
use crate::naming::server_span_name;
use crate::redact::redact_url;

#[derive(Clone, Debug)]
struct Inner {
    tracer: Tracer,
    known_methods: KnownMethods,
    request_headers: HeaderCapture,
    response_headers: HeaderCapture,
}

/// Options of an HTTP client integration (reqwest, tower clients). Cheap to clone.
///
/// ```
/// use http::{HeaderMap, Method, StatusCode};
/// use tracewire_core::{SpanContext, TraceContext, TraceId, SpanId};
/// use tracewire_http::ClientConfig;
///
/// let config = ClientConfig::new();
/// let _cx = TraceContext::new(TraceId(1), SpanId(2), false).attach();
/// let mut headers = HeaderMap::new();
/// let mut span = config.start(&Method::GET, "http://example.com/users/7", Some("example.com"), Some(80), None, None, &mut headers);
/// // Not sampled: no span is recorded, but the context is propagated with `-00`.
/// assert!(headers["traceparent"].to_str().unwrap().ends_with("-00"));
/// span.record_response(StatusCode::OK, &HeaderMap::new());
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    inner: Arc<Inner>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig::new()
    }
}

impl ClientConfig {
    /// [`Tracer::global`], known methods from `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`, no
    /// header capture.
    pub fn new() -> Self {
        ClientConfig {
            inner: Arc::new(Inner {
                tracer: Tracer::global(),
                known_methods: KnownMethods::from_env(),
                request_headers: HeaderCapture::default(),
                response_headers: HeaderCapture::default(),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Uses this tracer (its propagators write the outgoing headers).
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.inner_mut().tracer = tracer;
        self
    }

    /// The methods recorded as themselves (others are `_OTHER`).
    pub fn known_methods(mut self, known: KnownMethods) -> Self {
        self.inner_mut().known_methods = known;
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

    /// The tracer.
    pub fn get_tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    /// Starts the CLIENT span of one attempt under the current context
    /// ([`Tracer::start_child`]) and writes its context into `headers` with the configured
    /// propagators. `url` is the full URL (redacted before it is recorded), `template` the
    /// caller's low-cardinality URL template if any, `resend_count` the attempt number after
    /// the first (recorded when > 0).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        method: &Method,
        url: &str,
        server_address: Option<&str>,
        server_port: Option<u16>,
        template: Option<&str>,
        resend_count: Option<u32>,
        headers: &mut HeaderMap,
    ) -> ClientSpan {
        let inner = &*self.inner;
        let normalized = inner.known_methods.normalize(method);
        // The name is built only for a span that records.
        let child = inner
            .tracer
            .start_child_lazy(|| client_span_name(normalized, template), SpanKind::Client);
        let sampled = child.context.as_ref().is_some_and(TraceContext::is_sampled);
        // Read before the trace headers are injected.
        let properties = if sampled {
            request_properties(
                inner,
                normalized,
                url,
                server_address,
                server_port,
                template,
                resend_count,
                headers,
            )
        } else {
            Vec::new()
        };
        if let Some(cx) = &child.context {
            inner.tracer.inject(cx, &mut HeaderInjector(headers));
        }
        let span = PendingSpan::with_attributes(child.span, properties);
        // Only a recorded span captures response headers: an unsampled one keeps no
        // configuration (no reference count taken and released per call).
        let config =
            (span.is_recording() && !inner.response_headers.is_empty()).then(|| self.clone());
        ClientSpan {
            span,
            context: child.context,
            config,
        }
    }
}

/// The request attributes of a sampled attempt, in a list with room for the response's (the
/// status and error attributes, captured response headers): it goes to fastrace once, when
/// the span ends.
#[allow(clippy::too_many_arguments)]
fn request_properties(
    inner: &Inner,
    method: Normalized<'_>,
    url: &str,
    server_address: Option<&str>,
    server_port: Option<u16>,
    template: Option<&str>,
    resend_count: Option<u32>,
    headers: &HeaderMap,
) -> Vec<Attribute> {
    // 7 request attributes at most, 3 for the response or the error. (10 entries are 480
    // bytes: one small, thread-cached allocation.)
    let mut p: Vec<Attribute> =
        Vec::with_capacity(10 + inner.request_headers.len() + inner.response_headers.len());
    let mut put = |k: &'static str, v: Cow<'static, str>| p.push((Cow::Borrowed(k), v));
    put(semconv::HTTP_REQUEST_METHOD, static_or_owned(method.method));
    if let Some(orig) = method.original {
        put(
            semconv::HTTP_REQUEST_METHOD_ORIGINAL,
            Cow::Owned(orig.to_owned()),
        );
    }
    put(semconv::URL_FULL, Cow::Owned(redact_url(url).into_owned()));
    if let Some(t) = template {
        put(semconv::URL_TEMPLATE, Cow::Owned(t.to_owned()));
    }
    if let Some(a) = server_address {
        put(semconv::SERVER_ADDRESS, Cow::Owned(a.to_owned()));
    }
    if let Some(port) = server_port {
        put(semconv::SERVER_PORT, Cow::Owned(port.to_string()));
    }
    if let Some(n) = resend_count.filter(|n| *n > 0) {
        put(
            semconv::HTTP_REQUEST_RESEND_COUNT,
            Cow::Owned(n.to_string()),
        );
    }
    p.extend(inner.request_headers.properties(headers));
    p
}

/// The semconv span name of a client span: `{method}`, or `{method} {url.template}` when the
/// caller gives a template; `HTTP` in place of `_OTHER`.
///
/// ```
/// use http::Method;
/// use tracewire_http::{KnownMethods, client_span_name};
/// let k = KnownMethods::default();
/// assert_eq!(client_span_name(k.normalize(&Method::GET), None), "GET");
/// assert_eq!(client_span_name(k.normalize(&Method::GET), Some("/users/{id}")), "GET /users/{id}");
/// ```
pub fn client_span_name(method: Normalized<'_>, template: Option<&str>) -> Cow<'static, str> {
    server_span_name(method, template)
}

/// The span of one outgoing request attempt; it ends when dropped (record the response or
/// the error first). Its attributes reach fastrace in one piece when it ends (a
/// [`PendingSpan`]).
pub struct ClientSpan {
    span: PendingSpan,
    context: Option<TraceContext>,
    /// Kept for the response headers to capture, when the span records and captures some.
    config: Option<ClientConfig>,
}

impl fmt::Debug for ClientSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSpan")
            .field("context", &self.context)
            .field("recording", &self.span.is_recording())
            .finish()
    }
}

impl ClientSpan {
    /// The propagated context (`None` when there was no current trace).
    pub fn context(&self) -> Option<&TraceContext> {
        self.context.as_ref()
    }

    /// The fastrace span. The attributes recorded by [`ClientSpan`] reach it when it ends.
    pub fn span(&self) -> &Span {
        self.span.span()
    }

    /// Records the response head: `http.response.status_code`; 4xx and 5xx are errors on a
    /// client (status `ERROR`, `error.type` = the code); captured response headers.
    #[inline]
    pub fn record_response(&mut self, status: StatusCode, headers: &HeaderMap) {
        // Inlined up to here: an unsampled span records nothing.
        if self.span.is_recording() {
            self.record_response_head(status, headers);
        }
    }

    /// [`record_response`](ClientSpan::record_response) on a recorded span.
    fn record_response_head(&mut self, status: StatusCode, headers: &HeaderMap) {
        let error = status.is_client_error() || status.is_server_error();
        record_status(&mut self.span, status, error);
        if let Some(config) = &self.config {
            let capture = &config.inner.response_headers;
            self.span.extend(|| capture.properties(headers));
        }
    }

    /// Records the response's protocol version (`network.protocol.version`: `1.1`, `2`).
    #[inline]
    pub fn record_protocol_version(&mut self, version: http::Version) {
        if self.span.is_recording() {
            self.span
                .set(semconv::NETWORK_PROTOCOL_VERSION, protocol_version(version));
        }
    }

    /// Records a failed attempt (connection refused, timeout...): status `ERROR` with
    /// `description`, and `error.type` (a low-cardinality identifier, e.g. `connect`,
    /// `timeout`, or an error type name).
    #[inline]
    pub fn record_error(&mut self, error_type: &str, description: &str) {
        if self.span.is_recording() {
            self.span
                .record_error(error_type.to_owned(), description.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fastrace::collector::{SpanId, SpanRecord, TraceId};

    /// Every attribute of a span, as `key=value` sorted.
    fn all_properties(record: &SpanRecord) -> String {
        let mut all: Vec<String> = record
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        all.sort();
        all.join(" ")
    }

    fn config() -> ClientConfig {
        ClientConfig::new()
            .capture_request_headers([HeaderName::from_static("x-req")])
            .capture_response_headers([HeaderName::from_static("x-res")])
    }

    /// Starts an attempt under a context with sampled `sampled`.
    fn start(config: &ClientConfig, sampled: bool, headers: &mut HeaderMap) -> ClientSpan {
        let _cx = TraceContext::new(TraceId(0x4bf9), SpanId(0x00f0), sampled).attach();
        let purge = Method::from_bytes(b"PURGE").unwrap();
        config.start(
            &purge,
            "http://user:pw@api.example:8080/users/7?sig=s3cret",
            Some("api.example"),
            Some(8080),
            Some("/users/{id}"),
            Some(2),
            headers,
        )
    }

    /// The request attributes given at the start and the response's recorded later all reach
    /// the span, each exactly once, when it ends.
    #[test]
    fn every_attribute_arrives_once() {
        let cap = tracewire_test::capture();
        let mut headers = HeaderMap::new();
        headers.insert("x-req", "a".parse().unwrap());
        let mut span = start(&config(), true, &mut headers);
        assert!(headers.contains_key("traceparent"));
        let mut response = HeaderMap::new();
        response.insert("x-res", "b".parse().unwrap());
        span.record_response(StatusCode::SERVICE_UNAVAILABLE, &response);
        drop(span);
        let spans = cap.take();
        assert_eq!(spans.len(), 1, "{}", spans.tree(&[]));
        const REQUEST: &str = "http.request.header.x-req=[\"a\"] http.request.method=_OTHER \
             http.request.method_original=PURGE http.request.resend_count=2";
        const TARGET: &str = "server.address=api.example server.port=8080 span.kind=client \
             tracewire.trace_flags=01 url.full=http://REDACTED:REDACTED@api.example:8080/users/7?sig=REDACTED \
             url.template=/users/{id}";
        assert_eq!(
            all_properties(&spans.records[0]),
            format!(
                "error.type=503 {REQUEST} http.response.header.x-res=[\"b\"] \
                 http.response.status_code=503 otel.status_code=ERROR {TARGET}"
            )
        );

        // A failed attempt: the error instead of a response.
        let mut span = start(&config(), true, &mut HeaderMap::new());
        span.record_error("connect", "connection refused");
        drop(span);
        let spans = cap.take();
        assert_eq!(
            all_properties(&spans.records[0]),
            format!(
                "error.type=connect http.request.method=_OTHER \
                 http.request.method_original=PURGE http.request.resend_count=2 \
                 otel.status_code=ERROR otel.status_description=connection refused {TARGET}"
            )
        );

        // Dropped with nothing recorded: the request attributes still arrive.
        drop(start(&config(), true, &mut headers));
        let spans = cap.take();
        assert_eq!(
            all_properties(&spans.records[0]),
            format!("{REQUEST} {TARGET}")
        );

        // Not sampled: nothing is recorded, the context is propagated.
        let mut headers = HeaderMap::new();
        let mut span = start(&config(), false, &mut headers);
        span.record_response(StatusCode::OK, &response);
        drop(span);
        assert!(headers["traceparent"].to_str().unwrap().ends_with("-00"));
        assert!(cap.finish().is_empty());
    }
}
