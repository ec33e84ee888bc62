// tracewire viewer: the critical path of a trace — the spans (and the parts of them) the root's
// duration waited on. Pure functions, no DOM: loaded by the page before app.js, and by node in
// the viewer's tests (crates/tracewire-viewer/tests/ui_logic.rs).
//
// The algorithm is Jaeger's (jaeger-ui, TraceTimelineViewer/CriticalPath):
// 1. Children are clipped to their parent, top down: a child that outlives its parent (an async
//    task, a message sent and not waited for) counts only up to the parent's end, one that
//    starts before it only from the parent's start, and one entirely outside the parent's time
//    (a consumer that runs after its producer ended) is dropped with its subtree — the parent
//    did not wait for it.
// 2. From the root's end, walk back: a span's last-finishing child is on the path from that
//    child's end to where the walk came from; the walk goes into the child, and when a span has
//    no child finishing before the point reached, the span itself is on the path back to its
//    start and the walk returns to its parent, which looks for a child finishing before that.
// One difference: a sibling that ends exactly where the returning child started is on the path
// (Jaeger asks for strictly earlier, and leaves such back-to-back steps off). Iterative: a
// chain of 10^5 spans is fine.
'use strict';

// `spans`: the UI's spans (spanId, parentSpanId, startNs, durationNs). Returns the sections
// [{ spanId, startNs, endNs }] from the root's end backwards, or [] without a root.
function criticalPath(spans) {
  const byId = new Map();
  for (const s of spans) if (!byId.has(s.spanId)) byId.set(s.spanId, s);
  // the root: the earliest span without a parent, else the earliest whose parent is missing
  let root = null;
  for (const pass of [(s) => !s.parentSpanId, (s) => !byId.has(s.parentSpanId)]) {
    for (const s of byId.values()) if (pass(s) && (!root || s.startNs < root.startNs)) root = s;
    if (root) break;
  }
  if (!root) return [];
  const kids = new Map();
  for (const s of byId.values()) {
    if (!s.parentSpanId || s === root || !byId.has(s.parentSpanId)) continue;
    if (!kids.has(s.parentSpanId)) kids.set(s.parentSpanId, []);
    kids.get(s.parentSpanId).push(s);
  }
  // 1. clip, top down from the root (a span is reached once: parent cycles end here)
  const top = { id: root.spanId, start: root.startNs, end: root.startNs + root.durationNs, parent: null, children: [], next: 0 };
  const reached = new Set([root.spanId]);
  const queue = [top];
  for (let i = 0; i < queue.length; i++) {
    const p = queue[i];
    for (const c of kids.get(p.id) || []) {
      if (reached.has(c.spanId)) continue;
      const start = c.startNs, end = c.startNs + c.durationNs;
      if (start > p.end || end < p.start) continue; // outside its parent: not waited for
      reached.add(c.spanId);
      const n = { id: c.spanId, start: Math.max(start, p.start), end: Math.min(end, p.end), parent: p, children: [], next: 0 };
      p.children.push(n);
      queue.push(n);
    }
    // latest end first (ties: later start first)
    p.children.sort((a, b) => b.end - a.end || b.start - a.start);
  }
  // 2. walk back from the root's end. `next`: where a span's search of its children stands —
  // the point reached only moves back, so a child passed over (ending later, or already
  // walked) never qualifies again.
  const path = [];
  let cur = top;
  let upTo; // the start of the child the walk returned from (undefined: the span's end)
  for (;;) {
    const until = upTo === undefined ? cur.end : upTo;
    const list = cur.children;
    let i = cur.next;
    while (i < list.length && list[i].end > until) i++;
    cur.next = i + 1;
    const child = list[i];
    if (child !== undefined) {
      if (child.end < until) path.push({ spanId: cur.id, startNs: child.end, endNs: until });
      cur = child; upTo = undefined;
      continue;
    }
    if (cur.start < until || path.length === 0) path.push({ spanId: cur.id, startNs: cur.start, endNs: until });
    if (cur.parent === null) break;
    upTo = cur.start; cur = cur.parent;
  }
  return path;
}

if (typeof module === 'object' && module.exports) module.exports = { criticalPath };
