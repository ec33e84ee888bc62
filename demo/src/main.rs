//! The tracewire demo: four small services, each in its own process with its own
//! `service.name`, in one trace, and an order pipeline across five brokers — shown in the
//! embedded viewer.
//!
//! ```text
//! cargo run --release -p tracewire-demo
//! ```
//!
//! ```text
//! client ──HTTP──▶ gateway (poem) ──gRPC──▶ backend (tonic) ──HTTP, B3──▶ inventory (axum)
//! inventory (axum) ──HTTP, Jaeger `uber-trace-id`──▶ pricing (poem)
//! gateway ─NATS─▶ payments ─Redis stream─▶ warehouse ─RabbitMQ─▶ shipping ─MQTT─▶ notifications ─Kafka─▶ ledger
//! ```
//!
//! The order pipeline's workers are in `pipeline.rs`; where its brokers come from (running,
//! private ones started with `scripts/services.sh`, or skipped) in `brokers.rs`. `--brokers
//! <list>` (or `TRACEWIRE_DEMO_BROKERS`: `all`, `none`, `nats,redis,...`) picks the brokers.
//!
//! The program starts the viewer (UI on <http://127.0.0.1:16686/>, or a free port when that
//! one is taken), starts itself once per service (`--role <name> ...`), sends the gateway a
//! few requests (two that succeed, a 404 and one that fails in pricing), prints the viewer URL
//! and serves until Ctrl-C. `--once` (or `TRACEWIRE_DEMO_ONCE=1`) waits until the traces are in
//! the viewer, prints them as trees and exits (that is what its test runs).
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, no viewer
//! is started: every service exports there instead (any OTLP collector, Jaeger, or
//! `tracewire view`). Other options: `--ui-port <port>` (0: any free port), `--gateway-port
//! <port>` (default: any free port).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tracewire_core::{Format, Propagators, Tracer};
use tracewire_demo::{REQUESTS, SERVICES, hex_id, render_traces};

use brokers::Brokers;
use pipeline::{BatchSize, Hop, ROUTE_ENV, route_to_env};

mod brokers;
mod pipeline;

/// How long `--once` waits for the orders to come through the pipeline.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The trace-context headers the B3 and Jaeger hops' servers record as
/// `http.request.header.<name>`, to show in the viewer which one each hop used.
const CONTEXT_HEADERS: [&str; 3] = ["traceparent", "b3", "uber-trace-id"];

/// The propagators of the backend → inventory hop (both sides).
fn b3() -> Tracer {
    Tracer::global().with_propagators(Propagators::new([Format::B3]))
}

/// The propagators of the inventory → pricing hop (both sides).
fn jaeger() -> Tracer {
    Tracer::global().with_propagators(Propagators::new([Format::Jaeger]))
}

// ---------------------------------------------------------------------------------------------
// The services (each runs in its own process, `--role <name>`).
// ---------------------------------------------------------------------------------------------

/// pricing (poem): `GET /price/:item`; the price of `broken` fails with a 500.
mod pricing {
    use poem::http::{HeaderName, StatusCode};
    use poem::web::Path;
    use poem::{EndpointExt as _, Route, get, handler};

    #[handler]
    async fn price(Path(item): Path<String>) -> poem::Result<String> {
        match item.as_str() {
            "book" => Ok("12.50".into()),
            "lamp" => Ok("39.90".into()),
            "broken" => Err(poem::Error::from_string(
                "price database unavailable",
                StatusCode::INTERNAL_SERVER_ERROR,
            )),
            _ => Err(poem::Error::from_status(StatusCode::NOT_FOUND)),
        }
    }

    pub(crate) async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
        // Record which header carried the context: `uber-trace-id`, never `traceparent`.
        let tracing = tracewire_poem::Tracing::with_config(
            tracewire_poem::Config::new()
                .tracer(super::jaeger())
                .capture_request_headers(super::CONTEXT_HEADERS.map(HeaderName::from_static)),
        );
        let app = Route::new().at("/price/:item", get(price).with(tracing));
        poem::Server::new_with_acceptor(poem::listener::TcpAcceptor::from_tokio(listener)?)
            .run(app)
            .await
    }
}

