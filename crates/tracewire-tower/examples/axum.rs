//! The `server` example on axum: `/ping` with a traced handler, printing each trace.
//!
//! Run:
//!
//! ```text
//! cargo run -p tracewire-tower --example axum
//! # in another terminal
//! cargo run -p tracewire-reqwest --example client
//! # or: curl -i http://127.0.0.1:8080/ping
//! ```
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tracewire_core::{Propagators, Sampler, Tracer};
use tracewire_export::Pipeline;
use tracewire_export::console::ConsoleTree;
use tracewire_tower::{ServerConfig, TraceLayer};

#[fastrace::trace(short_name = true)]
async fn pong() -> &'static str {
    tokio::time::sleep(Duration::from_millis(2)).await;
    "pong"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let pipeline = Pipeline::builder()
        .exporter(ConsoleTree::stdout())
        .build()?;
    fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());

    let config = ServerConfig::new()
        .tracer(
            Tracer::from_env()
                .with_propagators(Propagators::all())
                .with_sampler(Sampler::AlwaysOn),
        )
        .inject_response_headers(true)
        .exclude(|head| head.uri.path() == "/health");
    let app = Router::new()
        .route("/ping", get(|| async { pong().await }))
        .route("/health", get(|| async { "ok" }))
        .layer(TraceLayer::with_config(config).for_axum());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on http://127.0.0.1:8080 (GET /ping); Ctrl-C to stop");
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    pipeline.shutdown(Duration::from_secs(5));
    served
}
