//! End-to-end: real reqwest clients against real axum and poem servers on 127.0.0.1:0.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use fastrace::collector::SpanRecord;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::RetryTransientMiddleware;
use reqwest_retry::policies::ExponentialBackoff;
use tracewire_core::{Pairs, Propagators, Sampler, SpanKind, Tracer};
use tracewire_reqwest::{Tracing, UrlTemplate};
use tracewire_test::{Capture, Spans};
use tracewire_tower::{ServerConfig, TraceLayer};

fn tracer() -> Tracer {
    Tracer::new()
        .with_propagators(Propagators::all())
        .with_sampler(Sampler::AlwaysOn)
}

/// The client middleware of most tests: every propagator out, everything sampled.
fn traced() -> Tracing {
    Tracing::with_config(tracewire_reqwest::Config::new().tracer(tracer()))
}

fn client() -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(traced())
        .build()
}

async fn echo(headers: HeaderMap) -> String {
    headers
        .get("traceparent")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn serve_axum(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
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

const KEYS: &[&str] = &[
    "url.full",
    "url.template",
    "server.port",
    "http.request.resend_count",
    "http.response.status_code",
    "error.type",
    "otel.status_code",
];

#[tokio::test]
async fn middleware_span_injects_its_own_context() {
    let cap = tracewire_test::capture();
    let b = serve_axum(Router::new().route("/echo", get(echo))).await;
    let root = tracer().start_root("job", SpanKind::Internal, &Pairs::new());
    let seen = root
        .instrument(async {
            client()
                .get(format!("http://{b}/echo?sig=abc"))
                .with_extension(UrlTemplate("/echo".into()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await;
    let spans = spans(&cap, 2).await;
    let port = b.port();
    assert_eq!(
        spans.tree(KEYS),
        format!(
            "job [internal]\n  GET /echo [client] url.full=http://127.0.0.1:{port}/echo?sig=REDACTED \
             url.template=/echo server.port={port} http.response.status_code=200\n"
        )
    );
    let c = spans.expect("GET /echo");
    assert_eq!(
        tracewire_test::property(c, "network.protocol.version"),
        Some("1.1")
    );
    assert_eq!(
        seen,
        format!("00-{:032x}-{:016x}-03", c.trace_id.0, c.span_id.0)
    );
    cap.finish();
}

#[tokio::test]
async fn no_current_trace_means_no_span_and_no_headers() {
    let cap = tracewire_test::capture();
    let b = serve_axum(Router::new().route("/echo", get(echo))).await;
    let seen = client()
        .get(format!("http://{b}/echo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(seen, "");
    assert!(cap.finish().is_empty());
}

#[tokio::test]
async fn each_retry_attempt_gets_a_span_with_resend_count() {
    let cap = tracewire_test::capture();
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let b = serve_axum(Router::new().route(
        "/flaky",
        get(move || {
            let n = c2.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        }),
    ))
    .await;
    let retry = RetryTransientMiddleware::new_with_policy(
        ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
            .build_with_max_retries(3),
    );
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(retry)
        .with(traced())
        .build();
    let root = tracer().start_root("job", SpanKind::Internal, &Pairs::new());
    let status = root
        .instrument(async {
            client
                .get(format!("http://{b}/flaky"))
                .send()
                .await
                .unwrap()
                .status()
        })
        .await;
    assert_eq!(status, 200);
    let spans = spans(&cap, 4).await;
    assert_eq!(
        spans.tree(&[
            "http.request.resend_count",
            "http.response.status_code",
            "error.type"
        ]),
        "job [internal]\n  \
         GET [client] http.response.status_code=503 error.type=503\n  \
         GET [client] http.request.resend_count=1 http.response.status_code=503 error.type=503\n  \
         GET [client] http.request.resend_count=2 http.response.status_code=200\n"
    );
    cap.finish();
}

#[tokio::test]
async fn connection_failure_and_plain_helper() {
    let cap = tracewire_test::capture();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let root = tracer().start_root("job", SpanKind::Internal, &Pairs::new());
    let b = serve_axum(Router::new().route("/echo", get(echo))).await;
    let (err, seen) = root
        .instrument(async {
            let err = client()
                .get(format!("http://u:p@127.0.0.1:{port}/x?sig=s"))
                .send()
                .await
                .is_err();
            // The plain helper, no reqwest-middleware.
            let plain = reqwest::Client::new();
            let req = plain.get(format!("http://{b}/echo")).build().unwrap();
            let seen = traced()
                .execute(&plain, req)
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            (err, seen)
        })
        .await;
    assert!(err);
    // reqwest itself moves URL credentials into `Authorization`, so they never reach
    // `url.full`; signatures are redacted by tracewire.
    let spans = spans(&cap, 3).await;
    assert_eq!(
        spans.tree(&[
            "url.full",
            "error.type",
            "otel.status_code",
            "http.response.status_code"
        ]),
        format!(
            "job [internal]\n  \
             GET [client] url.full=http://127.0.0.1:{port}/x?sig=REDACTED error.type=connect \
             otel.status_code=ERROR\n  \
             GET [client] url.full=http://{b}/echo http.response.status_code=200\n"
        )
    );
    let plain_span = spans
        .records
        .iter()
        .find(|r| tracewire_test::property(r, "http.response.status_code").is_some())
        .unwrap();
    assert_eq!(
        seen,
        format!(
            "00-{:032x}-{:016x}-03",
            plain_span.trace_id.0, plain_span.span_id.0
        )
    );
    cap.finish();
}

/// Service A (poem): calls B through reqwest-middleware and returns B's answer.
#[poem::handler]
async fn call_b(poem::web::Data(b): poem::web::Data<&SocketAddr>) -> String {
    client()
        .get(format!("http://{b}/echo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn client_to_poem_a_to_axum_b_is_one_trace() {
    use poem::EndpointExt;
    let cap = tracewire_test::capture();
    let b = serve_axum(
        Router::new()
            .route("/echo", get(echo))
            .layer(TraceLayer::with_config(ServerConfig::new().tracer(tracer())).for_axum()),
    )
    .await;
    let a_app = poem::Route::new()
        .at(
            "/call",
            poem::get(call_b).with(tracewire_poem::Tracing::with_config(
                tracewire_poem::Config::new().tracer(tracer()),
            )),
        )
        .data(b);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(
        poem::Server::new_with_acceptor(poem::listener::TcpAcceptor::from_tokio(l).unwrap())
            .run(a_app),
    );

    let root = tracer().start_root("user action", SpanKind::Internal, &Pairs::new());
    let seen = root
        .instrument(async {
            client()
                .get(format!("http://{a}/call"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await;
    let spans = spans(&cap, 5).await;
    assert_eq!(spans.trace_ids().len(), 1, "{}", spans.tree(&[]));
    assert_eq!(
        spans.tree(&["http.route"]),
        "user action [internal]\n  \
         GET [client]\n    \
         GET /call [server] http.route=/call\n      \
         GET [client]\n        \
         GET /echo [server] http.route=/echo\n"
    );
    // B saw the context of A's client span, which is the parent of B's server span.
    let b_server = spans.expect("GET /echo");
    let a_client = spans
        .records
        .iter()
        .find(|r| r.span_id == b_server.parent_id)
        .unwrap();
    assert_eq!(tracewire_test::kind(a_client), "client");
    assert_eq!(
        seen,
        format!(
            "00-{:032x}-{:016x}-03",
            a_client.trace_id.0, a_client.span_id.0
        )
    );
    cap.finish();
}
