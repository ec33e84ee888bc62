// tracewire viewer: the service map (GET /tw/api/map). `layoutMap` is pure (node runs it in the
// viewer's tests, crates/tracewire-viewer/tests/ui_logic.rs); `drawMap` builds the SVG with the
// page's helpers (app.js's `el`, `svgEl`, `fmtDur`, loaded after this file, used at call time).
'use strict';

const MAP = { PAD: 30, COL: 330, ROW: 110, W: 170, H: 48 };

// Places the services in columns by their longest distance from a service nothing calls
// (edges that close a cycle do not count), ordered within a column by where their callers are.
// Returns { nodes: Map name -> {x, y, rank}, width, height }.
function layoutMap(map) {
  const names = map.nodes.map((n) => n.service).sort();
  const out = new Map(names.map((n) => [n, []]));
  for (const e of map.edges) if (out.has(e.from) && out.has(e.to) && e.from !== e.to) out.get(e.from).push(e.to);
  for (const l of out.values()) l.sort();
  // back edges: those reaching a service still on the depth-first path
  const state = new Map(); // 1: on the path, 2: done
  const back = new Set();
  const order = []; // reverse post-order: a topological order of the other edges
  for (const start of names) {
    if (state.has(start)) continue;
    const stack = [[start, 0]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [v, i] = top;
      const next = out.get(v)[i];
      if (next === undefined) { state.set(v, 2); order.push(v); stack.pop(); continue; }
      top[1]++;
      if (state.get(next) === 1) back.add(v + '\u0000' + next);
      else if (!state.has(next)) { state.set(next, 1); stack.push([next, 0]); }
    }
  }
  order.reverse();
  const rank = new Map(names.map((n) => [n, 0]));
  const preds = new Map(names.map((n) => [n, []]));
  for (const v of order) {
    for (const w of out.get(v)) {
      if (back.has(v + '\u0000' + w)) continue;
      rank.set(w, Math.max(rank.get(w), rank.get(v) + 1));
      preds.get(w).push(v);
    }
  }
  const columns = [];
  for (const n of names) (columns[rank.get(n)] ||= []).push(n);
  const pos = new Map();
  columns.forEach((col, r) => {
    if (r > 0) {
      const bary = (n) => { const p = preds.get(n).filter((x) => pos.has(x)); return p.length ? p.reduce((s, x) => s + pos.get(x), 0) / p.length : Infinity; };
      col.sort((a, b) => bary(a) - bary(b) || (a < b ? -1 : 1));
    }
    col.forEach((n, i) => pos.set(n, i));
  });
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const nodes = new Map();
  columns.forEach((col, r) => col.forEach((n, i) => nodes.set(n, {
    rank: r,
    x: MAP.PAD + r * MAP.COL,
    y: MAP.PAD + (i + (rows - col.length) / 2) * MAP.ROW,
  })));
  return { nodes, width: MAP.PAD * 2 + (columns.length - 1) * MAP.COL + MAP.W, height: MAP.PAD * 2 + (rows - 1) * MAP.ROW + MAP.H + 40 };
}

function pct(n, d) { return d ? Math.round((n / d) * 1000) / 10 : 0; }

// One line of numbers for an edge.
function edgeLabel(e) {
  return e.count + (e.kind === 'call' ? (e.count === 1 ? ' call' : ' calls') : (e.count === 1 ? ' message' : ' messages')) +
    (e.errors ? ' · ' + pct(e.errors, e.count) + '% errors' : '');
}

