//! The demo end to end: the real binary, its four service processes, real HTTP/gRPC hops, the
//! viewer. Each run is bounded (the demo is killed after [`TIMEOUT`]).
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracewire_viewer::{Query, ViewerBuilder};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The four traces, in request order: two successes, the 404 (inventory does not know the
/// item: no pricing call) and the error path (pricing fails with a 500, an error up to the
/// gateway). Every hop is one parent link: HTTP SERVER → gRPC CLIENT → gRPC SERVER → HTTP
/// CLIENT (B3) → HTTP SERVER → HTTP CLIENT (Jaeger) → HTTP SERVER; the B3 hop's server saw a
/// `b3` header, the Jaeger hop's server an `uber-trace-id` header, and neither a `traceparent`.
const OK: &str = "\
gateway: GET /checkout/:item [server] http.response.status_code=200
  gateway: shop.v1.Checkout/Buy [client] rpc.grpc.status_code=0
    backend: shop.v1.Checkout/Buy [server] rpc.grpc.status_code=0
      backend: GET /stock/{item} [client] http.response.status_code=200
        inventory: GET /stock/{item} [server] http.request.header.b3=… http.response.status_code=200
          inventory: lookup_stock [internal]
          inventory: GET /price/:item [client] http.response.status_code=200
            pricing: GET /price/:item [server] http.request.header.uber-trace-id=… http.response.status_code=200
";
const NOT_FOUND: &str = "\
gateway: GET /checkout/:item [server] http.response.status_code=404
  gateway: shop.v1.Checkout/Buy [client] rpc.grpc.status_code=5 ERROR
    backend: shop.v1.Checkout/Buy [server] rpc.grpc.status_code=5
      backend: GET /stock/{item} [client] http.response.status_code=404 ERROR
        inventory: GET /stock/{item} [server] http.request.header.b3=… http.response.status_code=404
          inventory: lookup_stock [internal]
";
const ERROR: &str = "\
gateway: GET /checkout/:item [server] http.response.status_code=502 ERROR
  gateway: shop.v1.Checkout/Buy [client] rpc.grpc.status_code=14 ERROR
    backend: shop.v1.Checkout/Buy [server] rpc.grpc.status_code=14 ERROR
      backend: GET /stock/{item} [client] http.response.status_code=502 ERROR
        inventory: GET /stock/{item} [server] http.request.header.b3=… http.response.status_code=502 ERROR
          inventory: lookup_stock [internal]
          inventory: GET /price/:item [client] http.response.status_code=500 ERROR
            pricing: GET /price/:item [server] http.request.header.uber-trace-id=… http.response.status_code=500 ERROR
";

/// Kills the demo if the test fails before it exits (its own `Drop` stops its services).
struct Demo(Option<Child>);

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the demo with `--once` and `env`; returns its exit success and stdout. Panics (after
/// killing it) when it runs longer than [`TIMEOUT`].
fn run_demo(env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracewire-demo"));
    cmd.args(["--once", "--ui-port", "0"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_PROPAGATORS")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_SAMPLER")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut demo = Demo(Some(cmd.spawn().unwrap()));
    let mut stdout = demo.0.as_mut().unwrap().stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = demo.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not finish within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    demo.0 = None;
    let out = reader.join().unwrap();
    eprintln!("{out}");
    (status.success(), out)
}

/// The trees the demo printed, one per `trace <id>` block.
fn printed_trees(out: &str) -> Vec<String> {
    let mut trees = Vec::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if let Some(id) = line.strip_prefix("trace ") {
            assert_eq!(id.len(), 32, "trace id {id}");
            trees.extend(current.take());
            current = Some(String::new());
        } else if line.is_empty() || line.starts_with("viewer: ") {
            trees.extend(current.take());
        } else if let Some(tree) = current.as_mut() {
            tree.push_str(line);
            tree.push('\n');
        }
    }
    trees.extend(current);
    trees
}

#[test]
fn demo_once_shows_the_four_services_in_the_embedded_viewer() {
    let (ok, out) = run_demo(&[]);
    assert!(ok, "the demo failed");
    for (path, status) in tracewire_demo::REQUESTS {
        assert!(
            out.contains(&format!("GET {path} -> {status} ")),
            "{path} -> {status}"
        );
    }
    assert_eq!(printed_trees(&out), [OK, OK, NOT_FOUND, ERROR]);
    assert!(out.contains("viewer: http://127.0.0.1:"), "{out}");
}

#[test]
fn demo_exports_to_the_collector_named_by_otel_exporter_otlp_endpoint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A collector of our own: a viewer with only its OTLP/HTTP receiver and its query API.
    let viewer = runtime
        .block_on(
            ViewerBuilder::new()
                .otlp_grpc(None)
                .zipkin(None)
                .otlp_http(Some(0))
                .ui(Some(0))
                .start(),
        )
        .unwrap();
    let addrs = viewer.addrs();
    let endpoint = format!("http://{}", addrs.otlp_http.unwrap());

    let (ok, out) = run_demo(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    assert!(ok, "the demo failed");
    assert!(out.contains(&format!("the services export to {endpoint}")));
    assert!(!out.contains("viewer: "), "no embedded viewer: {out}");

    // The services flushed as they exited; give the receiver a moment to finish storing.
    let store = viewer.store().clone();
    let query = Query {
        limit: 0,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.search_traces(&query).len() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut traces = store.search_traces(&query);
    traces.sort_by_key(|(_, spans)| spans.iter().map(|s| s.span.start_time_unix_nano).min());
    let trees: Vec<String> = traces
        .iter()
        .map(|(_, spans)| tracewire_demo::render_trace(spans))
        .collect();
    assert_eq!(trees, [OK, OK, NOT_FOUND, ERROR]);

    // The same, through the viewer's HTTP query API.
    let ui = addrs.ui.unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let services = client
            .get(format!("http://{ui}/tw/api/services"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let services: serde_json::Value = serde_json::from_str(&services).unwrap();
        let mut names: Vec<&str> = services["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["backend", "gateway", "inventory", "pricing"]);

        let errors = client
            .get(format!(
                "http://{ui}/tw/api/search?service=pricing&status=error"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let errors: serde_json::Value = serde_json::from_str(&errors).unwrap();
        assert_eq!(errors["traces"].as_array().unwrap().len(), 1, "{errors}");
    });
    runtime.block_on(viewer.shutdown());
}
