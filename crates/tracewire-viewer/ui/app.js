// tracewire viewer UI. Plain JS, no dependencies. Every piece of span data is inserted with
// textContent (through `el`), never as HTML. The span tree is built by tree.js (loaded first).
'use strict';

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'style') Object.assign(e.style, v);
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v);
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

const HEX = /^[0-9a-f]+$/;
const isId = (s, n) => typeof s === 'string' && s.length === n && HEX.test(s);

function fmtDur(ns) {
  if (ns < 1e3) return Math.round(ns) + 'ns';
  if (ns < 1e6) return +(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1) + 'µs';
  if (ns < 1e9) return +(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + 'ms';
  return +(ns / 1e9).toFixed(2) + 's';
}
function fmtTime(us) {
  const d = new Date(us / 1000);
  return d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}
// colour.js: the services of one trace (or one map) never share a colour
let colours = new Map();
const colour = (service) => colours.get(service) || assignColours([service]).get(service);

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
  return r.json();
}

// ---- state --------------------------------------------------------------------------------
const state = {
  traces: [],         // summaries shown in the list
  selected: null,     // trace id
  trace: null,        // full trace JSON
  collapsed: new Set(),
  span: null,         // selected span id
  paused: false,
  pending: [],
  raw: false,
  edge: null,         // the map edge whose traces the list shows ("a → b (calls)"), else null
};

// ---- search + list ------------------------------------------------------------------------
function searchParams() {
  const p = new URLSearchParams();
  const set = (k, id) => { const v = $(id).value.trim(); if (v) p.set(k, v); };
  set('service', 'service'); set('name', 'name'); set('status', 'status');
  set('minDuration', 'minDuration'); set('maxDuration', 'maxDuration');
  set('attr', 'attr'); set('q', 'q');
  // messaging.js's meanings, as attribute conditions on one span
  for (const [id, key] of MESSAGING_SEARCH) { const v = $(id).value.trim(); if (v) p.append('attr', key + '=' + v); }
  const lb = $('lookback').value; if (lb !== 'all') p.set('lookback', lb);
  p.set('limit', '100');
  return p;
}
const MESSAGING_SEARCH = [['msg-system', 'messaging.system'], ['msg-dest', 'messaging.destination.name'], ['msg-id', 'messaging.message.id']];
function hasFilters() {
  return ['service', 'name', 'status', 'minDuration', 'maxDuration', 'attr', 'q', ...MESSAGING_SEARCH.map((m) => m[0])].some((id) => $(id).value.trim());
}

// Searches for the traces with a span whose attribute `key` is `value` (from span details).
function searchAttribute(key, value) {
  for (const id of ['service', 'name', 'status', 'minDuration', 'maxDuration', 'q', ...MESSAGING_SEARCH.map((m) => m[0])]) $(id).value = '';
  $('attr').value = key + '=' + value;
  search();
}

async function search() {
  if (!$('map-view').hidden) loadMap();
  try {
    const r = await getJSON('/tw/api/search?' + searchParams());
    state.traces = r.traces;
    state.edge = null;
    renderList();
  } catch (e) {
    $('list-title').textContent = 'Search failed: ' + e.message;
  }
}

function traceRow(t, fresh) {
  const own = assignColours(t.services.map((s) => s.name));
  const services = t.services.map((s) =>
    el('span', { class: 'badge' }, el('span', { class: 'svc-dot', style: { background: own.get(s.name) } }), s.name + ' ' + s.spans));
  const li = el('li', { class: 'trace-row' + (fresh ? ' fresh' : '') + (t.traceId === state.selected ? ' selected' : ''),
                        dataset: { traceId: t.traceId }, on: { click: () => { location.hash = '#/trace/' + t.traceId; } } },
    el('div', { class: 't1' },
      el('span', { class: 'root' }, t.rootService + ': ' + t.rootName),
      el('span', { class: 'duration' }, fmtDur(t.durationUs * 1000))),
    el('div', { class: 't2' },
      el('span', null, fmtTime(t.startUs)),
      el('span', null, t.spanCount + ' spans'),
      t.errorCount ? el('span', { class: 'badge err' }, t.errorCount + (t.errorCount > 1 ? ' errors' : ' error')) : null,
      t.orphan ? el('span', { class: 'badge orphan', title: t.missingRoot ? 'the root span has not arrived' : 'some parent spans are missing' },
        t.missingRoot ? 'no root' : 'missing parent') : null,
      ...services));
  return li;
}

