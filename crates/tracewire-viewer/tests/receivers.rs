//! Receiver tests: every protocol and encoding against a real viewer on 127.0.0.1:0, including
//! garbage, truncated, oversized and compressed-bomb payloads, CORS, port conflicts, the memory
//! bounds under a flood, merging, orphans, the live stream and persistence.
#![allow(clippy::unwrap_used)]

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceResponse, trace_service_client::TraceServiceClient,
};
use prost::Message;
use support::*;
use tracewire_viewer::{RunningViewer, ViewerBuilder};

fn builder() -> ViewerBuilder {
    ViewerBuilder::new()
        .otlp_grpc(Some(0))
        .otlp_http(Some(0))
        .zipkin(Some(0))
        .ui(Some(0))
}

async fn start() -> RunningViewer {
    builder().start().await.unwrap()
}

fn otlp_url(v: &RunningViewer) -> String {
    format!("http://{}/v1/traces", v.addrs().otlp_http.unwrap())
}

fn ui(v: &RunningViewer) -> String {
    format!("http://{}", v.addrs().ui.unwrap())
}

/// The stored trace `n` as the own API shows it.
async fn stored(v: &RunningViewer, n: u8) -> serde_json::Value {
    let r = get(&format!("{}/tw/api/traces/{}", ui(v), tid_hex(n))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn assert_alive(v: &RunningViewer) {
    let reqs = checkout(200);
    for r in reqs {
        let resp = post(&otlp_url(v), "application/x-protobuf", r.encode_to_vec()).await;
        assert_eq!(resp.status, 200);
    }
    assert_eq!(stored(v, 200).await["spans"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn otlp_http_protobuf() {
    let v = start().await;
    for r in checkout(1) {
        let resp = post(&otlp_url(&v), "application/x-protobuf", r.encode_to_vec()).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.headers["content-type"], "application/x-protobuf");
        let decoded = ExportTraceServiceResponse::decode(resp.body.as_slice()).unwrap();
        assert!(decoded.partial_success.is_none());
    }
    let t = stored(&v, 1).await;
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[0]["name"], "GET /checkout");
    assert_eq!(spans[0]["kind"], "server");
    assert_eq!(spans[0]["service"], "frontend");
    assert_eq!(spans[2]["status"]["code"], "ERROR");
    assert_eq!(spans[2]["status"]["message"], "card declined");
    assert_eq!(spans[2]["parentSpanId"], sid_hex(2));
    assert_eq!(t["summary"]["orphan"], false);
    v.shutdown().await;
}

#[tokio::test]
async fn otlp_http_rejects_invalid_ids_as_partial_success() {
    let v = start().await;
    let mut reqs = checkout(2);
    reqs[0].resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let resp = post(
        &otlp_url(&v),
        "application/x-protobuf",
        reqs[0].encode_to_vec(),
    )
    .await;
    assert_eq!(resp.status, 200);
    let decoded = ExportTraceServiceResponse::decode(resp.body.as_slice()).unwrap();
    assert_eq!(decoded.partial_success.unwrap().rejected_spans, 1);
    assert_eq!(v.store().stats().spans, 1);
    v.shutdown().await;
}

#[tokio::test]
async fn otlp_http_json_spec_sample_and_gzip() {
    let v = start().await;
    let json = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/otlp-trace.json"
    ))
    .unwrap();
    let resp = request(
        "POST",
        &otlp_url(&v),
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(&json),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.headers["content-type"], "application/json");
    let r = get(&format!(
        "{}/tw/api/traces/5b8efff798038103d269b633813fc60c",
        ui(&v)
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    let s = &t["spans"][0];
    assert_eq!(s["spanId"], "eee19b7ec3c1b174");
    assert_eq!(s["parentSpanId"], "eee19b7ec3c1b173");
    assert_eq!(s["missingParent"], true);
    assert_eq!(s["kind"], "server");
    assert_eq!(s["service"], "my.service");
    assert_eq!(s["durationNs"], 1_000_000_000u64);
    assert_eq!(s["attributes"][0]["key"], "my.span.attr");
    assert_eq!(s["attributes"][0]["value"], "some value");
    assert_eq!(s["scope"]["name"], "my.library");
    // the parent never arrived: listed, flagged
    assert_eq!(t["summary"]["orphan"], true);

    // protobuf + gzip too
    let r = checkout(3).remove(0);
    let resp = request(
        "POST",
        &otlp_url(&v),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        gzip(&r.encode_to_vec()),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(stored(&v, 3).await["spans"].as_array().unwrap().len(), 2);
    v.shutdown().await;
}

#[tokio::test]
async fn otlp_http_bad_payloads_get_4xx_and_the_server_stays_up() {
    let v = builder().max_body(64 * 1024).start().await.unwrap();
    let url = otlp_url(&v);
    let good = checkout(4).remove(0).encode_to_vec();
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        Vec<u8>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "garbage protobuf",
            vec![("content-type", "application/x-protobuf")],
            b"\xff\xff\xff\xff garbage".to_vec(),
            400,
        ),
        (
            "truncated protobuf",
            vec![("content-type", "application/x-protobuf")],
            good[..good.len() / 2].to_vec(),
            400,
        ),
        (
            "garbage json",
            vec![("content-type", "application/json")],
            b"{\"resourceSpans\": [ {".to_vec(),
            400,
        ),
        (
            "json of the wrong shape",
            vec![("content-type", "application/json")],
            b"{\"resourceSpans\": 7}".to_vec(),
            400,
        ),
        (
            "unknown content type",
            vec![("content-type", "text/plain")],
            good.clone(),
            415,
        ),
        (
            "unknown encoding",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "br"),
            ],
            good.clone(),
            415,
        ),
        (
            "bad gzip",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            b"\x1f\x8b\x08\x00garbage".to_vec(),
            400,
        ),
        (
            "oversized",
            vec![("content-type", "application/x-protobuf")],
            vec![0x0a; 200 * 1024],
            413,
        ),
        (
            "gzip bomb",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            gzip(&vec![0u8; 20 * 1024 * 1024]),
            413,
        ),
    ];
    for (what, headers, body, want) in cases {
        let resp = request("POST", &url, &headers, body).await;
        assert_eq!(resp.status, want, "{what}: {}", resp.text());
    }
    let resp = get(&url).await;
    assert_eq!(resp.status, 405, "GET /v1/traces");
    assert_eq!(v.store().stats().spans, 0);
    assert_alive(&v).await;
    v.shutdown().await;
}

