//! A real Jaeger (v2, in-memory storage) for end-to-end tests: [`Jaeger::start`] runs the binary
//! that `bash scripts/services.sh install jaeger` builds, with the repository's
//! `scripts/jaeger/config.yaml`, on free loopback ports, waits until it answers, and kills it
//! when dropped. Its query APIs are read back with [`Jaeger::trace`] (the v1 JSON API the Jaeger
//! UI and Grafana use, `/api/traces/{id}`) and [`Jaeger::trace_v3`] (the v3 API,
//! `/api/v3/traces/{id}`, OTLP-shaped JSON), and its own counters with [`Jaeger::metrics`].
//!
//! [`Jaeger::start`]: crate::jaeger::Jaeger::start
//! [`Jaeger::trace`]: crate::jaeger::Jaeger::trace
//! [`Jaeger::trace_v3`]: crate::jaeger::Jaeger::trace_v3
//! [`Jaeger::metrics`]: crate::jaeger::Jaeger::metrics
//!
//! Blocking, std only (HTTP/1.0 over a `TcpStream`): from a tokio test, call it inside
//! `tokio::task::spawn_blocking` or `block_in_place`.
//!
//! ```no_run
//! use tracewire_test::jaeger::Jaeger;
//!
//! let Some(jaeger) = Jaeger::start("exports_into_jaeger") else { return };
//! // export to jaeger.otlp_http_endpoint(), then:
//! let trace = jaeger.wait_for_trace("4bf92f3577b34da6a3ce929d0e0e4736", 3);
//! assert_eq!(trace.tree(&[]), "frontend: GET /cart [server]\n  ...");
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Jaeger release `scripts/services.sh` builds (`JAEGER_VERSION` there; a unit test holds
/// the two together).
pub const VERSION: &str = "2.13.0";

/// The variable naming the Jaeger binary to run (wins over the build cache).
pub const BIN_ENV: &str = "TRACEWIRE_JAEGER_BIN";

/// How long [`Jaeger::start`] waits for Jaeger to answer, and [`Jaeger::wait_for_trace`] for
/// the spans.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The Jaeger binary: `$TRACEWIRE_JAEGER_BIN` when set, else where `scripts/services.sh install
/// jaeger` puts it (`${TRACEWIRE_JAEGER_HOME:-${XDG_CACHE_HOME:-~/.cache}/tracewire/jaeger-VERSION}/jaeger`),
/// if it exists.
pub fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let home = match std::env::var_os("TRACEWIRE_JAEGER_HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
            cache.join("tracewire").join(format!("jaeger-{VERSION}"))
        }
    };
    let bin = home.join("jaeger");
    bin.is_file().then_some(bin)
}

/// The repository's Jaeger configuration (`scripts/jaeger/config.yaml`).
pub fn config_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/jaeger/config.yaml")
}

/// The ports of one Jaeger, named as in `scripts/jaeger/config.yaml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// OTLP/gRPC receiver.
    pub otlp_grpc: u16,
    /// OTLP/HTTP receiver (`/v1/traces`).
    pub otlp_http: u16,
    /// Zipkin receiver (`/api/v2/spans`).
    pub zipkin: u16,
    /// UI, v1 JSON API (`/api/...`), v3 HTTP API (`/api/v3/...`).
    pub query: u16,
    /// Query gRPC (api_v2, api_v3).
    pub query_grpc: u16,
    /// Health check (`/status`).
    pub health: u16,
    /// The collector's own Prometheus metrics (`/metrics`).
    pub metrics: u16,
}

