//! The UI's pure logic (issue 14), run in node on the files the viewer serves (the code the
//! page runs): service colours (`/colour.js`), messaging facts (`/messaging.js`), the critical
//! path (`/critical.js`), the service map's layout (`/map.js`).
//!
//! Needs `node` on the PATH; without it the test fails when `CI=true` and skips loudly
//! otherwise (`tracewire_test::skip`).
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::*;
use tracewire_viewer::ViewerBuilder;

/// Whether `node` runs; if not, skips `test` (a failure when `CI=true`).
fn node_or_skip(test: &str) -> bool {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        tracewire_test::skip::skip(test, "node not found: the UI's logic runs in node");
    }
    found
}

/// Runs `driver` in node with the served `files` (e.g. `colour.js`) in the directory named by
/// `$UI_DIR`; the driver asserts with `node:assert`. Returns its standard output.
async fn run_node(test: &str, files: &[&str], driver: &str) -> String {
    let v = ViewerBuilder::embedded().start().await.unwrap();
    let ui = format!("http://{}", v.addrs().ui.unwrap());
    let dir =
        std::env::temp_dir().join(format!("tracewire-ui-logic-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        let js = get(&format!("{ui}/{f}")).await;
        assert_eq!(js.status, 200, "{f}");
        std::fs::write(dir.join(f), &js.body).unwrap();
    }
    v.shutdown().await;
    let out = Command::new("node")
        .arg("-e")
        .arg(driver)
        .env("UI_DIR", &dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "node failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The services of one trace never share a colour: the demo's nine (where the old hash gave
/// `gateway` and `inventory` the same green), any set up to the palette's size, and past it.
#[tokio::test]
async fn the_services_of_a_trace_get_different_colours() {
    if !node_or_skip("the_services_of_a_trace_get_different_colours") {
        return;
    }
    let out = run_node(
        "colours",
        &["colour.js"],
        r#"
const assert = require('node:assert/strict');
const { PALETTE, PRIMARY, assignColours } = require(process.env.UI_DIR + '/colour.js');
const demo = ['gateway', 'backend', 'inventory', 'pricing', 'payments', 'warehouse', 'shipping', 'notifications', 'ledger'];
const c = assignColours(demo);
assert.equal(c.size, demo.length);
assert.equal(new Set(c.values()).size, demo.length, JSON.stringify([...c]));
assert.notEqual(c.get('gateway'), c.get('inventory'));
// stable: the same set in another order, or twice, gives the same colours
assert.deepEqual([...assignColours([...demo].reverse(), ...demo)].sort(), [...c].sort());
// up to PRIMARY services, only the most distinct colours
for (const v of c.values()) assert.ok(PALETTE.indexOf(v) < PRIMARY, v);
// a service alone gets its own preferred colour, in any trace
for (const s of demo) assert.ok(PALETTE.indexOf(assignColours([s]).get(s)) < PRIMARY);
// every set of names up to the palette's size, and well past it
for (let n = 1; n <= 60; n++) {
  const names = Array.from({ length: n }, (_, i) => 'svc-' + ((i * 7919) % 1000));
  const m = assignColours(names);
  assert.equal(new Set(m.values()).size, n, 'n=' + n);
  if (n <= PALETTE.length) for (const v of m.values()) assert.ok(PALETTE.indexOf(v) < (n <= PRIMARY ? PRIMARY : PALETTE.length), 'n=' + n);
}
console.log('ok');
"#,
    )
    .await;
    assert_eq!(out.trim(), "ok");
}

/// Messaging attributes by meaning (`/messaging.js`): the facts of a span, whatever keys its
/// instrumentation used, with queue time from the producer when the broker gives none.
#[tokio::test]
async fn messaging_facts_by_meaning() {
    if !node_or_skip("messaging_facts_by_meaning") {
        return;
    }
    let out = run_node(
        "messaging",
        &["messaging.js"],
        r#"
const assert = require('node:assert/strict');
const { messagingFacts } = require(process.env.UI_DIR + '/messaging.js');
const kv = (o) => Object.entries(o).map(([key, value]) => ({ key, value: String(value) }));
const facts = (s, spans) => Object.fromEntries(messagingFacts(s, spans).map((f) => [f.label, f.value]));
// not about messaging
assert.deepEqual(messagingFacts({ kind: 'server', attributes: kv({ 'http.route': '/x' }), links: [] }, []), []);
// a producer and its consumer child (no link, no broker timestamp), FastStream's older keys,
// an MQTT duplicate, a system-specific attribute
const p = { spanId: 'p', kind: 'producer', service: 'api', name: 'publish jobs', startNs: 1e6, attributes: kv({ 'messaging.system': 'mqtt', 'messaging.operation': 'publish' }), links: [] };
const c = { spanId: 'c', parentSpanId: 'p', kind: 'consumer', service: 'worker', name: 'process jobs', startNs: 4.5e6, links: [],
  attributes: kv({ 'messaging.system': 'mqtt', 'messaging.operation': 'process', 'messaging.destination.template': 'jobs/+',
    'messaging.mqtt.duplicate': true, 'messaging.mqtt.qos': 1, 'messaging.message.body.size': 12 }) };
assert.deepEqual(facts(p, [p, c]), { System: 'mqtt', Operation: 'publish' });
assert.deepEqual(facts(c, [p, c]), { System: 'mqtt', Operation: 'process', Destination: 'jobs/+', Delivery: 'redelivered',
  'Queue time': '3.5ms after api: publish jobs started', 'Body size': '12 bytes', 'mqtt.qos': '1' });
// searchable facts carry the attribute to search by
const f = messagingFacts(c, [p, c]).find((x) => x.label === 'Destination');
assert.equal(f.key + '=' + f.search, 'messaging.destination.template=jobs/+');
// stable keys, a consumer linked to a producer in another trace (the API gives its start)
const b = { spanId: 'b', kind: 'consumer', service: 'ledger', name: 'process', startNs: 0, attributes: kv({ 'messaging.system': 'kafka',
  'messaging.operation.type': 'process', 'messaging.operation.name': 'poll', 'messaging.destination.name': 'done',
  'messaging.destination.partition.id': '3', 'messaging.consumer.group.name': 'ledger', 'messaging.batch.message_count': 2 }),
  links: [{ inTrace: false, traceId: 't', spanId: 's', kind: 'producer', service: 'shop', name: 'send done', startOffsetNs: -2e9 }] };
assert.deepEqual(facts(b, [b]), { System: 'kafka', Operation: 'process (poll)', Destination: 'done', Partition: '3',
  'Consumer group': 'ledger', 'Queue time': '2s after shop: send done started', Batch: '2 messages' });
console.log('ok');
"#,
    )
    .await;
    assert_eq!(out.trim(), "ok");
}

/// The critical path (`/critical.js`, Jaeger's algorithm): the sections of the spans the
/// root's duration waited on, correct across async children that outlive their parent.
#[tokio::test]
async fn critical_path_of_known_traces() {
    if !node_or_skip("critical_path_of_known_traces") {
        return;
    }
    let out = run_node(
        "critical",
        &["critical.js"],
        r#"
const assert = require('node:assert/strict');
const { criticalPath } = require(process.env.UI_DIR + '/critical.js');
const S = (id, parent, start, end) => ({ spanId: id, parentSpanId: parent || '', startNs: start, durationNs: end - start });
const cp = (spans) => criticalPath(spans).map((x) => `${x.spanId}[${x.startNs},${x.endNs}]`).join(' ');
// overlapping children: from the root's end into the last-finishing child, and back
assert.equal(cp([S('r', null, 0, 100), S('a', 'r', 10, 40), S('b', 'r', 30, 80), S('c', 'b', 35, 50), S('d', 'b', 55, 70)]),
  'r[80,100] b[70,80] d[55,70] b[50,55] c[35,50] b[30,35] r[0,30]');
// sequential children, the earlier one found on the way back
assert.equal(cp([S('r', null, 0, 100), S('a', 'r', 10, 30), S('b', 'r', 40, 90)]), 'r[90,100] b[40,90] r[30,40] a[10,30] r[0,10]');
// back to back: both on the path (Jaeger's strict comparison would leave `a` off)
assert.equal(cp([S('r', null, 0, 20), S('a', 'r', 0, 10), S('b', 'r', 10, 20)]), 'b[10,20] a[0,10]');
// async: a child that outlives its parent counts up to the parent's end; a span that starts
// after its parent ended (a consumer of a message sent and not waited for) is not on it, nor
// is what is below it
assert.equal(cp([S('r', null, 0, 50), S('x', 'r', 10, 90), S('z', 'x', 20, 30), S('y', 'r', 60, 80), S('w', 'y', 61, 62)]),
  'x[30,50] z[20,30] x[10,20] r[0,10]');
// the demo's order: the checkout and the publish are, the pipeline after the response is not
const order = [S('root', null, 0, 50), S('buy', 'root', 2, 40), S('buy-s', 'buy', 3, 39), S('lookup', 'buy-s', 6, 10),
  S('pub', 'root', 42, 45), S('proc', 'pub', 47, 80), S('pub2', 'proc', 62, 66), S('proc2', 'pub2', 70, 100)];
assert.equal(cp(order), 'root[45,50] pub[42,45] root[40,42] buy[39,40] buy-s[10,39] lookup[6,10] buy-s[3,6] buy[2,3] root[0,2]');
// a child that starts before its parent counts from the parent's start
assert.equal(cp([S('r', null, 10, 20), S('e', 'r', 0, 15)]), 'r[15,20] e[10,15]');
// no root received: from the earliest span whose parent is missing; parent cycles are cut
assert.equal(cp([S('a', 'gone', 5, 10), S('b', 'a', 6, 9)]), 'a[9,10] b[6,9] a[5,6]');
assert.equal(cp([S('a', 'b', 0, 10), S('b', 'a', 1, 5)]), '');
assert.equal(cp([S('r', null, 0, 10), S('a', 'b', 1, 3), S('b', 'a', 2, 4)]), 'r[0,10]');
// big: a chain of 10^5 spans (no recursion), a span with 10^5 children (no quadratic walk)
const chain = [S('0', null, 0, 300000)];
for (let i = 1; i < 100000; i++) chain.push(S(String(i), String(i - 1), i, 300000 - i));
assert.equal(criticalPath(chain).length, 199999);
const wide = [S('r', null, 0, 2000000)];
for (let i = 0; i < 100000; i++) wide.push(S('c' + i, 'r', i * 20, i * 20 + 10));
const t = Date.now();
assert.equal(criticalPath(wide).length, 200000); // each child, the gaps between, the end
assert.ok(Date.now() - t < 5000);
console.log('ok');
"#,
    )
    .await;
    assert_eq!(out.trim(), "ok");
}

/// The service map's layout (`/map.js`): services in columns by their distance from where the
/// calls start, cycles tolerated, no two services in one place.
#[tokio::test]
async fn service_map_layout() {
    if !node_or_skip("service_map_layout") {
        return;
    }
    let out = run_node(
        "map",
        &["map.js"],
        r#"
const assert = require('node:assert/strict');
const { layoutMap, edgeLabel } = require(process.env.UI_DIR + '/map.js');
const map = (edges) => ({
  nodes: [...new Set(edges.flat())].map((service) => ({ service })),
  edges: edges.map(([from, to]) => ({ from, to })),
});
const ranks = (m) => Object.fromEntries([...layoutMap(m).nodes].map(([n, p]) => [n, p.rank]));
// the demo's pipeline: the longest way in decides the column
assert.deepEqual(ranks(map([['gateway', 'backend'], ['backend', 'inventory'], ['inventory', 'pricing'], ['gateway', 'payments'],
  ['payments', 'pricing'], ['payments', 'warehouse'], ['warehouse', 'shipping'], ['shipping', 'notifications'], ['notifications', 'ledger']])),
  { backend: 1, gateway: 0, inventory: 2, ledger: 5, notifications: 4, payments: 1, pricing: 3, shipping: 3, warehouse: 2 });
// a cycle (a calls b calls a) and a self-call: still a layout
assert.deepEqual(ranks(map([['a', 'b'], ['b', 'a'], ['b', 'c'], ['c', 'c']])), { a: 0, b: 1, c: 2 });
// every service its own place
const l = layoutMap(map([['x', 'a'], ['x', 'b'], ['x', 'c'], ['y', 'c']]));
const places = [...l.nodes.values()].map((p) => p.x + ',' + p.y);
assert.equal(new Set(places).size, 5);
assert.ok(l.width > 0 && l.height > 0);
assert.equal(edgeLabel({ kind: 'message', count: 3, errors: 1 }), '3 messages · 33.3% errors');
assert.equal(edgeLabel({ kind: 'call', count: 1, errors: 0 }), '1 call');
console.log('ok');
"#,
    )
    .await;
    assert_eq!(out.trim(), "ok");
}