#[tokio::test]
async fn otlp_grpc_plain_gzip_and_oversized() {
    let v = builder().max_body(256 * 1024).start().await.unwrap();
    let url = format!("http://{}", v.addrs().otlp_grpc.unwrap());
    let mut client = TraceServiceClient::connect(url.clone()).await.unwrap();
    let reqs = checkout(5);
    let resp = client.export(reqs[0].clone()).await.unwrap().into_inner();
    assert!(resp.partial_success.is_none());
    let mut gz = TraceServiceClient::connect(url.clone())
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    gz.export(reqs[1].clone()).await.unwrap();
    let t = stored(&v, 5).await;
    assert_eq!(t["spans"].as_array().unwrap().len(), 4);
    assert_eq!(t["summary"]["services"].as_array().unwrap().len(), 2);

    // oversized: a status error, not a crash
    let mut big = checkout(6).remove(0);
    big.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(str_kv("blob", &"x".repeat(400 * 1024)));
    let err = client.export(big).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{err:?}"
    );
    // garbage bytes on the gRPC port: the connection fails, the server does not
    let mut s = tokio::net::TcpStream::connect(v.addrs().otlp_grpc.unwrap())
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, b"GET / HTTP/1.1\r\n\r\n\x00\x01garbage")
        .await
        .unwrap();
    drop(s);
    let mut again = TraceServiceClient::connect(url).await.unwrap();
    again.export(checkout(7).remove(0)).await.unwrap();
    assert_eq!(stored(&v, 7).await["spans"].as_array().unwrap().len(), 2);
    v.shutdown().await;
}

const ZIPKIN_SPANS: &str = r#"[
  {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","name":"get /api",
   "timestamp":1767225600000000,"duration":20000,"kind":"SERVER",
   "localEndpoint":{"serviceName":"gateway","ipv4":"10.0.0.1"},
   "tags":{"http.method":"GET","http.path":"/api"}},
  {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"b3fb4a1d1a96d313","parentId":"a2fb4a1d1a96d312",
   "name":"select","timestamp":1767225600005000,"duration":10000,"kind":"CLIENT",
   "localEndpoint":{"serviceName":"gateway"},
   "remoteEndpoint":{"serviceName":"postgres","ipv4":"10.0.0.9","port":5432},
   "annotations":[{"timestamp":1767225600006000,"value":"ws"}],
   "tags":{"error":"timeout","db.system":"postgresql"}}
]"#;