impl Ports {
    /// Seven distinct free loopback ports (each held until all are chosen).
    fn free() -> std::io::Result<Ports> {
        let held = (0..7)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let p = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Ports {
            otlp_grpc: p[0],
            otlp_http: p[1],
            zipkin: p[2],
            query: p[3],
            query_grpc: p[4],
            health: p[5],
            metrics: p[6],
        })
    }

    /// The `TRACEWIRE_JAEGER_*_PORT` variables the configuration reads.
    pub fn env(&self) -> [(&'static str, String); 7] {
        [
            (
                "TRACEWIRE_JAEGER_OTLP_GRPC_PORT",
                self.otlp_grpc.to_string(),
            ),
            (
                "TRACEWIRE_JAEGER_OTLP_HTTP_PORT",
                self.otlp_http.to_string(),
            ),
            ("TRACEWIRE_JAEGER_ZIPKIN_PORT", self.zipkin.to_string()),
            ("TRACEWIRE_JAEGER_QUERY_PORT", self.query.to_string()),
            (
                "TRACEWIRE_JAEGER_QUERY_GRPC_PORT",
                self.query_grpc.to_string(),
            ),
            ("TRACEWIRE_JAEGER_HEALTH_PORT", self.health.to_string()),
            ("TRACEWIRE_JAEGER_METRICS_PORT", self.metrics.to_string()),
        ]
    }
}

/// A running Jaeger, killed when dropped.
pub struct Jaeger {
    child: Child,
    ports: Ports,
    /// What it wrote (its log goes to stderr).
    output: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Jaeger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jaeger")
            .field("pid", &self.child.id())
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

/// An HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

fn lock(m: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `GET http://127.0.0.1:{port}{path}` over HTTP/1.0 (the server closes the connection after
/// the body: no chunked encoding to undo).
pub fn http_get(port: u16, path: &str) -> std::io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

/// Query-string encoding of one value (RFC 3986 unreserved characters kept).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Jaeger {
    /// Starts Jaeger ([`binary`], [`config_file`]) on free ports and waits until its
    /// receivers, query service and health check answer. `None` after a
    /// [`skip`](crate::skip::skip) of `test` when there is no binary (a failure under `CI=true`).
    ///
    /// # Panics
    ///
    /// When the binary is there but Jaeger does not start (with its output).
    pub fn start(test: &str) -> Option<Jaeger> {
        let Some(bin) = binary() else {
            crate::skip::skip(
                test,
                &format!(
                    "no Jaeger {VERSION} binary (set {BIN_ENV}, or build it: `bash scripts/services.sh install jaeger`)"
                ),
            );
            return None;
        };
        // A port taken between choosing it and Jaeger binding it: try again with new ones.
        let mut last = String::new();
        for _ in 0..3 {
            match Jaeger::start_binary(&bin) {
                Ok(jaeger) => return Some(jaeger),
                Err(e) if e.contains("address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}")
    }

    /// Starts `bin` with the repository's configuration on free ports; an error (with its
    /// output) when it exits or does not answer within [`PATIENCE`].
    pub fn start_binary(bin: &Path) -> Result<Jaeger, String> {
        let ports = Ports::free().map_err(|e| format!("no free ports: {e}"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(config_file());
        // Jaeger's own SDK must not pick up the test's exporter settings.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .envs(ports.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut out = lock(&sink);
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let mut jaeger = Jaeger {
            child,
            ports,
            output,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = jaeger.child.try_wait() {
                // Let the pipe threads read to the end.
                std::thread::sleep(Duration::from_millis(200));
                return Err(format!(
                    "jaeger ({}) exited before answering ({status}); its output:\n{}",
                    bin.display(),
                    jaeger.output()
                ));
            }
            if jaeger.is_ready() {
                return Ok(jaeger);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "jaeger ({}) did not answer on {:?} within {PATIENCE:?}; its output:\n{}",
                    bin.display(),
                    jaeger.ports,
                    jaeger.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn is_ready(&self) -> bool {
        let p = self.ports;
        let open = |port| {
            TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200),
            )
            .is_ok()
        };
        [p.otlp_grpc, p.otlp_http, p.zipkin].into_iter().all(open)
            && http_get(p.health, "/status").is_ok_and(|r| r.status == 200)
            && http_get(p.query, "/api/services").is_ok_and(|r| r.status == 200)
    }

    /// Its ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The OTLP/gRPC endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` with protocol `grpc`).
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_grpc)
    }

    /// The OTLP/HTTP base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` with protocol
    /// `http/protobuf` or `http/json`; the exporter appends `/v1/traces`).
    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_http)
    }

    /// The Zipkin v2 endpoint (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`).
    pub fn zipkin_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/api/v2/spans", self.ports.zipkin)
    }

    /// The UI and query APIs.
    pub fn query_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.query)
    }

