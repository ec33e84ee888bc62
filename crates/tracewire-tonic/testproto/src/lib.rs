//! Internal to tracewire-tonic: the `tracewire.test.v1.Echo` service that the tests, the
//! gateway example and the benchmarks call — generated at build time from `proto/echo.proto`
//! with the pure-Rust `protox` compiler (no system `protoc`) — and [`EchoService`], a handler
//! steered by its requests.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fastrace::prelude::*;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Code, Request, Response, Status, Streaming};
use tracewire_core::TraceContext;

/// Generated messages, client and server for `tracewire.test.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("tracewire.test.v1");
}

use pb::{EchoRequest, EchoResponse};

/// The current trace context as `{trace id}-{span id}`, or an empty string.
pub fn seen() -> String {
    TraceContext::current()
        .map(|cx| format!("{:032x}-{:016x}", cx.trace_id.0, cx.span_id.0))
        .unwrap_or_default()
}

fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn failure(code: i32) -> Option<Status> {
    (code != 0).then(|| Status::new(Code::from_i32(code), format!("asked to fail with {code}")))
}

/// The `Echo` handler. `Unary` waits `delay_ms`, records an internal `echo.handle` span and
/// echoes the message (or fails with `fail_with`); `ServerStream` sends `count` messages,
/// `delay_ms` apart, then ends with `fail_with` (or OK); `ClientStream` counts what it gets and
/// fails with the last message's `fail_with`, if any.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoService;

#[tonic::async_trait]
impl pb::echo_server::Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let req = request.into_inner();
        let seen = seen();
        async move {
            if req.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(req.delay_ms)).await;
            }
            match failure(req.fail_with) {
                Some(status) => Err(status),
                None => Ok(Response::new(EchoResponse {
                    message: req.message,
                    seen,
                    made_at_unix_ns: now_unix_ns(),
                })),
            }
        }
        .in_span(Span::enter_with_local_parent("echo.handle"))
        .await
    }

    type ServerStreamStream = Ticks;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Ticks>, Status> {
        let req = request.into_inner();
        Ok(Response::new(Ticks {
            message: req.message,
            left: req.count,
            delay: Duration::from_millis(req.delay_ms),
            sleep: None,
            fail: failure(req.fail_with),
        }))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        let mut stream = request.into_inner();
        let mut count = 0u32;
        let mut fail = None;
        while let Some(req) = stream.next().await {
            let req = req?;
            count += 1;
            fail = failure(req.fail_with);
        }
        match fail {
            Some(status) => Err(status),
            None => Ok(Response::new(EchoResponse {
                message: count.to_string(),
                seen: seen(),
                made_at_unix_ns: now_unix_ns(),
            })),
        }
    }
}

/// The response stream of `ServerStream`. Each message records the context seen while the
/// stream was polled.
pub struct Ticks {
    message: String,
    left: u32,
    delay: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    fail: Option<Status>,
}

impl std::fmt::Debug for Ticks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticks").field("left", &self.left).finish()
    }
}

impl Stream for Ticks {
    type Item = Result<EchoResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == 0 {
            return Poll::Ready(self.fail.take().map(Err));
        }
        if !self.delay.is_zero() {
            let delay = self.delay;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(EchoResponse {
            message: format!("{}#{}", self.message, self.left),
            seen: seen(),
            made_at_unix_ns: now_unix_ns(),
        })))
    }
}
