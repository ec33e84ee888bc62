#![doc = include_str!("../README.md")]

use std::borrow::Cow;

use tracewire_http::{ClientConfig, ClientSpan};

pub use tracewire_http::ClientConfig as Config;

/// Put a `UrlTemplate` in the request's extensions (reqwest-middleware:
/// `.with_extension(UrlTemplate("/users/{id}".into()))`) to name the span
/// `{method} {template}` and record `url.template`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate(pub Cow<'static, str>);

/// The attempt counter kept in the request's extensions across retries: the first attempt
/// is 0, each retry adds one (recorded as `http.request.resend_count` when > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ResendCount(u32);

/// Client tracing for reqwest: one CLIENT span per attempt, the trace headers written from
/// it with the configured propagators.
///
/// - With reqwest-middleware (feature `middleware`, default): add it with
///   `ClientBuilder::with`, *after* a retry middleware so each attempt gets its span and
///   `http.request.resend_count`.
/// - Without: [`Tracing::execute`] sends one request through a plain `reqwest::Client`.
#[derive(Clone, Debug, Default)]
pub struct Tracing {
    config: ClientConfig,
}

impl From<ClientConfig> for Tracing {
    fn from(config: ClientConfig) -> Self {
        Tracing { config }
    }
}

impl Tracing {
    /// [`Tracer::global`](tracewire_core::Tracer::global) and the defaults of
    /// [`ClientConfig::new`].
    pub fn new() -> Self {
        Tracing {
            config: ClientConfig::new(),
        }
    }

    /// Records what `config` ([`Config`]) says: the tracer, whose propagators write the
    /// outgoing headers; known methods; header capture.
    pub fn with_config(config: ClientConfig) -> Self {
        Tracing { config }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn start(
        &self,
        req: &mut reqwest::Request,
        template: Option<&str>,
        resend: Option<u32>,
    ) -> ClientSpan {
        // The headers are taken out while the trace headers are written, so the URL and the
        // method are read in place rather than copied (an empty `HeaderMap` allocates nothing).
        let mut headers = std::mem::take(req.headers_mut());
        let url = req.url();
        let span = self.config.start(
            req.method(),
            url.as_str(),
            url.host_str(),
            url.port_or_known_default(),
            template,
            resend,
            &mut headers,
        );
        *req.headers_mut() = headers;
        span
    }

    /// Sends `req` with `client` in a CLIENT span (the plain helper, without
    /// reqwest-middleware).
    pub async fn execute(
        &self,
        client: &reqwest::Client,
        mut req: reqwest::Request,
    ) -> reqwest::Result<reqwest::Response> {
        let mut span = self.start(&mut req, None, None);
        let res = client.execute(req).await;
        finish(&mut span, &res);
        res
    }
}

fn finish(span: &mut ClientSpan, res: &reqwest::Result<reqwest::Response>) {
    match res {
        Ok(r) => {
            span.record_response(r.status(), r.headers());
            span.record_protocol_version(r.version());
        }
        Err(e) => span.record_error(error_type(e), &e.to_string()),
    }
}

/// A low-cardinality `error.type` for a reqwest error.
fn error_type(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_request() {
        "request"
    } else {
        "reqwest::Error"
    }
}

#[cfg(feature = "middleware")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Tracing {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let resend = extensions.get::<ResendCount>().map_or(0, |c| c.0 + 1);
        extensions.insert(ResendCount(resend));
        // Read in place (not cloned): the span's name and attributes are made before the
        // extensions go on to the next middleware.
        let template = extensions.get::<UrlTemplate>().map(|t| t.0.as_ref());
        let mut span = self.start(&mut req, template, Some(resend));
        let res = next.run(req, extensions).await;
        match &res {
            Ok(r) => {
                span.record_response(r.status(), r.headers());
                span.record_protocol_version(r.version());
            }
            Err(reqwest_middleware::Error::Reqwest(e)) => {
                span.record_error(error_type(e), &e.to_string())
            }
            Err(e) => span.record_error("reqwest_middleware::Error", &e.to_string()),
        }
        res
    }
}