#[tokio::test]
async fn zipkin_v2_json() {
    let v = start().await;
    let url = format!("http://{}/api/v2/spans", v.addrs().zipkin.unwrap());
    let resp = post(&url, "application/json", ZIPKIN_SPANS.as_bytes().to_vec()).await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let resp = request(
        "POST",
        &url,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        gzip(
            ZIPKIN_SPANS
                .replace("463ac35c9f6413ad", "563ac35c9f6413ad")
                .as_bytes(),
        ),
    )
    .await;
    assert_eq!(resp.status, 202, "{}", resp.text());

    let t = get(&format!(
        "{}/tw/api/traces/463ac35c9f6413ad48485a3953bb6124",
        ui(&v)
    ))
    .await
    .json();
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["kind"], "server");
    assert_eq!(spans[0]["service"], "gateway");
    assert_eq!(spans[0]["durationNs"], 20_000_000u64);
    let c = &spans[1];
    assert_eq!(c["kind"], "client");
    assert_eq!(c["parentSpanId"], "a2fb4a1d1a96d312");
    assert_eq!(c["status"]["code"], "ERROR");
    assert_eq!(c["status"]["message"], "timeout");
    assert_eq!(c["events"][0]["name"], "ws");
    let attrs: Vec<(String, String)> = c["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_owned(),
                a["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        attrs.contains(&("peer.service".into(), "postgres".into())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("network.peer.port".into(), "5432".into())),
        "{attrs:?}"
    );
    assert!(!attrs.iter().any(|(k, _)| k == "error"), "{attrs:?}");
    assert_eq!(
        get(&format!(
            "{}/tw/api/traces/563ac35c9f6413ad48485a3953bb6124",
            ui(&v)
        ))
        .await
        .status,
        200
    );

    for (what, body, want) in [
        ("garbage", b"[{".to_vec(), 400),
        ("not a list", b"{\"traceId\":\"1\"}".to_vec(), 400),
        ("bad id", br#"[{"traceId":"zz","id":"1"}]"#.to_vec(), 400),
        (
            "too long id",
            br#"[{"traceId":"1","id":"123456789012345678"}]"#.to_vec(),
            400,
        ),
    ] {
        let resp = post(&url, "application/json", body).await;
        assert_eq!(resp.status, want, "{what}");
    }
    let resp = post(&url, "application/x-thrift", b"x".to_vec()).await;
    assert_eq!(resp.status, 415);
    assert_alive(&v).await;
    v.shutdown().await;
}

#[tokio::test]
async fn cors_only_for_localhost_origins() {
    let v = start().await;
    let url = otlp_url(&v);
    let pre = |origin: &'static str| {
        let url = url.clone();
        async move {
            request(
                "OPTIONS",
                &url,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
                Vec::new(),
            )
            .await
        }
    };
    let ok = pre("http://localhost:5173").await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert!(
        ok.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(ok.headers["access-control-allow-headers"], "content-type");
    let no = pre("https://evil.example").await;
    assert_eq!(no.status, 403);
    assert!(no.headers.get("access-control-allow-origin").is_none());

    let body = checkout(8).remove(0).encode_to_vec();
    let r = request(
        "POST",
        &url,
        &[
            ("content-type", "application/x-protobuf"),
            ("origin", "http://127.0.0.1:3000"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://127.0.0.1:3000"
    );
    let r = request(
        "POST",
        &url,
        &[
            ("content-type", "application/x-protobuf"),
            ("origin", "https://evil.example"),
        ],
        body,
    )
    .await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
    v.shutdown().await;
}

#[tokio::test]
async fn memory_bounds_hold_under_a_flood() {
    let max_bytes = 400 * 1024;
    let v = builder()
        .max_traces(300)
        .max_bytes(max_bytes)
        .start()
        .await
        .unwrap();
    let url = otlp_url(&v);
    // 4000 traces of 4 spans, 50 traces per request, 4 concurrent senders
    let mut tasks = Vec::new();
    for sender in 0..4u32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..20u32 {
                let mut spans = Vec::new();
                for i in 0..50u32 {
                    let n = sender * 100_000 + batch * 100 + i;
                    let mut t = vec![0x11; 16];
                    t[12..16].copy_from_slice(&n.to_be_bytes());
                    for (j, parent) in [(1u8, None), (2, Some(1u8)), (3, Some(1)), (4, Some(3))] {
                        let mut s = span(SpanSpec {
                            trace: 0,
                            id: j,
                            parent,
                            name: "flood",
                            kind: 2,
                            start_ms: batch as u64,
                            dur_ms: 1,
                        });
                        s.trace_id = t.clone();
                        s.attributes = vec![str_kv("payload", &"p".repeat(100))];
                        spans.push(s);
                    }
                }
                let r = post(
                    &url,
                    "application/x-protobuf",
                    request_of("flood", spans).encode_to_vec(),
                )
                .await;
                assert_eq!(r.status, 200);
                // bounds hold at every step, not only at the end
                let _ = r;
            }
        }));
    }
    let store = v.store().clone();
    let watcher = tokio::spawn(async move {
        let mut max_seen = 0;
        for _ in 0..200 {
            let s = store.stats();
            assert!(s.traces <= 300 && s.bytes <= max_bytes, "{s:?}");
            max_seen = max_seen.max(s.spans);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        max_seen
    });
    for t in tasks {
        t.await.unwrap();
    }
    watcher.await.unwrap();
    let s = v.store().stats();
    assert_eq!(s.received_spans, 4 * 20 * 50 * 4);
    assert!(s.traces <= 300 && s.bytes <= max_bytes, "{s:?}");
    assert!(s.traces > 0 && s.evicted_traces >= 4000 - 300, "{s:?}");
    assert_eq!(s.spans, s.traces * 4, "whole traces are evicted: {s:?}");
    assert_alive(&v).await;
    v.shutdown().await;
}

