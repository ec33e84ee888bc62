// Drives the tracewire viewer after the real demo's checkout traffic (`tracewire-demo --once
// --brokers none`, run by tests/browser.rs into this viewer): the service map's counts, an
// edge's traces, distinct colours and the critical path of a real trace. Run with VIEWER_URL.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

const UI = process.env.VIEWER_URL.replace(/\/$/, '');

let failures = 0;
async function check(name, fn) {
  try { await fn(); console.log('ok   -', name); } catch (e) { failures++; console.log('FAIL -', name, '\n', e); }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, bypassCSP: true });
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.setDefaultTimeout(10000);

try {
  await check('the service map of the demo\'s four checkouts (book, lamp, unicorn 404, broken 502)', async () => {
    await page.goto(`${UI}/#/map`);
    await page.waitForSelector('#map-edges .map-edge-row');
    const rows = await page.$$eval('#map-edges .map-edge-row', (rs) => rs.map((r) => [...r.children].slice(0, 5).map((td) => td.textContent).join(' ')));
    // every checkout calls the backend and the inventory; the unicorn is not priced; the broken
    // price fails every hop up to the gateway
    assert.deepEqual(rows, [
      'backend inventory call 4 1 (25%)',
      'gateway backend call 4 1 (25%)',
      'inventory pricing call 3 1 (33.3%)',
    ]);
    assert.deepEqual(await page.$$eval('#map-svg .map-node', (ns) => ns.map((n) => n.dataset.service).sort()),
      ['backend', 'gateway', 'inventory', 'pricing']);
    assert.match(await page.textContent('#map-meta'), /from 4 traces/);
    await page.click('#map-edges .map-edge-row[data-from="gateway"][data-to="backend"]');
    // The unfiltered list has 4 rows too: wait for the edge's own list (its title), then count.
    await page.waitForFunction(() => /→/.test(document.querySelector('#list-title')?.textContent || ''));
    assert.match(await page.textContent('#list-title'), /^4 traces: gateway → backend \(calls\)/);
    assert.equal(await page.$$eval('#trace-list .trace-row', (rs) => rs.length), 4);
  });

  await check('an edge\'s list keeps its title and its traces when live updates arrive', async () => {
    // A new trace elsewhere (not of this edge) and a late span of one listed trace (one that
    // succeeded: the checks below read the broken one), in this order on the live stream.
    const listed = await page.$$eval('#trace-list .trace-row', (rs) => rs.map((r) => r.dataset.traceId));
    const ok = (await (await fetch(`${UI}/tw/api/search?service=gateway`)).json()).traces
      .find((t) => listed.includes(t.traceId) && !t.errorCount);
    const t = await (await fetch(`${UI}/tw/api/traces/${ok.traceId}`)).json();
    const root = t.spans.find((s) => !s.parentSpanId);
    const hex = (n) => randomBytes(n).toString('hex');
    const str = (key, v) => ({ key, value: { stringValue: v } });
    const send = async (service, span) => {
      const body = { resourceSpans: [{ resource: { attributes: [str('service.name', service)] }, scopeSpans: [{ spans: [span] }] }] };
      const r = await fetch(process.env.OTLP_URL, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(r.status, 200, await r.text());
    };
    const now = BigInt(Date.now()) * 1000000n;
    const other = hex(16);
    await send('elsewhere', { traceId: other, spanId: hex(8), name: 'GET /elsewhere', kind: 2,
      startTimeUnixNano: String(now), endTimeUnixNano: String(now + 1000000n) });
    const start = BigInt(t.startUs) * 1000n + 1000n;
    await send('gateway', { traceId: ok.traceId, spanId: hex(8), parentSpanId: root.spanId, name: 'late', kind: 1,
      startTimeUnixNano: String(start), endTimeUnixNano: String(start + 1000n) });
    await page.waitForFunction(([id, n]) =>
      document.querySelector(`#trace-list .trace-row[data-trace-id="${id}"]`)?.textContent.includes(`${n} spans`),
      [ok.traceId, t.spans.length + 1]);
    assert.match(await page.textContent('#list-title'), /^4 traces: gateway → backend \(calls\)/);
    assert.deepEqual(await page.$$eval('#trace-list .trace-row', (rs) => rs.map((r) => r.dataset.traceId)), listed);
  });

  await check('the broken checkout: four colours, the critical path down to the failing price', async () => {
    const r = await (await fetch(`${UI}/tw/api/search?status=error&service=pricing`)).json();
    assert.equal(r.traces.length, 1);
    const t = await (await fetch(`${UI}/tw/api/traces/${r.traces[0].traceId}`)).json();
    await page.goto(`${UI}/#/trace/${t.traceId}`);
    await page.reload();
    await page.waitForSelector('#rows .span-row');
    const dots = await page.$$eval('#legend .svc-dot', (ds) => ds.map((d) => getComputedStyle(d).backgroundColor));
    assert.equal(dots.length, 4);
    assert.equal(new Set(dots).size, 4);
    // the root waited on the chain of calls: the pricing server span is on the path
    const pricing = t.spans.find((s) => s.service === 'pricing' && s.kind === 'server');
    const root = t.spans.find((s) => !s.parentSpanId);
    const critical = await page.$$eval('#rows .span-row.critical', (rs) => rs.map((x) => x.dataset.spanId));
    assert.ok(critical.includes(pricing.spanId) && critical.includes(root.spanId), JSON.stringify(critical));
  });

  await check('no script errors on the page', async () => {
    assert.deepEqual(pageErrors, []);
  });
} finally {
  await browser.close();
}
if (failures) { console.log(`${failures} browser check(s) failed`); process.exit(1); }
console.log('all browser checks passed');
