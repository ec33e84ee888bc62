//! The UI's span tree (issue 13, item 8): a trace whose parent ids form a cycle is loaded
//! through the API and given to the tree code the viewer serves (`/tree.js`, the code the page
//! runs), in node: every span is shown exactly once.
//!
//! Needs `node` on the PATH; without it the test fails when `CI=true` and skips loudly
//! otherwise (`tracewire_test::skip`).
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;
use tracewire_viewer::ViewerBuilder;

const DRIVER: &str = r#"
const { buildTree, flatten, countDescendants } = require(process.env.TREE_JS);
const t = JSON.parse(require('fs').readFileSync(process.env.TRACE_JSON, 'utf8'));
const roots = buildTree(t.spans);
const rows = flatten(roots, new Set());
console.log(JSON.stringify({
  roots: roots.map((s) => s.spanId),
  rows: rows.map((r) => ({ id: r.span.spanId, depth: r.depth, cycle: r.span.cycle })),
  collapsed: flatten(roots, new Set([roots[roots.length - 1].spanId])).length,
  below: countDescendants(roots[roots.length - 1]),
}));
"#;

/// Whether `node` runs; if not, skips `test` (a failure when `CI=true`).
fn node_or_skip(test: &str) -> bool {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        tracewire_test::skip::skip(test, "node not found: the UI's tree code runs in node");
    }
    found
}

/// Runs the served tree code on the served trace; returns the driver's output.
async fn tree_of(ui: &str, trace: u8) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "tracewire-viewer-ui-tree-{}-{trace}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let js = get(&format!("{ui}/tree.js")).await;
    assert_eq!(js.status, 200);
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    std::fs::write(dir.join("tree.js"), &js.body).unwrap();
    let t = get(&format!("{ui}/tw/api/traces/{}", tid_hex(trace))).await;
    assert_eq!(t.status, 200);
    std::fs::write(dir.join("trace.json"), &t.body).unwrap();
    let out = Command::new("node")
        .arg("-e")
        .arg(DRIVER)
        .env("TREE_JS", dir.join("tree.js"))
        .env("TRACE_JSON", dir.join("trace.json"))
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rows(v: &Value) -> Vec<(String, u64, bool)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["depth"].as_u64().unwrap(),
                r["cycle"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn s(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    start_ms: u64,
) -> opentelemetry_proto::tonic::trace::v1::Span {
    span(SpanSpec {
        trace,
        id,
        parent,
        name: "s",
        kind: 1,
        start_ms,
        dur_ms: 1,
    })
}

#[tokio::test]
async fn spans_whose_parents_form_a_cycle_are_all_shown() {
    if !node_or_skip("spans_whose_parents_form_a_cycle_are_all_shown") {
        return;
    }
    let v = ViewerBuilder::embedded().start().await.unwrap();
    let ui = format!("http://{}", v.addrs().ui.unwrap());
    // the issue's trace: a root with a child, and two spans that are each other's parent
    v.store().ingest(request_of(
        "svc",
        vec![
            s(1, 1, None, 0),
            s(1, 2, Some(1), 1),
            s(1, 3, Some(4), 2),
            s(1, 4, Some(3), 3),
        ],
    ));
    // the API gives the UI what it needs to see the cycle: ids, parent ids, start times
    let t = get(&format!("{ui}/tw/api/traces/{}", tid_hex(1)))
        .await
        .json();
    assert_eq!(t["spans"].as_array().unwrap().len(), 4);
    assert_eq!(t["spans"][2]["spanId"], sid_hex(3));
    assert_eq!(t["spans"][2]["parentSpanId"], sid_hex(4));
    assert_eq!(t["spans"][2]["missingParent"], false);
    let out = tree_of(&ui, 1).await;
    assert_eq!(
        rows(&out),
        vec![
            (sid_hex(1), 0, false),
            (sid_hex(2), 1, false),
            (sid_hex(3), 0, true), // the cycle, cut at its earliest span
            (sid_hex(4), 1, false),
        ]
    );

    // no root at all: a three-span cycle with spans hanging off it, a self-parent, and a
    // second copy of an id (the same span from another service)
    v.store().ingest(request_of(
        "a",
        vec![
            s(2, 1, Some(3), 5),
            s(2, 2, Some(1), 2), // earliest of the cycle 1 -> 3 -> 2 -> 1
            s(2, 3, Some(2), 4),
            s(2, 4, Some(3), 6),
            s(2, 5, Some(4), 7),
            s(2, 6, Some(6), 1),
        ],
    ));
    v.store().ingest(request_of("b", vec![s(2, 4, Some(1), 8)]));
    let out = tree_of(&ui, 2).await;
    let got = rows(&out);
    let mut ids: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    ids.sort();
    let mut want: Vec<String> = [1, 2, 3, 4, 4, 5, 6].iter().map(|i| sid_hex(*i)).collect();
    want.sort();
    assert_eq!(ids, want, "every span exactly once: {got:?}");
    assert_eq!(out["roots"], serde_json::json!([sid_hex(6), sid_hex(2)]));
    assert_eq!(got[0], (sid_hex(6), 0, false), "a self-parent is a root");
    assert_eq!(got[1], (sid_hex(2), 0, true));
    assert_eq!(
        out["collapsed"], 2,
        "collapsing the cycle's root hides the rest"
    );
    assert_eq!(out["below"], 5);
    v.shutdown().await;
}

/// A chain far deeper than a recursive walk could take.
#[tokio::test]
async fn a_very_deep_trace_is_flattened_without_recursion() {
    if !node_or_skip("a_very_deep_trace_is_flattened_without_recursion") {
        return;
    }
    let v = ViewerBuilder::embedded().start().await.unwrap();
    let ui = format!("http://{}", v.addrs().ui.unwrap());
    let spans = (0..20_000u64)
        .map(|i| span_of(tid(3), i + 1, i, "s", i))
        .collect();
    v.store().ingest(request_of("deep", spans));
    let out = tree_of(&ui, 3).await;
    let got = rows(&out);
    assert_eq!(got.len(), 20_000);
    assert_eq!(got[19_999].1, 19_999);
    assert_eq!(out["collapsed"], 1);
    assert_eq!(out["below"], 19_999);
    v.shutdown().await;
}