/// inventory (axum): `GET /stock/{item}` looks the item up, then asks pricing (Jaeger hop).
mod inventory {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderName, StatusCode};
    use axum::routing::get;
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
    use tracewire_reqwest::{Config, Tracing, UrlTemplate};
    use tracewire_tower::{ServerConfig, TraceLayer};

    #[derive(Clone)]
    struct App {
        client: ClientWithMiddleware,
        pricing: SocketAddr,
    }

    #[fastrace::trace(short_name = true)]
    async fn lookup_stock(item: &str) -> Option<u32> {
        match item {
            "book" => Some(3),
            "lamp" => Some(7),
            "broken" => Some(1),
            _ => None,
        }
    }

    async fn stock(
        State(app): State<App>,
        Path(item): Path<String>,
    ) -> Result<String, (StatusCode, String)> {
        let Some(count) = lookup_stock(&item).await else {
            return Err((StatusCode::NOT_FOUND, format!("no such item: {item}")));
        };
        let url = format!("http://{}/price/{item}", app.pricing);
        let res = app
            .client
            .get(url)
            .with_extension(UrlTemplate("/price/:item".into()))
            .send()
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, format!("pricing: {e}")))?;
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err((StatusCode::BAD_GATEWAY, format!("pricing: {status} {body}")));
        }
        Ok(format!("{item}: {count} in stock at {body}"))
    }

    pub(crate) async fn serve(
        listener: tokio::net::TcpListener,
        pricing: SocketAddr,
    ) -> std::io::Result<()> {
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(Tracing::with_config(Config::new().tracer(super::jaeger())))
            .build();
        let app = Router::new()
            .route("/stock/{item}", get(stock))
            .with_state(App { client, pricing })
            // Record which header carried the context: `b3`, never `traceparent`.
            .layer(
                TraceLayer::with_config(
                    ServerConfig::new()
                        .tracer(super::b3())
                        .capture_request_headers(
                            super::CONTEXT_HEADERS.map(HeaderName::from_static),
                        ),
                )
                .for_axum(),
            );
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    }
}

/// The generated messages, client and server of `proto/shop.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod pb {
    tonic::include_proto!("shop.v1");
}

/// backend (tonic): the `Checkout/Buy` RPC takes an item and asks inventory (B3 hop).
mod backend {
    use std::net::SocketAddr;

    use super::pb::checkout_server::{Checkout, CheckoutServer};
    use super::pb::{CheckoutReply, CheckoutRequest};
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
    use tonic::transport::Server;
    use tonic::transport::server::TcpIncoming;
    use tonic::{Request, Response, Status};
    use tracewire_reqwest::{Config, Tracing, UrlTemplate};
    use tracewire_tonic::GrpcServerLayer;

    struct Backend {
        client: ClientWithMiddleware,
        inventory: SocketAddr,
    }

    #[tonic::async_trait]
    impl Checkout for Backend {
        async fn buy(
            &self,
            request: Request<CheckoutRequest>,
        ) -> Result<Response<CheckoutReply>, Status> {
            let item = request.into_inner().item;
            let url = format!("http://{}/stock/{item}", self.inventory);
            let res = self
                .client
                .get(url)
                .with_extension(UrlTemplate("/stock/{item}".into()))
                .send()
                .await
                .map_err(|e| Status::unavailable(format!("inventory: {e}")))?;
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            match status.as_u16() {
                200 => Ok(Response::new(CheckoutReply { summary: body })),
                404 => Err(Status::not_found(body)),
                _ => Err(Status::unavailable(format!("inventory: {status} {body}"))),
            }
        }
    }

    pub(crate) async fn serve(
        listener: tokio::net::TcpListener,
        inventory: SocketAddr,
    ) -> Result<(), tonic::transport::Error> {
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(Tracing::with_config(Config::new().tracer(super::b3())))
            .build();
        Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(CheckoutServer::new(Backend { client, inventory }))
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
    }
}

/// gateway (poem): `GET /checkout/:item` calls the backend over gRPC.
mod gateway {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::pb::CheckoutRequest;
    use super::pb::checkout_client::CheckoutClient;
    use super::pipeline::{Hop, Outbox};
    use poem::http::StatusCode;
    use poem::web::{Data, Path};
    use poem::{EndpointExt as _, Route, get, handler};
    use tonic::Code;
    use tonic::transport::{Channel, Endpoint};
    use tower_layer::Layer as _;
    use tracewire_tonic::GrpcClientLayer;
    use tracewire_tonic::client::GrpcClientService;

    type Backend = CheckoutClient<GrpcClientService<Channel>>;

    /// Where the gateway sends order events: the first hop of the pipeline that runs.
    type Orders = Option<Arc<(Hop, Outbox)>>;