#[tokio::test]
async fn eviction_is_oldest_first() {
    let v = builder().max_traces(3).start().await.unwrap();
    for n in 10..15u8 {
        v.store().ingest(checkout(n).remove(0));
    }
    for n in 10..12u8 {
        assert!(
            v.store().trace(&tid(n).try_into().unwrap()).is_none(),
            "trace {n} kept"
        );
    }
    for n in 12..15u8 {
        assert!(
            v.store().trace(&tid(n).try_into().unwrap()).is_some(),
            "trace {n} evicted"
        );
    }
    v.shutdown().await;
}

#[tokio::test]
async fn traces_merge_across_processes_and_orphans_are_listed_then_completed() {
    let v = start().await;
    let mut live = v.store().subscribe();
    let reqs = checkout(20);
    // the payments process reports first: its root is missing
    post(
        &otlp_url(&v),
        "application/x-protobuf",
        reqs[1].encode_to_vec(),
    )
    .await;
    let ev = live.recv().await.unwrap();
    assert_eq!(
        (ev.kind, ev.trace.orphan, ev.trace.missing_root),
        ("new", true, true)
    );
    let found = get(&format!("{}/tw/api/search?service=payments", ui(&v)))
        .await
        .json();
    let listed = &found["traces"][0];
    assert_eq!(listed["traceId"], tid_hex(20));
    assert_eq!(listed["orphan"], true);
    assert_eq!(listed["missingRoot"], true);
    // then the frontend: the trace merges and is complete
    post(
        &otlp_url(&v),
        "application/x-protobuf",
        reqs[0].encode_to_vec(),
    )
    .await;
    let ev = live.recv().await.unwrap();
    assert_eq!(
        (ev.kind, ev.trace.orphan, ev.trace.span_count),
        ("update", false, 4)
    );
    assert_eq!(ev.trace.root_name, "GET /checkout");
    assert_eq!(ev.trace.root_service, "frontend");
    // the same batch again (an exporter retry) does not duplicate spans
    post(
        &otlp_url(&v),
        "application/x-protobuf",
        reqs[0].encode_to_vec(),
    )
    .await;
    assert_eq!(v.store().stats().spans, 4);
    v.shutdown().await;
}

#[tokio::test]
async fn live_stream_over_sse() {
    use http_body_util::BodyExt;
    let v = start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client
        .get(format!("{}/tw/api/live", ui(&v)).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // the subscription exists once the response started
    post(
        &otlp_url(&v),
        "application/x-protobuf",
        checkout(21).remove(0).encode_to_vec(),
    )
    .await;
    let mut seen = String::new();
    while !seen.contains("\n\n") || !seen.contains(&tid_hex(21)) {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("no SSE event within 10 s")
            .unwrap()
            .unwrap();
        if let Ok(d) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&d));
        }
    }
    assert!(seen.contains("event: trace"), "{seen}");
    let data = seen.lines().find(|l| l.starts_with("data:")).unwrap();
    let ev: serde_json::Value =
        serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(ev["kind"], "new");
    assert_eq!(ev["trace"]["traceId"], tid_hex(21));
    assert_eq!(ev["trace"]["rootName"], "GET /checkout");
    // shutdown does not wait forever for an open event stream
    tokio::time::timeout(std::time::Duration::from_secs(10), v.shutdown())
        .await
        .unwrap();
    drop(body);
}

