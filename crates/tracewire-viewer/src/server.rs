//! Starting the viewer: binding the listeners, serving, shutting down.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::exporter::StoreExporter;
use crate::receive::{Ctx, DEFAULT_MAX_BODY};
use crate::store::{Store, StoreConfig};

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
    store: StoreConfig,
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
            store: StoreConfig::default(),
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

    /// The address to bind (default 127.0.0.1; anything else exposes your traces).
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
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
        let store = Arc::new(Store::new(self.store));
        if let Some(path) = &self.persist {
            crate::persist::attach(&store, path).map_err(|e| StartError {
                message: format!(
                    "cannot use the persistence file {} (--persist): {e}",
                    path.display()
                ),
                source: Some(e),
            })?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = Ctx {
            store: store.clone(),
            max_body: self.max_body,
            stop: stop_rx.clone(),
        };
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

        if let Some(l) = grpc {
            addrs.otlp_grpc = l.local_addr().ok();
            let svc = crate::receive::grpc_service(store.clone(), self.max_body);
            let mut stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
                let r = tonic::transport::Server::builder()
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
        let serve = |l: TcpListener, router: axum::Router, what: &'static str| {
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let r = axum::serve(l, router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = r {
                    log::error!("{what} stopped: {e}");
                }
            })
        };
        if let Some(l) = http {
            addrs.otlp_http = l.local_addr().ok();
            tasks.push(serve(
                l,
                crate::receive::otlp_http_router(ctx.clone()),
                "OTLP/HTTP receiver",
            ));
        }
        if let Some(l) = zipkin {
            addrs.zipkin = l.local_addr().ok();
            tasks.push(serve(
                l,
                crate::receive::zipkin_router(ctx.clone()),
                "Zipkin receiver",
            ));
        }
        if let Some(l) = ui {
            addrs.ui = l.local_addr().ok();
            tasks.push(serve(l, crate::ui_router(ctx.clone()), "UI"));
        }
        Ok(RunningViewer {
            store,
            addrs,
            stop: stop_tx,
            tasks,
        })
    }
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
