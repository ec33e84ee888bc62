// tracewire viewer: the span tree of a trace. Pure functions, no DOM: loaded by the page before
// app.js, and by node in the viewer's tests (crates/tracewire-viewer/tests/ui_tree.rs).
'use strict';

// Builds the tree of a trace's spans (given in start order) and returns its roots, in start
// order. Every span is in the tree exactly once:
// - a span without a parent, or whose parent was not received, is a root;
// - spans whose parent ids form a cycle (a -> b -> a) can never be reached from a root: each
//   cycle is cut at its earliest span, which becomes a root marked `cycle: true`;
// - a second copy of a span id (the same span reported by two services) gets no children.
// Sets `children` and `cycle` on every span.
function buildTree(spans) {
  const byId = new Map();
  for (const s of spans) if (!byId.has(s.spanId)) byId.set(s.spanId, s);
  const parentOf = (s) => {
    const p = s.parentSpanId ? byId.get(s.parentSpanId) : undefined;
    return p && p !== s ? p : null;
  };
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    s.cycle = false;
    const p = parentOf(s);
    if (p) {
      if (!children.has(p.spanId)) children.set(p.spanId, []);
      children.get(p.spanId).push(s);
    } else roots.push(s);
  }
  for (const s of spans) s.children = byId.get(s.spanId) === s ? (children.get(s.spanId) || []) : [];

  const reached = new Set();
  const reach = (from) => {
    const stack = [from];
    while (stack.length) {
      const s = stack.pop();
      if (reached.has(s)) continue;
      reached.add(s);
      for (const c of s.children) stack.push(c);
    }
  };
  for (const r of roots) reach(r);
  const order = new Map(spans.map((s, i) => [s, i]));
  for (const s of spans) {
    if (reached.has(s)) continue;
    // Not reachable: its chain of parents runs into a cycle. Find it, cut it at its earliest
    // span (by start, then by position).
    const walked = new Set();
    let x = s;
    while (x && !walked.has(x)) { walked.add(x); x = parentOf(x); }
    if (!x) { roots.push(s); reach(s); continue; } // (cannot happen: a chain without a cycle ends at a root)
    let cut = x;
    for (let y = parentOf(x); y !== x; y = parentOf(y)) {
      if (y.startNs < cut.startNs || (y.startNs === cut.startNs && order.get(y) < order.get(cut))) cut = y;
    }
    const p = parentOf(cut);
    p.children = p.children.filter((c) => c !== cut);
    cut.cycle = true;
    roots.push(cut);
    reach(cut);
  }
  roots.sort((a, b) => a.startNs - b.startNs || order.get(a) - order.get(b));
  return roots;
}

// The rows of the waterfall: depth-first from the roots, children in order, skipping the
// descendants of spans whose id is in `collapsed` (a Set). No recursion: a chain of 10^5
// spans is fine.
function flatten(roots, collapsed) {
  const rows = [];
  const stack = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push([roots[i], 0]);
  while (stack.length) {
    const [s, depth] = stack.pop();
    rows.push({ span: s, depth });
    if (collapsed && collapsed.has(s.spanId)) continue;
    for (let i = s.children.length - 1; i >= 0; i--) stack.push([s.children[i], depth + 1]);
  }
  return rows;
}

// Number of descendants of a span.
function countDescendants(s) {
  return flatten([s], null).length - 1;
}

if (typeof module === 'object' && module.exports) module.exports = { buildTree, flatten, countDescendants };
