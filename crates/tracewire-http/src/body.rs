//! A response body that ends the server span when it has been fully sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

use crate::server::ServerSpan;

pin_project_lite::pin_project! {
    /// A response body carrying the server span: the span ends when the last frame has been
    /// produced (`is_end_stream`), or, when the body is dropped before that, is recorded as
    /// aborted (`error.type` = [`ABORTED`](crate::ABORTED)). A body error is recorded with
    /// `error.type` = the error's type name. Frames pass through untouched; counting data
    /// bytes for `http.response.body.size` is one addition per frame.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        span: Option<ServerSpan>,
        end_on_drop: bool,
    }

    impl<B> PinnedDrop for TracedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut span) = this.span.take() {
                if *this.end_on_drop {
                    span.complete();
                }
                // Otherwise `ServerSpan`'s own drop records the abort.
            }
        }
    }
}

impl ServerSpan {
    /// Moves the span into the response body: it ends when the body has been fully sent, or
    /// records an abort if the body is dropped before (see [`TracedBody`]).
    pub fn wrap_body<B: Body>(self, body: B) -> TracedBody<B> {
        TracedBody::new(body, self)
    }
}

impl<B: Body> TracedBody<B> {
    fn new(inner: B, span: ServerSpan) -> Self {
        // An empty body may never be polled (the server sees `is_end_stream` and drops it
        // after writing the head): that is a complete response.
        let end_on_drop = inner.is_end_stream() || span.bodiless;
        TracedBody {
            inner,
            span: Some(span),
            end_on_drop,
        }
    }

    /// A body with no span (an excluded request, or one already traced by an outer layer), so
    /// traced and untraced responses have one type.
    pub fn untraced(inner: B) -> Self {
        TracedBody {
            inner,
            span: None,
            end_on_drop: false,
        }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for TracedBody<B>
where
    B: Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let out = this.inner.as_mut().poll_frame(cx);
        match &out {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(span), Some(data)) = (this.span.as_mut(), frame.data_ref()) {
                    span.add_body_bytes(data.remaining());
                }
                if this.inner.is_end_stream() {
                    if let Some(mut span) = this.span.take() {
                        span.complete();
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut span) = this.span.take() {
                    span.record_error(
                        short_type_name::<B::Error>(),
                        "the response body failed while being sent",
                    );
                    span.complete();
                }
            }
            Poll::Ready(None) => {
                if let Some(mut span) = this.span.take() {
                    span.complete();
                }
            }
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `error.type` of an error type: its full type name (`hyper::error::Error`), which is
/// low-cardinality and, unlike the last segment alone, unambiguous.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    std::any::type_name::<T>()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{RequestHead, ServerConfig};
    use http::{HeaderMap, Method, StatusCode, Uri, Version};
    use http_body_util::{BodyExt, Full, StreamBody};
    use tracewire_core::{Sampler, Tracer};

    fn config() -> ServerConfig {
        ServerConfig::new()
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
            .body_sizes(true)
    }

    fn start(config: &ServerConfig) -> ServerSpan {
        let uri: Uri = "/x".parse().unwrap();
        let h = HeaderMap::new();
        let head = RequestHead {
            method: &Method::GET,
            uri: &uri,
            version: Version::HTTP_11,
            headers: &h,
            peer: None,
        };
        let mut span = config.start(&head, Some("/x")).unwrap();
        span.record_response(StatusCode::OK, &mut HeaderMap::new());
        span
    }

    const KEYS: &[&str] = &["http.response.body.size", "error.type", "otel.status_code"];

    #[tokio::test]
    async fn full_body_completes_with_size() {
        let cap = tracewire_test::capture();
        let body = start(&config()).wrap_body(Full::new(bytes::Bytes::from_static(b"hello")));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello");
        assert_eq!(
            cap.finish().tree(KEYS),
            "GET /x [server] http.response.body.size=5\n"
        );
    }

    #[tokio::test]
    async fn dropped_body_is_aborted_and_empty_body_is_complete() {
        let cap = tracewire_test::capture();
        let chunks = vec![
            Ok::<_, std::io::Error>(Frame::data(bytes::Bytes::from_static(b"ab"))),
            Ok(Frame::data(bytes::Bytes::from_static(b"cd"))),
        ];
        let mut body =
            Box::pin(start(&config()).wrap_body(StreamBody::new(futures_stream(chunks))));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "ab");
        drop(body);
        let spans = cap.take();
        assert_eq!(
            spans.tree(KEYS),
            "GET /x [server] http.response.body.size=2 error.type=aborted otel.status_code=ERROR\n"
        );
        drop(start(&config()).wrap_body(http_body_util::Empty::<bytes::Bytes>::new()));
        assert_eq!(
            cap.finish().tree(KEYS),
            "GET /x [server] http.response.body.size=0\n"
        );
    }

    #[tokio::test]
    async fn bodiless_responses_are_complete_when_dropped_unsent() {
        let cap = tracewire_test::capture();
        // A 304 (or HEAD) body that the server never sends is not an abort.
        let mut span = start(&config());
        span.record_response(StatusCode::NOT_MODIFIED, &mut HeaderMap::new());
        drop(span.wrap_body(Full::new(bytes::Bytes::from_static(b"unsent"))));
        assert_eq!(
            cap.finish().tree(KEYS),
            "GET /x [server] http.response.body.size=0\n"
        );
    }

    #[tokio::test]
    async fn body_error_is_recorded() {
        let cap = tracewire_test::capture();
        let chunks = vec![Err::<Frame<bytes::Bytes>, _>(std::io::Error::other("boom"))];
        let body = start(&config()).wrap_body(StreamBody::new(futures_stream(chunks)));
        assert!(body.collect().await.is_err());
        assert_eq!(
            cap.finish().tree(KEYS),
            "GET /x [server] http.response.body.size=0 error.type=std::io::error::Error otel.status_code=ERROR\n"
        );
    }

    /// A minimal `Stream` over a vector, to avoid a futures dependency.
    fn futures_stream<T: Unpin>(items: Vec<T>) -> VecStream<T> {
        VecStream(items.into_iter())
    }

    struct VecStream<T>(std::vec::IntoIter<T>);

    impl<T: Unpin> futures_core::Stream for VecStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<T>> {
            Poll::Ready(self.0.next())
        }
    }
}
