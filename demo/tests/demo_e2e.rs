//! The demo end to end: the real binary, its four service processes, real HTTP/gRPC hops, the
//! viewer. Each run is bounded (the demo is killed after [`TIMEOUT`]).
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use tracewire_viewer::store::StoredSpan;
use tracewire_viewer::{Query, RunningViewer, ViewerBuilder};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The HTTP/gRPC part alone: no order pipeline (its test is
/// [`demo_order_pipeline_crosses_every_broker`]).
const NO_BROKERS: (&str, &str) = ("TRACEWIRE_DEMO_BROKERS", "none");

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
        .envs(env.iter().copied());
    let (status, out) = tracewire_test::process::run_to_end(&mut cmd, TIMEOUT);
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
    let (ok, out) = run_demo(&[NO_BROKERS]);
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

/// A collector of the test's own: a viewer with only its OTLP/HTTP receiver and its query API,
/// and the endpoint the demo's services export to.
fn collector(runtime: &tokio::runtime::Runtime) -> (RunningViewer, String) {
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
    let endpoint = format!("http://{}", viewer.addrs().otlp_http.unwrap());
    (viewer, endpoint)
}

/// The traces the collector holds once it holds `spans` spans (the services flushed as they
/// exited; the receiver may still be storing), or after 10 s what it has, oldest first.
fn collected(viewer: &RunningViewer, spans: usize) -> Vec<Vec<StoredSpan>> {
    let store = viewer.store().clone();
    let query = Query {
        limit: 0,
        ..Default::default()
    };
    let stored = || -> usize {
        store
            .search_traces(&query)
            .iter()
            .map(|(_, s)| s.len())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored() < spans && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut traces: Vec<Vec<StoredSpan>> = store
        .search_traces(&query)
        .into_iter()
        .map(|(_, spans)| spans)
        .collect();
    traces.sort_by_key(|spans| spans.iter().map(|s| s.span.start_time_unix_nano).min());
    traces
}

#[test]
fn demo_exports_to_the_collector_named_by_otel_exporter_otlp_endpoint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (viewer, endpoint) = collector(&runtime);
    let addrs = viewer.addrs();

    let (ok, out) = run_demo(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), NO_BROKERS]);
    assert!(ok, "the demo failed");
    assert!(out.contains(&format!("the services export to {endpoint}")));
    assert!(!out.contains("viewer: "), "no embedded viewer: {out}");

    let traces = collected(
        &viewer,
        [OK, OK, NOT_FOUND, ERROR]
            .map(|t| t.lines().count())
            .iter()
            .sum(),
    );
    let trees: Vec<String> = traces
        .iter()
        .map(|spans| tracewire_demo::render_trace(spans))
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

