use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;

use crate::body::{self, ResponseBody};
use crate::record::CallState;
use crate::status::{self, WireStatus};

pin_project_lite::pin_project! {
    /// The response future of [`GrpcClientService`](super::GrpcClientService): hands the
    /// call's span to the [`ResponseBody`] (or ends it, for a trailers-only response or a
    /// transport failure).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<CallState>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, state: CallState) -> Self {
        ResponseFuture {
            inner,
            state: Some(state),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = ready!(this.inner.poll(cx));
        let mut state = this.state.take();
        Poll::Ready(match output {
            Ok(response) => Ok(body::wrap_response(response, state)),
            Err(e) => {
                if let Some(state) = state.as_mut() {
                    if state.span.deadline_passed() {
                        // The channel enforced the call's deadline (tonic reports its own
                        // timeout as CANCELLED; gRPC calls it DEADLINE_EXCEEDED).
                        state.span.finish(WireStatus {
                            code: status::DEADLINE_EXCEEDED,
                            message: Some(e.to_string()),
                        });
                    } else {
                        state
                            .span
                            .fail(std::any::type_name::<E>(), || e.to_string());
                    }
                }
                Err(e)
            }
        })
    }
}
