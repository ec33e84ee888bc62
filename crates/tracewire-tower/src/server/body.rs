//! What a traced response's body is: [`TracedBody`] around any body ([`Generic`]), or axum's
//! own body type ([`Axum`]).

use tracewire_http::{ServerSpan, TracedBody};

/// How [`Trace`](super::Trace) turns the inner service's response body `B` into its own:
/// [`Generic`] (the default) or [`Axum`]. Sealed: the two are all there is.
pub trait ResponseBody<B>: sealed::Sealed {
    /// The response body type of the traced service.
    type Body;

    /// The body of a sampled request, carrying its span: the span ends when the body has
    /// been sent.
    fn traced(body: B, span: ServerSpan) -> Self::Body;

    /// The body of a request without a span to carry (not sampled, excluded, or traced by an
    /// outer layer).
    fn untraced(body: B) -> Self::Body;
}

pub(super) mod sealed {
    pub trait Sealed {
        /// Whether the inner service's `call` runs in the span's scope (fastrace parent and
        /// context). An axum route's `call` does no request work (its future does it all), so
        /// the `Axum` kind only marks the request as traced there, which saves entering and
        /// leaving the span once per request.
        const SCOPED_CALL: bool;
    }

    impl Sealed for super::Generic {
        const SCOPED_CALL: bool = true;
    }

    #[cfg(feature = "axum")]
    impl Sealed for super::Axum {
        const SCOPED_CALL: bool = false;
    }
}

/// Responses carry [`TracedBody<B>`](TracedBody) around the inner service's body type `B`:
/// for hyper and any tower HTTP service (the default of [`TraceLayer`](super::TraceLayer)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Generic;

impl<B: http_body::Body> ResponseBody<B> for Generic {
    type Body = TracedBody<B>;

    fn traced(body: B, span: ServerSpan) -> TracedBody<B> {
        span.wrap_body(body)
    }

    fn untraced(body: B) -> TracedBody<B> {
        TracedBody::untraced(body)
    }
}

/// Responses carry [`axum::body::Body`], the body type axum's router works with, so axum
/// does not box the layer's body again: an unsampled response passes through untouched (no
/// allocation), a sampled one is boxed once, with its span. Made by
/// [`TraceLayer::axum`](super::TraceLayer::axum).
///
/// The inner service's `call` runs outside the span (the request is only marked as traced,
/// for stacked layers): axum's routes do no request work there, their future does, and the
/// future is polled inside the span. A service of your own whose `call` starts spans or reads
/// the current context directly should go behind [`Generic`].
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Axum;

#[cfg(feature = "axum")]
impl<B> ResponseBody<B> for Axum
where
    B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Body = axum::body::Body;

    fn traced(body: B, span: ServerSpan) -> axum::body::Body {
        axum::body::Body::new(span.wrap_body(body))
    }

    fn untraced(body: B) -> axum::body::Body {
        // Free when `B` already is axum's `Body` (a downcast, not a box).
        axum::body::Body::new(body)
    }
}
