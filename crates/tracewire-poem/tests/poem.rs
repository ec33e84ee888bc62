//! End-to-end: a real poem server on 127.0.0.1:0 with `Tracing`, called by a real reqwest
//! client.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use fastrace::collector::SpanRecord;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Path;
use poem::{Body, EndpointExt, Error, IntoEndpoint, Route, Server, get, handler};
use tracewire_core::{Propagators, Sampler, Tracer};
use tracewire_poem::{Config, Tracing};
use tracewire_test::{Capture, Spans};

const KEYS: &[&str] = &[
    "http.request.method",
    "http.route",
    "url.path",
    "http.response.status_code",
    "error.type",
    "otel.status_code",
];

fn tracer() -> Tracer {
    Tracer::new()
        .with_propagators(Propagators::all())
        .with_sampler(Sampler::AlwaysOn)
}

/// The middleware of most tests: every propagator in, everything sampled.
fn traced() -> Tracing {
    Tracing::with_config(Config::new().tracer(tracer()))
}

#[fastrace::trace(short_name = true)]
async fn load(id: u32) -> String {
    tokio::time::sleep(Duration::from_millis(1)).await;
    format!("user {id}")
}

#[handler]
async fn user(Path(id): Path<u32>) -> String {
    load(id).await
}

#[handler]
async fn fail() -> poem::Result<String> {
    Err(Error::from_string(
        "db down",
        StatusCode::INTERNAL_SERVER_ERROR,
    ))
}

#[handler]
async fn ok() -> &'static str {
    "ok"
}

#[handler]
fn stream() -> Body {
    let chunks = async_stream(["first ", "last"]);
    Body::from_bytes_stream(chunks)
}

/// Two chunks 150 ms apart, without a futures dependency.
fn async_stream(
    parts: [&'static str; 2],
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    struct S {
        parts: [&'static str; 2],
        i: usize,
        sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    }
    impl futures_core::Stream for S {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            use std::future::Future;
            use std::task::Poll;
            match self.i {
                0 => {
                    self.i = 1;
                    Poll::Ready(Some(Ok(bytes::Bytes::from_static(
                        self.parts[0].as_bytes(),
                    ))))
                }
                1 => {
                    if self.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.i = 2;
                    Poll::Ready(Some(Ok(bytes::Bytes::from_static(
                        self.parts[1].as_bytes(),
                    ))))
                }
                _ => Poll::Ready(None),
            }
        }
    }
    S {
        parts,
        i: 0,
        sleep: Box::pin(tokio::time::sleep(Duration::from_millis(150))),
    }
}

/// Per-endpoint placement: every span is named by its route from the start.
fn per_route(t: Tracing) -> impl poem::Endpoint + 'static {
    Route::new()
        .at("/users/:id", get(user).with(t.clone()))
        .at("/fail", get(fail).with(t.clone()))
        .at(
            "/ok",
            poem::RouteMethod::new().get(ok).post(ok).with(t.clone()),
        )
        .at("/stream", get(stream).with(t.clone()))
        .at("/health", get(ok).with(t))
}

async fn serve<E>(ep: E) -> SocketAddr
where
    E: IntoEndpoint + Send + 'static,
    E::Endpoint: 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = TcpAcceptor::from_tokio(l).unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(ep));
    addr
}