// Draws the map into `box`: services coloured by `colours` (a Map), edges clickable
// (`onEdge(edge)`), services too (`onNode(name)`), and the table of every edge under it.
function drawMap(box, map, colours, onEdge, onNode) {
  const { nodes, width, height } = layoutMap(map);
  const svg = svgEl('svg', { id: 'map-svg', width, height, viewBox: `0 0 ${width} ${height}` });
  const defs = svgEl('defs');
  for (const [id, fill] of [['map-arrow', '#5b6475'], ['map-arrow-err', '#d93025']]) {
    const m = svgEl('marker', { id, viewBox: '0 0 8 8', refX: '7', refY: '4', markerWidth: '8', markerHeight: '8', orient: 'auto-start-reverse' });
    m.appendChild(svgEl('path', { d: 'M0,0 L8,4 L0,8 z', fill }));
    defs.appendChild(m);
  }
  svg.appendChild(defs);
  // two edges between the same services (a call and a message, or both directions) apart
  const pairs = new Map();
  for (const e of map.edges) { const k = [e.from, e.to].sort().join('\u0000'); pairs.set(k, (pairs.get(k) || 0) + 1); }
  const seen = new Map();
  for (const e of map.edges) {
    const a = nodes.get(e.from), b = nodes.get(e.to);
    if (!a || !b || e.from === e.to) continue;
    const k = [e.from, e.to].sort().join('\u0000');
    const nth = seen.get(k) || 0; seen.set(k, nth + 1);
    const off = (nth - ((pairs.get(k) || 1) - 1) / 2) * 26;
    let d, lx, ly;
    if (b.rank > a.rank) {
      const x1 = a.x + MAP.W, y1 = a.y + MAP.H / 2 + off / 3, x2 = b.x - 2, y2 = b.y + MAP.H / 2 + off / 3;
      const c = (x2 - x1) / 2;
      d = `M${x1},${y1} C${x1 + c},${y1 + off} ${x2 - c},${y2 + off} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 + off * 0.75;
    } else {
      // against the columns (a cycle, or within a column): around underneath
      const x1 = a.x + MAP.W / 2 + off, y1 = a.y + MAP.H, x2 = b.x + MAP.W / 2 - off, y2 = b.y + MAP.H + 2;
      const dip = Math.max(y1, y2) + 45 + Math.abs(off);
      d = `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = dip - 8;
    }
    const errors = e.errors > 0;
    const g = svgEl('g', { class: 'map-edge ' + e.kind + (errors ? ' has-errors' : ''), 'data-from': e.from, 'data-to': e.to, 'data-kind': e.kind });
    g.appendChild(svgEl('path', { d, class: 'hit' }));
    g.appendChild(svgEl('path', { d, class: 'line', 'marker-end': errors ? 'url(#map-arrow-err)' : 'url(#map-arrow)' }));
    const lines = [[edgeLabel(e), 'edge-label'], ['p50 ' + fmtDur(e.p50Ns) + ' · p99 ' + fmtDur(e.p99Ns), 'edge-label sub']];
    if (e.queueP50Ns !== undefined) lines.push(['queued p50 ' + fmtDur(e.queueP50Ns), 'edge-label sub']);
    lines.forEach(([text, cls], i) => {
      const t = svgEl('text', { x: lx, y: ly - 4 + i * 12, class: cls });
      t.textContent = text;
      g.appendChild(t);
    });
    const title = svgEl('title');
    title.textContent = e.from + ' → ' + e.to + ' (' + e.kind + 's): click for the traces';
    g.appendChild(title);
    g.addEventListener('click', () => onEdge(e));
    svg.appendChild(g);
  }
  for (const n of map.nodes) {
    const p = nodes.get(n.service);
    const g = svgEl('g', { class: 'map-node' + (n.errors ? ' has-errors' : ''), 'data-service': n.service, transform: `translate(${p.x},${p.y})` });
    g.appendChild(svgEl('rect', { width: MAP.W, height: MAP.H, rx: 6, class: 'box' }));
    g.appendChild(svgEl('rect', { width: 6, height: MAP.H, rx: 2, fill: colours.get(n.service) || '#888' }));
    const name = svgEl('text', { x: 14, y: 19, class: 'node-name' });
    name.textContent = n.service;
    const sub = svgEl('text', { x: 14, y: 36, class: 'node-sub' });
    sub.textContent = n.spans + ' spans' + (n.errors ? ' · ' + pct(n.errors, n.spans) + '% errors' : '');
    const title = svgEl('title');
    title.textContent = n.service + ': ' + n.spans + ' spans in ' + n.traces + ' traces; click for the paths through it and its traces';
    g.append(name, sub, title);
    g.addEventListener('click', () => onNode(n.service));
    // pointing at a service dims what does not touch it
    g.addEventListener('mouseenter', () => {
      for (const e of svg.querySelectorAll('.map-edge')) e.classList.toggle('dim', e.dataset.from !== n.service && e.dataset.to !== n.service);
    });
    g.addEventListener('mouseleave', () => { for (const e of svg.querySelectorAll('.map-edge.dim')) e.classList.remove('dim'); });
    svg.appendChild(g);
  }
  const table = el('table', { id: 'map-edges' },
    el('tr', null, ...['from', 'to', 'kind', 'count', 'errors', 'p50', 'p99', 'queued p50', 'queued p99', 'traces'].map((h) => el('th', null, h))),
    ...map.edges.map((e) => el('tr', { class: 'map-edge-row', dataset: { from: e.from, to: e.to, kind: e.kind }, on: { click: () => onEdge(e) } },
      el('td', null, e.from), el('td', null, e.to), el('td', null, e.kind), el('td', { class: 'num' }, String(e.count)),
      el('td', { class: 'num' + (e.errors ? ' err' : '') }, e.errors + ' (' + pct(e.errors, e.count) + '%)'),
      el('td', { class: 'num' }, fmtDur(e.p50Ns)), el('td', { class: 'num' }, fmtDur(e.p99Ns)),
      el('td', { class: 'num' }, e.queueP50Ns !== undefined ? fmtDur(e.queueP50Ns) : ''),
      el('td', { class: 'num' }, e.queueP99Ns !== undefined ? fmtDur(e.queueP99Ns) : ''),
      el('td', { class: 'num' }, String(e.traceCount)))));
  box.replaceChildren(el('div', { class: 'map-scroll' }, svg), table);
}

if (typeof module === 'object' && module.exports) module.exports = { layoutMap, edgeLabel };
