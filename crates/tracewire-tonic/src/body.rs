//! [`ResponseBody`]: the response body of a traced call, which ends the call's span when the
//! stream ends, reading the status from the trailers.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use crate::record::CallState;
use crate::status;

pin_project_lite::pin_project! {
    /// The response body of a call traced by [`GrpcServerLayer`](crate::GrpcServerLayer) or
    /// [`GrpcClientLayer`](crate::GrpcClientLayer).
    ///
    /// It passes every frame through unchanged and ends the call's span when the stream ends:
    /// with the `grpc-status` of the trailers, or as UNKNOWN when the stream ends without one,
    /// or as a failure when the body errors. Dropped before its end, it records the call as
    /// CANCELLED (DEADLINE_EXCEEDED if the call's deadline had passed). On the server the
    /// handler's response stream is polled with the call's span as fastrace's local parent
    /// and its trace context attached.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        state: Option<CallState>,
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("traced", &self.state.is_some())
            .finish()
    }
}

impl<B> ResponseBody<B> {
    /// A body that is not traced (an excluded service, or a status already known).
    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody { inner, state: None }
    }

    /// Gets a reference to the inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

/// Wraps the response of a traced call: a status in the headers (a trailers-only response) or
/// a non-200 HTTP status ends the span now; otherwise the body carries the span to its end.
pub(crate) fn wrap_response<B: Body>(
    response: http::Response<B>,
    state: Option<CallState>,
) -> http::Response<ResponseBody<B>> {
    let Some(mut state) = state else {
        return response.map(ResponseBody::passthrough);
    };
    if !state.span.is_recording() {
        // Unsampled: no status to read, only the context to carry; the body carries it for as
        // long as it would carry a recorded span.
        let ends_now = response.headers().contains_key(status::GRPC_STATUS)
            || response.status() != http::StatusCode::OK
            || response.body().is_end_stream();
        return if ends_now {
            response.map(ResponseBody::passthrough)
        } else {
            response.map(|inner| ResponseBody {
                inner,
                state: Some(state),
            })
        };
    }
    if let Some(status) = status::from_headers(response.headers()) {
        state.span.finish(status);
    } else if response.status() != http::StatusCode::OK {
        state
            .span
            .finish(status::from_http_status(response.status()));
    } else if response.body().is_end_stream() {
        state.span.finish_without_status();
    }
    if state.span.is_finished() {
        return response.map(ResponseBody::passthrough);
    }
    response.map(|inner| ResponseBody {
        inner,
        state: Some(state),
    })
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: fmt::Display + 'static,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(state) = this.state.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        let polled = state.scope(|| this.inner.as_mut().poll_frame(cx));
        if !state.span.is_recording() {
            // Unsampled: nothing to record; the context is let go where a recorded span would
            // end (the end of the stream, the trailers, an error), without reading a status.
            let ended = match &polled {
                Poll::Pending => false,
                Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || this.inner.is_end_stream(),
                Poll::Ready(None | Some(Err(_))) => true,
            };
            if ended {
                *this.state = None;
            }
            return polled;
        }
        match &polled {
            Poll::Pending => return polled,
            Poll::Ready(None) => state.span.finish_without_status(),
            Poll::Ready(Some(Ok(frame))) => match frame.trailers_ref() {
                Some(trailers) => match status::from_headers(trailers) {
                    Some(status) => state.span.finish(status),
                    None => state.span.finish_without_status(),
                },
                None if this.inner.is_end_stream() => state.span.finish_without_status(),
                None => {}
            },
            Poll::Ready(Some(Err(e))) => match (e as &dyn std::any::Any).downcast_ref() {
                // tonic's own bodies fail with the status the caller will see.
                Some(s) => state.span.finish(status::from_tonic(s)),
                None => state
                    .span
                    .fail(std::any::type_name::<B::Error>(), || e.to_string()),
            },
        }
        if state.span.is_finished() {
            *this.state = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
