use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;

use crate::body::{self, ResponseBody};
use crate::record::CallState;

pin_project_lite::pin_project! {
    /// The response future of [`GrpcServerService`](super::GrpcServerService): runs the
    /// handler inside the call's span and context, then hands the span to the
    /// [`ResponseBody`] (or ends it, for a trailers-only response).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<CallState>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, state: Option<CallState>) -> Self {
        ResponseFuture { inner, state }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("traced", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let output = match this.state.as_mut() {
            Some(state) => ready!(state.scope(|| this.inner.as_mut().poll(cx))),
            None => ready!(this.inner.poll(cx)),
        };
        let mut state = this.state.take();
        Poll::Ready(match output {
            Ok(response) => Ok(body::wrap_response(response, state)),
            Err(e) => {
                if let Some(state) = state.as_mut() {
                    state.span.fail(std::any::type_name::<E>(), || {
                        "the service failed before responding".to_owned()
                    });
                }
                Err(e)
            }
        })
    }
}