    /// What Jaeger has written so far (its log).
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// `GET {query_url}{path_and_query}`.
    ///
    /// # Panics
    ///
    /// When Jaeger does not answer.
    pub fn get(&self, path_and_query: &str) -> Response {
        http_get(self.ports.query, path_and_query).unwrap_or_else(|e| {
            panic!(
                "GET {path_and_query}: {e}; jaeger's output:\n{}",
                self.output()
            )
        })
    }

    /// `GET` a JSON document from the query service.
    ///
    /// # Panics
    ///
    /// Unless the answer is a 200 with JSON.
    pub fn get_json(&self, path_and_query: &str) -> Value {
        let r = self.get(path_and_query);
        assert_eq!(r.status, 200, "GET {path_and_query}: {}", r.body);
        serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}: {}", r.body))
    }

    // --- the v1 JSON API (what the Jaeger UI and Grafana's Jaeger data source call) ----------

    /// `GET /api/services`: the services with spans.
    pub fn services(&self) -> Vec<String> {
        strings(&self.get_json("/api/services")["data"])
    }

    /// `GET /api/operations?service=..[&spanKind=..]`: `(name, spanKind)` of each operation.
    pub fn operations(&self, service: &str, span_kind: Option<&str>) -> Vec<(String, String)> {
        self.list_operations("/api/operations", "spanKind", "data", service, span_kind)
    }

    /// `GET {path}?service=..[&{kind_param}=..]`: the sorted `(name, spanKind)` pairs of the
    /// array under `key` (the v1 and v3 operation listings differ only in these names).
    fn list_operations(
        &self,
        path: &str,
        kind_param: &str,
        key: &str,
        service: &str,
        span_kind: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut path = format!("{path}?service={}", encode(service));
        if let Some(kind) = span_kind {
            let _ = write!(path, "&{kind_param}={}", encode(kind));
        }
        let doc = self.get_json(&path);
        let mut ops: Vec<(String, String)> = doc[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                (
                    o["name"].as_str().unwrap_or_default().to_owned(),
                    o["spanKind"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        ops.sort();
        ops
    }

    /// `GET /api/traces/{id}`: the trace (v1 JSON model), `None` when Jaeger has no span of it.
    ///
    /// # Panics
    ///
    /// On an answer other than 200 or 404.
    pub fn trace(&self, trace_id: &str) -> Option<Trace> {
        let path = format!("/api/traces/{trace_id}");
        let r = self.get(&path);
        if r.status == 404 {
            return None;
        }
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        let doc: Value =
            serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body));
        let errors = &doc["errors"];
        assert!(
            errors.is_null() || errors.as_array().is_some_and(Vec::is_empty),
            "GET {path}: {errors}"
        );
        doc["data"].as_array()?.first().cloned().map(Trace)
    }

    /// `GET /api/traces?{query}` (`service=..&limit=..&tags=..`; values already encoded).
    pub fn find_traces(&self, query: &str) -> Vec<Trace> {
        let doc = self.get_json(&format!("/api/traces?{query}"));
        doc["data"]
            .as_array()
            .into_iter()
            .flatten()
            .cloned()
            .map(Trace)
            .collect()
    }

    /// [`trace`](Jaeger::trace) once it has `spans` spans and their number has stopped changing
    /// (two reads in a row).
    ///
    /// # Panics
    ///
    /// When that does not happen within [`PATIENCE`] (with what Jaeger has).
    pub fn wait_for_trace(&self, trace_id: &str, spans: usize) -> Trace {
        self.wait(|| self.trace(trace_id), Trace::len, spans, trace_id)
    }

    fn wait<T: std::fmt::Debug>(
        &self,
        get: impl Fn() -> Option<T>,
        len: impl Fn(&T) -> usize,
        want: usize,
        what: &str,
    ) -> T {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            let now = get();
            let n = now.as_ref().map_or(0, &len);
            if n >= want && last == Some(n) {
                if let Some(t) = now {
                    return t;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "trace {what}: {n} span(s) in Jaeger after {PATIENCE:?}, expected {want}: {now:?}\n\
                     jaeger's output:\n{}",
                    self.output()
                );
            }
            last = Some(n);
            std::thread::sleep(Duration::from_millis(if n >= want { 300 } else { 100 }));
        }
    }

    // --- the v3 API (OTLP-shaped JSON) ---------------------------------------------------------

    /// `GET /api/v3/traces/{id}`: the trace as OTLP JSON, `None` when Jaeger has none.
    ///
    /// # Panics
    ///
    /// On an answer other than 200 or 404.
    pub fn trace_v3(&self, trace_id: &str) -> Option<OtlpTrace> {
        let path = format!("/api/v3/traces/{trace_id}");
        let r = self.get(&path);
        if r.status == 404 {
            return None;
        }
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        let doc: Value =
            serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body));
        assert!(doc.get("error").is_none(), "GET {path}: {}", r.body);
        Some(OtlpTrace(doc["result"].clone()))
    }

    /// [`trace_v3`](Jaeger::trace_v3) once it has `spans` spans, settled.
    ///
    /// # Panics
    ///
    /// When that does not happen within [`PATIENCE`].
    pub fn wait_for_trace_v3(&self, trace_id: &str, spans: usize) -> OtlpTrace {
        self.wait(|| self.trace_v3(trace_id), OtlpTrace::len, spans, trace_id)
    }

    /// `GET /api/v3/services`.
    pub fn services_v3(&self) -> Vec<String> {
        strings(&self.get_json("/api/v3/services")["services"])
    }

    /// `GET /api/v3/operations?service=..[&span_kind=..]`: `(name, spanKind)` of each.
    pub fn operations_v3(&self, service: &str, span_kind: Option<&str>) -> Vec<(String, String)> {
        self.list_operations(
            "/api/v3/operations",
            "span_kind",
            "operations",
            service,
            span_kind,
        )
    }

    // --- Jaeger's own telemetry ------------------------------------------------------------------

    /// Its Prometheus metrics (`/metrics` on the metrics port).
    ///
    /// # Panics
    ///
    /// When the metrics endpoint does not answer 200.
    pub fn metrics(&self) -> Metrics {
        let r = http_get(self.ports.metrics, "/metrics")
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        assert_eq!(r.status, 200, "GET /metrics: {}", r.body);
        Metrics(r.body)
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// Prometheus text exposition of the collector inside Jaeger.
#[derive(Clone, Debug)]
pub struct Metrics(pub String);

impl Metrics {
    /// The sum of every sample of `name` (with or without the `_total` suffix the Prometheus
    /// exporter adds to counters) whose labels include every `labels` pair.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let base = name.trim_end_matches("_total");
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
                if metric.trim_end_matches("_total") != base {
                    return None;
                }
                let ok = labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                ok.then(|| value.parse::<f64>().ok()).flatten()
            })
            .sum()
    }

    /// The names of the metrics (without the `_total` suffix), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let series = l.rsplit_once(' ')?.0;
                let metric = series.split_once('{').map_or(series, |(m, _)| m);
                Some(metric.trim_end_matches("_total").to_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

// --- the v1 JSON model ---------------------------------------------------------------------------

/// One trace from the v1 JSON API (`data[0]` of `/api/traces/{id}`).
#[derive(Clone, Debug, PartialEq)]
pub struct Trace(pub Value);

/// One span of a [`Trace`], with its trace (for the process).
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    trace: &'a Value,
    /// The span's JSON.
    pub json: &'a Value,
}

