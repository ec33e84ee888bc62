use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use tracewire_http::ServerSpan;

use super::body::{Generic, ResponseBody};

pin_project_lite::pin_project! {
    /// The response future of [`Trace`](super::Trace): polls the inner future in the server
    /// span's [scope](ServerSpan::scope) (fastrace local parent, context attached), then
    /// records the response and moves the span into the body.
    pub struct ResponseFuture<F, K = Generic> {
        #[pin]
        inner: F,
        // `None`: not traced here (excluded, or traced by an outer layer), or completed.
        span: Option<ServerSpan>,
        kind: PhantomData<fn() -> K>,
    }
}

impl<F: Future, K> ResponseFuture<F, K> {
    pub(crate) fn new(inner: F, span: Option<ServerSpan>) -> Self {
        ResponseFuture {
            inner,
            span,
            kind: PhantomData,
        }
    }
}

impl<F, B, E, K> Future for ResponseFuture<F, K>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    K: ResponseBody<B>,
{
    type Output = Result<Response<K::Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let Some(span) = this.span.as_mut() else {
            let res = ready!(inner.poll(cx));
            return Poll::Ready(res.map(|r| r.map(K::untraced)));
        };
        let res = ready!(span.scope(|| inner.poll(cx)));
        Poll::Ready(match res {
            Ok(mut response) => {
                let status = response.status();
                span.record_response(status, response.headers_mut());
                if span.is_sampled()
                    && let Some(span) = this.span.take()
                {
                    return Poll::Ready(Ok(response.map(|b| K::traced(b, span))));
                }
                // Nothing is recorded for an unsampled request: the span need not travel with
                // the body. It ends here, dropped where it is (ending a span that records
                // nothing is dropping it; moving it out to `end` it would copy it twice).
                *this.span = None;
                Ok(response.map(K::untraced))
            }
            Err(e) => {
                span.record_error(std::any::type_name::<E>(), &e.to_string());
                if let Some(span) = this.span.take() {
                    span.end();
                }
                Err(e)
            }
        })
    }
}