    #[handler]
    async fn checkout(
        Path(item): Path<String>,
        Data(backend): Data<&Backend>,
        Data(orders): Data<&Orders>,
    ) -> poem::Result<String> {
        match backend
            .clone()
            .buy(CheckoutRequest { item: item.clone() })
            .await
        {
            Ok(reply) => {
                // The order event: its send span is the child of this request's span.
                if let Some((hop, outbox)) = orders.as_deref() {
                    if let Err(e) = outbox.send(*hop, &item).await {
                        eprintln!("order {item}: sending to {} failed: {e}", hop.label());
                    }
                }
                Ok(reply.into_inner().summary + "\n")
            }
            Err(status) => {
                let code = match status.code() {
                    Code::NotFound => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_GATEWAY,
                };
                Err(poem::Error::from_string(status.message().to_owned(), code))
            }
        }
    }

    pub(crate) async fn serve(
        listener: tokio::net::TcpListener,
        backend: SocketAddr,
    ) -> Result<(), super::BoxError> {
        let endpoint = Endpoint::from_shared(format!("http://{backend}"))?;
        let channel = endpoint.connect().await?;
        let backend: Backend = CheckoutClient::new(
            GrpcClientLayer::new()
                .with_server_uri(endpoint.uri())
                .layer(channel),
        );
        let route = super::pipeline::route_from_env();
        let orders: Orders = Outbox::next(&route, None, "gateway").await?.map(Arc::new);
        let tracing = tracewire_poem::Tracing::new();
        let app = Route::new()
            .at("/checkout/:item", get(checkout).with(tracing))
            .data(backend)
            .data(orders);
        poem::Server::new_with_acceptor(poem::listener::TcpAcceptor::from_tokio(listener)?)
            .run(app)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// One service process.
// ---------------------------------------------------------------------------------------------

/// Runs one service: exports under `service.name` = `role` (where the parent's environment
/// says), prints its address on the first line of stdout, serves until stdin closes (the
/// parent is done) or Ctrl-C, then flushes its spans.
async fn run_service(
    role: &str,
    port: u16,
    next: Option<SocketAddr>,
    batch: BatchSize,
) -> Result<(), BoxError> {
    let guard = tracewire::builder().service_name(role).init();
    let serve = async {
        // A worker of the order pipeline prints `ready` once subscribed.
        if let Some(hop) = Hop::from_worker(role) {
            return pipeline::run_worker(hop, next, batch).await;
        }
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("{role}: cannot listen on 127.0.0.1:{port}: {e}"))?;
        println!("{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let next = || next.ok_or_else(|| format!("--role {role} needs --next <addr>"));
        let served: Result<(), BoxError> = match role {
            "pricing" => pricing::serve(listener).await.map_err(Into::into),
            "inventory" => inventory::serve(listener, next()?)
                .await
                .map_err(Into::into),
            "backend" => backend::serve(listener, next()?).await.map_err(Into::into),
            "gateway" => gateway::serve(listener, next()?).await,
            other => Err(format!("unknown role {other:?}").into()),
        };
        served
    };
    let stdin_closed = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    let result = tokio::select! {
        served = serve => served,
        _ = stdin_closed => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    drop(guard); // flush this service's spans
    result
}

// ---------------------------------------------------------------------------------------------
// The parent: viewer, service processes, traffic.
// ---------------------------------------------------------------------------------------------

/// The service processes; dropping this closes their stdin (they flush and exit), waits a
/// little, then kills whatever is left — on every path out of the parent, errors included.
struct Services {
    children: Vec<(&'static str, Child)>,
    /// Each `done <item>` line of a service (the last hop of the order pipeline).
    done: mpsc::Sender<String>,
}

impl Services {
    /// Starts `role` with `args` and returns its first line of output (its address, or
    /// `ready`); the rest of its output is copied to ours, prefixed by its name.
    fn spawn(
        &mut self,
        role: &'static str,
        args: &[String],
        env: &[(&str, String)],
    ) -> Result<String, BoxError> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["--role", role])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("OTEL_SERVICE_NAME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take();
        self.children.push((role, child));
        let mut lines = BufReader::new(stdout.ok_or("no stdout")?).lines();
        let first = lines
            .next()
            .ok_or_else(|| format!("the {role} service exited before it was ready"))??;
        let done = self.done.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(item) = line.strip_prefix("done ") {
                    let _ = done.send(item.to_owned());
                }
                println!("[{role}] {line}");
            }
        });
        Ok(first.trim().to_owned())
    }

