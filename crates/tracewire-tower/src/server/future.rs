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
        let Some(span) = this.span else {
            let res = ready!(inner.poll(cx));
            return Poll::Ready(res.map(|r| r.map(K::untraced)));
        };
        let res = ready!(span.scope(|| inner.poll(cx)));
        let Some(mut span) = this.span.take() else {
            return Poll::Ready(res.map(|r| r.map(K::untraced)));
        };
        Poll::Ready(match res {
            Ok(mut response) => {
                let status = response.status();
                span.record_response(status, response.headers_mut());
                if span.is_sampled() {
                    Ok(response.map(|b| K::traced(b, span)))
                } else {
                    // Nothing is recorded for an unsampled request: the span need not travel
                    // with the body.
                    span.end();
                    Ok(response.map(K::untraced))
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
