//! In-process middleware tests: the layers around hand-made services whose responses
//! exercise each way a call can end (trailers, trailers-only, non-200, body error, drop,
//! a stream that ends without a status), driven without a network.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use tower_layer::Layer as _;
use tower_service::Service;
use tracewire_core::{Pairs, SpanKind, Tracer};
use tracewire_tonic::{GrpcClientLayer, GrpcServerLayer};

const KEYS: &[&str] = &[
    "rpc.grpc.status_code",
    "error.type",
    "otel.status_code",
    "otel.status_description",
];

/// How the fake response ends.
#[derive(Clone, Copy, Debug)]
enum End {
    Trailers(&'static str),
    TrailersOnly(&'static str),
    Http(StatusCode),
    BodyError,
    NoStatus,
}

struct FakeBody {
    end: End,
    step: u8,
}

#[derive(Debug)]
struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset")
    }
}

impl Body for FakeBody {
    type Data = bytes::Bytes;
    type Error = Broken;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Broken>>> {
        self.step += 1;
        Poll::Ready(match (self.step, self.end) {
            (1, _) => Some(Ok(Frame::data(bytes::Bytes::from_static(b"msg")))),
            (2, End::Trailers(code)) => {
                let mut t = HeaderMap::new();
                t.insert("grpc-status", HeaderValue::from_static(code));
                t.insert("grpc-message", HeaderValue::from_static("went%20wrong"));
                Some(Ok(Frame::trailers(t)))
            }
            (2, End::BodyError) => Some(Err(Broken)),
            _ => None,
        })
    }
}

#[derive(Clone, Copy)]
struct Fake(End);

impl<B> Service<Request<B>> for Fake {
    type Response = Response<FakeBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<FakeBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let mut res = Response::new(FakeBody {
            end: self.0,
            step: 0,
        });
        match self.0 {
            End::TrailersOnly(code) => {
                res.headers_mut()
                    .insert("grpc-status", HeaderValue::from_static(code));
            }
            End::Http(status) => *res.status_mut() = status,
            _ => {}
        }
        std::future::ready(Ok(res))
    }
}

fn request() -> Request<()> {
    Request::post("/pkg.Svc/Call")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap()
}

/// Calls `svc`, then reads `frames` frames of the body (all of them when `None`) and drops it.
fn drive<S, B>(svc: &mut S, frames: Option<usize>)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    drive_request(svc, request(), frames);
}

/// [`drive`] with this request.
fn drive_request<S, B>(svc: &mut S, req: Request<()>, frames: Option<usize>)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = pin!(svc.call(req));
    let Poll::Ready(res) = fut.as_mut().poll(&mut cx) else {
        panic!("the fake answers at once")
    };
    let mut body = pin!(res.unwrap().into_body());
    let mut read = 0;
    while frames.is_none_or(|n| read < n) {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(_)) => read += 1,
            _ => break,
        }
    }
}

fn server_tree(end: End, frames: Option<usize>) -> String {
    let cap = tracewire_test::capture();
    let mut svc = GrpcServerLayer::new()
        .with_tracer(Tracer::new())
        .layer(Fake(end));
    drive(&mut svc, frames);
    cap.finish().tree(KEYS)
}

fn client_tree(end: End, frames: Option<usize>) -> String {
    let cap = tracewire_test::capture();
    let mut svc = GrpcClientLayer::new()
        .with_tracer(Tracer::new())
        .layer(Fake(end));
    let root = Tracer::new().start_root("caller", SpanKind::Internal, &Pairs::new());
    {
        let _g = root.enter();
        drive(&mut svc, frames);
    }
    drop(root);
    cap.finish().tree(KEYS)
}

const S: &str = "pkg.Svc/Call [server] (parent: 00f067aa0ba902b7)";

#[test]
fn server_status_from_trailers() {
    assert_eq!(
        server_tree(End::Trailers("0"), None),
        format!("{S} rpc.grpc.status_code=0\n")
    );
    assert_eq!(
        server_tree(End::Trailers("13"), None),
        format!(
            "{S} rpc.grpc.status_code=13 error.type=INTERNAL otel.status_code=ERROR otel.status_description=went wrong\n"
        )
    );
    assert_eq!(
        server_tree(End::Trailers("3"), None),
        format!("{S} rpc.grpc.status_code=3\n"),
        "INVALID_ARGUMENT is not a server error"
    );
}

#[test]
fn server_status_from_trailers_only_and_http() {
    assert_eq!(
        server_tree(End::TrailersOnly("12"), Some(0)),
        format!(
            "{S} rpc.grpc.status_code=12 error.type=UNIMPLEMENTED otel.status_code=ERROR otel.status_description=UNIMPLEMENTED\n"
        )
    );
    assert_eq!(
        server_tree(End::Http(StatusCode::SERVICE_UNAVAILABLE), Some(0)),
        format!(
            "{S} rpc.grpc.status_code=14 error.type=UNAVAILABLE otel.status_code=ERROR otel.status_description=no grpc-status; mapped from HTTP status 503\n"
        )
    );
}