    /// Starts the server `role` on `port` (0: any), calling `next`; returns its address.
    fn spawn_server(
        &mut self,
        role: &'static str,
        next: Option<SocketAddr>,
        port: u16,
        env: &[(&str, String)],
    ) -> Result<SocketAddr, BoxError> {
        let mut args = vec!["--port".to_owned(), port.to_string()];
        if let Some(next) = next {
            args.extend(["--next".to_owned(), next.to_string()]);
        }
        Ok(self.spawn(role, &args, env)?.parse()?)
    }

    /// Closes every stdin, waits up to `grace` for the processes to exit, kills the rest.
    fn stop(&mut self, grace: Duration) {
        for (_, child) in &mut self.children {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + grace;
        for (role, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {
                        eprintln!("the {role} service did not stop in time: killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

struct Options {
    once: bool,
    ui_port: u16,
    gateway_port: u16,
    /// The brokers the order pipeline may use (`--brokers`).
    hops: Vec<Hop>,
}

/// `--brokers` / `TRACEWIRE_DEMO_BROKERS`: `all` (the default), `none`, or names of
/// `scripts/services.sh` separated by commas (`nats,kafka`).
fn parse_hops(list: &str) -> Result<Vec<Hop>, BoxError> {
    match list.trim() {
        "" | "all" => Ok(Hop::ALL.to_vec()),
        "none" => Ok(Vec::new()),
        list => {
            let named = list
                .split(',')
                .map(|n| Hop::from_name(n.trim()).ok_or_else(|| format!("--brokers: unknown broker {n:?} (nats, redis, rabbitmq, mqtt, kafka, all, none)")))
                .collect::<Result<Vec<_>, _>>()?;
            // chain order, whatever order they were named in
            Ok(Hop::ALL.into_iter().filter(|h| named.contains(h)).collect())
        }
    }
}

fn collector_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .into_iter()
    .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
}

async fn run_parent(opts: Options) -> Result<bool, BoxError> {
    // Ctrl-C from now on ends the demo through its normal way out (services and private
    // brokers stopped), whenever it comes: the service processes get it too and exit, which
    // ends whatever the parent was doing with them.
    let (interrupt, interrupted) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = interrupt.send(());
        }
    });
    // Where the services export: the embedded viewer, or the collector the environment names.
    let mut env: Vec<(&str, String)> = Vec::new();
    if std::env::var_os("OTEL_BSP_SCHEDULE_DELAY").is_none() {
        // traces show up in the UI within half a second
        env.push(("OTEL_BSP_SCHEDULE_DELAY", "500".into()));
    }
    let viewer = match collector_endpoint() {
        Some(endpoint) => {
            println!("OTEL_EXPORTER_OTLP_ENDPOINT is set: the services export to {endpoint}");
            None
        }
        None => {
            let viewer = tracewire_viewer::ViewerBuilder::embedded()
                .ui(Some(opts.ui_port))
                .start()
                .await?;
            let ui = viewer.addrs().ui.ok_or("the viewer has no UI address")?;
            if opts.ui_port != 0 && ui.port() != opts.ui_port {
                println!(
                    "port {} is taken (another viewer or Jaeger?): the viewer is on port {} instead",
                    opts.ui_port,
                    ui.port()
                );
            }
            // The UI port also accepts OTLP/HTTP (`POST /v1/traces`).
            env.push(("OTEL_TRACES_EXPORTER", "otlp".into()));
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{ui}")));
            env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()));
            Some(viewer)
        }
    };

    let hops = opts.hops.clone();
    let brokers = if hops.is_empty() {
        println!("order pipeline: off (--brokers none)");
        Brokers::none()
    } else {
        println!("order pipeline brokers:");
        tokio::task::spawn_blocking(move || Brokers::find(&hops)).await?
    };
    let result = drive(&opts, &env, viewer.as_ref(), &brokers.route, interrupted).await;
    if let Some(viewer) = viewer {
        viewer.shutdown().await;
    }
    // Stops the private brokers.
    tokio::task::spawn_blocking(move || drop(brokers)).await?;
    result
}

