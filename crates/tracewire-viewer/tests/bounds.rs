//! Memory bounds (issue 13, items 2 and 3): span limits at ingest, bounded read responses, and
//! service and span names inside the byte bound.
#![allow(clippy::unwrap_used)]

mod support;

use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use serde_json::Value;
use support::*;
use tracewire_viewer::{SpanLimits, ViewerBuilder};

/// Item 2: a span over every limit is cut down at ingest, the way the OpenTelemetry SDK does
/// it, and every cut is counted.
#[tokio::test]
async fn span_limits_apply_at_ingest_and_are_counted() {
    let v = ViewerBuilder::embedded().start().await.unwrap();
    let mut s = span(SpanSpec {
        trace: 1,
        id: 1,
        parent: None,
        name: "n",
        kind: 2,
        start_ms: 0,
        dur_ms: 1,
    });
    s.name = "N".repeat(10_000);
    s.attributes = (0..1000).map(|i| int_kv(&format!("a{i}"), i)).collect();
    s.attributes[0] = str_kv("big", &"x".repeat(100_000));
    s.dropped_attributes_count = 5;
    s.events = (0..300)
        .map(|i| Event {
            name: format!("e{i}"),
            attributes: (0..200).map(|j| int_kv(&format!("k{j}"), j)).collect(),
            ..Default::default()
        })
        .collect();
    s.links = (0..300)
        .map(|i| Link {
            trace_id: tid(9),
            span_id: sid((i % 200) as u8 + 1),
            ..Default::default()
        })
        .collect();
    let mut req = request_of(&"S".repeat(5000), vec![s]);
    req.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .extend((0..500).map(|i| int_kv(&format!("r{i}"), i)));
    v.store().ingest(req);

    let limits = SpanLimits::default();
    let stored = v.store().trace(&tid(1).try_into().unwrap()).unwrap();
    let sp = &stored[0].span;
    assert_eq!(sp.name.len(), limits.max_name_len);
    assert_eq!(sp.attributes.len(), limits.max_attributes);
    assert_eq!(sp.dropped_attributes_count, 5 + 1000 - 128);
    let big = &sp.attributes[0].value.as_ref().unwrap().value;
    assert!(
        matches!(big, Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) if s.len() == limits.max_value_len)
    );
    assert_eq!((sp.events.len(), sp.dropped_events_count), (128, 300 - 128));
    assert!(
        sp.events
            .iter()
            .all(|e| e.attributes.len() == 128 && e.dropped_attributes_count == 72)
    );
    assert_eq!((sp.links.len(), sp.dropped_links_count), (128, 300 - 128));
    let origin = &stored[0].origin;
    assert_eq!(origin.service.len(), limits.max_name_len);
    assert_eq!(origin.resource.attributes.len(), 128);

    let stats = v.store().stats();
    assert_eq!(stats.limited_spans, 1);
    assert_eq!(
        stats.dropped_attributes,
        (1000 - 128) + 128 * 72 + (502 - 128),
        "span + kept events' + resource attributes"
    );
    assert_eq!(stats.dropped_events, 172);
    assert_eq!(stats.dropped_links, 172);
    assert!(stats.truncated_values >= 3, "{stats:?}");
    assert_eq!(stats.span_limits, limits);
    // the UI shows what was dropped, the stats endpoint shows the counters
    let ui = format!("http://{}", v.addrs().ui.unwrap());
    let t = get(&format!("{ui}/tw/api/traces/{}", tid_hex(1)))
        .await
        .json();
    assert_eq!(t["spans"][0]["droppedAttributes"], 5 + 1000 - 128);
    assert_eq!(t["spans"][0]["droppedEvents"], 172);
    let st = get(&format!("{ui}/tw/api/stats")).await.json();
    assert_eq!(st["droppedEvents"], 172);
    assert_eq!(st["spanLimits"]["maxAttributes"], 128);
    v.shutdown().await;
}

fn ids_of(v: &Value) -> usize {
    v.as_array().unwrap().len()
}

