use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use tracewire_core::TraceContext;
use tracewire_core::context::{FutureExt as _, WithContext};
use tracewire_http::{ServerSpan, TracedBody};

pin_project_lite::pin_project! {
    /// The response future of [`Trace`](super::Trace): runs the inner future with the server
    /// span as fastrace's local parent and its context attached, then records the response
    /// and moves the span into the body.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Traced {
            #[pin]
            inner: WithContext<F>,
            span: Option<ServerSpan>,
        },
        Untraced {
            #[pin]
            inner: F,
        },
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn traced(inner: F, cx: TraceContext, span: ServerSpan) -> Self {
        ResponseFuture {
            kind: Kind::Traced {
                inner: inner.with_trace_context(cx),
                span: Some(span),
            },
        }
    }

    pub(crate) fn untraced(inner: F) -> Self {
        ResponseFuture {
            kind: Kind::Untraced { inner },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: fmt::Display,
{
    type Output = Result<Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Untraced { inner } => {
                let res = ready!(inner.poll(cx));
                Poll::Ready(res.map(|r| r.map(TracedBody::untraced)))
            }
            KindProj::Traced { inner, span } => {
                let res = {
                    let _parent = span.as_ref().map(|s| s.span().set_local_parent());
                    ready!(inner.poll(cx))
                };
                let Some(mut span) = span.take() else {
                    // Polled after completion: a caller bug; never panic on the request path.
                    return Poll::Ready(res.map(|r| r.map(TracedBody::untraced)));
                };
                Poll::Ready(match res {
                    Ok(mut response) => {
                        let status = response.status();
                        span.record_response(status, response.headers_mut());
                        if span.is_sampled() {
                            Ok(response.map(|b| span.wrap_body(b)))
                        } else {
                            // Nothing is recorded for an unsampled request: the span (a
                            // no-op) need not travel with the body.
                            span.end();
                            Ok(response.map(TracedBody::untraced))
                        }
                    }
                    Err(e) => {
                        span.record_error(std::any::type_name::<E>(), &e.to_string());
                        span.end();
                        Err(e)
                    }
                })
            }
        }
    }
}
