//! The pattern of the `tracing` services that tracewire-tracing is for: an HTTP gateway (axum)
//! that calls a gRPC backend (tonic), both written with `#[tracing::instrument]`, now in one
//! tracewire trace. The HTTP and gRPC spans come from tracewire's layers
//! (`tracewire_tower::TraceLayer`, `tracewire_tonic::{GrpcClientLayer, GrpcServerLayer}`); the
//! `#[instrument]` spans come from the `tracing` layer that `tracewire::builder()` installs,
//! nested under them, with typed fields. One backend function is a `#[fastrace::trace]` to show
//! that both kinds of span mix, in either direction. The trace:
//!
//! ```text
//! gateway  GET /orders/{id}                  [server]    tracewire-tower
//! gateway    get_order                                   #[instrument] order.id=42 (int)
//! gateway      validate                                  #[instrument(err)], sync
//! gateway      fetch_order                               #[instrument] + an event
//! gateway        tracewire.test.v1.Echo/Unary [client]   tracewire-tonic
//! backend          tracewire.test.v1.Echo/Unary [server] tracewire-tonic
//! backend            handle_order                        #[instrument] order.id=42, express=true
//! backend              load_price                        #[fastrace::trace]
//! backend                apply_discount                  #[instrument] percent=10.0 (double)
//! ```
//!
//! The gateway and the backend are two processes (the gateway starts the backend), each
//! exporting under its own `service.name` (`gateway`, `order-backend`). Run it and ask it
//! something:
//!
//! ```text
//! cargo run -p tracewire-tracing --example instrumented_gateway
//! curl http://127.0.0.1:3000/orders/42
//! ```
//!
//! or let it send one request to itself and exit:
//!
//! ```text
//! cargo run -p tracewire-tracing --example instrumented_gateway -- --once
//! ```
//!
//! Spans go where the `OTEL_*` variables say (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT` to see both
//! services in Jaeger); with neither `OTEL_TRACES_EXPORTER` nor an OTLP endpoint set, each
//! process prints its part of the trace as a tree on stdout. `GATEWAY_ADDR` changes the
//! listening address (default `127.0.0.1:3000`). `tests/instrumented_gateway.rs` runs it with
//! `--once` against a collector of its own and checks the trace.

#![allow(clippy::print_stdout, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};
use tower_layer::Layer as _;
use tracewire_tonic::client::GrpcClientService;
use tracewire_tonic::{GrpcClientLayer, GrpcServerLayer};
use tracewire_tonic_testproto::pb::echo_client::EchoClient;
use tracewire_tonic_testproto::pb::echo_server::{Echo, EchoServer};
use tracewire_tonic_testproto::pb::{EchoRequest, EchoResponse};
use tracewire_tonic_testproto::{EchoService, Ticks};
use tracewire_tower::TraceLayer;

// ---- the gateway ----

/// The gateway's gRPC client for the backend, traced by [`GrpcClientLayer`].
pub type Backend = EchoClient<GrpcClientService<Channel>>;

/// Why the gateway could not answer.
#[derive(Debug)]
pub enum OrderError {
    /// Order ids start at 1.
    InvalidId,
    /// The backend failed.
    Backend(Status),
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderError::InvalidId => f.write_str("order ids start at 1"),
            OrderError::Backend(s) => write!(f, "backend: {}", s.message()),
        }
    }
}

impl std::error::Error for OrderError {}

/// The gateway: `GET /orders/{id}` asks the backend, behind tracewire-tower's HTTP
/// [`TraceLayer`].
pub fn gateway(backend: Backend) -> Router {
    Router::new()
        .route("/orders/{id}", get(order))
        .with_state(backend)
        .layer(TraceLayer::axum())
}

async fn order(
    State(backend): State<Backend>,
    Path(id): Path<u64>,
) -> Result<String, (StatusCode, String)> {
    match get_order(backend, id).await {
        Ok(order) => Ok(order + "\n"),
        Err(e @ OrderError::InvalidId) => Err((StatusCode::BAD_REQUEST, e.to_string())),
        Err(e @ OrderError::Backend(_)) => Err((StatusCode::BAD_GATEWAY, e.to_string())),
    }
}

/// The request's work: an `#[instrument]` span with a typed field, under the HTTP server span.
#[tracing::instrument(skip(backend), fields(order.id = id))]
pub async fn get_order(backend: Backend, id: u64) -> Result<String, OrderError> {
    validate(id)?;
    fetch_order(backend, id).await
}

/// A synchronous `#[instrument(err)]` function: an `Err` marks its span as failed, with an
/// exception event.
#[tracing::instrument(err)]
pub fn validate(id: u64) -> Result<(), OrderError> {
    if id == 0 {
        return Err(OrderError::InvalidId);
    }
    Ok(())
}

/// The gRPC call: tracewire-tonic's client span nests under this `#[instrument]` span and
/// carries the trace to the backend.
#[tracing::instrument(skip_all, fields(order.id = id, express))]
pub async fn fetch_order(mut backend: Backend, id: u64) -> Result<String, OrderError> {
    let express = id % 2 == 0;
    tracing::Span::current().record("express", express);
    let request = EchoRequest {
        message: format!("{id} {express}"),
        ..Default::default()
    };
    let reply = backend
        .unary(request)
        .await
        .map_err(OrderError::Backend)?
        .into_inner();
    tracing::info!(reply.len = reply.message.len(), "backend answered");
    Ok(reply.message)
}