function renderList(freshIds) {
  const ul = $('trace-list');
  ul.replaceChildren(...state.traces.map((t) => traceRow(t, freshIds && freshIds.has(t.traceId))));
  $('list-title').textContent = state.traces.length + ' traces' + (state.edge ? ': ' + state.edge : '');
}

// ---- live ---------------------------------------------------------------------------------
function applyLive(events) {
  const fresh = new Set();
  for (const ev of events) {
    const t = ev.trace;
    const i = state.traces.findIndex((x) => x.traceId === t.traceId);
    if (i >= 0) state.traces[i] = t;
    else if (!hasFilters() && !state.edge) { state.traces.unshift(t); fresh.add(t.traceId); }
    if (t.traceId === state.selected) loadTrace(t.traceId, state.span, true);
  }
  if (state.traces.length > 500) state.traces.length = 500;
  renderList(fresh);
}

function startLive() {
  if (!window.EventSource) return;
  const es = new EventSource('/tw/api/live');
  es.addEventListener('trace', (m) => {
    if (!$('live').checked) return;
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (state.paused) {
      state.pending.push(ev);
      $('pending').textContent = state.pending.length + ' new';
    } else applyLive([ev]);
  });
}

// ---- trace view ---------------------------------------------------------------------------
async function loadTrace(id, spanId, keepScroll) {
  if (!isId(id, 32)) return;
  let t;
  try { t = await getJSON('/tw/api/traces/' + id); } catch (e) {
    $('empty').hidden = false; $('trace-view').hidden = true;
    $('empty').textContent = 'Trace ' + id + ' not found (' + e.message + ')';
    return;
  }
  if (state.selected !== id) state.collapsed.clear();
  state.selected = id; state.trace = t; state.span = spanId || null;
  for (const li of document.querySelectorAll('.trace-row')) li.classList.toggle('selected', li.dataset.traceId === id);
  renderTrace(keepScroll);
}

function renderTrace(keepScroll) {
  const t = state.trace;
  $('empty').hidden = true; $('map-view').hidden = true; $('trace-view').hidden = false;
  // (a loop: spreading 10^5 spans into Math.max overflows the stack)
  const total = t.spans.reduce((m, s) => Math.max(m, s.startNs + s.durationNs), 1);
  state.total = total;
  if (state.criticalOf !== t) { state.criticalOf = t; state.critical = criticalBySpan(criticalPath(t.spans)); }
  const sm = t.summary;
  colours = assignColours([...sm.services.map((s) => s.name), ...t.spans.map((s) => s.service)]);
  $('trace-title').textContent = sm.rootService + ': ' + sm.rootName;
  $('trace-meta').replaceChildren(...[
    el('span', null, 'Trace ', el('code', null, t.traceId)),
    el('span', null, 'Started ' + new Date(t.startUs / 1000).toLocaleString()),
    el('span', null, 'Duration ' + fmtDur(total)),
    el('span', null, sm.spanCount + ' spans'),
    sm.errorCount ? el('span', { class: 'badge err' }, sm.errorCount + ' errors') : null,
    sm.orphan ? el('span', { class: 'badge orphan' }, sm.missingRoot ? 'root span missing' : sm.missingParents + ' spans with a missing parent') : null,
  ].filter(Boolean));
  $('legend').replaceChildren(...sm.services.map((s) =>
    el('span', null, el('span', { class: 'svc-dot', style: { background: colour(s.name) } }), s.name + ' (' + s.spans + ')')));
  $('export-otlp').setAttribute('href', '/tw/api/traces/' + t.traceId + '/otlp');
  $('raw-json').textContent = JSON.stringify(t, (k, v) => (k === 'children' ? undefined : v), 2);
  $('raw-json').hidden = !state.raw;
  // axis
  const ticks = [];
  for (let i = 0; i <= 4; i++) ticks.push(el('span', { class: 'tick', style: { left: (i * 25) + '%' } }, fmtDur(total * i / 4)));
  ticks[4].style.transform = 'translateX(-100%)';
  $('axis-ticks').replaceChildren(...ticks);
  // rows
  // tree.js: every span once, cycles of parent ids cut
  const rows = flatten(buildTree(t.spans), state.collapsed).map((r) => spanRow(r.span, r.depth, total));
  $('rows').replaceChildren(...rows);
  drawArrows(total);
  renderLinkedTraces(t);
  applyTraceSearch();
  if (state.span) showSpan(state.span, !keepScroll); else $('details').hidden = true;
}

