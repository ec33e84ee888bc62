//! End-to-end: a real axum server on 127.0.0.1:0 behind `TraceLayer::axum()` (and
//! `TraceLayer::new()`, the generic form, where stated), called by a real hyper client (itself
//! traced by `ClientLayer` where a test needs client spans).
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::{any, get};
use bytes::Bytes;
use fastrace::collector::SpanRecord;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tracewire_core::{Propagators, Sampler, Tracer};
use tracewire_test::{Capture, Spans};
use tracewire_tower::server::Axum;
use tracewire_tower::{ClientConfig, ClientLayer, ServerConfig, TraceLayer, UrlTemplate};

const KEYS: &[&str] = &[
    "http.request.method",
    "http.request.method_original",
    "http.route",
    "url.path",
    "url.query",
    "url.full",
    "http.response.status_code",
    "error.type",
    "otel.status_code",
];

fn tracer() -> Tracer {
    Tracer::new()
        .with_propagators(Propagators::all())
        .with_sampler(Sampler::AlwaysOn)
}

/// The server options of most tests: every propagator in, everything sampled.
fn config() -> ServerConfig {
    ServerConfig::new().tracer(tracer())
}

/// The layer for axum, recording what `config` says.
fn axum_layer(config: ServerConfig) -> TraceLayer<Axum> {
    TraceLayer::with_config(config).for_axum()
}

#[fastrace::trace(short_name = true)]
async fn work() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn user() -> &'static str {
    work().await;
    "user"
}

async fn boom() -> (StatusCode, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
}

async fn missing() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "nope")
}

/// A body that sends one chunk, waits, then sends another: the span must cover the wait.
struct SlowBody {
    step: u8,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for SlowBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.step {
            0 => {
                self.step = 1;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first ")))))
            }
            1 => {
                if self.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.step = 2;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"last")))))
            }
            _ => Poll::Ready(None),
        }
    }
}

async fn stream() -> Body {
    Body::new(SlowBody {
        step: 0,
        sleep: Box::pin(tokio::time::sleep(Duration::from_millis(150))),
    })
}

fn app(layer: TraceLayer<Axum>) -> Router {
    routes().layer(layer)
}

fn routes() -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/boom", get(boom))
        .route("/missing", get(missing))
        .route("/stream", get(stream))
        .route("/any", any(|| async { "any" }))
        .route("/health", get(|| async { "ok" }))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