/// `hops ran: nats redis ... (2 of 2 orders through); skipped: kafka`.
fn hops_ran(wanted: &[Hop], route: &[(Hop, String)], through: usize, sent: usize) -> String {
    let names = |hops: Vec<Hop>| {
        if hops.is_empty() {
            "none".to_owned()
        } else {
            hops.iter().map(|h| h.name()).collect::<Vec<_>>().join(" ")
        }
    };
    let ran: Vec<Hop> = route.iter().map(|(hop, _)| *hop).collect();
    let skipped: Vec<Hop> = wanted
        .iter()
        .copied()
        .filter(|h| !ran.contains(h))
        .collect();
    let mut line = format!(
        "hops ran: {} ({through} of {sent} orders through)",
        names(ran)
    );
    if !skipped.is_empty() {
        line.push_str(&format!("; skipped: {}", names(skipped)));
    }
    line
}

/// The order pipeline as one line: `gateway ─NATS─▶ payments ─...`.
fn pipeline_line(route: &[(Hop, String)]) -> String {
    let mut line = String::from("gateway");
    for (hop, _) in route {
        line.push_str(&format!(" ─{}─▶ {}", hop.label(), hop.worker()));
    }
    line
}

async fn drive(
    opts: &Options,
    env: &[(&str, String)],
    viewer: Option<&tracewire_viewer::RunningViewer>,
    route: &[(Hop, String)],
    interrupted: tokio::sync::oneshot::Receiver<()>,
) -> Result<bool, BoxError> {
    let gateway_port = opts.gateway_port;
    // The checkouts that succeed each send an order down the pipeline.
    let orders = REQUESTS.iter().filter(|(_, status)| *status == 200).count();
    let batch = if opts.once {
        // every order of this run in one batch (the test asserts its links)
        BatchSize {
            max: orders,
            linger: Duration::from_secs(20),
        }
    } else {
        BatchSize {
            max: 10,
            linger: Duration::from_secs(2),
        }
    };
    let (done_tx, done_rx) = mpsc::channel();
    let (mut services, gateway) = tokio::task::spawn_blocking({
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        env.push((ROUTE_ENV.to_owned(), route_to_env(route)));
        let route = route.to_vec();
        move || -> Result<(Services, SocketAddr), BoxError> {
            let env: Vec<(&str, String)> =
                env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let mut services = Services {
                children: Vec::new(),
                done: done_tx,
            };
            let pricing = services.spawn_server("pricing", None, 0, &env)?;
            let inventory = services.spawn_server("inventory", Some(pricing), 0, &env)?;
            let backend = services.spawn_server("backend", Some(inventory), 0, &env)?;
            // The workers, last hop first: each is subscribed before anything is sent to it.
            for (hop, _) in route.iter().rev() {
                let args: Vec<String> = match hop {
                    Hop::Nats => vec!["--next".into(), pricing.to_string()],
                    Hop::Kafka => vec![
                        "--batch".into(),
                        batch.max.to_string(),
                        "--linger-ms".into(),
                        batch.linger.as_millis().to_string(),
                    ],
                    _ => Vec::new(),
                };
                let first = services.spawn(hop.worker(), &args, &env)?;
                if first != "ready" {
                    return Err(format!("the {} worker said {first:?}", hop.worker()).into());
                }
            }
            let gateway = services.spawn_server("gateway", Some(backend), gateway_port, &env)?;
            Ok((services, gateway))
        }
    })
    .await??;
    println!(
        "services: gateway (poem) http://{gateway} → backend (tonic, gRPC) → inventory (axum, B3) → pricing (poem, Jaeger)"
    );

    if route.is_empty() {
        println!("order pipeline: off (no broker)");
    } else {
        println!("order pipeline: {}", pipeline_line(route));
    }

    // Some traffic, from a client that is not traced: each request starts a trace at the gateway.
    let client = reqwest::Client::new();
    let mut as_expected = true;
    for (path, expected) in REQUESTS {
        let res = client.get(format!("http://{gateway}{path}")).send().await?;
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        println!("GET {path} -> {status} {}", body.trim());
        if status != expected {
            eprintln!("expected {expected} for {path}");
            as_expected = false;
        }
    }

    let sent = if route.is_empty() { 0 } else { orders };

    if !opts.once {
        if let Some(viewer) = viewer {
            if let Some(url) = viewer.ui_url() {
                println!("\nSee the traces: {url}");
            }
        }
        println!("Send more: curl http://{gateway}/checkout/book (or lamp, unicorn, broken)");
        println!("Ctrl-C to stop.");
        let _ = interrupted.await;
        tokio::task::spawn_blocking(move || services.stop(Duration::from_secs(10))).await?;
        return Ok(as_expected);
    }

    // --once: every order through the pipeline (the last hop says `done`), then the services
    // flush as they exit; then the traces are complete.
    let through = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + PIPELINE_TIMEOUT;
        let mut through = 0;
        while through < sent {
            let left = deadline.saturating_duration_since(Instant::now());
            match done_rx.recv_timeout(left) {
                Ok(_) => through += 1,
                Err(_) => break,
            }
        }
        through
    })
    .await?;
    if through < sent {
        eprintln!(
            "only {through} of {sent} orders came through the pipeline within {PIPELINE_TIMEOUT:?}"
        );
        as_expected = false;
    }
    println!("{}", hops_ran(&opts.hops, route, through, sent));
    tokio::task::spawn_blocking(move || services.stop(Duration::from_secs(20))).await?;
    let Some(viewer) = viewer else {
        println!("done: the traces are in the collector");
        return Ok(as_expected);
    };
    let traces = settled_traces(viewer.store()).await;
    let mut all_services = true;
    let spans: Vec<&[_]> = traces.iter().map(|(_, spans)| spans.as_slice()).collect();
    for ((id, _), tree) in traces.iter().zip(render_traces(&spans)) {
        println!("\ntrace {}", hex_id(id));
        print!("{tree}");
    }
    let workers = route.iter().map(|(hop, _)| hop.worker());
    for service in SERVICES.into_iter().chain(workers) {
        if !viewer.store().services().iter().any(|s| s == service) {
            eprintln!("no span of service {service} in the viewer");
            all_services = false;
        }
    }
    // The ledger's batch is a trace of its own, linked to the orders'.
    let batches = usize::from(sent > 0 && route.iter().any(|(hop, _)| *hop == Hop::Kafka));
    let expected = REQUESTS.len() + batches;
    let complete = traces.len() == expected;
    if !complete {
        eprintln!("{} traces in the viewer, expected {expected}", traces.len());
    }
    if let Some(url) = viewer.ui_url() {
        println!("\nviewer: {url} (stopping: --once)");
    }
    Ok(as_expected && all_services && complete)
}