// critical.js's sections, by span id
function criticalBySpan(path) {
  const by = new Map();
  for (const c of path) {
    if (!by.has(c.spanId)) by.set(c.spanId, []);
    by.get(c.spanId).push(c);
  }
  return by;
}

function msgTag(s) {
  const sys = s.attributes.find((a) => a.key === 'messaging.system');
  return sys ? el('span', { class: 'msg-tag', title: 'messaging: ' + sys.value }, sys.value) : null;
}

function spanRow(s, depth, total) {
  const left = (s.startNs / total) * 100;
  const width = Math.max((s.durationNs / total) * 100, 0.15);
  const isErr = s.status.code === 'ERROR';
  const hasKids = s.children.length > 0;
  const toggle = el('span', { class: 'toggle', title: hasKids ? 'collapse / expand' : null,
    on: { click: (e) => { e.stopPropagation(); if (!hasKids) return;
      state.collapsed.has(s.spanId) ? state.collapsed.delete(s.spanId) : state.collapsed.add(s.spanId); renderTrace(true); } } },
    hasKids ? (state.collapsed.has(s.spanId) ? '▸' : '▾') : '');
  const durLeft = left + width > 85 ? null : (left + width) + '%';
  const crit = $('critical-toggle').checked ? state.critical.get(s.spanId) : null;
  return el('div', { class: 'row span-row' + (isErr ? ' error' : '') + (s.spanId === state.span ? ' selected' : '') + (crit ? ' critical' : ''),
                     dataset: { spanId: s.spanId, depth: String(depth) },
                     on: { click: () => selectSpan(s.spanId) } },
    el('div', { class: 'label', style: { paddingLeft: (6 + depth * 14) + 'px' } },
      toggle,
      isErr ? el('span', { class: 'err-icon', title: 'error' }, '!') : null,
      el('span', { class: 'svc-dot', style: { background: colour(s.service) } }),
      el('span', { class: 'svc' }, s.service),
      el('span', { class: 'name' }, s.name),
      msgTag(s),
      s.missingParent ? el('span', { class: 'missing', title: 'parent ' + s.parentSpanId + ' not received' }, '(parent missing)') : null,
      s.cycle ? el('span', { class: 'missing', title: 'the parent ids of this span and its ancestors form a cycle; shown from here' }, '(parent cycle)') : null,
      hasKids && state.collapsed.has(s.spanId) ? el('span', { class: 'badge' }, '+' + countDescendants(s)) : null),
    el('div', { class: 'bars' },
      el('div', { class: 'bar', style: { left: left + '%', width: width + '%', background: colour(s.service) } }),
      ...(crit || []).map((c) => el('div', { class: 'crit', title: 'critical path: ' + fmtDur(c.endNs - c.startNs),
        style: { left: (c.startNs / total) * 100 + '%', width: Math.max(((c.endNs - c.startNs) / total) * 100, 0.1) + '%' } })),
      el('span', { class: 'dur', style: durLeft ? { left: durLeft } : { right: (100 - left) + '%', paddingRight: '4px' } }, fmtDur(s.durationNs))));
}

