//! The service map and links of the viewer's own API (issue 14), over HTTP: `/tw/api/map`,
//! `/tw/api/map/traces` and the links of `/tw/api/traces/{id}`.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;
use tracewire_viewer::ViewerBuilder;

/// Checkout traces 1 and 2 (frontend calls payments, which fails in both, and a span of
/// payments links to trace 99, not stored).
#[tokio::test]
async fn the_map_and_an_edges_traces() {
    let v = ViewerBuilder::embedded().start().await.unwrap();
    for r in checkout(1).into_iter().chain(checkout(2)) {
        v.store().ingest(r);
    }
    let url = format!("http://{}", v.addrs().ui.unwrap());
    let m = get(&format!("{url}/tw/api/map")).await.json();
    assert_eq!(m["traces"], 2);
    assert_eq!(m["truncated"], false);
    let services: Vec<&str> = m["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["frontend", "payments"]);
    let edges = m["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{edges:?}");
    let e = &edges[0];
    assert_eq!(
        (&e["from"], &e["to"], &e["kind"], &e["count"], &e["errors"]),
        (
            &"frontend".into(),
            &"payments".into(),
            &"call".into(),
            &2.into(),
            &2.into()
        )
    );
    assert!(e["p50Ns"].as_u64().unwrap() > 0 && e.get("queueP50Ns").is_none());
    assert_eq!(e["traceIds"].as_array().unwrap().len(), 2);
    // the search picks the traces (here: a window that holds none of them)
    let none = get(&format!("{url}/tw/api/map?start=1&end=2")).await.json();
    assert_eq!(none["traces"], 0);
    assert_eq!(none["edges"].as_array().unwrap().len(), 0);
    // one edge's traces, newest first; the paths through a service
    let t = get(&format!(
        "{url}/tw/api/map/traces?from=frontend&to=payments&kind=call"
    ))
    .await
    .json();
    assert_eq!(t["traces"].as_array().unwrap().len(), 2);
    let t = get(&format!(
        "{url}/tw/api/map/traces?from=frontend&to=payments&kind=message"
    ))
    .await
    .json();
    assert_eq!(t["traces"].as_array().unwrap().len(), 0);
    let f = get(&format!("{url}/tw/api/map?focus=payments"))
        .await
        .json();
    assert_eq!(f["edges"].as_array().unwrap().len(), 1);
    // bad requests say what is wrong
    for (q, needle) in [
        ("to=payments&kind=call", "from is required"),
        (
            "from=frontend&to=payments&kind=rpc",
            "kind must be call or message",
        ),
    ] {
        let r = get(&format!("{url}/tw/api/map/traces?{q}")).await;
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text().contains(needle), "{q}: {}", r.text());
    }
    assert_eq!(get(&format!("{url}/tw/api/map?limit=x")).await.status, 400);
    v.shutdown().await;
}

/// A link to a trace that is not stored is listed as such; the trace lists it as connected.
#[tokio::test]
async fn links_to_a_trace_not_stored() {
    let v = ViewerBuilder::embedded().start().await.unwrap();
    for r in checkout(1) {
        v.store().ingest(r);
    }
    let url = format!("http://{}", v.addrs().ui.unwrap());
    let t = get(&format!("{url}/tw/api/traces/{}", tid_hex(1)))
        .await
        .json();
    let link = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["links"].as_array().unwrap())
        .next()
        .unwrap();
    assert_eq!(link["traceId"], tid_hex(99));
    assert_eq!(link["inTrace"], false);
    assert!(link.get("name").is_none(), "not stored: no name");
    let connected = t["linkedTraces"].as_array().unwrap();
    assert_eq!(connected.len(), 1);
    assert_eq!(connected[0]["traceId"], tid_hex(99));
    assert_eq!(connected[0]["direction"], "upstream");
    assert!(connected[0]["summary"].is_null());
    assert_eq!(t["linkedTracesTruncated"], false);
    assert_eq!(t["incomingLinksTruncated"], false);
    v.shutdown().await;
}
