//! The `instrumented_gateway` example as it runs by hand with `--once` — two processes, the
//! gateway starting the backend, each with its own `service.name` and `tracewire::builder()`
//! setup — exporting over OTLP/HTTP (from the standard `OTEL_*` variables) to a collector of
//! this test's own: one trace, the exact parent chain by span id from the gateway's HTTP server
//! span through the `#[instrument]` spans, the gRPC client and server spans, to the backend's
//! `#[instrument]` and `#[fastrace::trace]` spans; typed fields; the `err` span's status.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "../examples/instrumented_gateway.rs"]
#[allow(dead_code)]
mod example;

use std::process::Command;
use std::time::Duration;

use tracewire_test::faststream::{Receiver, render, typed};
use tracewire_viewer::store::StoredSpan;

/// Which of the example's processes a run of this binary is (the gateway or the backend).
const ROLE: &str = "INSTRUMENTED_GATEWAY_ROLE";
/// How long the example may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// This test binary, started again as one of the example's processes.
fn process(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "example_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role);
    cmd
}

/// The entry point of the example's processes (a no-op in a normal test run).
#[test]
fn example_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    if let Err(e) = example::run(role == "backend", true, process("backend")) {
        panic!("the example's {role} failed: {e}");
    }
}

/// Runs the example's gateway with `--once`, exporting to `endpoint`; returns its stdout.
fn run_once(endpoint: &str) -> String {
    let mut cmd = process("gateway");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    // The default filter (`info`): the spans hyper, h2 and tonic open at `debug` stay out.
    cmd.env_remove("RUST_LOG")
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    // Its backend exits when its stdin closes.
    let (status, out) = tracewire_test::process::run_to_end(&mut cmd, TIMEOUT);
    assert!(status.success(), "the example failed: {status}");
    out
}

/// The one span of `service` named `name`.
fn one<'a>(spans: &'a [StoredSpan], service: &str, name: &str, kind: i32) -> &'a StoredSpan {
    let found: Vec<&StoredSpan> = spans
        .iter()
        .filter(|s| &*s.origin.service == service && s.span.name == name && s.span.kind == kind)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {service}: {name} (kind {kind}) in\n{}",
        render(&spans.iter().collect::<Vec<_>>())
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_is_one_trace_from_the_gateway_through_instrument_spans_to_the_backend() {
    use tracewire_export::proto::common::v1::any_value;
    use tracewire_export::proto::trace::v1::span::SpanKind;
    use tracewire_export::proto::trace::v1::status::StatusCode;

    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint().to_owned();
    let out = tokio::task::spawn_blocking(move || run_once(&endpoint))
        .await
        .unwrap();
    assert!(
        out.contains("GET /orders/42 -> 200 order 42: 9.38 EUR"),
        "{out}"
    );

    let spans = receiver.spans(9).await;
    let tree = render(&spans.iter().collect::<Vec<_>>());
    let (server, client, internal) = (
        SpanKind::Server as i32,
        SpanKind::Client as i32,
        SpanKind::Internal as i32,
    );
    const RPC: &str = "tracewire.test.v1.Echo/Unary";
    let http = one(&spans, "gateway", "GET /orders/{id}", server);
    let get_order = one(&spans, "gateway", "get_order", internal);
    let validate = one(&spans, "gateway", "validate", internal);
    let fetch_order = one(&spans, "gateway", "fetch_order", internal);
    let rpc_client = one(&spans, "gateway", RPC, client);
    let rpc_server = one(&spans, "order-backend", RPC, server);
    let handle_order = one(&spans, "order-backend", "handle_order", internal);
    let load_price = one(&spans, "order-backend", "load_price", internal);
    let apply_discount = one(&spans, "order-backend", "apply_discount", internal);

    // One trace, and every span's parent by id.
    for s in &spans {
        assert_eq!(s.span.trace_id, http.span.trace_id, "one trace:\n{tree}");
    }
    assert!(http.span.parent_span_id.is_empty(), "{tree}");
    for (child, parent) in [
        (get_order, http),
        (validate, get_order),
        (fetch_order, get_order),
        (rpc_client, fetch_order),
        (rpc_server, rpc_client),
        (handle_order, rpc_server),
        (load_price, handle_order),
        (apply_discount, load_price),
    ] {
        assert_eq!(
            child.span.parent_span_id, parent.span.span_id,
            "{}'s parent is {}:\n{tree}",
            child.span.name, parent.span.name
        );
    }

    // Fields keep their types on the wire.
    assert_eq!(
        typed(get_order, "order.id").as_deref(),
        Some("int:42"),
        "{tree}"
    );
    assert_eq!(
        typed(fetch_order, "express").as_deref(),
        Some("bool:true"),
        "{tree}"
    );
    assert_eq!(
        typed(handle_order, "id").as_deref(),
        Some("int:42"),
        "{tree}"
    );
    assert_eq!(
        typed(handle_order, "express").as_deref(),
        Some("bool:true"),
        "{tree}"
    );
    assert_eq!(
        typed(apply_discount, "percent").as_deref(),
        Some("double:10"),
        "{tree}"
    );
    assert_eq!(
        typed(apply_discount, "cents").as_deref(),
        Some("int:1042"),
        "{tree}"
    );
    // The event inside `fetch_order` is a span event of it, with its typed field.
    let answered = fetch_order
        .span
        .events
        .iter()
        .find(|e| e.name == "backend answered")
        .unwrap_or_else(|| panic!("fetch_order's event:\n{tree}"));
    let len = answered.attributes.iter().find(|kv| kv.key == "reply.len");
    assert_eq!(
        len.and_then(|kv| kv.value.as_ref()).map(|v| &v.value),
        Some(&Some(any_value::Value::IntValue(18))),
        "{answered:?}"
    );
    // `#[instrument(err)]` that returned `Ok`, and a successful call: no error anywhere.
    for s in &spans {
        let code = s.span.status.as_ref().map_or(0, |st| st.code);
        assert_ne!(code, StatusCode::Error as i32, "{}: {tree}", s.span.name);
    }
    receiver.shutdown().await;
}