/// The demo's services exporting into a real Jaeger (`scripts/services.sh install jaeger`) by
/// `OTEL_EXPORTER_OTLP_ENDPOINT` alone (OTLP/HTTP protobuf, the default protocol): the same
/// four trees, read back through Jaeger's v3 API and its v1 JSON API (what the Jaeger UI
/// shows), each service's resource (its own process, host and OS), the four services with
/// their operations, and nothing refused or lost on the way.
#[test]
fn demo_exports_into_jaeger() {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::json;
    use tracewire::export::resource::{
        HOST_ARCH, HOST_NAME, OS_TYPE, PROCESS_EXECUTABLE_NAME, PROCESS_PID, SERVICE_INSTANCE_ID,
        TELEMETRY_SDK_NAME,
    };
    use tracewire_test::jaeger::{Jaeger, any_value};

    let Some(jaeger) = Jaeger::start("demo_exports_into_jaeger") else {
        return;
    };
    let endpoint = jaeger.otlp_http_endpoint();
    let (ok, out) = run_demo(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), NO_BROKERS]);
    assert!(ok, "the demo failed");
    assert!(out.contains(&format!("the services export to {endpoint}")));

    assert_eq!(
        jaeger.services(),
        ["backend", "gateway", "inventory", "pricing"]
    );
    // The UI's search: the gateway's traces (the demo's four requests), newest first.
    let found = jaeger.find_traces("service=gateway&limit=20");
    assert_eq!(found.len(), 4, "{found:?}");
    let mut ids: Vec<String> = found
        .iter()
        .map(|t| t.0["traceID"].as_str().unwrap().to_owned())
        .collect();
    // Oldest first, as the demo sent them.
    ids.sort_by_key(|id| {
        jaeger
            .trace(id)
            .unwrap()
            .spans()
            .iter()
            .map(|s| s.json["startTime"].as_u64().unwrap())
            .min()
    });

    // v3: the trees exactly as the embedded viewer shows them.
    let v3: Vec<String> = ids
        .iter()
        .map(|id| {
            jaeger.wait_for_trace_v3(id, 6).tree(|key, value| {
                if key == "http.response.status_code" || key == "rpc.grpc.status_code" {
                    Some(format!("{key}={}", any_value(value)))
                } else if key.starts_with("http.request.header.") {
                    Some(format!("{key}=…"))
                } else {
                    None
                }
            })
        })
        .collect();
    assert_eq!(v3, [OK, OK, NOT_FOUND, ERROR]);

    // v1: the same trees (kinds from `span.kind`, ERROR from the `error` tag), without the
    // captured header values.
    let v1: Vec<String> = ids
        .iter()
        .map(|id| {
            jaeger
                .trace(id)
                .unwrap()
                .tree(&["http.response.status_code", "rpc.grpc.status_code"])
        })
        .collect();
    let no_headers = |tree: &str| {
        tree.replace(" http.request.header.b3=…", "")
            .replace(" http.request.header.uber-trace-id=…", "")
    };
    assert_eq!(
        v1,
        [OK, OK, NOT_FOUND, ERROR].map(no_headers),
        "{}",
        v1.join("\n")
    );
    for id in &ids {
        let trace = jaeger.trace(id).unwrap();
        assert!(trace.warnings().is_null(), "{}", trace.0);
        for s in trace.spans() {
            assert!(s.warnings().is_null(), "{}", s.json);
        }
    }

    // Each service is its own process with its own resource: the v1 process tags and the v3
    // resource say the same, one pid per service, every span of a service with that pid.
    let mut pids: BTreeMap<String, i64> = BTreeMap::new();
    for id in &ids {
        let v1 = jaeger.trace(id).unwrap();
        for s in v1.spans() {
            let tag = |key: &str| {
                s.process_tag(key)
                    .map(|t| {
                        (
                            t["type"].as_str().unwrap_or_default().to_owned(),
                            t["value"].clone(),
                        )
                    })
                    .unwrap_or_else(|| {
                        panic!("{}: no process tag {key}: {}", s.service(), s.process())
                    })
            };
            let (ty, pid) = tag(PROCESS_PID);
            assert_eq!(ty, "int64");
            let pid = pid.as_i64().unwrap();
            assert_eq!(
                *pids.entry(s.service().to_owned()).or_insert(pid),
                pid,
                "{}",
                s.service()
            );
            assert_eq!(
                tag(OS_TYPE),
                ("string".to_owned(), json!(std::env::consts::OS))
            );
            assert_eq!(
                tag(TELEMETRY_SDK_NAME),
                ("string".to_owned(), json!("tracewire"))
            );
            for key in [
                HOST_NAME,
                HOST_ARCH,
                PROCESS_EXECUTABLE_NAME,
                SERVICE_INSTANCE_ID,
            ] {
                let (ty, v) = tag(key);
                assert_eq!(ty, "string", "{key}");
                assert!(!v.as_str().unwrap_or_default().is_empty(), "{key}");
            }
        }
        for s in jaeger.trace_v3(id).unwrap().spans() {
            let service = s.service();
            assert_eq!(
                s.resource_attr(PROCESS_PID).map(any_value),
                Some(json!(pids[service])),
                "{service}: {}",
                s.resource
            );
            for key in [HOST_NAME, OS_TYPE, PROCESS_EXECUTABLE_NAME] {
                assert!(s.resource_attr(key).is_some(), "{service}: {key}");
            }
        }
    }
    assert_eq!(
        pids.keys().collect::<Vec<_>>(),
        ["backend", "gateway", "inventory", "pricing"]
    );
    let distinct: BTreeSet<i64> = pids.values().copied().collect();
    assert_eq!(distinct.len(), 4, "one process per service: {pids:?}");

    // Operations with their kinds, as the UI's search form and Grafana list them.
    let ops = jaeger.operations("inventory", None);
    assert_eq!(
        ops,
        [
            ("GET /price/:item".to_owned(), "client".to_owned()),
            ("GET /stock/{item}".to_owned(), "server".to_owned()),
            ("lookup_stock".to_owned(), "internal".to_owned()),
        ]
    );

    // Nothing refused or lost inside Jaeger: 26 spans (8 + 8 + 6 + 8 … see the trees).
    let spans: usize = ids.iter().map(|id| jaeger.trace(id).unwrap().len()).sum();
    assert_eq!(
        spans,
        [OK, OK, NOT_FOUND, ERROR]
            .iter()
            .map(|t| t.lines().count())
            .sum::<usize>()
    );
    let m = jaeger.metrics();
    let n = spans as f64;
    assert_eq!(
        m.sum("otelcol_receiver_accepted_spans", &[("receiver", "otlp")]),
        n
    );
    assert_eq!(m.sum("otelcol_receiver_refused_spans", &[]), 0.0);
    assert_eq!(m.sum("otelcol_receiver_failed_spans", &[]), 0.0);
    assert_eq!(m.sum("otelcol_exporter_sent_spans", &[]), n);
    assert_eq!(m.sum("otelcol_exporter_send_failed_spans", &[]), 0.0);
}

