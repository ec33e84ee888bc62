//! The inter-service scenario: an HTTP gateway (axum) that, for each request, calls a gRPC
//! backend (tonic) and answers. One trace: HTTP SERVER → gRPC CLIENT → gRPC SERVER → the
//! backend's own `echo.handle` span. The gateway and the backend are two processes (the
//! gateway starts the backend), each exporting under its own `service.name` (`gateway`,
//! `greeter-backend`).
//!
//! Run it and ask it something:
//!
//! ```text
//! cargo run -p tracewire-tonic --example gateway
//! curl http://127.0.0.1:3000/greet/alice
//! ```
//!
//! or let it send one request to itself and exit:
//!
//! ```text
//! cargo run -p tracewire-tonic --example gateway -- --once
//! ```
//!
//! Spans go where `OTEL_TRACES_EXPORTER` says (e.g. `otlp` with `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! to see both services in Jaeger); when it is unset, each process prints its part of the
//! trace as a tree on stdout. `GATEWAY_ADDR` changes the listening address (default
//! `127.0.0.1:3000`).

#![allow(clippy::print_stdout, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ExitCode, Stdio};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tower_layer::Layer as _;
use tracewire_tonic::client::GrpcClientService;
use tracewire_tonic::{GrpcClientLayer, GrpcServerLayer};
use tracewire_tonic_testproto::EchoService;
use tracewire_tonic_testproto::pb::EchoRequest;
use tracewire_tonic_testproto::pb::echo_client::EchoClient;
use tracewire_tonic_testproto::pb::echo_server::EchoServer;
use tracewire_tower::TraceLayer;
use tracewire_tower::server::Axum;

/// The gateway's gRPC client for the backend, traced by [`GrpcClientLayer`].
pub type Backend = EchoClient<GrpcClientService<Channel>>;

/// The backend: the `Echo` service behind [`GrpcServerLayer`].
pub async fn serve_backend(
    listener: tokio::net::TcpListener,
    layer: GrpcServerLayer,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(layer)
        .add_service(EchoServer::new(EchoService))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
}

/// Connects the gateway to the backend at `addr`, through `layer`.
pub async fn connect_backend(
    addr: SocketAddr,
    layer: GrpcClientLayer,
) -> Result<Backend, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let channel = endpoint.connect().await?;
    Ok(EchoClient::new(
        layer.with_server_uri(endpoint.uri()).layer(channel),
    ))
}

/// The gateway: `GET /greet/{name}` asks the backend, behind tracewire-tower's HTTP
/// [`TraceLayer`].
pub fn gateway(backend: Backend, layer: TraceLayer<Axum>) -> Router {
    Router::new()
        .route("/greet/{name}", get(greet))
        .with_state(backend)
        .layer(layer)
}

async fn greet(
    State(mut backend): State<Backend>,
    Path(name): Path<String>,
) -> Result<String, (StatusCode, String)> {
    let request = EchoRequest {
        message: format!("hello, {name}"),
        ..Default::default()
    };
    match backend.unary(request).await {
        Ok(reply) => Ok(reply.into_inner().message + "\n"),
        Err(status) => Err((StatusCode::BAD_GATEWAY, status.message().to_owned())),
    }
}

/// A minimal HTTP/1.1 GET (no client library needed): returns the status and the body.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
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

/// Installs tracewire for this process under `service_name`.
fn init(service_name: &str) -> tracewire::Guard {
    let mut builder = tracewire::builder().service_name(service_name);
    if std::env::var_os("OTEL_TRACES_EXPORTER").is_none() {
        builder = builder.exporter(tracewire::export::console::ConsoleTree::stdout());
    }
    builder.init()
}

/// The backend process: prints its address on the first line of stdout, serves until its
/// stdin closes (the gateway is done) or Ctrl-C.
async fn run_backend() -> Result<(), Box<dyn std::error::Error>> {
    let guard = init("greeter-backend");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let stdin_closed = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    tokio::select! {
        served = serve_backend(listener, GrpcServerLayer::new()) => served?,
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(guard);
    Ok(())
}

/// Starts this same program as the backend and reads its address; its later output is
/// copied to ours.
fn spawn_backend() -> Result<(Child, SocketAddr), Box<dyn std::error::Error>> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("backend")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = lines.next().ok_or("the backend exited")??.trim().parse()?;
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("[greeter-backend] {line}");
        }
    });
    Ok((child, addr))
}

async fn run_gateway(once: bool) -> Result<(), Box<dyn std::error::Error>> {
    let guard = init("gateway");
    let (mut child, backend_addr) = spawn_backend()?;
    let backend = connect_backend(backend_addr, GrpcClientLayer::new()).await?;
    let app = gateway(backend, TraceLayer::axum());
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
        let (status, body) = http_get(addr, "/greet/alice", &[]).await?;
        println!("GET /greet/alice -> {status} {body}");
    } else {
        println!("gateway on http://{addr} (backend {backend_addr}); try:");
        println!("  curl http://{addr}/greet/alice");
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

fn main() -> ExitCode {
    let backend = std::env::args().nth(1).as_deref() == Some("backend");
    let once = std::env::args().any(|a| a == "--once");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if backend {
        runtime.block_on(run_backend())
    } else {
        runtime.block_on(run_gateway(once))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