/// Item 2: no search returns more than 1 000 traces, whatever `limit` says (`limit=0` used to
/// return every stored trace), and each API has its default.
#[tokio::test]
async fn search_responses_are_bounded() {
    let v = ViewerBuilder::embedded().start().await.unwrap();
    for batch in 0..12u32 {
        let spans = (0..100u32)
            .map(|i| span_of(nth_tid(batch * 100 + i), 1, 0, "op", 1))
            .collect();
        v.store().ingest(request_of("S", spans));
    }
    assert_eq!(v.store().stats().traces, 1200);
    let ui = format!("http://{}", v.addrs().ui.unwrap());
    let end_ms = T0 / 1_000_000 + 1000;
    for (q, want) in [
        ("/api/traces?service=S&limit=0", 1000),
        ("/api/traces?service=S&limit=5000", 1000),
        ("/api/traces?service=S", 100),
        ("/tw/api/search?limit=0", 1000),
        ("/tw/api/search?limit=99999", 1000),
        ("/tw/api/search", 50),
    ] {
        let r = get(&format!("{ui}{q}")).await;
        assert_eq!(r.status, 200, "{q}");
        assert_eq!(r.headers["content-type"], "application/json", "{q}");
        let j = r.json();
        let n = if q.starts_with("/api/") {
            assert_eq!(j["total"], 0, "{q}: Jaeger's `total` of traces is 0");
            ids_of(&j["data"])
        } else {
            ids_of(&j["traces"])
        };
        assert_eq!(n, want, "{q}");
    }
    for (q, want) in [
        (
            format!("/api/v2/traces?limit=0&endTs={end_ms}&lookback=60000"),
            1000,
        ),
        (format!("/api/v2/traces?endTs={end_ms}&lookback=60000"), 10),
    ] {
        let j = get(&format!("{ui}{q}")).await.json();
        assert_eq!(ids_of(&j), want, "{q}");
    }
    // asking for many ids at once is bounded the same way
    let all: Vec<String> = get(&format!("{ui}/tw/api/search?limit=0")).await.json()["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceId"].as_str().unwrap().to_owned())
        .collect();
    let mut many = all.clone();
    many.extend(all.iter().take(200).cloned());
    let j = get(&format!(
        "{ui}/api/v2/traceMany?traceIds={}",
        many.join(",")
    ))
    .await
    .json();
    assert_eq!(ids_of(&j), 1000);
    v.shutdown().await;
}

/// Item 3: service and span names count in the byte bound, are cut to `max_name_len`, and go
/// with the last stored span that uses them. Each trace here brings a new 10 KiB service name
/// and span name; the store keeps a few traces and only their names.
#[tokio::test]
async fn service_and_span_names_are_bounded_and_evicted() {
    let max_bytes = 1024 * 1024;
    let v = ViewerBuilder::embedded()
        .max_bytes(max_bytes)
        .start()
        .await
        .unwrap();
    let name = |kind: &str, i: u32| format!("{kind}-{i:05}-{}", "n".repeat(10_000));
    for i in 0..3000u32 {
        let s = span_of(nth_tid(i), 1, 0, &name("op", i), 1);
        v.store().ingest(request_of(&name("svc", i), vec![s]));
        let st = v.store().stats();
        assert!(st.bytes <= max_bytes, "{st:?}");
    }
    let st = v.store().stats();
    assert!(st.evicted_traces > 0, "{st:?}");
    assert!(st.name_bytes > 0 && st.name_bytes < st.bytes, "{st:?}");
    let services = v.store().services();
    assert_eq!(
        services.len(),
        st.traces,
        "one service per stored trace, no more"
    );
    assert_eq!(st.services, st.traces);
    assert_eq!(st.operations, st.traces);
    assert!(services.iter().all(|s| s.len() == 256), "cut to 256 bytes");
    let first = &name("svc", 0)[..256];
    assert!(
        !services.iter().any(|s| s == first),
        "an evicted trace's service went with it"
    );
    assert!(v.store().operations(first).is_empty());
    let last = &name("svc", 2999)[..256];
    assert_eq!(v.store().operations(last).len(), 1);
    assert_eq!(v.store().operations(last)[0].0.len(), 256);
    // what the UI polls every 5 s stays small
    let ui = format!("http://{}", v.addrs().ui.unwrap());
    let r = get(&format!("{ui}/tw/api/services")).await;
    assert!(
        r.body.len() < 300 * (st.traces + 1),
        "{} bytes",
        r.body.len()
    );
    v.shutdown().await;
}