/// The order pipeline: built with every broker (the demo's default features).
#[cfg(all(
    feature = "nats",
    feature = "redis",
    feature = "rabbitmq",
    feature = "mqtt",
    feature = "kafka"
))]
mod order_pipeline {
    use super::{ERROR, NOT_FOUND, OK, collected, collector, run_demo};

    /// A checkout that succeeds, with its order through the whole pipeline (every broker
    /// present): the checkout as [`OK`], then the gateway's publish and the chain of workers, each
    /// process span the child of the send span that created its message and linked to it
    /// (`links=[parent]`). The shipping worker's first attempt fails (`nack`, requeued); RabbitMQ
    /// delivers the message again and the second attempt goes on: two process spans, one creation
    /// context. The last send (to Kafka) is processed by the ledger in a batch of its own trace.
    /// The service map after the demo (`errors/count` per edge, errors of the callee's or the
    /// consumer's span): the four checkouts' calls (the 502 fails through the chain, the 404 only
    /// at the gateway's client span and below the backend), the orders' price lookups, and a
    /// message edge per broker hop for the two orders — shipping's twice each (the failed first
    /// delivery and the redelivery), the ledger's through the batch's links.
    const MAP: [&str; 9] = [
        "backend -> inventory call 1/4",
        "gateway -> backend call 1/4",
        "gateway -> payments message 0/2",
        "inventory -> pricing call 1/3",
        "notifications -> ledger message 0/2",
        "payments -> pricing call 0/2",
        "payments -> warehouse message 0/2",
        "shipping -> notifications message 0/2",
        "warehouse -> shipping message 2/4",
    ];

    const PIPELINE: &str = "\
\x20 gateway: publish orders.placed [producer]
    payments: process orders.placed [consumer] links=[parent]
      payments: GET /price/:item [client] http.response.status_code=200
        pricing: GET /price/:item [server] http.request.header.uber-trace-id=… http.response.status_code=200
      payments: publish orders.paid [producer]
        warehouse: process orders.paid [consumer] messaging.settlement=ack links=[parent]
          warehouse: publish orders.packed [producer]
            shipping: process orders.packed [consumer] messaging.settlement=nack links=[parent] ERROR
            shipping: process orders.packed [consumer] messaging.settlement=ack links=[parent]
              shipping: publish shop/orders/shipped [producer]
                notifications: process shop/orders/+ [consumer] links=[parent]
                  notifications: send orders.completed [producer]
";
    /// The ledger's batch: one process span for both orders' records, a trace of its own with a
    /// link to each record's send span — in the first and the second trace.
    const BATCH: &str = "\
ledger: process orders.completed [consumer] messaging.batch.message_count=2 messaging.settlement=commit links=[#1 notifications: send orders.completed, #2 notifications: send orders.completed]
  ledger: post_to_ledger [internal]
";

