//! Query API tests: the Jaeger v1 and Zipkin v2 read APIs return what their clients (Jaeger UI,
//! Grafana's Jaeger data source, Zipkin UI/zipkin-go readers) expect for stored traces — shape
//! and mapping — and orphan traces are listed; plus the viewer's own search API.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::*;
use tracewire_viewer::{RunningViewer, ViewerBuilder};

/// A viewer holding: checkout traces 1 and 2, an orphan trace 3 (payments only), a fast
/// healthy trace 4 from `frontend`.
async fn viewer() -> (RunningViewer, String) {
    let v = ViewerBuilder::embedded().start().await.unwrap();
    for r in checkout(1).into_iter().chain(checkout(2)) {
        v.store().ingest(r);
    }
    v.store().ingest(checkout(3).remove(1));
    let mut h = span(SpanSpec {
        trace: 4,
        id: 1,
        parent: None,
        name: "GET /health",
        kind: 2,
        start_ms: 500,
        dur_ms: 1,
    });
    h.attributes = vec![str_kv("http.route", "/health")];
    v.store().ingest(request_of("frontend", vec![h]));
    let url = format!("http://{}", v.addrs().ui.unwrap());
    (v, url)
}

fn span_by<'a>(trace: &'a Value, id: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["spanID"] == id)
        .unwrap()
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
}

fn trace_ids(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn jaeger_services_and_operations() {
    let (v, url) = viewer().await;
    let r = get(&format!("{url}/api/services")).await.json();
    assert_eq!(r["data"], json!(["frontend", "payments"]));
    assert_eq!(r["total"], 2);
    assert!(r["errors"].is_null());
    let r = get(&format!("{url}/api/services/frontend/operations"))
        .await
        .json();
    assert_eq!(
        r["data"],
        json!(["GET /checkout", "GET /health", "POST /pay"])
    );
    let r = get(&format!(
        "{url}/api/operations?service=frontend&spanKind=client"
    ))
    .await
    .json();
    assert_eq!(
        r["data"],
        json!([{ "name": "POST /pay", "spanKind": "client" }])
    );
    let r = get(&format!("{url}/api/operations?service=payments"))
        .await
        .json();
    assert_eq!(r["data"].as_array().unwrap().len(), 2);
    v.shutdown().await;
}

#[tokio::test]
async fn jaeger_trace_shape_and_mapping() {
    let (v, url) = viewer().await;
    let r = get(&format!("{url}/api/traces/{}", tid_hex(1))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/json");
    let r = r.json();
    let t = &r["data"][0];
    assert_eq!(t["traceID"], tid_hex(1));
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 4);
    // processes: one per resource, service name + resource tags
    let processes = t["processes"].as_object().unwrap();
    assert_eq!(processes.len(), 2);
    for s in spans {
        let p = &processes[s["processID"].as_str().unwrap()];
        assert!(p["serviceName"] == "frontend" || p["serviceName"] == "payments");
        assert_eq!(
            p["tags"],
            json!([{ "key": "host.name", "type": "string", "value": "box-1" }])
        );
    }
    let root = span_by(t, &sid_hex(1));
    assert_eq!(root["operationName"], "GET /checkout");
    assert_eq!(root["references"], json!([]));
    assert_eq!(root["startTime"], (T0 / 1000));
    assert_eq!(root["duration"], 120_000);
    assert_eq!(root["flags"], 1);
    assert_eq!(tag(root, "span.kind").unwrap()["value"], "server");
    assert_eq!(
        tag(root, "http.response.status_code").unwrap(),
        &json!({ "key": "http.response.status_code", "type": "int64", "value": 500 })
    );
    assert!(tag(root, "error").is_none());
    assert_eq!(
        tag(root, "otel.scope.name").unwrap()["value"],
        "tracewire-test"
    );

    let pay = span_by(t, &sid_hex(3));
    // parent reference first, then links
    assert_eq!(
        pay["references"],
        json!([
            { "refType": "CHILD_OF", "traceID": tid_hex(1), "spanID": sid_hex(2) },
            { "refType": "FOLLOWS_FROM", "traceID": tid_hex(99), "spanID": sid_hex(1) },
        ])
    );
    assert_eq!(
        tag(pay, "error").unwrap(),
        &json!({ "key": "error", "type": "bool", "value": true })
    );
    assert_eq!(tag(pay, "otel.status_code").unwrap()["value"], "ERROR");
    assert_eq!(
        tag(pay, "otel.status_description").unwrap()["value"],
        "card declined"
    );
    assert_eq!(
        pay["logs"],
        json!([{ "timestamp": (T0 + 50 * MS) / 1000, "fields": [
            { "key": "event", "type": "string", "value": "retry" },
            { "key": "attempt", "type": "int64", "value": 2 },
        ]}])
    );
    let db = span_by(t, &sid_hex(4));
    assert_eq!(tag(db, "span.kind").unwrap()["value"], "client");
    // spans sorted by start time
    let starts: Vec<u64> = spans
        .iter()
        .map(|s| s["startTime"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));

    let nf = get(&format!("{url}/api/traces/{}", "0".repeat(31) + "1")).await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["errors"][0]["code"], 404);
    assert_eq!(get(&format!("{url}/api/traces/not-hex")).await.status, 400);
    v.shutdown().await;
}