// Producer → consumer arrows within the trace: from a span to each span of this trace that
// links to it, and from a producer span to its consumer children (drawn once per pair).
function messageEdges(t) {
  const byId = new Map(t.spans.map((s) => [s.spanId, s]));
  const edges = new Map();
  for (const s of t.spans) {
    for (const l of s.links) if (l.inTrace && byId.has(l.spanId) && l.spanId !== s.spanId) edges.set(l.spanId + '>' + s.spanId, [l.spanId, s.spanId]);
    const p = s.parentSpanId && byId.get(s.parentSpanId);
    if (p && p.kind === 'producer' && s.kind === 'consumer') edges.set(p.spanId + '>' + s.spanId, [p.spanId, s.spanId]);
  }
  return [...edges.values()];
}

const SVG = 'http://www.w3.org/2000/svg';
// Arrows drawn at most (past a few thousand they are noise, and slow to draw).
const MAX_ARROWS = 2000;
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function drawArrows(total) {
  const t = state.trace;
  const old = $('link-arrows');
  if (old) old.remove();
  const rowsEl = $('rows');
  const first = rowsEl.querySelector('.span-row .bars');
  if (!first) return;
  const rowOf = new Map([...rowsEl.querySelectorAll('.span-row')].map((r) => [r.dataset.spanId, r]));
  const x0 = first.offsetLeft, w = first.clientWidth;
  const svg = svgEl('svg', { id: 'link-arrows', width: w, height: rowsEl.scrollHeight });
  svg.style.left = x0 + 'px';
  const defs = svgEl('defs');
  const marker = svgEl('marker', { id: 'arrowhead', viewBox: '0 0 8 8', refX: '7', refY: '4', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' });
  marker.appendChild(svgEl('path', { d: 'M0,0 L8,4 L0,8 z', fill: '#5b6475' }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  const byId = new Map(t.spans.map((s) => [s.spanId, s]));
  let drawn = 0;
  for (const [from, to] of messageEdges(t)) {
    const a = rowOf.get(from), b = rowOf.get(to);
    if (!a || !b) continue; // collapsed away
    if (++drawn > MAX_ARROWS) break;
    const ax = (byId.get(from).startNs / total) * w, bx = (byId.get(to).startNs / total) * w;
    const ay = a.offsetTop + a.offsetHeight / 2, by = b.offsetTop + b.offsetHeight / 2;
    const bend = Math.max(12, Math.abs(by - ay) / 2);
    const d = `M${ax},${ay} C${ax - bend},${ay + (by > ay ? bend : -bend)} ${bx - bend},${by} ${bx - 1},${by}`;
    const path = svgEl('path', { d, class: 'arrow', 'marker-end': 'url(#arrowhead)', 'data-from': from, 'data-to': to });
    const title = svgEl('title');
    title.textContent = byId.get(from).service + ': ' + byId.get(from).name + ' → ' + byId.get(to).service + ': ' + byId.get(to).name;
    path.appendChild(title);
    svg.appendChild(path);
  }
  rowsEl.appendChild(svg);
}

// The traces joined to this one by links (a pipeline of one trace per message), nearest first.
function renderLinkedTraces(t) {
  const box = $('linked-traces');
  const list = t.linkedTraces || [];
  box.hidden = !list.length;
  if (!list.length) { box.replaceChildren(); return; }
  const arrow = { upstream: '↑', downstream: '↓', related: '↕' };
  box.replaceChildren(
    el('span', { class: 'lt-title' }, 'Connected traces (' + list.length + (t.linkedTracesTruncated ? '+' : '') + '):'),
    ...list.map((c) => el('span', { class: 'linked-trace ' + c.direction, dataset: { traceId: c.traceId, direction: c.direction } },
      el('span', { class: 'lt-dir', title: c.direction + ', ' + c.hops + (c.hops > 1 ? ' links away' : ' link away') }, arrow[c.direction] + ' ' + c.direction),
      ' ',
      c.summary
        ? el('a', { href: '#/trace/' + c.traceId }, c.summary.rootService + ': ' + c.summary.rootName)
        : el('span', { class: 'missing' }, 'trace ' + c.traceId.slice(0, 8) + '… (not stored)'),
      c.summary ? el('span', { class: 'svc' }, ' ' + c.summary.spanCount + ' spans' + (c.hops > 1 ? ', ' + c.hops + ' hops' : '')) : null)));
}

function selectSpan(spanId) {
  history.replaceState(null, '', '#/trace/' + state.selected + '/' + spanId);
  state.span = spanId;
  for (const r of document.querySelectorAll('.span-row')) r.classList.toggle('selected', r.dataset.spanId === spanId);
  showSpan(spanId, false);
}

// The span's messaging facts by meaning (messaging.js), each value searchable.
function messagingSection(s, t) {
  const facts = messagingFacts(s, t.spans);
  if (!facts.length) return null;
  return el('div', null, el('h4', null, 'Messaging'), el('table', { class: 'messaging' }, facts.map((f) =>
    el('tr', { dataset: { label: f.label } }, el('td', { class: 'k' }, f.label), el('td', { class: 'v' }, f.value,
      f.key && f.search !== undefined && !/\s/.test(f.search)
        ? el('a', { class: 'find', title: 'find traces with ' + f.key + '=' + f.search, on: { click: () => searchAttribute(f.key, f.search) } }, ' find traces')
        : null)))));
}

function kvTable(list, cls) {
  if (!list || !list.length) return el('div', { class: 'svc' }, 'none');
  return el('table', { class: cls }, list.map((a) =>
    el('tr', { dataset: { key: a.key } }, el('td', { class: 'k' }, a.key), el('td', { class: 'v', title: a.type }, a.value))));
}

function spanLink(traceId, spanId, text) {
  if (!isId(traceId, 32) || !isId(spanId, 16)) return el('span', null, text);
  return el('a', { href: '#/trace/' + traceId + '/' + spanId }, text);
}

function showSpan(spanId, scroll) {
  const t = state.trace;
  const s = t.spans.find((x) => x.spanId === spanId);
  const d = $('details');
  if (!s) { d.hidden = true; return; }
  d.hidden = false;
  const isErr = s.status.code === 'ERROR';
  const incoming = t.incomingLinks.filter((l) => l.toSpanId === s.spanId);
  d.replaceChildren(
    el('h3', null, el('span', { class: 'svc-dot', style: { background: colour(s.service) } }), s.name),
    el('div', { class: 'kv-line' },
      el('span', null, 'Service: ', el('b', null, s.service)),
      el('span', null, 'Kind: ' + s.kind),
      el('span', { class: isErr ? 'status-error' : '' }, 'Status: ' + s.status.code + (s.status.message ? ' — ' + s.status.message : '')),
      el('span', null, 'Duration: ' + fmtDur(s.durationNs)),
      el('span', null, 'Start: +' + fmtDur(s.startNs)),
      state.critical.has(s.spanId) ? el('span', { class: 'crit-time' }, 'On the critical path: ' +
        fmtDur(state.critical.get(s.spanId).reduce((n, c) => n + c.endNs - c.startNs, 0))) : null),
    el('div', { class: 'kv-line' },
      el('span', null, 'Span ID: ', el('code', null, s.spanId)),
      s.parentSpanId ? el('span', null, 'Parent: ', s.missingParent ? el('code', null, s.parentSpanId + ' (not received)') : spanLink(t.traceId, s.parentSpanId, s.parentSpanId)) : el('span', null, 'Root span'),
      s.traceState ? el('span', null, 'tracestate: ' + s.traceState) : null,
      el('span', null, 'Scope: ' + s.scope.name + (s.scope.version ? ' ' + s.scope.version : ''))),
    messagingSection(s, t),
    el('h4', null, 'Attributes'), kvTable(s.attributes, 'attributes'),
    el('h4', null, 'Resource'), kvTable(s.resource, 'resource'),
    el('h4', null, 'Events (' + s.events.length + ')'),
    s.events.length ? el('div', null, s.events.map((e) => el('div', { class: 'event' },
      el('div', null, el('b', null, e.name), ' at +' + fmtDur(e.offsetNs)), kvTable(e.attributes, 'event-attributes')))) : el('div', { class: 'svc' }, 'none'),
    el('h4', null, 'Links (' + s.links.length + ')'),
    s.links.length ? el('ul', { class: 'links' }, s.links.map((l) => el('li', null,
      el('span', { class: 'link-dir' }, '→ '),
      spanLink(l.traceId, l.spanId, l.name !== undefined ? l.service + ': ' + l.name : l.traceId + ' / ' + l.spanId),
      l.inTrace ? el('span', { class: 'svc' }, ' (this trace)') : el('span', { class: 'svc' }, ' in trace ' + l.traceId.slice(0, 8) + '…'),
      l.name === undefined ? el('span', { class: 'missing' }, ' (not stored)') : null,
      kvTable(l.attributes, 'link-attributes')))) : el('div', { class: 'svc' }, 'none'),
    el('h4', null, 'Linked from (' + incoming.length + (t.incomingLinksTruncated ? '+, more not read' : '') + ')'),
    incoming.length ? el('ul', { class: 'incoming' }, incoming.map((l) => el('li', null,
      el('span', { class: 'link-dir' }, '← '),
      spanLink(l.fromTraceId, l.fromSpanId, l.fromService + ': ' + l.fromName),
      el('span', { class: 'svc' }, l.fromTraceId === t.traceId ? ' (this trace)' : ' in trace ' + l.fromTraceId.slice(0, 8) + '…')))) : el('div', { class: 'svc' }, 'none'));
  if (scroll) {
    const row = document.querySelector('.span-row.selected');
    if (row) row.scrollIntoView({ block: 'nearest' });
  }
}

function applyTraceSearch() {
  const q = $('trace-search').value.trim().toLowerCase();
  const t = state.trace;
  if (!t) return;
  let n = 0;
  const byId = q ? new Map(t.spans.map((x) => [x.spanId, x])) : null;
  for (const r of document.querySelectorAll('.span-row')) {
    const s = byId && byId.get(r.dataset.spanId);
    const hit = !!q && !!s && (s.name.toLowerCase().includes(q) || s.service.toLowerCase().includes(q) || s.spanId.includes(q) ||
      s.attributes.some((a) => a.key.toLowerCase().includes(q) || a.value.toLowerCase().includes(q)) ||
      s.events.some((e) => e.name.toLowerCase().includes(q)));
    if (hit) n++;
    r.classList.toggle('match', hit);
    r.classList.toggle('dim', !!q && !hit);
  }
  $('trace-search-count').textContent = q ? n + ' matching spans' : '';
}

// ---- services / names / stats -------------------------------------------------------------
async function loadServices() {
  try {
    const r = await getJSON('/tw/api/services');
    const sel = $('service');
    const cur = sel.value;
    sel.replaceChildren(el('option', { value: '' }, 'all'), ...r.services.map((s) => el('option', { value: s }, s)));
    sel.value = r.services.includes(cur) ? cur : '';
  } catch { /* next time */ }
}
async function loadNames() {
  const s = $('service').value;
  if (!s) { $('names').replaceChildren(); return; }
  try {
    const r = await getJSON('/tw/api/operations?service=' + encodeURIComponent(s));
    $('names').replaceChildren(...r.operations.map((o) => el('option', { value: o })));
  } catch { /* ignore */ }
}
async function loadStats() {
  try {
    const s = await getJSON('/tw/api/stats');
    $('stats').textContent = s.traces + ' traces, ' + s.spans + ' spans, ' + (s.bytes / 1048576).toFixed(1) + ' MiB';
  } catch { /* ignore */ }
}

// ---- service map (map.js) -----------------------------------------------------------------
function mapParams() {
  const p = searchParams();
  p.delete('limit'); // the map reads up to 1000 traces of the search
  if (state.mapFocus) p.set('focus', state.mapFocus);
  return p;
}

// `focus`: a service — only the paths through it (Jaeger's deep dependency graph).
async function loadMap(focus) {
  if (focus !== undefined) state.mapFocus = focus;
  $('empty').hidden = true; $('trace-view').hidden = true; $('map-view').hidden = false;
  let m;
  try { m = await getJSON('/tw/api/map?' + mapParams()); } catch (e) {
    $('map-meta').textContent = 'Failed: ' + e.message;
    return;
  }
  $('map-meta').replaceChildren(
    state.mapFocus ? el('span', { id: 'map-focus' }, 'Paths through ', el('b', null, state.mapFocus), ' ', el('a', { href: '#/map', title: 'every service', on: { click: () => { $('service').value = ''; } } }, '(all services)'), ' — ') : '',
    m.nodes.length + ' services, ' + m.edges.length + ' edges from ' + m.traces + ' traces (' + m.spans + ' spans read)' +
    (m.truncated ? ' — cut short: narrow the search' : ''));
  colours = assignColours(m.nodes.map((n) => n.service));
  if (!m.nodes.length) { $('map-box').replaceChildren(el('div', { class: 'empty' }, 'No traces match the search.')); return; }
  // a service: the paths through it, and its traces in the list
  drawMap($('map-box'), m, colours, showEdgeTraces, (service) => {
    $('service').value = service; loadNames();
    location.hash = '#/map/' + encodeURIComponent(service);
  });
}

// Lists the traces of one edge of the map in the list pane.
async function showEdgeTraces(e) {
  for (const g of document.querySelectorAll('#map-svg .map-edge, #map-edges .map-edge-row')) {
    g.classList.toggle('selected', g.dataset.from === e.from && g.dataset.to === e.to && g.dataset.kind === e.kind);
  }
  const p = mapParams();
  p.set('from', e.from); p.set('to', e.to); p.set('kind', e.kind);
  try {
    const r = await getJSON('/tw/api/map/traces?' + p);
    state.traces = r.traces;
    // Kept in the state: a live update of one of these traces renders the list again.
    state.edge = e.from + ' → ' + e.to + ' (' + e.kind + 's)';
    renderList();
  } catch (err) {
    $('list-title').textContent = 'Failed: ' + err.message;
  }
}

// ---- routing ------------------------------------------------------------------------------
function route() {
  const mm = location.hash.match(/^#\/map(?:\/(.+))?$/);
  if (mm) {
    let f = '';
    try { f = mm[1] ? decodeURIComponent(mm[1]) : ''; } catch { /* not a name */ }
    state.mapFocus = f;
    $('empty').hidden = true; $('trace-view').hidden = true; $('map-view').hidden = false;
    if (f) search(); else loadMap(); // (search() redraws the map too)
    return;
  }
  const m = location.hash.match(/^#\/trace\/([0-9a-fA-F]{32})(?:\/([0-9a-fA-F]{16}))?$/);
  if (m) loadTrace(m[1].toLowerCase(), m[2] ? m[2].toLowerCase() : null);
}

function init() {
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search(); });
  $('service').addEventListener('change', loadNames);
  $('live-pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('live-pause').textContent = state.paused ? 'Resume' : 'Pause';
    if (!state.paused && state.pending.length) { applyLive(state.pending); state.pending = []; $('pending').textContent = ''; }
  });
  $('trace-search').addEventListener('input', applyTraceSearch);
  $('expand-all').addEventListener('click', () => { state.collapsed.clear(); renderTrace(true); });
  $('collapse-all').addEventListener('click', () => {
    for (const s of state.trace.spans) if (s.children.length) state.collapsed.add(s.spanId);
    renderTrace(true);
  });
  $('critical-toggle').addEventListener('change', () => renderTrace(true));
  $('raw-toggle').addEventListener('click', () => { state.raw = !state.raw; $('raw-json').hidden = !state.raw; });
  $('import').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    const r = await fetch('/tw/api/import', { method: 'POST', headers: { 'content-type': 'application/json' }, body: await f.text() });
    const j = await r.json().catch(() => ({}));
    if (r.ok && j.traceIds && j.traceIds.length) { await search(); location.hash = '#/trace/' + j.traceIds[0]; }
    else alert('Import failed: ' + (j.message || r.status));
    e.target.value = '';
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => { if (state.trace && !$('trace-view').hidden) drawArrows(state.total); });
  loadServices(); loadStats();
  search().then(route);
  startLive();
  setInterval(() => { loadServices(); loadStats(); }, 5000);
}

document.addEventListener('DOMContentLoaded', init);
