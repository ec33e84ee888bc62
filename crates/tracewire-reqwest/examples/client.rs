//! Calls the `server` example's `/ping` with a traced reqwest client and prints the trace.
//!
//! Run (with the server from `tracewire-poem` or the axum example running):
//!
//! ```text
//! cargo run -p tracewire-poem --example server    # terminal 1
//! cargo run -p tracewire-reqwest --example client # terminal 2
//! ```
//!
//! The client starts a trace (`client` span), sends `GET /ping` in a CLIENT span whose
//! context it injects, and prints its side of the trace; the server prints its side under the
//! same trace id.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use reqwest_middleware::ClientBuilder;
use tracewire_core::{Pairs, Propagators, Sampler, SpanKind, Tracer};
use tracewire_export::Pipeline;
use tracewire_export::console::ConsoleTree;
use tracewire_reqwest::{Config, Tracing, UrlTemplate};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pipeline = Pipeline::builder()
        .exporter(ConsoleTree::stdout())
        .build()?;
    fastrace::set_reporter(pipeline.reporter(), fastrace::collector::Config::default());

    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/ping".to_owned());
    let tracer = Tracer::from_env()
        .with_propagators(Propagators::all())
        .with_sampler(Sampler::AlwaysOn);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Tracing::with_config(Config::new().tracer(tracer.clone())))
        .build();

    // No inbound request here: the root rule starts a new trace.
    let root = tracer.start_root("client", SpanKind::Internal, &Pairs::new());
    println!("trace id {:032x}", root.context.trace_id.0);
    let result = root
        .instrument(async {
            let res = client
                .get(&url)
                .with_extension(UrlTemplate("/ping".into()))
                .send()
                .await?;
            let status = res.status();
            let echoed = res
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok::<_, reqwest_middleware::Error>((status, echoed, res.text().await?))
        })
        .await;
    match result {
        Ok((status, echoed, body)) => {
            println!("{status} {body:?} (server's traceparent: {echoed:?})")
        }
        Err(e) => println!("request failed: {e} (is the server example running?)"),
    }
    pipeline.shutdown(Duration::from_secs(5));
    Ok(())
}
