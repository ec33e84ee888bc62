//! The HTTP client side of the end-to-end load runs in BENCHMARKS.md ("HTTP client: all
//! threads"): a process making reqwest calls as fast as it can to a trivial local HTTP server in
//! another process, one mode per tracing stack.
//!
//! ```text
//! http_client_load server [addr]             # the server (127.0.0.1:18091), on the other CPU
//! http_client_load <mode> [url] [control]    # the client under measurement (control :18092)
//! bash benches/http_client_load.sh           # every mode, interleaved rounds
//! bash benches/http_client_load.sh callgrind # instructions per call, per thread, per mode
//! ```
//!
//! What one call is, in every traced mode: **the user's unit of work — a job, or the handler
//! of a request this process received — with its own span, making one outbound call**: a root
//! span (`job`, INTERNAL) and, under it, the call's CLIENT span with the trace headers written
//! from it; the response body read to its end. Two spans per call; the untraced `plain` mode
//! makes the same call with neither.
//!
//! | mode | the job's span | the call's span and headers | where the spans go |
//! |---|---|---|---|
//! | `plain` | | reqwest alone | |
//! | `reqwest-middleware` | | reqwest through `reqwest_middleware::ClientWithMiddleware` with no middleware: the floor of every middleware-based mode | |
//! | `empty-middleware` | | reqwest-middleware with one middleware that only calls the next (`Passthrough`): what any middleware costs (its boxed future, `Next::run`, the middleware list cloned per request) | |
//! | `tracewire` | `Tracer::start_root` + `Root::instrument`, 100 % sampled | `tracewire_reqwest::Tracing` in reqwest-middleware (W3C `traceparent`) | `tracewire-export`'s pipeline (OTLP mapping, batching) into a sink that takes the OTLP protobuf and counts the spans |
//! | `tracewire-ratio10` | the same, `parentbased(traceidratio 0.1)`: 10 % sampled, the rest propagated | the same | the same |
//! | `tracewire-execute` | as `tracewire` | the same span without reqwest-middleware: `tracewire_reqwest::Tracing::execute` on the plain client | as `tracewire` |
//! | `tracewire-unsampled` | the same, `Sampler::AlwaysOff` (contexts still propagated, `-00`) | the same | the same pipeline (idle) |
//! | `reqwest-tracing` | `tracing::info_span!` + `Instrument` | `reqwest_tracing::TracingMiddleware` (its span), then the injection its `opentelemetry_0_x` features do (global W3C propagator, `Span::current().context()`) written against OpenTelemetry 0.33 — its features stop at 0.32 | `tracing-opentelemetry` into the OpenTelemetry SDK, whose batch processor exports into an exporter that does what `opentelemetry-otlp` does (group, convert, prost-encode), counting the spans |
//! | `fastrace-reqwest` | `fastrace::Span::root` + `in_span` | a `#[fastrace::trace]` function sending with `fastrace_reqwest::traceparent_headers()`, as its docs show (no attributes) | `fastrace-opentelemetry`'s reporter into that same encoding exporter |
//!
//! The client runs `CONCURRENCY` (default 32) tasks, each calling in a loop, on a tokio runtime
//! with `TOKIO_WORKERS` worker threads (default 1); reqwest keeps a connection per task. Its
//! control listener (`tracewire_benches::control`: `GET /_count` = calls completed, `GET
//! /_flush`) is untraced. It stops on SIGTERM or Ctrl-C, printing the calls made, failed, and
//! `spans exported: n`. The server answers every request with `Hello, world!` (hyper HTTP/1,
//! current-thread runtime).
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fastrace::prelude::*;
use tracewire_benches::control::{self, Exporting};
use tracewire_core::{Pairs, Sampler, SpanKind, Tracer};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "tracewire".to_owned());
    if mode == "server" {
        return server(args.next().as_deref().unwrap_or("127.0.0.1:18091"));
    }
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18091/hello/world".to_owned());
    let control_addr = args.next().unwrap_or_else(|| "127.0.0.1:18092".to_owned());
    let env = |var: &str, default: usize| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (workers, concurrency) = (env("TOKIO_WORKERS", 1), env("CONCURRENCY", 32));

    let client = reqwest::Client::new();
    let middleware = || reqwest_middleware::ClientBuilder::new(client.clone());
    // tracewire's tracer of a mode: 100 %, 10 % (the rest propagated) or none sampled.
    let tracer = |mode: &str| {
        Tracer::new().with_sampler(match mode {
            "tracewire-ratio10" => Sampler::parent_based(Sampler::trace_id_ratio(0.1)),
            "tracewire-unsampled" => Sampler::AlwaysOff,
            _ => Sampler::AlwaysOn,
        })
    };
    let exporting = match mode.as_str() {
        "plain" | "reqwest-middleware" | "empty-middleware" => Exporting::none(),
        "tracewire" | "tracewire-ratio10" | "tracewire-unsampled" | "tracewire-execute" => {
            Exporting::tracewire()?
        }
        "reqwest-tracing" => Exporting::tracing_otel("http_client_load")?,
        "fastrace-reqwest" => Exporting::fastrace_otel("fastrace-reqwest"),
        other => return Err(format!("unknown mode {other}").into()),
    };

    if mode != "reqwest-tracing" {
        control::no_tracing_subscriber()?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    rt.block_on(async {
        let control_listener = tokio::net::TcpListener::bind(&control_addr).await?;
        tokio::spawn(control::serve(
            control_listener,
            done.clone(),
            exporting.clone(),
        ));
        println!("{mode} client calling {url}, control on http://{control_addr} ({concurrency} tasks, {workers} worker thread(s))");
        for _ in 0..concurrency {
            let (done, failed, url) = (done.clone(), failed.clone(), url.clone());
            match mode.as_str() {
                "plain" => {
                    let client = client.clone();
                    calls(done, failed, move || {
                        let (client, url) = (client.clone(), url.clone());
                        async move { Ok(client.get(url).send().await?.bytes().await?.len()) }
                    })
                }
                "reqwest-middleware" => {
                    let client = middleware().build();
                    calls(done, failed, move || {
                        let (client, url) = (client.clone(), url.clone());
                        async move { Ok(client.get(url).send().await?.bytes().await?.len()) }
                    })
                }
                "empty-middleware" => {
                    let client = middleware().with(Passthrough).build();
                    calls(done, failed, move || {
                        let (client, url) = (client.clone(), url.clone());
                        async move { Ok(client.get(url).send().await?.bytes().await?.len()) }
                    })
                }
                "tracewire" | "tracewire-ratio10" | "tracewire-unsampled" => {
                    let tracer = tracer(&mode);
                    let tracing = tracewire_reqwest::Tracing::with_config(
                        tracewire_reqwest::Config::new().tracer(tracer.clone()),
                    );
                    let client = middleware().with(tracing).build();
                    calls(done, failed, move || {
                        let (client, url) = (client.clone(), url.clone());
                        tracer
                            .start_root("job", SpanKind::Internal, &Pairs::new())
                            .instrument(async move {
                                Ok(client.get(url).send().await?.bytes().await?.len())
                            })
                    })
                }
                "tracewire-execute" => {
                    let tracer = tracer(&mode);
                    let tracing = tracewire_reqwest::Tracing::with_config(
                        tracewire_reqwest::Config::new().tracer(tracer.clone()),
                    );
                    let client = client.clone();
                    calls(done, failed, move || {
                        let (client, url, tracing) = (client.clone(), url.clone(), tracing.clone());
                        tracer
                            .start_root("job", SpanKind::Internal, &Pairs::new())
                            .instrument(async move {
                                let request = client.get(url).build()?;
                                Ok(tracing.execute(&client, request).await?.bytes().await?.len())
                            })
                    })
                }
                "reqwest-tracing" => {
                    use tracing::Instrument as _;
                    let client = middleware().with(reqwest_tracing::TracingMiddleware::default())
                        .with(InjectW3c)
                        .build();
                    calls(done, failed, move || {
                        let (client, url) = (client.clone(), url.clone());
                        async move { Ok(client.get(url).send().await?.bytes().await?.len()) }
                            .instrument(tracing::info_span!("job"))
                    })
                }
                _ => {
                    let client = client.clone();
                    calls(done, failed, move || {
                        let (client, url) = (client.clone(), url.clone());
                        async move { fastrace_get(&client, url).await }
                            .in_span(Span::root("job", SpanContext::random()))
                    })
                }
            }
        }
        control::terminated().await;
        Ok::<_, Error>(())
    })?;
    println!(
        "calls made: {}, failed: {}",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!("spans exported: {}", exporting.shutdown());
    Ok(())
}

/// Spawns a task making `call` after `call` until the process ends, counting each into `done`
/// or `failed`.
fn calls<F, Fut>(done: Arc<AtomicU64>, failed: Arc<AtomicU64>, mut call: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<usize, Error>> + Send,
{
    tokio::spawn(async move {
        loop {
            match call().await {
                Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                Err(_) => failed.fetch_add(1, Ordering::Relaxed),
            };
        }
    });
}

/// fastrace-reqwest's way (its README): the call in a `#[fastrace::trace]` function, the
/// `traceparent` of the current local parent added to the request.
#[fastrace::trace(name = "GET")]
async fn fastrace_get(client: &reqwest::Client, url: String) -> Result<usize, Error> {
    Ok(client
        .get(url)
        .headers(fastrace_reqwest::traceparent_headers())
        .send()
        .await?
        .bytes()
        .await?
        .len())
}

/// A middleware that only calls the next: the floor of any middleware (`empty-middleware`).
struct Passthrough;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Passthrough {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        next.run(req, extensions).await
    }
}

/// What reqwest-tracing's `opentelemetry_0_x` features do inside its span (`inject_opentelemetry_context_into_request`),
/// written against OpenTelemetry 0.33: the current `tracing` span's OpenTelemetry context into
/// the request's headers through the global propagator.
struct InjectW3c;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for InjectW3c {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(
                &context,
                &mut opentelemetry_http::HeaderInjector(req.headers_mut()),
            );
        });
        next.run(req, extensions).await
    }
}

/// The server: `Hello, world!` to every request, HTTP/1, one thread.
fn server(addr: &str) -> Result<(), Error> {
    use hyper::service::service_fn;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("server on http://{addr}/");
        let stop = control::terminated();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = accepted?;
                    stream.set_nodelay(true)?;
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new().serve_connection(
                            hyper_util::rt::TokioIo::new(stream),
                            service_fn(|_req| async {
                                Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::from_static(b"Hello, world!"),
                                )))
                            }),
                        ),
                    );
                }
                () = &mut stop => return Ok(()),
            }
        }
    })
}