impl Trace {
    /// Its spans, in the order Jaeger returned them.
    pub fn spans(&self) -> Vec<Span<'_>> {
        self.0["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|json| Span {
                trace: &self.0,
                json,
            })
            .collect()
    }

    /// Number of spans.
    pub fn len(&self) -> usize {
        self.0["spans"].as_array().map_or(0, Vec::len)
    }

    /// True when it has no span.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trace's warnings (`null` when none).
    pub fn warnings(&self) -> &Value {
        &self.0["warnings"]
    }

    /// The span named `name`.
    ///
    /// # Panics
    ///
    /// When there is none (with the tree).
    pub fn span(&self, name: &str) -> Span<'_> {
        self.spans()
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no span {name:?} in:\n{}", self.tree(&[])))
    }

    /// The span with id `id` (hex).
    pub fn by_id(&self, id: &str) -> Option<Span<'_>> {
        self.spans().into_iter().find(|s| s.id() == id)
    }

    /// One line per span, nested as the Jaeger UI nests them — under the span of their first
    /// reference, `CHILD_OF` or `FOLLOWS_FROM` — children in start order:
    /// `service: name [span.kind] key=value ... ERROR` (`keys`: the tags to show; `ERROR`
    /// when the `error` tag is true; a span whose first reference is not in the trace is
    /// marked `(orphan)`).
    pub fn tree(&self, keys: &[&str]) -> String {
        let spans = self.spans();
        render(
            &spans,
            |s| s.id(),
            |s| s.first_reference(),
            |s| s.json["startTime"].as_u64().unwrap_or(0),
            |s| {
                let mut line = format!(
                    "{}: {} [{}]",
                    s.service(),
                    s.name(),
                    s.tag_value("span.kind")
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                );
                for k in keys {
                    if let Some(v) = s.tag_value(k) {
                        let _ = write!(line, " {k}={}", text(v));
                    }
                }
                if s.is_error() {
                    line.push_str(" ERROR");
                }
                line
            },
        )
    }
}

