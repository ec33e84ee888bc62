//! Starting the viewer: binding the listeners, serving, shutting down.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::exporter::StoreExporter;
use crate::host::AllowedHosts;
use crate::receive::{
    self, BUDGET_WAIT, Bounds, Ctx, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_BODY,
    DEFAULT_MAX_BODY_MEMORY,
};
use crate::store::{SpanLimits, Store, StoreConfig};

/// Default OTLP/gRPC port.
pub const OTLP_GRPC_PORT: u16 = 4317;
/// Default OTLP/HTTP port.
pub const OTLP_HTTP_PORT: u16 = 4318;
/// Default Zipkin port.
pub const ZIPKIN_PORT: u16 = 9411;
/// Default UI (and Jaeger query API) port — Jaeger's.
pub const UI_PORT: u16 = 16686;

/// How long [`RunningViewer::shutdown`] waits for open connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the viewer could not start. The message names the option to change.
#[derive(Debug)]
pub struct StartError {
    message: String,
    source: Option<io::Error>,
}

impl StartError {
    /// Whether a port was already taken.
    pub fn is_addr_in_use(&self) -> bool {
        self.source
            .as_ref()
            .is_some_and(|e| e.kind() == io::ErrorKind::AddrInUse)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// Configures and starts a viewer. `new()` listens on the standard ports of 127.0.0.1.
#[derive(Clone, Debug)]
pub struct ViewerBuilder {
    host: IpAddr,
    otlp_grpc: Option<u16>,
    otlp_http: Option<u16>,
    zipkin: Option<u16>,
    ui: Option<u16>,
    ui_fallback: bool,
    max_body: usize,
    max_body_memory: usize,
    header_timeout: Duration,
    body_timeout: Duration,
    allowed_hosts: Vec<String>,
    store: StoreConfig,
    limits: SpanLimits,
    persist: Option<PathBuf>,
}

impl Default for ViewerBuilder {
    fn default() -> Self {
        ViewerBuilder {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            otlp_grpc: Some(OTLP_GRPC_PORT),
            otlp_http: Some(OTLP_HTTP_PORT),
            zipkin: Some(ZIPKIN_PORT),
            ui: Some(UI_PORT),
            ui_fallback: true,
            max_body: DEFAULT_MAX_BODY,
            max_body_memory: DEFAULT_MAX_BODY_MEMORY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            allowed_hosts: Vec::new(),
            store: StoreConfig::default(),
            limits: SpanLimits::default(),
            persist: None,
        }
    }
}

impl ViewerBuilder {
    /// Standard ports on 127.0.0.1, default bounds, no persistence.
    pub fn new() -> Self {
        Self::default()
    }

    /// No listener except the UI on any free port: for an application that exports in process
    /// (see [`RunningViewer::exporter`]).
    pub fn embedded() -> Self {
        ViewerBuilder {
            otlp_grpc: None,
            otlp_http: None,
            zipkin: None,
            ui: Some(0),
            ..Self::default()
        }
    }

    /// The address to bind (default 127.0.0.1). Anything but a loopback address exposes every
    /// trace to whoever can reach it — the viewer has no authentication — and is warned about
    /// at start. Requests are answered only when their `Host` is `localhost`, a loopback
    /// address, this address (any address when it is `0.0.0.0` or `::`) or a name given to
    /// [`allow_host`](Self::allow_host).
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// Also answer requests whose `Host` is `name` (with any port): the name senders and
    /// browsers use to reach a viewer bound to a non-loopback address, e.g. a container's
    /// service name. Other names are refused (`403`), which stops DNS-rebinding pages.
    pub fn allow_host(mut self, name: impl Into<String>) -> Self {
        self.allowed_hosts.push(name.into());
        self
    }

    /// OTLP/gRPC port (`None`: off, `Some(0)`: any free port).
    pub fn otlp_grpc(mut self, port: Option<u16>) -> Self {
        self.otlp_grpc = port;
        self
    }

    /// OTLP/HTTP port (`None`: off, `Some(0)`: any free port).
    pub fn otlp_http(mut self, port: Option<u16>) -> Self {
        self.otlp_http = port;
        self
    }

    /// Zipkin port (`None`: off, `Some(0)`: any free port).
    pub fn zipkin(mut self, port: Option<u16>) -> Self {
        self.zipkin = port;
        self
    }

    /// UI / query API port (`None`: off, `Some(0)`: any free port).
    pub fn ui(mut self, port: Option<u16>) -> Self {
        self.ui = port;
        self
    }

    /// When the UI port is taken, use a free port instead of failing (default: true). Receiver
    /// ports never fall back: applications are configured to send to them.
    pub fn ui_fallback(mut self, yes: bool) -> Self {
        self.ui_fallback = yes;
        self
    }

    /// Largest accepted request body, before and after decompression (default 16 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// At most this many bytes of request bodies are held at once by all HTTP receivers
    /// together (default 64 MiB, at least `max_body`); a request that finds no room within a
    /// couple of seconds is answered `503` with `Retry-After`. The gRPC receiver serves at most
    /// `max_body_memory / max_body` requests at once.
    pub fn max_body_memory(mut self, bytes: usize) -> Self {
        self.max_body_memory = bytes;
        self
    }

    /// How long a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept (default 20 s). On the gRPC port, how long a new connection has to
    /// start HTTP/2 (send its preface).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a client has to send a request's body (default 30 s; `408` after it). The
    /// gRPC receiver gives a whole request this long.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// The limits applied to every received span (default: [`SpanLimits::default`]).
    pub fn span_limits(mut self, limits: SpanLimits) -> Self {
        self.limits = limits;
        self
    }

    /// At most this many traces are stored (oldest evicted first).
    pub fn max_traces(mut self, n: usize) -> Self {
        self.store.max_traces = n;
        self
    }

    /// At most about this many bytes of spans are stored (oldest traces evicted first).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.store.max_bytes = n;
        self
    }

    /// Keep history in this file across restarts.
    pub fn persist(mut self, path: impl Into<PathBuf>) -> Self {
        self.persist = Some(path.into());
        self
    }

    async fn bind(
        &self,
        port: u16,
        what: &str,
        option: &str,
        fallback: bool,
    ) -> Result<TcpListener, StartError> {
        let addr = SocketAddr::new(self.host, port);
        match TcpListener::bind(addr).await {
            Ok(l) => Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && fallback => {
                let l = TcpListener::bind(SocketAddr::new(self.host, 0))
                    .await
                    .map_err(|e2| StartError {
                        message: format!(
                            "cannot bind the {what} to any port of {}: {e2}",
                            self.host
                        ),
                        source: Some(e2),
                    })?;
                log::warn!(
                    "{what}: {addr} is in use; using {} instead (choose one with {option} PORT)",
                    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
                );
                Ok(l)
            }
            Err(e) => {
                let hint = if e.kind() == io::ErrorKind::AddrInUse {
                    format!(
                        "address in use — is another collector (Jaeger, Zipkin, an OpenTelemetry Collector, \
                         another `tracewire view`) running? Stop it, or choose another port with \
                         `{option} PORT` (0 = any free port) or turn it off with `{option} off`"
                    )
                } else {
                    e.to_string()
                };
                Err(StartError {
                    message: format!("cannot listen for the {what} on {addr}: {hint}"),
                    source: Some(e),
                })
            }
        }
    }

    /// Loads the persistence file, binds every enabled listener, and serves in the background
    /// on the current tokio runtime.
    pub async fn start(self) -> Result<RunningViewer, StartError> {
        let store = Arc::new(Store::with_limits(self.store, self.limits));
        if let Some(path) = &self.persist {
            store.persist_to(path).map_err(|e| StartError {
                message: format!(
                    "cannot use the persistence file {} (--persist): {e}",
                    path.display()
                ),
                source: Some(e),
            })?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let bounds = Arc::new(Bounds::new(
            self.max_body,
            self.max_body_memory,
            self.body_timeout,
            BUDGET_WAIT,
        ));
        let ctx = Ctx {
            store: store.clone(),
            bounds: bounds.clone(),
            stop: stop_rx.clone(),
        };
        let hosts = Arc::new(AllowedHosts::new(self.host, &self.allowed_hosts));
        let mut tasks = Vec::new();
        let mut addrs = Addrs::default();

        let grpc = match self.otlp_grpc {
            Some(p) => Some(
                self.bind(p, "OTLP/gRPC receiver", "--otlp-grpc", false)
                    .await?,
            ),
            None => None,
        };
        let http = match self.otlp_http {
            Some(p) => Some(
                self.bind(p, "OTLP/HTTP receiver", "--otlp-http", false)
                    .await?,
            ),
            None => None,
        };
        let zipkin = match self.zipkin {
            Some(p) => Some(self.bind(p, "Zipkin receiver", "--zipkin", false).await?),
            None => None,
        };
        let ui = match self.ui {
            Some(p) => Some(self.bind(p, "UI", "--ui", self.ui_fallback).await?),
            None => None,
        };
        if !self.host.is_loopback() {
            log::warn!(
                "tracewire-viewer: listening on {}, not a loopback address: anyone who can reach \
                 it can read and write every trace (the viewer has no authentication). Requests \
                 must name the viewer by a loopback name or address, {}{}.",
                self.host,
                if self.host.is_unspecified() {
                    "any IP address of this machine".to_owned()
                } else {
                    self.host.to_string()
                },
                if self.allowed_hosts.is_empty() {
                    " (allow a host name with --allow-host NAME)".to_owned()
                } else {
                    format!(" or {}", self.allowed_hosts.join(", "))
                }
            );
        }

        if let Some(l) = grpc {
            addrs.otlp_grpc = l.local_addr().ok();
            let svc = receive::grpc_service(store.clone(), bounds.clone());
            let limit = bounds.max_bodies();
            let mut stop = stop_rx.clone();
            let timeout = self.body_timeout;
            let incoming = grpc_incoming(l, self.header_timeout);
            tasks.push(tokio::spawn(async move {
                let r = tonic::transport::Server::builder()
                    .timeout(timeout)
                    .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limit))
                    .http2_keepalive_interval(Some(Duration::from_secs(30)))
                    .http2_keepalive_timeout(Some(Duration::from_secs(20)))
                    .add_service(svc)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = r {
                    log::error!("OTLP/gRPC receiver stopped: {e}");
                }
            }));
        }
        let serve = |l: TcpListener, router: Router, what: &'static str| {
            let router = router.layer(axum::middleware::from_fn_with_state(hosts.clone(), guard));
            tokio::spawn(serve_http(
                l,
                router,
                stop_rx.clone(),
                self.header_timeout,
                what,
            ))
        };
        if let Some(l) = http {
            addrs.otlp_http = l.local_addr().ok();
            tasks.push(serve(
                l,
                otlp_http_router(ctx.clone()),
                "OTLP/HTTP receiver",
            ));
        }
        if let Some(l) = zipkin {
            addrs.zipkin = l.local_addr().ok();
            tasks.push(serve(l, zipkin_router(ctx.clone()), "Zipkin receiver"));
        }
        if let Some(l) = ui {
            addrs.ui = l.local_addr().ok();
            tasks.push(serve(l, ui_router(ctx.clone()), "UI"));
        }
        Ok(RunningViewer {
            store,
            addrs,
            stop: stop_tx,
            tasks,
        })
    }
}