#[tokio::test]
async fn jaeger_search() {
    let (v, url) = viewer().await;
    let s = |q: &str| {
        let url = format!("{url}/api/traces?{q}");
        async move { get(&url).await.json() }
    };
    // Grafana's query: service + operation + tags (JSON) + durations + time range (µs) + limit
    let start = T0 / 1000 - 1_000_000;
    let end = T0 / 1000 + 10_000_000;
    assert_eq!(
        trace_ids(
            &s(&format!(
                "service=frontend&start={start}&end={end}&limit=20"
            ))
            .await
        ),
        vec![tid_hex(1), tid_hex(2), tid_hex(4)]
    );
    assert_eq!(
        trace_ids(&s("service=frontend&operation=GET%20%2Fhealth").await),
        vec![tid_hex(4)]
    );
    assert_eq!(
        trace_ids(&s("service=payments&tags=%7B%22error%22%3A%22true%22%7D").await),
        vec![tid_hex(1), tid_hex(2), tid_hex(3)],
        "error=true matches the status, orphan 3 listed"
    );
    assert_eq!(
        trace_ids(
            &s("service=payments&tags=payment.method%3Dcard%20http.response.status_code%3D402")
                .await
        )
        .len(),
        3,
        "logfmt tags"
    );
    assert_eq!(
        trace_ids(&s("service=frontend&minDuration=50ms").await),
        vec![tid_hex(1), tid_hex(2)]
    );
    assert_eq!(
        trace_ids(&s("service=frontend&maxDuration=2ms").await),
        vec![tid_hex(4)]
    );
    assert_eq!(trace_ids(&s("service=frontend&limit=1").await).len(), 1);
    let future = T0 / 1000 + 3_600_000_000;
    assert!(trace_ids(&s(&format!("service=frontend&start={future}")).await).is_empty());
    assert!(trace_ids(&s("service=nope").await).is_empty());
    assert_eq!(
        trace_ids(&s(&format!("traceID={}&traceID={}", tid_hex(2), tid_hex(3))).await),
        vec![tid_hex(2), tid_hex(3)]
    );
    let bad = get(&format!(
        "{url}/api/traces?service=frontend&minDuration=fast"
    ))
    .await;
    assert_eq!(bad.status, 400);
    // the orphan trace is returned with its spans; its first reference points at the missing parent
    let r = s("service=payments&operation=POST%20%2Fpay&limit=50").await;
    let orphan = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["traceID"] == tid_hex(3))
        .unwrap();
    assert_eq!(orphan["spans"].as_array().unwrap().len(), 2);
    assert_eq!(
        span_by(orphan, &sid_hex(3))["references"][0]["spanID"],
        sid_hex(2)
    );
    v.shutdown().await;
}