impl<'a> Span<'a> {
    /// `operationName`.
    pub fn name(&self) -> &'a str {
        self.json["operationName"].as_str().unwrap_or_default()
    }

    /// `spanID`.
    pub fn id(&self) -> &'a str {
        self.json["spanID"].as_str().unwrap_or_default()
    }

    /// The span id of its `CHILD_OF` reference.
    pub fn parent_id(&self) -> Option<&'a str> {
        self.references("CHILD_OF").first().map(|(_, s)| *s)
    }

    /// The span id of its first reference, of either type, when that reference is in the same
    /// trace (what the Jaeger UI takes for the parent; a reference to another trace is a link
    /// only).
    pub fn first_reference(&self) -> Option<&'a str> {
        let first = &self.json["references"][0];
        (first["traceID"] == self.json["traceID"])
            .then(|| first["spanID"].as_str())
            .flatten()
    }

    /// `(traceID, spanID)` of its references of type `ref_type` (`CHILD_OF`, `FOLLOWS_FROM`).
    pub fn references(&self, ref_type: &str) -> Vec<(&'a str, &'a str)> {
        self.json["references"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["refType"] == ref_type)
            .map(|r| {
                (
                    r["traceID"].as_str().unwrap_or_default(),
                    r["spanID"].as_str().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The (first) tag `key`: `{"key", "type", "value"}`.
    pub fn tag(&self, key: &str) -> Option<&'a Value> {
        find_kv(&self.json["tags"], key)
    }

    /// Every tag named `key` (Jaeger may list a key twice: a Zipkin `error` tag with the
    /// status description next to the `error: true` it derives from the status).
    pub fn tags(&self, key: &str) -> Vec<&'a Value> {
        self.json["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["key"] == key)
            .collect()
    }

    /// Whether an `error` tag is `true` (how the Jaeger UI tells an error span).
    pub fn is_error(&self) -> bool {
        self.tags("error")
            .iter()
            .any(|t| t["value"] == Value::Bool(true) || t["value"] == "true")
    }

    /// The value of tag `key`.
    pub fn tag_value(&self, key: &str) -> Option<&'a Value> {
        self.tag(key).map(|t| &t["value"])
    }

    /// The type of tag `key` (`string`, `bool`, `int64`, `float64`, `binary`).
    pub fn tag_type(&self, key: &str) -> Option<&'a str> {
        self.tag(key).and_then(|t| t["type"].as_str())
    }

    /// Its logs (events): `[{"timestamp", "fields": [...]}]`.
    pub fn logs(&self) -> Vec<&'a Value> {
        self.json["logs"].as_array().into_iter().flatten().collect()
    }

    /// The log whose `event` field is `event`.
    pub fn log(&self, event: &str) -> Option<&'a Value> {
        self.logs()
            .into_iter()
            .find(|l| find_kv(&l["fields"], "event").map(|f| &f["value"]) == Some(&json_str(event)))
    }

    /// Its warnings (`null` when none).
    pub fn warnings(&self) -> &'a Value {
        &self.json["warnings"]
    }

    /// Its process: `{"serviceName", "tags"}`.
    pub fn process(&self) -> &'a Value {
        let id = self.json["processID"].as_str().unwrap_or_default();
        &self.trace["processes"][id]
    }

    /// The process's `serviceName`.
    pub fn service(&self) -> &'a str {
        self.process()["serviceName"].as_str().unwrap_or_default()
    }

    /// The process tag `key` (a resource attribute): `{"key", "type", "value"}`.
    pub fn process_tag(&self, key: &str) -> Option<&'a Value> {
        find_kv(&self.process()["tags"], key)
    }
}

