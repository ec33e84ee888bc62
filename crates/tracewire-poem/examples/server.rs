//! A poem server with one traced route, printing each trace to the console.
//!
//! Run:
//!
//! ```text
//! cargo run -p tracewire-poem --example server
//! # in another terminal
//! cargo run -p tracewire-reqwest --example client
//! # or: curl -i http://127.0.0.1:8080/ping
//! ```
//!
//! The server continues the caller's trace (W3C `traceparent`, B3 and Jaeger are all read),
//! writes the trace headers into its responses, and prints one tree per trace:
//!
//! ```text
//! trace 4bf92f3577b34da6a3ce929d0e0e4736
//!   GET /ping [server] ... http.route="/ping" http.response.status_code=200
//!     pong [internal] ...
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use poem::listener::TcpListener;
use poem::{EndpointExt, Route, Server, get, handler};
use tracewire_core::{Propagators, Sampler, Tracer};
use tracewire_export::Pipeline;
use tracewire_export::console::ConsoleTree;
use tracewire_poem::{Config, Tracing};

#[fastrace::trace(short_name = true)]
async fn pong() -> &'static str {
    tokio::time::sleep(Duration::from_millis(2)).await;
    "pong"
}

#[handler]
async fn ping() -> &'static str {
    pong().await
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let pipeline = Pipeline::builder()
        .exporter(ConsoleTree::stdout())
        .build()?;
    fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());

    let config = Config::new()
        .tracer(
            Tracer::from_env()
                .with_propagators(Propagators::all())
                .with_sampler(Sampler::AlwaysOn),
        )
        .inject_response_headers(true)
        .exclude(|head| head.uri.path() == "/health");
    let tracing = Tracing::with_config(config);
    let app = Route::new()
        .at("/ping", get(ping).with(tracing.clone()))
        .at("/health", get(ping).with(tracing));

    println!("listening on http://127.0.0.1:8080 (GET /ping); Ctrl-C to stop");
    let served = Server::new(TcpListener::bind("127.0.0.1:8080"))
        .run_with_graceful_shutdown(
            app,
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            Some(Duration::from_secs(2)),
        )
        .await;
    pipeline.shutdown(Duration::from_secs(5));
    served
}