async fn get_url(url: String, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn spans(cap: &Capture, n: usize) -> Spans {
    let mut records: Vec<SpanRecord> = Vec::new();
    for _ in 0..200 {
        records.extend(cap.take().records);
        if records.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    records.extend(cap.take().records);
    Spans { records }
}

#[tokio::test]
async fn per_route_spans_have_route_names_status_and_nested_handler_spans() {
    let cap = tracewire_test::capture();
    let addr = serve(per_route(traced())).await;
    let res = get_url(format!("http://{addr}/users/7"), &[]).await;
    assert_eq!(res.text().await.unwrap(), "user 7");
    let res = get_url(format!("http://{addr}/fail"), &[]).await;
    assert_eq!(res.status(), 500);
    let spans = spans(&cap, 3).await;
    assert_eq!(
        spans.tree(KEYS),
        "GET /users/:id [server] http.request.method=GET http.route=/users/:id url.path=/users/7 \
         http.response.status_code=200\n  load [internal]\n\
         GET /fail [server] http.request.method=GET http.route=/fail url.path=/fail \
         http.response.status_code=500 error.type=500 otel.status_code=ERROR\n"
    );
    let failed = spans.expect("GET /fail");
    assert_eq!(
        tracewire_test::property(failed, "otel.status_description"),
        Some("db down")
    );
    cap.finish();
}

#[tokio::test]
async fn app_level_placement_traces_unmatched_routes_and_records_the_route() {
    let cap = tracewire_test::capture();
    let app = Route::new().at("/users/:id", get(user)).with(traced());
    let addr = serve(app).await;
    get_url(format!("http://{addr}/users/9"), &[]).await;
    let res = get_url(format!("http://{addr}/nowhere"), &[]).await;
    assert_eq!(res.status(), 404);
    let spans = spans(&cap, 3).await;
    assert_eq!(
        spans.tree(KEYS),
        "GET [server] http.request.method=GET http.route=/users/:id url.path=/users/9 \
         http.response.status_code=200\n  load [internal]\n\
         GET [server] http.request.method=GET url.path=/nowhere http.response.status_code=404\n"
    );
    cap.finish();
}

#[tokio::test]
async fn streamed_body_other_method_and_stacking() {
    let cap = tracewire_test::capture();
    let t = traced();
    // Stacked: app level around per-route; the outer one makes the only span.
    let addr = serve(per_route(t.clone()).with(t)).await;
    let res = get_url(format!("http://{addr}/stream"), &[]).await;
    assert_eq!(res.text().await.unwrap(), "first last");
    let purge = reqwest::Method::from_bytes(b"PURGE").unwrap();
    let res = reqwest::Client::new()
        .request(purge, format!("http://{addr}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let spans = spans(&cap, 2).await;
    assert_eq!(
        spans.tree(&[
            "http.request.method_original",
            "http.route",
            "http.response.status_code"
        ]),
        "GET [server] http.route=/stream http.response.status_code=200\n\
         HTTP [server] http.request.method_original=PURGE http.route=/ok http.response.status_code=405\n"
    );
    assert!(spans.expect("GET").duration_ns >= 150_000_000);
    cap.finish();
}

#[tokio::test]
async fn inbound_formats_force_new_trace_and_response_headers() {
    let cap = tracewire_test::capture();
    let addr = serve(per_route(traced())).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let w3c = format!("00-{trace}-{parent}-01");
    let b3 = format!("{trace}-{parent}-1");
    let uber = format!("{trace}:{parent}:0:1");
    get_url(format!("http://{addr}/ok"), &[("traceparent", &w3c)]).await;
    get_url(format!("http://{addr}/ok"), &[("b3", &b3)]).await;
    get_url(
        format!("http://{addr}/ok"),
        &[
            ("x-b3-traceid", trace),
            ("x-b3-spanid", parent),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
    get_url(format!("http://{addr}/ok"), &[("uber-trace-id", &uber)]).await;
    let continued = spans(&cap, 4).await;
    assert_eq!(
        continued.tree(&[]),
        format!("GET /ok [server] (parent: {parent})\n").repeat(4)
    );
    assert!(
        continued
            .records
            .iter()
            .all(|r| format!("{:032x}", r.trace_id.0) == trace)
    );

    let addr = serve(per_route(Tracing::with_config(
        Config::new()
            .tracer(tracer())
            .force_new_trace(true)
            .inject_response_headers(true),
    )))
    .await;
    let res = get_url(format!("http://{addr}/ok"), &[("traceparent", &w3c)]).await;
    let echoed = res.headers()["traceparent"].to_str().unwrap().to_owned();
    let forced = spans(&cap, 1).await;
    assert_eq!(forced.tree(&[]), "GET /ok [server]\n");
    let r = &forced.records[0];
    assert_ne!(format!("{:032x}", r.trace_id.0), trace);
    assert_eq!(
        format!(
            "{:032x}-{:016x}",
            r.links[0].trace_id.0, r.links[0].span_id.0
        ),
        format!("{trace}-{parent}")
    );
    assert_eq!(
        echoed,
        format!("00-{:032x}-{:016x}-03", r.trace_id.0, r.span_id.0)
    );
    cap.finish();
}

#[tokio::test]
async fn excluded_and_unsampled_requests_make_no_spans() {
    let cap = tracewire_test::capture();
    let addr = serve(per_route(Tracing::with_config(
        Config::new()
            .tracer(tracer())
            .exclude(|head| head.uri.path() == "/health"),
    )))
    .await;
    assert_eq!(
        get_url(format!("http://{addr}/health"), &[]).await.status(),
        200
    );
    let addr = serve(per_route(Tracing::with_config(
        Config::new()
            .tracer(Tracer::new().with_sampler(Sampler::AlwaysOff))
            .inject_response_headers(true),
    )))
    .await;
    let res = get_url(format!("http://{addr}/ok"), &[]).await;
    let tp = res.headers()["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(
        u8::from_str_radix(&tp[tp.len() - 2..], 16).unwrap() & 1,
        0,
        "{tp}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(cap.finish().is_empty());
}

#[handler]
async fn gone() -> poem::Result<&'static str> {
    Err(poem::error::NotFoundError.into())
}

#[tokio::test]
async fn traced_route_names_routes_traces_misses_once() {
    use tracewire_poem::TracedRoute;
    let cap = tracewire_test::capture();
    let t = traced();
    let api = TracedRoute::new(t.clone()).at("/users/:id", get(user));
    let app = TracedRoute::new(t).at("/gone", get(gone)).nest("/api", api);
    let addr = serve(app).await;
    get_url(format!("http://{addr}/api/users/3"), &[]).await;
    // A handler's own 404 is traced once, by its route.
    assert_eq!(
        get_url(format!("http://{addr}/gone"), &[]).await.status(),
        404
    );
    // A miss is traced by the table.
    assert_eq!(
        get_url(format!("http://{addr}/api/nope"), &[])
            .await
            .status(),
        404
    );
    let spans = spans(&cap, 4).await;
    assert_eq!(
        spans.tree(&["http.route", "url.path", "http.response.status_code"]),
        "GET /api/users/:id [server] http.route=/api/users/:id url.path=/api/users/3 \
         http.response.status_code=200\n  load [internal]\n\
         GET /gone [server] http.route=/gone url.path=/gone http.response.status_code=404\n\
         GET [server] url.path=/api/nope http.response.status_code=404\n"
    );
    cap.finish();
}