/// The router of the UI port: the web UI, the own API, the Jaeger (v1 and v3) and Zipkin read
/// APIs, and OTLP/HTTP.
fn ui_router(ctx: Ctx) -> Router {
    crate::api::native::routes()
        .merge(crate::api::jaeger::routes())
        .merge(crate::api::jaeger_v3::routes())
        .merge(crate::api::zipkin::read_routes())
        .route("/v1/traces", post(receive::otlp_http_handler))
        .layer(axum::middleware::from_fn(receive::cors))
        .with_state(ctx)
}

/// The OTLP/HTTP receiver: `POST /v1/traces`.
fn otlp_http_router(ctx: Ctx) -> Router {
    Router::new()
        .route("/v1/traces", post(receive::otlp_http_handler))
        .layer(axum::middleware::from_fn(receive::cors))
        .with_state(ctx)
}

/// The Zipkin receiver (`POST /api/v2/spans`) plus the Zipkin read API.
fn zipkin_router(ctx: Ctx) -> Router {
    Router::new()
        .route("/api/v2/spans", post(receive::zipkin_http))
        .merge(crate::api::zipkin::read_routes())
        .layer(axum::middleware::from_fn(receive::cors))
        .with_state(ctx)
}

/// What every HTTP request passes first: its `Host` (and absolute URI, if any) must name this
/// viewer (see [`crate::host`]); every response says `X-Content-Type-Options: nosniff`.
async fn guard(State(hosts): State<Arc<AllowedHosts>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    let named = host.as_deref().or(authority.as_deref());
    let ok = named.is_some_and(|h| hosts.allows(h))
        && authority.as_deref().is_none_or(|a| hosts.allows(a));
    let mut resp = if ok {
        next.run(req).await
    } else {
        let shown = named.unwrap_or("(none)");
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "Host {shown:?} is not allowed: the viewer answers to localhost, loopback \
                 addresses and the address it is bound to. Allow a name with --allow-host \
                 (ViewerBuilder::allow_host).\n"
            ),
        )
            .into_response()
    };
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Serves HTTP/1.1 on `l` until `stop`: a client must send its request headers within
/// `header_timeout` (idle keep-alive connections are closed after it too).
async fn serve_http(
    l: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    header_timeout: Duration,
    what: &'static str,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        let (stream, _) = tokio::select! {
            r = l.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // out of file descriptors and the like: wait rather than spin
                    log::warn!("{what}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        // responses are streamed in pieces: send each as soon as it is written
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(l);
    graceful.shutdown().await;
}

/// Length of the HTTP/2 connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`), the first
/// bytes of every gRPC connection.
const H2_PREFACE_LEN: usize = 24;

/// The connections of the gRPC receiver: only those whose client sends the HTTP/2 preface
/// within `header_timeout` are handed to the server (which would wait for it indefinitely); a
/// silent or trickling connection is closed. Accepting stops when the server drops the stream.
fn grpc_incoming(
    l: TcpListener,
    header_timeout: Duration,
) -> ReceiverStream<io::Result<TcpStream>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = l.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        log::warn!("OTLP/gRPC receiver: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => break,
            };
            let _ = stream.set_nodelay(true);
            let tx = tx.clone();
            tokio::spawn(async move {
                if preface_within(&stream, header_timeout).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Whether the client sends at least the HTTP/2 preface's length within `timeout` (the bytes
/// stay in the socket for the server to read).
async fn preface_within(s: &TcpStream, timeout: Duration) -> bool {
    let mut buf = [0u8; H2_PREFACE_LEN];
    let arrived = async {
        loop {
            match s.peek(&mut buf).await {
                Ok(n) if n >= H2_PREFACE_LEN => return true,
                Ok(0) | Err(_) => return false,
                // part of it: peek returns at once until more arrives
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(timeout, arrived)
        .await
        .unwrap_or(false)
}

/// The bound addresses of a [`RunningViewer`] (`None`: that listener is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addrs {
    /// OTLP/gRPC.
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP (`POST /v1/traces`).
    pub otlp_http: Option<SocketAddr>,
    /// Zipkin (`POST /api/v2/spans` and the Zipkin read API).
    pub zipkin: Option<SocketAddr>,
    /// UI, own API, Jaeger and Zipkin read APIs.
    pub ui: Option<SocketAddr>,
}

/// A started viewer. Dropping it does not stop it; call [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct RunningViewer {
    store: Arc<Store>,
    addrs: Addrs,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningViewer {
    /// The store every receiver writes to.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The bound addresses.
    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// `http://127.0.0.1:PORT/` of the UI, if it is on.
    pub fn ui_url(&self) -> Option<String> {
        self.addrs.ui.map(|a| format!("http://{a}/"))
    }

    /// An exporter that writes straight into this viewer's store (no port, no encoding):
    /// give it to `tracewire::builder().exporter(..)` or a `tracewire_export::Pipeline`.
    pub fn exporter(&self) -> StoreExporter {
        StoreExporter::new(self.store.clone())
    }

    /// Stops every listener and waits for in-flight requests, at most [`SHUTDOWN_GRACE`]
    /// (open live streams and keep-alive connections are then cut).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}