/// Connects the gateway to the backend at `addr`, through [`GrpcClientLayer`].
pub async fn connect_backend(addr: SocketAddr) -> Result<Backend, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let channel = endpoint.connect().await?;
    Ok(EchoClient::new(
        GrpcClientLayer::new()
            .with_server_uri(endpoint.uri())
            .layer(channel),
    ))
}

// ---- the backend ----

/// The backend's `Echo` service: `Unary` answers an order's price; the streaming methods are
/// the test service's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Orders;

#[tonic::async_trait]
impl Echo for Orders {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let message = request.into_inner().message;
        let (id, express) = message
            .split_once(' ')
            .and_then(|(id, express)| Some((id.parse().ok()?, express.parse().ok()?)))
            .ok_or_else(|| Status::invalid_argument("expected `<id> <express>`"))?;
        Ok(Response::new(EchoResponse {
            message: handle_order(id, express).await,
            ..Default::default()
        }))
    }

    type ServerStreamStream = Ticks;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Ticks>, Status> {
        EchoService.server_stream(request).await
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        EchoService.client_stream(request).await
    }
}

/// The backend's work, under tracewire-tonic's gRPC server span.
#[tracing::instrument]
pub async fn handle_order(id: u64, express: bool) -> String {
    let cents = load_price(id).await;
    format!("order {id}: {}.{:02} EUR", cents / 100, cents % 100)
}

/// A fastrace span between two `tracing` spans: its parent is `handle_order`, and it is the
/// parent of `apply_discount`.
#[fastrace::trace(short_name = true)]
pub async fn load_price(id: u64) -> u64 {
    apply_discount(1_000 + id, 10.0)
}

/// A `tracing` span under a fastrace span, with an `f64` field.
#[tracing::instrument]
pub fn apply_discount(cents: u64, percent: f64) -> u64 {
    cents - (cents as f64 * percent / 100.0) as u64
}

/// Serves [`Orders`] behind [`GrpcServerLayer`].
pub async fn serve_backend(
    listener: tokio::net::TcpListener,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(GrpcServerLayer::new())
        .add_service(EchoServer::new(Orders))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
}

// ---- the two processes ----

/// A minimal HTTP/1.1 GET (no client library needed): returns the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Installs tracewire for this process under `service_name`, with the global `tracing`
/// subscriber that records `#[instrument]` spans in its traces (and puts trace ids on log
/// lines). With no exporter configured by `OTEL_*`, spans are printed as trees.
fn init(service_name: &str) -> tracewire::Guard {
    let mut builder = tracewire::builder()
        .service_name(service_name)
        .install_tracing_subscriber(true);
    let configured = [
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ];
    if configured.iter().all(|v| std::env::var_os(v).is_none()) {
        builder = builder.exporter(tracewire::export::console::ConsoleTree::stdout());
    }
    builder.init()
}

/// What the backend prints before its address.
const LISTENING: &str = "order-backend listening on ";

/// The backend process: prints its address (after [`LISTENING`]), serves until its stdin
/// closes (the gateway is done) or Ctrl-C.
pub async fn run_backend() -> Result<(), Box<dyn std::error::Error>> {
    let guard = init("order-backend");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{LISTENING}{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let stdin_closed = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    tokio::select! {
        served = serve_backend(listener) => served?,
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(guard);
    Ok(())
}

/// Starts the backend process with `command` and reads its address; its other output is
/// copied to ours.
fn spawn_backend(mut command: Command) -> Result<(Child, SocketAddr), Box<dyn std::error::Error>> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().ok_or("the backend exited")??;
        match line.split_once(LISTENING) {
            Some((_, addr)) => break addr.trim().parse()?,
            None => println!("[order-backend] {line}"),
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("[order-backend] {line}");
        }
    });
    Ok((child, addr))
}

/// The gateway process: starts the backend with `backend` and serves; with `once`, sends
/// itself `GET /orders/42` and exits.
pub async fn run_gateway(backend: Command, once: bool) -> Result<(), Box<dyn std::error::Error>> {
    let guard = init("gateway");
    let (mut child, backend_addr) = spawn_backend(backend)?;
    let app = gateway(connect_backend(backend_addr).await?);
    let addr = if once {
        "127.0.0.1:0".to_owned()
    } else {
        std::env::var("GATEWAY_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    );
    if once {
        tokio::spawn(async move { server.await });
        let (status, body) = http_get(addr, "/orders/42").await?;
        println!("GET /orders/42 -> {status} {body}");
    } else {
        println!("gateway on http://{addr} (backend {backend_addr}); try:");
        println!("  curl http://{addr}/orders/42");
        server
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
    }
    drop(guard); // flush the gateway's spans
    drop(child.stdin.take()); // the backend flushes and exits
    child.wait()?;
    Ok(())
}

/// Runs the gateway (starting the backend with `backend_command`), or with `backend`, the
/// backend, on a runtime of its own.
pub fn run(
    backend: bool,
    once: bool,
    backend_command: Command,
) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    if backend {
        runtime.block_on(run_backend())
    } else {
        runtime.block_on(run_gateway(backend_command, once))
    }
}

fn main() -> ExitCode {
    let backend = std::env::args().nth(1).as_deref() == Some("backend");
    let once = std::env::args().any(|a| a == "--once");
    let result = std::env::current_exe().map_err(Into::into).and_then(|exe| {
        let mut backend_command = Command::new(exe);
        backend_command.arg("backend");
        run(backend, once, backend_command)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