/// The `{"key": key, ...}` element of a JSON array of key/values.
pub fn find_kv<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|kv| kv["key"] == key)
}

fn json_str(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A tree of `spans`, one `line` each, children in start order under their parent.
fn render<S: Copy>(
    spans: &[S],
    id: impl Fn(&S) -> &str,
    parent: impl Fn(&S) -> Option<&str>,
    start: impl Fn(&S) -> u64,
    line: impl Fn(&S) -> String,
) -> String {
    let ids: std::collections::HashSet<&str> = spans.iter().map(&id).collect();
    let mut children: HashMap<&str, Vec<&S>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        match parent(s) {
            Some(p) if ids.contains(p) => children.entry(p).or_default().push(s),
            _ => roots.push(s),
        }
    }
    let by_start = |v: &mut Vec<&S>| v.sort_by_key(|s| start(s));
    by_start(&mut roots);
    children.values_mut().for_each(by_start);
    let mut out = String::new();
    let mut stack: Vec<(&S, usize)> = roots.into_iter().rev().map(|s| (s, 0)).collect();
    while let Some((s, depth)) = stack.pop() {
        let _ = write!(out, "{:indent$}{}", "", line(s), indent = depth * 2);
        if depth == 0 && parent(s).is_some() {
            out.push_str(" (orphan)");
        }
        out.push('\n');
        if let Some(kids) = children.get(id(s)) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }
    out
}

// --- the v3 model (OTLP JSON) --------------------------------------------------------------------

/// One trace from the v3 API (`result` of `/api/v3/traces/{id}`: `{"resourceSpans": [...]}`).
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpTrace(pub Value);

/// One span of an [`OtlpTrace`], with its resource.
#[derive(Clone, Copy, Debug)]
pub struct OtlpSpan<'a> {
    /// The resource's JSON (`{"attributes": [...]}`).
    pub resource: &'a Value,
    /// The span's JSON (OTLP: `traceId`, `spanId`, `parentSpanId`, `kind`, `attributes`, ...).
    pub json: &'a Value,
}

impl OtlpTrace {
    /// Its spans, in the order Jaeger returned them.
    pub fn spans(&self) -> Vec<OtlpSpan<'_>> {
        let mut out = Vec::new();
        for rs in self.0["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for json in ss["spans"].as_array().into_iter().flatten() {
                    out.push(OtlpSpan {
                        resource: &rs["resource"],
                        json,
                    });
                }
            }
        }
        out
    }

    /// Number of spans.
    pub fn len(&self) -> usize {
        self.spans().len()
    }

    /// True when it has no span.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The span named `name`.
    ///
    /// # Panics
    ///
    /// When there is none (with the tree).
    pub fn span(&self, name: &str) -> OtlpSpan<'_> {
        self.spans()
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| panic!("no span {name:?} in:\n{}", self.tree(|_, _| None)))
    }

    /// One line per span, children under their parent in start order:
    /// `service: name [kind] ... ERROR` with what `attr(key, value)` shows of each attribute
    /// (` key=value` when it returns `Some`), `ERROR` for status code 2, `(orphan)` for a span
    /// whose parent is not in the trace. Kinds are named as in the v1 API (`server`, ...,
    /// `unspecified`).
    pub fn tree(&self, attr: impl Fn(&str, &Value) -> Option<String>) -> String {
        let spans = self.spans();
        render(
            &spans,
            |s| s.id(),
            |s| s.parent_id(),
            |s| s.start_unix_nano(),
            |s| {
                let mut line = format!("{}: {} [{}]", s.service(), s.name(), s.kind_name());
                for kv in s.json["attributes"].as_array().into_iter().flatten() {
                    let key = kv["key"].as_str().unwrap_or_default();
                    if let Some(shown) = attr(key, &kv["value"]) {
                        let _ = write!(line, " {shown}");
                    }
                }
                if s.status_code() == 2 {
                    line.push_str(" ERROR");
                }
                line
            },
        )
    }
}