#[tokio::test]
async fn jaeger_dependencies() {
    let (v, url) = viewer().await;
    // Grafana's query: the traces within [endTs - lookback, endTs] (ms)
    let end_ms = T0 / MS + 10_000;
    let deps = |q: String| {
        let url = format!("{url}/api/dependencies?{q}");
        async move { get(&url).await.json()["data"].clone() }
    };
    let both = json!([{ "parent": "frontend", "child": "payments", "callCount": 2 }]);
    assert_eq!(deps(format!("endTs={end_ms}&lookback=3600000")).await, both);
    assert_eq!(
        deps(format!("endTs={end_ms}&lookback=3600000&service=payments")).await,
        both
    );
    assert_eq!(
        deps(format!("endTs={end_ms}&lookback=3600000&service=nobody")).await,
        json!([])
    );
    // a window before the traces, or one that ends while they run
    assert_eq!(
        deps(format!("endTs={}&lookback=60000", T0 / MS - 1)).await,
        json!([])
    );
    assert_eq!(
        deps(format!("endTs={}&lookback=60000", T0 / MS + 50)).await,
        json!([])
    );
    // the default window is the last 24 hours, and these traces are older
    assert_eq!(deps(String::new()).await, json!([]));
    assert_eq!(
        get(&format!("{url}/api/dependencies?endTs=soon"))
            .await
            .status,
        400
    );
    v.shutdown().await;
}

