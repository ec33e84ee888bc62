//! A real third-party crate's `tracing` spans in a tracewire trace: tower-http's `TraceLayer`
//! inside tracewire-tower's server layer, around an axum router whose handler is
//! `#[tracing::instrument]`ed, served on 127.0.0.1:0 and called over HTTP — as a tower stack
//! served by hyper, and as axum route layers served by `axum::serve`.
//! The subscriber is the process's global default (installed once for both tests).
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tracewire_core::{Sampler, Tracer};
use tracewire_tower::{ServerConfig, TraceLayer};
use tracewire_tracing::Level;
use tracing_subscriber::layer::SubscriberExt as _;

#[tracing::instrument(skip_all, fields(user.id = id))]
async fn get_user(Path(id): Path<u64>) -> String {
    load_profile().await;
    tracing::info!(cached = false, "profile loaded");
    format!("user {id}")
}

#[fastrace::trace(short_name = true)]
async fn load_profile() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// The tracer of the servers, and the global subscriber with tracewire's layer (DEBUG events:
/// tower-http logs at DEBUG).
fn tracer() -> Tracer {
    static TRACER: OnceLock<Tracer> = OnceLock::new();
    TRACER
        .get_or_init(|| {
            let tracer = Tracer::new().with_sampler(Sampler::AlwaysOn);
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(
                    tracewire_tracing::layer()
                        .with_tracer(tracer.clone())
                        .event_level(Level::DEBUG),
                ),
            )
            .unwrap();
            tracer
        })
        .clone()
}

/// Calls `GET /users/7` with a sampled `traceparent` and returns the spans of the request.
async fn call(addr: SocketAddr, cap: &tracewire_test::Capture) -> tracewire_test::Spans {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let res = client
        .request(
            Request::get(format!("http://{addr}/users/7"))
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "user 7"
    );
    let mut spans = cap.take();
    for _ in 0..200 {
        if spans.records.iter().any(|r| r.name.starts_with("GET")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        spans.records.extend(cap.take().records);
    }
    spans
}

fn assert_nested(spans: &tracewire_test::Spans, server: &str) {
    assert_eq!(
        spans.tree(&["method", "uri", "user.id:int"]),
        format!(
            "{server} [server] (parent: 00f067aa0ba902b7)\n  request [internal] method=GET uri=/users/7\n    get_user [internal] user.id:int=7\n      load_profile [internal]\n"
        )
    );
    let request = spans.expect("request");
    assert_eq!(
        format!("{:032x}", request.trace_id.0),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "the caller's trace"
    );
    // tower-http's DEBUG events land on its span, typed.
    let finished = request
        .events
        .iter()
        .find(|e| e.name == "finished processing request")
        .expect("tower-http's on_response event");
    assert!(
        finished
            .properties
            .iter()
            .any(|(k, v)| k == "status:int" && v == "200"),
        "{finished:?}"
    );
    assert_eq!(spans.expect("get_user").events[0].name, "profile loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_stack_served_by_hyper() {
    let tracer = tracer();
    let cap = tracewire_test::capture();
    let router = Router::new().route("/users/{id}", get(get_user));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            // tracewire's layer outside tower-http's: the `request` span has a trace to join.
            let svc = ServiceBuilder::new()
                .layer(TraceLayer::with_config(
                    ServerConfig::new().tracer(tracer.clone()),
                ))
                .layer(tower_http::trace::TraceLayer::new_for_http())
                .service(router.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc)),
            );
        }
    });
    let spans = call(addr, &cap).await;
    // No `MatchedPath` outside the router: the span is named by the method.
    assert_nested(&spans, "GET");
    cap.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_route_layers_served_by_axum() {
    let tracer = tracer();
    let cap = tracewire_test::capture();
    // Route layers: the last added is the outermost, so tracewire's wraps tower-http's.
    let router = Router::new()
        .route("/users/{id}", get(get_user))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(TraceLayer::with_config(ServerConfig::new().tracer(tracer)).for_axum());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let spans = call(addr, &cap).await;
    assert_nested(&spans, "GET /users/{id}");
    cap.finish();
}