impl<'a> OtlpSpan<'a> {
    /// `name`.
    pub fn name(&self) -> &'a str {
        self.json["name"].as_str().unwrap_or_default()
    }

    /// `spanId` (hex).
    pub fn id(&self) -> &'a str {
        self.json["spanId"].as_str().unwrap_or_default()
    }

    /// `parentSpanId` (hex), absent for a root.
    pub fn parent_id(&self) -> Option<&'a str> {
        self.json["parentSpanId"].as_str().filter(|s| !s.is_empty())
    }

    /// `kind` as a number (0 unspecified, 1 internal, 2 server, 3 client, 4 producer,
    /// 5 consumer; JSON may spell it as a number or an enum name).
    pub fn kind(&self) -> i64 {
        match &self.json["kind"] {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(s) => match s.as_str() {
                "SPAN_KIND_INTERNAL" => 1,
                "SPAN_KIND_SERVER" => 2,
                "SPAN_KIND_CLIENT" => 3,
                "SPAN_KIND_PRODUCER" => 4,
                "SPAN_KIND_CONSUMER" => 5,
                _ => 0,
            },
            _ => 0,
        }
    }

    /// The kind's name as the v1 API writes it in `span.kind`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind() {
            1 => "internal",
            2 => "server",
            3 => "client",
            4 => "producer",
            5 => "consumer",
            _ => "unspecified",
        }
    }

    /// `status.code` (0 unset, 1 ok, 2 error).
    pub fn status_code(&self) -> i64 {
        match &self.json["status"]["code"] {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(s) if s == "STATUS_CODE_ERROR" => 2,
            Value::String(s) if s == "STATUS_CODE_OK" => 1,
            _ => 0,
        }
    }

    /// `status.message`.
    pub fn status_message(&self) -> &'a str {
        self.json["status"]["message"].as_str().unwrap_or_default()
    }

    /// `startTimeUnixNano`.
    pub fn start_unix_nano(&self) -> u64 {
        number(&self.json["startTimeUnixNano"])
    }

    /// The value (`{"stringValue": ..}`, `{"intValue": ..}`, ...) of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&'a Value> {
        find_kv(&self.json["attributes"], key).map(|kv| &kv["value"])
    }

    /// Its events.
    pub fn events(&self) -> Vec<&'a Value> {
        self.json["events"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    }

    /// The event named `name`.
    pub fn event(&self, name: &str) -> Option<&'a Value> {
        self.events().into_iter().find(|e| e["name"] == name)
    }

    /// Its links.
    pub fn links(&self) -> Vec<&'a Value> {
        self.json["links"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    }

    /// The resource attribute `key`'s value.
    pub fn resource_attr(&self, key: &str) -> Option<&'a Value> {
        find_kv(&self.resource["attributes"], key).map(|kv| &kv["value"])
    }

    /// `service.name` of its resource.
    pub fn service(&self) -> &'a str {
        self.resource_attr("service.name")
            .and_then(|v| v["stringValue"].as_str())
            .unwrap_or_default()
    }
}