#[test]
fn server_body_ends_in_a_failure_or_without_status() {
    assert_eq!(
        server_tree(End::BodyError, None),
        format!(
            "{S} error.type=layers::Broken otel.status_code=ERROR otel.status_description=connection reset\n"
        )
    );
    assert_eq!(
        server_tree(End::NoStatus, None),
        format!(
            "{S} rpc.grpc.status_code=2 error.type=UNKNOWN otel.status_code=ERROR otel.status_description=the stream ended without a grpc-status\n"
        )
    );
}

#[test]
fn dropped_body_is_cancelled() {
    assert_eq!(
        server_tree(End::Trailers("0"), Some(1)),
        format!("{S} rpc.grpc.status_code=1\n"),
        "not a server error"
    );
    assert_eq!(
        client_tree(End::Trailers("0"), Some(1)),
        "caller [internal]\n  pkg.Svc/Call [client] rpc.grpc.status_code=1 error.type=CANCELLED otel.status_code=ERROR otel.status_description=the call was dropped before the end of its stream\n"
    );
}

#[test]
fn client_every_non_ok_status_is_an_error() {
    assert_eq!(
        client_tree(End::Trailers("3"), None),
        "caller [internal]\n  pkg.Svc/Call [client] rpc.grpc.status_code=3 error.type=INVALID_ARGUMENT otel.status_code=ERROR otel.status_description=went wrong\n"
    );
    assert_eq!(
        client_tree(End::TrailersOnly("0"), Some(0)),
        "caller [internal]\n  pkg.Svc/Call [client] rpc.grpc.status_code=0\n"
    );
}

/// Excluded services pass through untouched: no span, the body is the inner body.
#[test]
fn excluded_service_has_no_span() {
    let cap = tracewire_test::capture();
    let mut svc = GrpcServerLayer::new()
        .with_tracer(Tracer::new())
        .exclude_service("pkg.Svc")
        .layer(Fake(End::Trailers("13")));
    drive(&mut svc, None);
    assert!(cap.finish().is_empty());
}

/// Every attribute of a sampled call, as `key=value` sorted: the ones of the root rule, the
/// ones known when the call starts, and the status read at the end of the stream.
fn all_properties(record: &fastrace::collector::SpanRecord) -> String {
    let mut all: Vec<String> = record
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    all.sort();
    all.join(" ")
}

/// The attributes of the start and of the end of a call reach the span, each exactly once, on
/// both sides (they are handed to fastrace with the span, not one collector command each).
#[test]
fn every_attribute_arrives_once() {
    let with_authority = || {
        let mut req = request();
        *req.uri_mut() = "http://api.internal:50051/pkg.Svc/Call".parse().unwrap();
        req
    };
    let cap = tracewire_test::capture();
    let mut server = GrpcServerLayer::new()
        .with_tracer(Tracer::new())
        .layer(Fake(End::Trailers("13")));
    drive_request(&mut server, with_authority(), None);
    let spans = cap.take();
    assert_eq!(spans.len(), 1, "{}", spans.tree(&[]));
    assert_eq!(
        all_properties(&spans.records[0]),
        "error.type=INTERNAL otel.status_code=ERROR otel.status_description=went wrong \
         rpc.grpc.status_code=13 rpc.method=Call rpc.service=pkg.Svc rpc.system=grpc \
         server.address=api.internal server.port=50051 span.kind=server \
         tracewire.parent.remote=true tracewire.trace_flags=01"
    );

    let mut client = GrpcClientLayer::new()
        .with_tracer(Tracer::new())
        .with_conventions(tracewire_tonic::RpcConventions::Both)
        .layer(Fake(End::Trailers("5")));
    let root = Tracer::new().start_root("caller", SpanKind::Internal, &Pairs::new());
    {
        let _g = root.enter();
        drive_request(&mut client, with_authority(), None);
    }
    drop(root);
    let spans = cap.finish();
    // (The caller is a new root: sampled, with the W3C random flag.)
    let call = spans.expect("pkg.Svc/Call");
    assert_eq!(
        all_properties(call),
        "error.type=NOT_FOUND otel.status_code=ERROR otel.status_description=went wrong \
         rpc.grpc.status_code=5 rpc.method=pkg.Svc/Call rpc.response.status_code=NOT_FOUND \
         rpc.service=pkg.Svc rpc.system.name=grpc rpc.system=grpc \
         server.address=api.internal server.port=50051 span.kind=client tracewire.trace_flags=03"
    );
}