#[tokio::test]
async fn zipkin_read_api() {
    let (v, url) = viewer().await;
    assert_eq!(
        get(&format!("{url}/api/v2/services")).await.json(),
        json!(["frontend", "payments"])
    );
    assert_eq!(
        get(&format!("{url}/api/v2/spans?serviceName=payments"))
            .await
            .json(),
        json!(["db.query", "post /pay"])
    );
    assert_eq!(get(&format!("{url}/api/v2/spans")).await.status, 400);
    assert_eq!(
        get(&format!("{url}/api/v2/remoteServices?serviceName=frontend"))
            .await
            .json(),
        json!(["payments"])
    );

    let t = get(&format!("{url}/api/v2/trace/{}", tid_hex(1)))
        .await
        .json();
    let spans = t.as_array().unwrap();
    assert_eq!(spans.len(), 4);
    let root = &spans[0];
    assert_eq!(root["traceId"], tid_hex(1));
    assert_eq!(root["id"], sid_hex(1));
    assert!(root.get("parentId").is_none());
    assert_eq!(root["kind"], "SERVER");
    assert_eq!(root["timestamp"], T0 / 1000);
    assert_eq!(root["duration"], 120_000);
    assert_eq!(root["localEndpoint"], json!({ "serviceName": "frontend" }));
    assert_eq!(root["tags"]["http.response.status_code"], "500");
    let client = spans.iter().find(|s| s["id"] == sid_hex(2)).unwrap();
    assert_eq!(client["kind"], "CLIENT");
    assert_eq!(
        client["remoteEndpoint"],
        json!({ "serviceName": "payments", "ipv4": "10.0.0.7", "port": 8080 })
    );
    let pay = spans.iter().find(|s| s["id"] == sid_hex(3)).unwrap();
    assert_eq!(pay["parentId"], sid_hex(2));
    assert_eq!(pay["tags"]["error"], "card declined");
    assert_eq!(pay["tags"]["otel.status_code"], "ERROR");
    assert_eq!(
        pay["annotations"],
        json!([{ "timestamp": (T0 + 50 * MS) / 1000, "value": "\"retry\": {\"attempt\":\"2\"}" }])
    );
    let db = spans.iter().find(|s| s["id"] == sid_hex(4)).unwrap();
    assert_eq!(db["kind"], "CLIENT");

    let search = |q: &str| {
        let url = format!("{url}/api/v2/traces?{q}");
        async move {
            let r = get(&url).await.json();
            let mut ids: Vec<String> = r
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t[0]["traceId"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let end_ms = T0 / 1_000_000 + 10_000;
    let w = format!("endTs={end_ms}&lookback=60000");
    assert_eq!(
        search(&format!("serviceName=frontend&{w}")).await,
        vec![tid_hex(1), tid_hex(2), tid_hex(4)]
    );
    assert_eq!(
        search(&format!("serviceName=payments&annotationQuery=error&{w}")).await,
        vec![tid_hex(1), tid_hex(2), tid_hex(3)]
    );
    assert_eq!(
        search(&format!(
            "serviceName=frontend&spanName=get%20%2Fhealth&{w}"
        ))
        .await,
        vec![tid_hex(4)]
    );
    assert_eq!(
        search(&format!(
            "annotationQuery=payment.method%3Dcard%20and%20retry&{w}"
        ))
        .await
        .len(),
        3
    );
    assert_eq!(
        search(&format!("serviceName=frontend&minDuration=50000&{w}")).await,
        vec![tid_hex(1), tid_hex(2)]
    );
    assert_eq!(
        search(&format!("serviceName=frontend&{w}&limit=1"))
            .await
            .len(),
        1
    );
    assert!(
        search("serviceName=frontend&endTs=1000&lookback=1000")
            .await
            .is_empty(),
        "time window"
    );
    assert_eq!(
        get(&format!("{url}/api/v2/trace/{}", "1".repeat(32)))
            .await
            .status,
        404
    );
    assert_eq!(
        get(&format!("{url}/api/v2/traces?limit=x")).await.status,
        400
    );
    let many = get(&format!(
        "{url}/api/v2/traceMany?traceIds={},{}",
        tid_hex(1),
        tid_hex(4)
    ))
    .await
    .json();
    assert_eq!(many.as_array().unwrap().len(), 2);
    v.shutdown().await;
}

#[tokio::test]
async fn own_search_api() {
    let (v, url) = viewer().await;
    let s = |q: &str| {
        let url = format!("{url}/tw/api/search?{q}");
        async move {
            let r = get(&url).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let mut ids: Vec<String> = r.json()["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["traceId"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(s("").await.len(), 4);
    assert_eq!(
        s("status=error").await,
        vec![tid_hex(1), tid_hex(2), tid_hex(3)]
    );
    assert_eq!(
        s("service=frontend&status=error").await,
        Vec::<String>::new()
    );
    assert_eq!(s("attr=http.route%3D%2Fhealth").await, vec![tid_hex(4)]);
    assert_eq!(
        s("q=CARDS%20WHERE").await,
        vec![tid_hex(1), tid_hex(2), tid_hex(3)],
        "free text, case-insensitive"
    );
    assert_eq!(
        s("name=GET%20%2Fcheckout&minDuration=100ms").await,
        vec![tid_hex(1), tid_hex(2)]
    );
    assert_eq!(
        s("name=GET%20%2Fcheckout&minDuration=200").await,
        Vec::<String>::new()
    );
    assert_eq!(
        s("lookback=15m").await,
        Vec::<String>::new(),
        "the test traces are from 2026-01-01"
    );
    let r = get(&format!("{url}/tw/api/search?service=payments"))
        .await
        .json();
    let orphan = r["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["traceId"] == tid_hex(3))
        .unwrap();
    assert_eq!(orphan["orphan"], true);
    assert_eq!(orphan["missingRoot"], true);
    assert_eq!(
        orphan["rootName"], "POST /pay",
        "the earliest span stands in for the missing root"
    );
    let complete = r["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["traceId"] == tid_hex(1))
        .unwrap();
    assert_eq!(complete["orphan"], false);
    assert_eq!(complete["errorCount"], 1);
    assert_eq!(
        complete["services"],
        json!([
            { "name": "frontend", "spans": 2, "errors": 0 },
            { "name": "payments", "spans": 2, "errors": 1 },
        ])
    );
    assert_eq!(
        get(&format!("{url}/tw/api/search?status=broken"))
            .await
            .status,
        400
    );
    // absurd numbers are answered, not a panic
    let max = u64::MAX;
    for q in [
        format!("/tw/api/search?end={max}&lookback=1h&minDuration={max}"),
        format!("/api/traces?service=frontend&end={max}&lookback=1h&minDuration=99999999999h"),
        format!("/api/v2/traces?minDuration={max}&maxDuration={max}&endTs={max}&lookback={max}"),
    ] {
        assert_eq!(get(&format!("{url}{q}")).await.status, 200, "{q}");
    }
    // links navigable both ways: trace 1 links to trace 99; when 99 arrives it lists the link back
    let mut target = span(SpanSpec {
        trace: 99,
        id: 1,
        parent: None,
        name: "batch",
        kind: 5,
        start_ms: 0,
        dur_ms: 5,
    });
    target.attributes = vec![];
    v.store().ingest(request_of("worker", vec![target]));
    let t = get(&format!("{url}/tw/api/traces/{}", tid_hex(99)))
        .await
        .json();
    let incoming: Vec<(String, String)> = t["incomingLinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["fromTraceId"].as_str().unwrap().to_owned(),
                l["toSpanId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(incoming.contains(&(tid_hex(1), sid_hex(1))), "{incoming:?}");
    assert!(incoming.contains(&(tid_hex(2), sid_hex(1))), "{incoming:?}");
    v.shutdown().await;
}

#[tokio::test]
async fn ui_assets_are_served_self_contained() {
    let (v, url) = viewer().await;
    let index = get(&format!("{url}/")).await;
    assert_eq!(index.status, 200);
    assert!(
        index.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = index.text();
    assert!(html.contains("/app.js") && html.contains("/app.css"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let js = get(&format!("{url}/app.js")).await;
    assert_eq!(js.status, 200);
    assert!(
        !js.text().contains("innerHTML"),
        "span text is never inserted as HTML"
    );
    assert_eq!(get(&format!("{url}/app.css")).await.status, 200);
    v.shutdown().await;
}

/// The Jaeger v3 API (OTLP JSON), checked here without a Jaeger; `jaeger_parity.rs` holds it
/// against a real one.
#[tokio::test]
async fn jaeger_v3_api() {
    let (v, url) = viewer().await;
    let g = |path: String| {
        let url = format!("{url}{path}");
        async move { get(&url).await }
    };
    assert_eq!(
        g("/api/v3/services".into()).await.json(),
        json!({ "services": ["frontend", "payments"] })
    );
    assert_eq!(
        g("/api/v3/operations?service=frontend&span_kind=client".into())
            .await
            .json(),
        json!({ "operations": [{ "name": "POST /pay", "spanKind": "client" }] })
    );
    assert_eq!(
        g("/api/v3/operations?service=nobody".into()).await.json(),
        json!({ "operations": [] })
    );

    let r = g(format!("/api/v3/traces/{}", tid_hex(1))).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    let rss = doc["result"]["resourceSpans"].as_array().unwrap();
    let spans: Vec<&Value> = rss
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap())
        .collect();
    assert_eq!(spans.len(), 4);
    let root = spans.iter().find(|s| s["spanId"] == sid_hex(1)).unwrap();
    // proto3 JSON as Jaeger writes it: hex ids, 64-bit numbers as strings, kind as a number,
    // defaults left out, `status` always there
    assert_eq!(root["traceId"], tid_hex(1));
    assert_eq!(root["kind"], 2);
    assert_eq!(root["startTimeUnixNano"], json!(T0.to_string()), "{root}");
    assert_eq!(root["status"], json!({}));
    assert!(root.get("parentSpanId").is_none());
    assert!(root.get("events").is_none());
    // attributes sorted by key, as Jaeger's adjusters leave them; as received with raw_traces
    assert_eq!(
        root["attributes"],
        json!([
            { "key": "http.response.status_code", "value": { "intValue": "500" } },
            { "key": "http.route", "value": { "stringValue": "/checkout" } },
        ])
    );
    let raw = g(format!("/api/v3/traces/{}?raw_traces=true", tid_hex(1)))
        .await
        .json();
    let raw_root = &raw["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(raw_root["spanId"], sid_hex(1));
    assert_eq!(raw_root["attributes"][0]["key"], "http.route");
    let pay = spans.iter().find(|s| s["spanId"] == sid_hex(3)).unwrap();
    assert_eq!(
        pay["status"],
        json!({ "code": 2, "message": "card declined" })
    );
    assert_eq!(pay["links"][0]["traceId"], tid_hex(99));
    for r in rss {
        let keys: Vec<&str> = r["resource"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| kv["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["host.name", "service.name"]);
    }

    let missing = g(format!("/api/v3/traces/{}", tid_hex(99))).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({ "error": { "httpCode": 404, "message": "No traces found" } })
    );
    assert_eq!(g("/api/v3/traces/nothex".into()).await.status, 400);

    // search: the span's start within [start_time_min, start_time_max] (RFC 3339)
    let search = |params: &str| g(format!("/api/v3/traces?{params}"));
    let window =
        "query.start_time_min=2025-12-31T23:00:00Z&query.start_time_max=2026-01-01T01:00:00Z";
    let trace_ids = |doc: &Value| {
        let mut ids: Vec<String> = doc["result"]["resourceSpans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["scopeSpans"].as_array().unwrap())
            .flat_map(|s| s["spans"].as_array().unwrap())
            .map(|s| s["traceId"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let r = search(&format!(
        "query.service_name=payments&query.num_traces=10&{window}"
    ))
    .await;
    assert_eq!(
        trace_ids(&r.json()),
        vec![tid_hex(1), tid_hex(2), tid_hex(3)]
    );
    let r = search(&format!(
        "query.service_name=frontend&query.operation_name=GET%20%2Fhealth&{window}"
    ))
    .await;
    assert_eq!(trace_ids(&r.json()), vec![tid_hex(4)]);
    let r = search(&format!(
        "query.service_name=frontend&query.duration_min=100ms&{window}"
    ))
    .await;
    assert_eq!(trace_ids(&r.json()), vec![tid_hex(1), tid_hex(2)]);
    let r = search(&format!(
        "query.service_name=payments&query.attributes%5Bpayment.method%5D=card&{window}"
    ))
    .await;
    assert_eq!(trace_ids(&r.json()).len(), 3);
    let none = search(&format!("query.service_name=nobody&{window}")).await;
    assert_eq!(none.status, 404);
    assert_eq!(search("query.service_name=payments").await.status, 400);
    assert_eq!(
        search(
            "query.service_name=payments&query.start_time_min=yesterday&query.start_time_max=now"
        )
        .await
        .status,
        400
    );
    v.shutdown().await;
}

/// The rest of what the Jaeger UI calls: the upload (`/api/transform`), and archive and
/// metrics answered as Jaeger without those stores answers them.
#[tokio::test]
async fn jaeger_transform_archive_and_metrics() {
    let (v, url) = viewer().await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/otlp-trace.json"
    ))
    .unwrap();
    let r = post(&format!("{url}/api/transform"), "application/json", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    let t = &doc["data"][0];
    assert_eq!(t["spans"].as_array().unwrap().len(), 1);
    assert_eq!(t["processes"]["p1"]["serviceName"], "my.service");
    let before = v.store().stats().spans;
    assert_eq!(before, 8 + 2 + 1, "the upload is not stored");
    let bad = post(
        &format!("{url}/api/transform"),
        "application/json",
        b"{".to_vec(),
    )
    .await;
    assert_eq!(bad.status, 400);

    let archive = post(
        &format!("{url}/api/archive/{}", tid_hex(1)),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!(archive.status, 500);
    assert_eq!(
        archive.json()["errors"][0]["msg"],
        "archive span storage was not configured"
    );
    for (path, status) in [
        ("/api/metrics/latencies?service=frontend&quantile=0.95", 501),
        ("/api/metrics/calls?service=frontend", 501),
        ("/api/metrics/errors?service=frontend", 501),
        ("/api/metrics/minstep", 501),
        ("/api/metrics/latencies?service=frontend", 400),
        ("/api/metrics/calls", 400),
    ] {
        assert_eq!(get(&format!("{url}{path}")).await.status, status, "{path}");
    }
    v.shutdown().await;
}
