//! The client side: one CLIENT span per outgoing request, and the headers that carry it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use fastrace::Span;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use tracewire_core::{SpanKind, TraceContext, Tracer, semconv};

use crate::HeaderInjector;
use crate::headers::HeaderCapture;
use crate::method::{KnownMethods, Normalized};
use crate::redact::redact_url;
use crate::server::static_or_owned;

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
/// let span = config.start(&Method::GET, "http://example.com/users/7", Some("example.com"), Some(80), None, None, &mut headers);
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
        let child = inner
            .tracer
            .start_child(client_span_name(normalized, template), SpanKind::Client);
        let sampled = child.context.as_ref().is_some_and(TraceContext::is_sampled);
        let span = if sampled {
            child.span.with_properties(|| {
                let mut p: Vec<(Cow<'static, str>, Cow<'static, str>)> = Vec::with_capacity(8);
                let mut put = |k: &'static str, v: Cow<'static, str>| p.push((Cow::Borrowed(k), v));
                put(
                    semconv::HTTP_REQUEST_METHOD,
                    static_or_owned(normalized.method),
                );
                if let Some(orig) = normalized.original {
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
            })
        } else {
            child.span
        };
        if let Some(cx) = &child.context {
            inner.tracer.inject(cx, &mut HeaderInjector(headers));
        }
        ClientSpan {
            span,
            context: child.context,
            sampled,
            config: self.clone(),
        }
    }
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
    crate::server::server_span_name(method, template)
}

/// The span of one outgoing request attempt; it ends when dropped (record the response or
/// the error first).
pub struct ClientSpan {
    span: Span,
    context: Option<TraceContext>,
    sampled: bool,
    config: ClientConfig,
}

impl fmt::Debug for ClientSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSpan")
            .field("context", &self.context)
            .field("sampled", &self.sampled)
            .finish()
    }
}

impl ClientSpan {
    /// The propagated context (`None` when there was no current trace).
    pub fn context(&self) -> Option<&TraceContext> {
        self.context.as_ref()
    }

    /// The fastrace span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Records the response head: `http.response.status_code`; 4xx and 5xx are errors on a
    /// client (status `ERROR`, `error.type` = the code); captured response headers.
    pub fn record_response(&self, status: StatusCode, headers: &HeaderMap) {
        if !self.sampled {
            return;
        }
        let code = crate::server::status_str(status);
        if status.is_client_error() || status.is_server_error() {
            let c = code.clone();
            self.span.add_properties(|| {
                [
                    (semconv::HTTP_RESPONSE_STATUS_CODE, code),
                    (
                        semconv::OTEL_STATUS_CODE,
                        Cow::Borrowed(semconv::STATUS_ERROR),
                    ),
                    (semconv::ERROR_TYPE, c),
                ]
            });
        } else {
            self.span
                .add_property(|| (semconv::HTTP_RESPONSE_STATUS_CODE, code));
        }
        let capture = &self.config.inner.response_headers;
        if !capture.is_empty() {
            self.span.add_properties(|| capture.properties(headers));
        }
    }

    /// Records a failed attempt (connection refused, timeout...): status `ERROR` with
    /// `description`, and `error.type` (a low-cardinality identifier, e.g. `connect`,
    /// `timeout`, or an error type name).
    pub fn record_error(&self, error_type: &str, description: &str) {
        if !self.sampled {
            return;
        }
        let (t, d) = (error_type.to_owned(), description.to_owned());
        self.span.add_properties(|| {
            [
                (semconv::OTEL_STATUS_CODE, semconv::STATUS_ERROR.to_owned()),
                (semconv::OTEL_STATUS_DESCRIPTION, d),
                (semconv::ERROR_TYPE, t),
            ]
        });
    }
}