    /// The order pipeline with every broker present (`CI=true`: a missing one fails the test): the
    /// two orders' traces from the gateway through every hop, the redelivery and the batch, as a
    /// collector receives them, and the viewer's service map of that traffic. Needs the demo's
    /// default features (every broker built in).
    #[test]
    fn demo_order_pipeline_crosses_every_broker() {
        use tracewire_test::skip::{self, Broker};

        const TEST: &str = "demo_order_pipeline_crosses_every_broker";
        // The brokers the tests use (their variables, else the standard ports), handed to the demo
        // by the same variables.
        let mut env = vec![("TRACEWIRE_DEMO_BROKERS", "all".to_owned())];
        for (broker, var) in [
            (Broker::Nats, "TRACEWIRE_NATS_URL"),
            (Broker::Redis, "TRACEWIRE_REDIS_URL"),
            (Broker::RabbitMq, "TRACEWIRE_RABBITMQ_URL"),
            (Broker::Mosquitto, "TRACEWIRE_MQTT_URL"),
            (Broker::Kafka, "TRACEWIRE_KAFKA_URL"),
        ] {
            let Some(url) = skip::broker(TEST, broker) else {
                return;
            };
            env.push((var, url));
        }
        // The services export to a viewer of the test's own, so the traces and the service map
        // can be read from it after the demo exits.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (viewer, endpoint) = collector(&runtime);
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ok, out) = run_demo(&env);
        assert!(ok, "the demo failed");
        assert!(
            out.contains("order pipeline: gateway ─NATS─▶ payments ─Redis stream─▶ warehouse ─RabbitMQ─▶ shipping ─MQTT─▶ notifications ─Kafka─▶ ledger"),
            "{out}"
        );
        assert!(
            out.contains("hops ran: nats redis rabbitmq mosquitto kafka (2 of 2 orders through)\n"),
            "{out}"
        );

        let order = format!("{OK}{PIPELINE}");
        let want = [order.as_str(), &order, NOT_FOUND, ERROR, BATCH];
        let spans: usize = want.iter().map(|t| t.lines().count()).sum();
        let traces = collected(&viewer, spans);
        let mut trees = tracewire_demo::render_traces(&traces);
        // The batch's trace starts when the ledger takes both orders: before or after the 404
        // and 502 checkouts, as fast as the brokers happen to be. Its links name the orders'
        // traces (#1, #2), which always come first.
        let batch = trees
            .iter()
            .position(|t| t.starts_with("ledger: "))
            .unwrap_or_else(|| panic!("no batch trace: {trees:?}"));
        assert_eq!(trees.remove(batch), BATCH);
        assert_eq!(trees, [order.as_str(), &order, NOT_FOUND, ERROR]);

        // The service map of those traces: calls and messages, with their counts and errors.
        let ui = viewer.addrs().ui.unwrap();
        let map: serde_json::Value = runtime.block_on(async {
            let body = reqwest::get(format!("http://{ui}/tw/api/map"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            serde_json::from_str(&body).unwrap()
        });
        let mut edges: Vec<String> = map["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} -> {} {} {}/{}",
                    e["from"].as_str().unwrap(),
                    e["to"].as_str().unwrap(),
                    e["kind"].as_str().unwrap(),
                    e["errors"],
                    e["count"]
                )
            })
            .collect();
        edges.sort();
        assert_eq!(edges, MAP, "{map}");
        assert_eq!(map["traces"], 5, "{map}");
        runtime.block_on(viewer.shutdown());
    }
}