/// A number that OTLP JSON may write as a string (64-bit integers).
fn number(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// An OTLP JSON `AnyValue` as plain JSON: `{"stringValue":"a"}` → `"a"`, `{"intValue":"3"}`
/// → `3`, `{"arrayValue":{"values":[..]}}` → `[..]`, ... (`Null` for what it is not).
pub fn any_value(v: &Value) -> Value {
    let Some((k, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return Value::Null;
    };
    match k.as_str() {
        "stringValue" | "boolValue" | "doubleValue" => inner.clone(),
        "intValue" => match inner {
            Value::String(s) => s.parse::<i64>().map_or(Value::Null, Value::from),
            other => other.clone(),
        },
        "arrayValue" => Value::Array(
            inner["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(any_value)
                .collect(),
        ),
        "kvlistValue" => Value::Object(
            inner["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_owned(),
                        any_value(&kv["value"]),
                    )
                })
                .collect(),
        ),
        _ => inner.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_services_sh_builds() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh"),
        )
        .unwrap();
        assert!(
            script
                .lines()
                .any(|l| l.trim() == format!("JAEGER_VERSION={VERSION}")),
            "scripts/services.sh does not build Jaeger {VERSION}"
        );
        assert!(config_file().is_file());
    }

    #[test]
    fn the_config_keeps_jaeger_from_tracing_itself() {
        // Jaeger's query service traces itself by default, over OTLP to localhost:4317: into
        // whatever listens there (another Jaeger, `tracewire view`), never into the test's own.
        let config = std::fs::read_to_string(config_file()).unwrap();
        assert!(
            config.lines().any(|l| l.trim() == "enable_tracing: false"),
            "scripts/jaeger/config.yaml must set jaeger_query.enable_tracing: false"
        );
    }

    #[test]
    fn metrics_sum_series_by_label_with_or_without_total() {
        let m = Metrics(
            "# HELP x\n\
             otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 7\n\
             otelcol_receiver_accepted_spans_total{receiver=\"zipkin\",transport=\"http\"} 2\n\
             otelcol_receiver_refused_spans_total{receiver=\"otlp\",transport=\"grpc\"} 0\n"
                .into(),
        );
        assert_eq!(m.sum("otelcol_receiver_accepted_spans", &[]), 9.0);
        assert_eq!(
            m.sum(
                "otelcol_receiver_accepted_spans_total",
                &[("receiver", "otlp")]
            ),
            7.0
        );
        assert_eq!(m.sum("otelcol_receiver_refused_spans", &[]), 0.0);
        assert_eq!(
            m.names(),
            [
                "otelcol_receiver_accepted_spans",
                "otelcol_receiver_refused_spans"
            ]
        );
    }

    #[test]
    fn otlp_json_values_become_plain_json() {
        let v: Value = serde_json::json!({"arrayValue": {"values": [
            {"stringValue": "a"}, {"intValue": "3"}, {"boolValue": true}, {"doubleValue": 1.5}
        ]}});
        assert_eq!(any_value(&v), serde_json::json!(["a", 3, true, 1.5]));
        assert_eq!(encode("a b/{c}"), "a%20b%2F%7Bc%7D");
    }

    #[test]
    fn v1_and_v3_traces_render_as_trees() {
        let v1 = Trace(serde_json::json!({
            "traceID": "t",
            "spans": [
                {"traceID": "t", "spanID": "2", "operationName": "child", "startTime": 2,
                 "processID": "p2",
                 "references": [{"refType": "CHILD_OF", "traceID": "t", "spanID": "1"}],
                 "tags": [{"key": "span.kind", "type": "string", "value": "client"},
                          {"key": "error", "type": "bool", "value": true},
                          {"key": "n", "type": "int64", "value": 3}]},
                {"traceID": "t", "spanID": "1", "operationName": "root", "startTime": 1,
                 "processID": "p1",
                 "tags": [{"key": "span.kind", "type": "string", "value": "server"}]}
            ],
            "processes": {"p1": {"serviceName": "a", "tags": []},
                          "p2": {"serviceName": "b", "tags": []}}
        }));
        assert_eq!(
            v1.tree(&["n"]),
            "a: root [server]\n  b: child [client] n=3 ERROR\n"
        );
        assert_eq!(v1.span("child").tag_type("n"), Some("int64"));
        let v3 = OtlpTrace(serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
            "scopeSpans": [{"spans": [
                {"spanId": "2", "parentSpanId": "1", "name": "child", "kind": 3,
                 "startTimeUnixNano": "2", "status": {"code": 2},
                 "attributes": [{"key": "n", "value": {"intValue": "3"}}]},
                {"spanId": "1", "name": "root", "kind": 2, "startTimeUnixNano": "1"},
                {"spanId": "3", "parentSpanId": "9", "name": "lost", "kind": 1,
                 "startTimeUnixNano": "0"}
            ]}]
        }]}));
        assert_eq!(
            v3.tree(|k, v| (k == "n").then(|| format!("{k}={}", any_value(v)))),
            "a: lost [internal] (orphan)\na: root [server]\n  a: child [client] n=3 ERROR\n"
        );
    }
}