async fn send(
    method: Method,
    url: String,
    headers: &[(&'static str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Full::default()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

/// The server span ends on the server task after the last byte left, which can be a moment
/// after the client has read it: wait (bounded) until `n` spans are in.
async fn spans(cap: &Capture, n: usize) -> Spans {
    let mut records: Vec<SpanRecord> = Vec::new();
    for _ in 0..200 {
        records.extend(cap.take().records);
        if records.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Anything extra that was still on its way shows up too (and fails the comparison).
    tokio::time::sleep(Duration::from_millis(20)).await;
    records.extend(cap.take().records);
    Spans { records }
}

#[tokio::test]
async fn routed_request_names_span_by_route_and_nests_handler() {
    let cap = tracewire_test::capture();
    let addr = serve(app(axum_layer(config()))).await;
    let (status, _, body) = send(
        Method::GET,
        format!("http://{addr}/users/7?sig=secret&page=2"),
        &[],
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"user"[..]));
    let spans = spans(&cap, 2).await;
    assert_eq!(
        spans.tree(KEYS),
        "GET /users/{id} [server] http.request.method=GET http.route=/users/{id} url.path=/users/7 \
         url.query=sig=REDACTED&page=2 http.response.status_code=200\n  work [internal]\n"
    );
    let server = spans.expect("GET /users/{id}");
    let prop = |k| tracewire_test::property(server, k);
    assert_eq!(prop("server.address"), Some("127.0.0.1"));
    assert_eq!(prop("server.port"), Some(addr.port().to_string().as_str()));
    assert_eq!(prop("client.address"), Some("127.0.0.1"));
    assert_eq!(prop("network.protocol.version"), Some("1.1"));
    assert_eq!(prop("url.scheme"), Some("http"));
    cap.finish();
}

#[tokio::test]
async fn unmatched_500_404_and_other_method() {
    let cap = tracewire_test::capture();
    let addr = serve(app(axum_layer(config()))).await;
    assert_eq!(
        send(Method::GET, format!("http://{addr}/nowhere"), &[])
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(Method::GET, format!("http://{addr}/boom"), &[])
            .await
            .0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        send(Method::GET, format!("http://{addr}/missing"), &[])
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(
        send(purge, format!("http://{addr}/any"), &[]).await.0,
        StatusCode::OK
    );
    let spans = spans(&cap, 4).await;
    assert_eq!(
        spans.tree(KEYS),
        "GET [server] http.request.method=GET url.path=/nowhere http.response.status_code=404\n\
         GET /boom [server] http.request.method=GET http.route=/boom url.path=/boom \
         http.response.status_code=500 error.type=500 otel.status_code=ERROR\n\
         GET /missing [server] http.request.method=GET http.route=/missing url.path=/missing \
         http.response.status_code=404\n\
         HTTP /any [server] http.request.method=_OTHER http.request.method_original=PURGE \
         http.route=/any url.path=/any http.response.status_code=200\n"
    );
    cap.finish();
}

#[tokio::test]
async fn streamed_response_span_covers_the_body() {
    let cap = tracewire_test::capture();
    let addr = serve(app(axum_layer(config().body_sizes(true)))).await;
    let (_, _, body) = send(Method::GET, format!("http://{addr}/stream"), &[]).await;
    assert_eq!(&body[..], b"first last");
    let spans = spans(&cap, 1).await;
    assert_eq!(
        spans.tree(&["http.response.status_code", "http.response.body.size"]),
        "GET /stream [server] http.response.status_code=200 http.response.body.size=10\n"
    );
    // The handler returned at once; only the body took 150 ms.
    let server = spans.expect("GET /stream");
    assert!(
        server.duration_ns >= 150_000_000,
        "span ended before the body was sent: {} ns",
        server.duration_ns
    );
    cap.finish();
}

#[tokio::test]
async fn every_inbound_format_continues_the_trace() {
    let cap = tracewire_test::capture();
    let addr = serve(app(axum_layer(config()))).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let w3c = format!("00-{trace}-{parent}-01");
    let b3 = format!("{trace}-{parent}-1");
    let uber = format!("{trace}:{parent}:0:1");
    let cases: Vec<Vec<(&'static str, &str)>> = vec![
        vec![("traceparent", &w3c)],
        vec![("b3", &b3)],
        vec![
            ("x-b3-traceid", trace),
            ("x-b3-spanid", parent),
            ("x-b3-sampled", "1"),
        ],
        vec![("uber-trace-id", &uber)],
    ];
    for headers in &cases {
        send(Method::GET, format!("http://{addr}/any"), headers).await;
    }
    let spans = spans(&cap, 4).await;
    assert_eq!(spans.len(), 4);
    for r in &spans.records {
        assert_eq!(format!("{:032x}", r.trace_id.0), trace);
        assert_eq!(format!("{:016x}", r.parent_id.0), parent);
        assert_eq!(
            tracewire_test::property(r, "tracewire.parent.remote"),
            Some("true")
        );
    }
    assert_eq!(
        spans.tree(&[]),
        format!("GET /any [server] (parent: {parent})\n").repeat(4)
    );
    cap.finish();
}

#[tokio::test]
async fn force_new_trace_links_and_response_headers_are_injected() {
    let cap = tracewire_test::capture();
    let addr = serve(app(axum_layer(
        config().force_new_trace(true).inject_response_headers(true),
    )))
    .await;
    let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (_, headers, _) = send(
        Method::GET,
        format!("http://{addr}/any"),
        &[("traceparent", inbound)],
    )
    .await;
    let spans = spans(&cap, 1).await;
    assert_eq!(spans.tree(&[]), "GET /any [server]\n");
    let r = &spans.records[0];
    assert_ne!(format!("{:032x}", r.trace_id.0), &inbound[3..35]);
    assert_eq!(r.parent_id.0, 0);
    assert_eq!(r.links.len(), 1);
    assert_eq!(
        format!(
            "{:032x}-{:016x}",
            r.links[0].trace_id.0, r.links[0].span_id.0
        ),
        "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
    );
    // The response carries the new trace and the server span's id.
    assert_eq!(
        headers["traceparent"].to_str().unwrap(),
        format!("00-{:032x}-{:016x}-03", r.trace_id.0, r.span_id.0)
    );
    cap.finish();
}

#[tokio::test]
async fn excluded_path_makes_no_span_and_stacked_layers_make_one() {
    let cap = tracewire_test::capture();
    let layer = axum_layer(config().exclude(|head| head.uri.path() == "/health"));
    // The same layer twice around every route.
    let addr = serve(app(layer.clone()).layer(layer)).await;
    send(Method::GET, format!("http://{addr}/health"), &[]).await;
    send(Method::GET, format!("http://{addr}/any"), &[]).await;
    let spans = spans(&cap, 1).await;
    // One span for /any, none for /health.
    assert_eq!(
        spans.tree(&["url.path"]),
        "GET /any [server] url.path=/any\n"
    );
    cap.finish();
}

/// Service B: echoes the `traceparent` it received.
async fn echo(headers: HeaderMap) -> String {
    headers
        .get("traceparent")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Service A: calls B through a traced hyper client, returns what B saw.
fn service_a(b: SocketAddr, layer: TraceLayer<Axum>) -> Router {
    let call_b = move || async move {
        let client = ClientLayer::with_config(ClientConfig::new().tracer(tracer()))
            .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
        let mut req = Request::get(format!("http://{b}/echo"))
            .body(Full::default())
            .unwrap();
        req.extensions_mut().insert(UrlTemplate("/echo".into()));
        let res = client.oneshot(req).await.unwrap();
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };
    Router::new().route("/call", get(call_b)).layer(layer)
}

#[tokio::test]
async fn unsampled_requests_record_nothing_but_propagate() {
    let cap = tracewire_test::capture();
    let off = Tracer::new().with_sampler(Sampler::AlwaysOff);
    let b = serve(
        Router::new()
            .route("/echo", get(echo))
            .layer(axum_layer(ServerConfig::new().tracer(off.clone()))),
    )
    .await;
    let a = serve(service_a(b, axum_layer(ServerConfig::new().tracer(off)))).await;
    let (_, _, seen) = send(Method::GET, format!("http://{a}/call"), &[]).await;
    let seen = String::from_utf8(seen.to_vec()).unwrap();
    let flags = u8::from_str_radix(&seen[seen.len() - 2..], 16).unwrap();
    assert!(seen.starts_with("00-") && flags & 1 == 0, "{seen}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(cap.finish().is_empty());
}

#[tokio::test]
async fn client_server_chain_across_two_hops() {
    let cap = tracewire_test::capture();
    let b = serve(
        Router::new()
            .route("/echo", get(echo))
            .layer(axum_layer(config())),
    )
    .await;
    let a = serve(service_a(b, axum_layer(config()))).await;
    let (_, _, seen) = send(Method::GET, format!("http://{a}/call"), &[]).await;
    let spans = spans(&cap, 3).await;
    assert_eq!(spans.trace_ids().len(), 1, "{}", spans.tree(&[]));
    assert_eq!(
        spans.tree(&["http.route", "url.template", "http.response.status_code"]),
        "GET /call [server] http.route=/call http.response.status_code=200\n  \
         GET /echo [client] url.template=/echo http.response.status_code=200\n    \
         GET /echo [server] http.route=/echo http.response.status_code=200\n"
    );
    // What B received is the client span's context.
    let client = spans.expect("GET /echo");
    let client = spans
        .records
        .iter()
        .find(|r| tracewire_test::kind(r) == "client")
        .unwrap_or(client);
    assert_eq!(
        String::from_utf8(seen.to_vec()).unwrap(),
        format!("00-{:032x}-{:016x}-03", client.trace_id.0, client.span_id.0)
    );
    cap.finish();
}

#[tokio::test]
async fn client_connection_failure_is_an_error() {
    let cap = tracewire_test::capture();
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = ClientLayer::with_config(ClientConfig::new().tracer(tracer()))
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let root = tracer().start_root(
        "job",
        tracewire_core::SpanKind::Internal,
        &tracewire_core::Pairs::new(),
    );
    let req = Request::get(format!("http://user:pw@127.0.0.1:{port}/x?sig=1"))
        .body(Full::default())
        .unwrap();
    let res = root.instrument(client.oneshot(req)).await;
    assert!(res.is_err());
    let spans = cap.finish();
    assert_eq!(
        spans.tree(KEYS),
        format!(
            "job [internal]\n  GET [client] http.request.method=GET \
             url.full=http://REDACTED:REDACTED@127.0.0.1:{port}/x?sig=REDACTED \
             error.type=hyper_util::client::legacy::client::Error otel.status_code=ERROR\n"
        )
    );
}

#[tokio::test]
async fn service_error_is_recorded() {
    let cap = tracewire_test::capture();
    let svc = TraceLayer::with_config(config()).layer(tower::service_fn(
        |_req: Request<Full<Bytes>>| async {
            Err::<http::Response<Full<Bytes>>, _>(std::io::Error::other("backend down"))
        },
    ));
    let req = Request::post("/jobs").body(Full::default()).unwrap();
    assert!(svc.oneshot(req).await.is_err());
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["error.type", "otel.status_code", "otel.status_description"]),
        "POST [server] error.type=std::io::error::Error otel.status_code=ERROR \
         otel.status_description=backend down\n"
    );
}

#[tokio::test]
async fn head_request_is_not_an_abort() {
    let cap = tracewire_test::capture();
    let addr = serve(app(axum_layer(config()))).await;
    let (status, _, body) = send(Method::HEAD, format!("http://{addr}/users/7"), &[]).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    let spans = spans(&cap, 2).await;
    assert_eq!(
        spans.tree(&["http.response.status_code", "error.type"]),
        "HEAD /users/{id} [server] http.response.status_code=200\n  work [internal]\n"
    );
    cap.finish();
}

#[tokio::test]
async fn client_going_away_mid_body_is_recorded() {
    let cap = tracewire_test::capture();
    let addr = serve(app(axum_layer(config()))).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let res = client
        .request(
            Request::get(format!("http://{addr}/stream"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first ");
    drop(body);
    drop(client);
    let spans = spans(&cap, 1).await;
    assert_eq!(
        spans.tree(&[
            "http.response.status_code",
            "error.type",
            "otel.status_code"
        ]),
        "GET /stream [server] http.response.status_code=200 error.type=aborted otel.status_code=ERROR\n"
    );
    cap.finish();
}

#[tokio::test]
async fn generic_layer_on_an_axum_router_traces_the_same() {
    // `TraceLayer::new()` (responses carry `TracedBody`, which axum boxes again) still works
    // on a router: same spans, the span still ends with the body.
    let cap = tracewire_test::capture();
    let layer = TraceLayer::with_config(config().body_sizes(true));
    let addr = serve(routes().layer(layer)).await;
    let (status, _, body) = send(Method::GET, format!("http://{addr}/users/7"), &[]).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"user"[..]));
    let (_, _, body) = send(Method::GET, format!("http://{addr}/stream"), &[]).await;
    assert_eq!(&body[..], b"first last");
    send(Method::GET, format!("http://{addr}/boom"), &[]).await;
    let spans = spans(&cap, 4).await;
    assert_eq!(
        spans.tree(&["http.route", "http.response.status_code", "error.type"]),
        "GET /users/{id} [server] http.route=/users/{id} http.response.status_code=200\n  \
           work [internal]\n\
         GET /stream [server] http.route=/stream http.response.status_code=200\n\
         GET /boom [server] http.route=/boom http.response.status_code=500 error.type=500\n"
    );
    assert!(spans.expect("GET /stream").duration_ns >= 150_000_000);
    cap.finish();
}

#[tokio::test]
async fn axum_layer_passes_unsampled_bodies_through_and_records_nothing() {
    let cap = tracewire_test::capture();
    let layer = axum_layer(
        ServerConfig::new()
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOff))
            .inject_response_headers(true),
    );
    let res = routes()
        .layer(layer)
        .oneshot(Request::get("/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    // Still a trace to find (`-00`/`-02`), and the streamed body arrives whole.
    let tp = res.headers()["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(u8::from_str_radix(&tp[tp.len() - 2..], 16).unwrap() & 1, 0);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"first last");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(cap.finish().is_empty());
}

#[tokio::test]
async fn a_layer_around_the_router_and_one_inside_make_one_span() {
    // The outer (generic) layer wraps the whole router, so it runs before routing: its span
    // is named by the method alone, and the route layer inside sees it and adds none.
    let cap = tracewire_test::capture();
    let inner = routes().layer(axum_layer(config()));
    let svc = TraceLayer::with_config(config()).layer(inner);
    let res = svc
        .oneshot(Request::get("/users/7").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "user");
    assert_eq!(
        cap.finish().tree(&["url.path"]),
        "GET [server] url.path=/users/7\n  work [internal]\n"
    );
}

#[tokio::test]
async fn directly_stacked_axum_layers_make_one_span() {
    // The inner layer's `call` runs synchronously inside the outer one's (the axum kind only
    // marks the request there): still one span.
    let cap = tracewire_test::capture();
    let inner = axum_layer(config()).layer(routes());
    let svc = axum_layer(config()).layer(inner);
    let res = svc
        .oneshot(Request::get("/any").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "any");
    assert_eq!(cap.finish().tree(&[]), "GET [server]\n");
}

/// A service that does its work synchronously in `call`, as `service_fn(|r| ready(f(r)))`
/// does: a span and the current context there belong to the request (generic layer).
#[derive(Clone)]
struct EagerService;

impl tower::Service<Request<Full<Bytes>>> for EagerService {
    type Response = http::Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        let _span = fastrace::local::LocalSpan::enter_with_local_parent("in call");
        let seen = tracewire_core::TraceContext::current()
            .map(|cx| format!("{:032x}", cx.trace_id.0))
            .unwrap_or_default();
        std::future::ready(Ok(http::Response::new(Full::new(Bytes::from(seen)))))
    }
}

#[tokio::test]
async fn generic_layer_runs_the_inner_call_in_the_span_and_stacks_once() {
    let cap = tracewire_test::capture();
    let svc = TraceLayer::with_config(config())
        .layer(TraceLayer::with_config(config()).layer(EagerService));
    let inbound = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = Request::post("/jobs")
        .header("traceparent", inbound)
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let seen = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(seen, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        cap.finish().tree(&[]),
        "POST [server] (parent: 00f067aa0ba902b7)\n  in call [internal]\n"
    );
}