#[tokio::test]
async fn receiver_port_in_use_is_a_clear_error_and_the_ui_falls_back() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = builder().otlp_http(Some(port)).start().await.unwrap_err();
    assert!(err.is_addr_in_use());
    let msg = err.to_string();
    assert!(
        msg.contains("--otlp-http") && msg.contains(&port.to_string()) && msg.contains("in use"),
        "{msg}"
    );

    let v = builder().ui(Some(port)).start().await.unwrap();
    let ui_port = v.addrs().ui.unwrap().port();
    assert_ne!(ui_port, port);
    assert_eq!(
        get(&format!("http://127.0.0.1:{ui_port}/")).await.status,
        200
    );
    v.shutdown().await;
    let err = builder()
        .ui(Some(port))
        .ui_fallback(false)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--ui"), "{err}");
}

#[tokio::test]
async fn persistence_keeps_history_across_restarts() {
    let dir = std::env::temp_dir().join(format!("tracewire-viewer-persist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("traces.twdb");
    let _ = std::fs::remove_file(&file);
    let v = builder()
        .persist(&file)
        .max_traces(2)
        .start()
        .await
        .unwrap();
    for n in 30..33u8 {
        for r in checkout(n) {
            post(&otlp_url(&v), "application/x-protobuf", r.encode_to_vec()).await;
        }
    }
    v.shutdown().await;
    // a crash mid-write leaves a truncated record: ignored
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2]).unwrap();
    }
    let v = builder()
        .persist(&file)
        .max_traces(2)
        .start()
        .await
        .unwrap();
    let s = v.store().stats();
    assert_eq!((s.traces, s.spans), (2, 8), "{s:?}");
    assert_eq!(stored(&v, 32).await["spans"].as_array().unwrap().len(), 4);
    assert_eq!(
        get(&format!("{}/tw/api/traces/{}", ui(&v), tid_hex(30)))
            .await
            .status,
        404
    );
    v.store().ingest(checkout(33).remove(0));
    v.shutdown().await;
    let v = builder().persist(&file).start().await.unwrap();
    assert_eq!(v.store().stats().traces, 3);
    v.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn export_and_import_a_trace_as_otlp_json() {
    let a = start().await;
    for r in checkout(40) {
        a.store().ingest(r);
    }
    let exported = get(&format!("{}/tw/api/traces/{}/otlp", ui(&a), tid_hex(40))).await;
    assert_eq!(exported.status, 200);
    assert!(
        exported.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let text = exported.text();
    assert!(
        text.contains(&format!("\"traceId\": \"{}\"", tid_hex(40))),
        "hex ids"
    );
    assert!(text.contains("\"intValue\": \"500\""), "int64 as strings");
    assert!(text.contains("\"kind\": 2"), "enum ints");
    let b = start().await;
    let r = post(
        &format!("{}/tw/api/import", ui(&b)),
        "application/json",
        exported.body.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 4);
    assert_eq!(r.json()["traceIds"][0], tid_hex(40));
    let ja = get(&format!("{}/api/traces/{}", ui(&a), tid_hex(40)))
        .await
        .json();
    let jb = get(&format!("{}/api/traces/{}", ui(&b), tid_hex(40)))
        .await
        .json();
    assert_eq!(ja, jb, "the imported trace is the exported one");
    let bad = post(
        &format!("{}/tw/api/import", ui(&b)),
        "application/json",
        b"nope".to_vec(),
    )
    .await;
    assert_eq!(bad.status, 400);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn in_process_exporter_writes_into_the_store() {
    use tracewire_export::SpanExporter;
    let v = ViewerBuilder::embedded().start().await.unwrap();
    assert!(
        v.addrs().otlp_grpc.is_none()
            && v.addrs().otlp_http.is_none()
            && v.addrs().zipkin.is_none()
    );
    let e = v.exporter();
    for r in checkout(50) {
        e.export(&r).await.unwrap();
    }
    let t = stored(&v, 50).await;
    assert_eq!(t["spans"].as_array().unwrap().len(), 4);
    v.shutdown().await;
}