/// The traces in `store`, oldest first, once the span count has stopped changing (at most
/// 10 s).
async fn settled_traces(
    store: &tracewire_viewer::Store,
) -> Vec<([u8; 16], Vec<tracewire_viewer::store::StoredSpan>)> {
    let query = tracewire_viewer::Query {
        limit: 0,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    loop {
        let spans = store.stats().spans;
        if last == Some(spans) || Instant::now() > deadline {
            break;
        }
        last = Some(spans);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut traces = store.search_traces(&query);
    traces.sort_by_key(|(_, spans)| {
        spans
            .iter()
            .map(|s| s.span.start_time_unix_nano)
            .min()
            .unwrap_or(0)
    });
    traces
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if let Some(role) = arg_value(&args, "--role") {
        let next = arg_value(&args, "--next").and_then(|a| a.parse().ok());
        let port = arg_value(&args, "--port").and_then(|p| p.parse().ok());
        let batch = BatchSize {
            max: arg_value(&args, "--batch")
                .and_then(|n| n.parse().ok())
                .unwrap_or(10),
            linger: Duration::from_millis(
                arg_value(&args, "--linger-ms")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(2000),
            ),
        };
        runtime
            .block_on(run_service(&role, port.unwrap_or(0), next, batch))
            .map(|()| true)
    } else {
        let port = |name: &str, default: u16| -> Result<u16, BoxError> {
            arg_value(&args, name).map_or(Ok(default), |p| {
                p.parse().map_err(|e| format!("{name} {p}: {e}").into())
            })
        };
        let opts = port("--ui-port", tracewire_viewer::UI_PORT).and_then(|ui_port| {
            Ok(Options {
                once: args.iter().any(|a| a == "--once")
                    || std::env::var("TRACEWIRE_DEMO_ONCE").is_ok_and(|v| v == "1"),
                ui_port,
                gateway_port: port("--gateway-port", 0)?,
                hops: parse_hops(
                    &arg_value(&args, "--brokers")
                        .or_else(|| std::env::var("TRACEWIRE_DEMO_BROKERS").ok())
                        .unwrap_or_default(),
                )?,
            })
        });
        opts.and_then(|opts| runtime.block_on(run_parent(opts)))
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
