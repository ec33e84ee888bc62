// Drives the tracewire viewer UI in Debian's headless Chromium. Run by tests/browser.rs with
// VIEWER_URL (the UI of a running `tracewire view`), OTLP_URL (its OTLP/HTTP endpoint) and
// SCREENSHOT (where to save docs/viewer.png). Exits non-zero on the first failed check.
import { chromium } from 'playwright-core';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import assert from 'node:assert/strict';

const UI = process.env.VIEWER_URL.replace(/\/$/, '');
const OTLP = process.env.OTLP_URL;
const SHOT = process.env.SCREENSHOT;
const hex = (n) => randomBytes(n).toString('hex');
const XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

// ---- a realistic multi-service trace, sent over OTLP/HTTP JSON ---------------------------
const str = (key, v) => ({ key, value: { stringValue: v } });
const int = (key, v) => ({ key, value: { intValue: String(v) } });
const dbl = (key, v) => ({ key, value: { doubleValue: v } });

function buildTrace({ traceId, t0, withXss = true }) {
  const ids = {};
  const id = (k) => (ids[k] ??= hex(8));
  const ns = (ms) => String(BigInt(t0) * 1000000n + BigInt(Math.round(ms * 1e6)));
  const sp = (key, parent, name, kind, start, dur, attributes = [], extra = {}) => ({
    traceId, spanId: id(key), parentSpanId: parent ? id(parent) : '', name, kind,
    startTimeUnixNano: ns(start), endTimeUnixNano: ns(start + dur), attributes, ...extra,
  });
  const byService = {
    web: [
      sp('root', null, 'GET /checkout', 2, 0, 182, [str('http.request.method', 'GET'), str('http.route', '/checkout'), int('http.response.status_code', 502)],
        { status: { code: 2, message: 'upstream payment failed' } }),
      sp('render', 'root', 'render checkout page', 1, 150, 28, [str('template', 'checkout.html')]),
      sp('call-gw', 'root', 'POST /api/orders', 3, 6, 140, [str('server.address', 'gateway'), int('server.port', 8080)]),
    ],
    gateway: [
      sp('gw', 'call-gw', 'POST /api/orders', 2, 9, 134, [str('http.route', '/api/orders'), str('user.comment', withXss ? XSS : 'hi')]),
      sp('auth', 'gw', 'verify token', 1, 11, 4, [str('auth.scheme', 'bearer')]),
      sp('call-orders', 'gw', 'orders.Create', 3, 17, 122, [str('rpc.system', 'grpc'), str('rpc.service', 'orders.Orders')]),
    ],
    orders: [
      sp('orders', 'call-orders', 'orders.Create', 2, 19, 118, [str('rpc.system', 'grpc')], {
        events: [{ timeUnixNano: ns(60), name: 'order validated', attributes: [int('items', 3)] }],
      }),
      sp('db', 'orders', 'INSERT orders', 3, 22, 14, [str('db.system', 'postgresql'), str('db.statement', 'INSERT INTO orders (id, total) VALUES ($1, $2)')]),
      sp('publish', 'orders', 'orders publish', 4, 38, 3, [str('messaging.system', 'kafka'), str('messaging.destination.name', 'orders')]),
      sp('call-pay', 'orders', 'POST /charge', 3, 44, 90, [str('server.address', 'payments')]),
    ],
    payments: [
      sp('charge', 'call-pay', 'charge card', 2, 47, 85, [dbl('payment.amount', 42.5), str('payment.currency', 'EUR')],
        { status: { code: 2, message: 'card declined by issuer' },
          events: [{ timeUnixNano: ns(120), name: 'exception', attributes: [str('exception.type', 'CardDeclined'), str('exception.message', 'insufficient funds')] }] }),
      sp('fraud', 'charge', 'fraud check', 3, 50, 30, [str('peer.service', 'fraud-api')]),
    ],
  };
  const resourceSpans = Object.entries(byService).map(([service, spans]) => ({
    resource: { attributes: [str('service.name', service), str('service.version', '1.4.2'), str('host.name', service + '-7f9c')] },
    scopeSpans: [{ scope: { name: 'tracewire', version: '0.1.0' }, spans }],
  }));
  return { body: { resourceSpans }, ids };
}

async function send(body) {
  const r = await fetch(OTLP, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200, await r.text());
}

function simpleTrace(service, name) {
  const traceId = hex(16);
  const t = BigInt(Date.now()) * 1000000n;
  return {
    traceId,
    body: { resourceSpans: [{ resource: { attributes: [str('service.name', service)] }, scopeSpans: [{ spans: [{
      traceId, spanId: hex(8), name, kind: 2, startTimeUnixNano: String(t), endTimeUnixNano: String(t + 3000000n) }] }] }] },
  };
}

let failures = 0;
async function check(name, fn) {
  try { await fn(); console.log('ok   -', name); } catch (e) { failures++; console.log('FAIL -', name, '\n', e); }
}

const traceId = hex(16);
const t0 = Date.now() - 5000;
const { body, ids } = buildTrace({ traceId, t0 });
await send(body);
const other = buildTrace({ traceId: hex(16), t0: t0 - 60000, withXss: false });
other.body.resourceSpans = other.body.resourceSpans.filter((r) => r.resource.attributes[0].value.stringValue === 'web');
await send(other.body);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
// bypassCSP: Playwright's waitForFunction evaluates strings, which the viewer's strict CSP
// forbids. It also makes the XSS check prove the escaping itself, not the CSP safety net.
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, bypassCSP: true });
const page = await context.newPage();
const dialogs = [];
page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.setDefaultTimeout(10000);

try {
  await page.goto(UI + '/');

  await check('search finds the trace (service + attribute)', async () => {
    await page.waitForSelector('#service option[value="orders"]', { state: 'attached' });
    await page.selectOption('#service', 'orders');
    await page.fill('#attr', 'db.system=postgresql');
    await page.click('#search-btn');
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll('#trace-list .trace-row')];
      return rows.length === 1 && rows[0].dataset.traceId === id;
    }, traceId);
    const text = await page.textContent('#trace-list .trace-row');
    assert.match(text, /web: GET \/checkout/);
    assert.match(text, /2 errors/);
  });

  await check('status + free text + duration search', async () => {
    await page.selectOption('#service', '');
    await page.fill('#attr', '');
    await page.selectOption('#status', 'error');
    await page.fill('#q', 'INSUFFICIENT');
    await page.fill('#minDuration', '80ms');
    await page.click('#search-btn');
    await page.waitForFunction((id) => {
      const rows = [...document.querySelectorAll('#trace-list .trace-row')];
      return rows.length === 1 && rows[0].dataset.traceId === id;
    }, traceId);
    await page.selectOption('#status', '');
    await page.fill('#q', '');
    await page.fill('#minDuration', '');
    await page.click('#search-btn');
    await page.waitForFunction(() => document.querySelectorAll('#trace-list .trace-row').length >= 2);
  });

  await check('the waterfall shows the expected span tree', async () => {
    await page.click(`#trace-list .trace-row[data-trace-id="${traceId}"]`);
    await page.waitForSelector('#rows .span-row');
    const rows = await page.$$eval('#rows .span-row', (rs) => rs.map((r) =>
      '  '.repeat(+r.dataset.depth) + r.querySelector('.svc').textContent + ' ' + r.querySelector('.name').textContent));
    assert.deepEqual(rows, [
      'web GET /checkout',
      '  web POST /api/orders',
      '    gateway POST /api/orders',
      '      gateway verify token',
      '      gateway orders.Create',
      '        orders orders.Create',
      '          orders INSERT orders',
      '          orders orders publish',
      '          orders POST /charge',
      '            payments charge card',
      '              payments fraud check',
      '  web render checkout page',
    ]);
    assert.equal(await page.textContent('#trace-title'), 'web: GET /checkout');
    const ticks = await page.$$eval('#axis-ticks .tick', (t) => t.map((x) => x.textContent));
    assert.equal(ticks.length, 5);
    assert.equal(ticks[0], '0ns');
    assert.equal(ticks[4], '182ms');
  });

  await check('collapsing a subtree hides it, expanding shows it again', async () => {
    await page.click(`.span-row[data-span-id="${ids['gw']}"] .toggle`);
    assert.equal(await page.$$eval('#rows .span-row', (r) => r.length), 4);
    assert.match(await page.textContent(`.span-row[data-span-id="${ids['gw']}"]`), /\+8/);
    await page.click('#expand-all');
    assert.equal(await page.$$eval('#rows .span-row', (r) => r.length), 12);
  });

  await check('clicking a span shows its attributes, resource and events', async () => {
    await page.click(`.span-row[data-span-id="${ids['charge']}"]`);
    await page.waitForSelector('#details:not([hidden])');
    const attrs = await page.$$eval('#details table.attributes tr', (trs) => trs.map((tr) => [tr.children[0].textContent, tr.children[1].textContent]));
    assert.deepEqual(attrs, [['payment.amount', '42.5'], ['payment.currency', 'EUR']]);
    const res = await page.$$eval('#details table.resource tr', (trs) => trs.map((tr) => tr.children[0].textContent + '=' + tr.children[1].textContent));
    assert.ok(res.includes('service.name=payments') && res.includes('host.name=payments-7f9c'), res.join());
    const details = await page.textContent('#details');
    assert.match(details, /Status: ERROR — card declined by issuer/);
    assert.match(details, /exception/);
    assert.match(details, /insufficient funds/);
    assert.ok(page.url().endsWith(`#/trace/${traceId}/${ids['charge']}`), 'deep link to the span: ' + page.url());
  });

  await check('error spans are highlighted', async () => {
    const errorRows = await page.$$eval('#rows .span-row.error', (rs) => rs.map((r) => r.querySelector('.name').textContent));
    assert.deepEqual(errorRows, ['GET /checkout', 'charge card']);
    const colour = await page.$eval(`.span-row[data-span-id="${ids['charge']}"] .name`, (n) => getComputedStyle(n).color);
    assert.equal(colour, 'rgb(179, 38, 30)');
    const outline = await page.$eval(`.span-row[data-span-id="${ids['charge']}"] .bar`, (n) => getComputedStyle(n).outlineColor);
    assert.equal(outline, 'rgb(217, 48, 37)');
    const ok = await page.$eval(`.span-row[data-span-id="${ids['db']}"] .name`, (n) => getComputedStyle(n).color);
    assert.notEqual(ok, 'rgb(179, 38, 30)');
  });

  await check('a <script> attribute is shown as text and never executed', async () => {
    await page.click(`.span-row[data-span-id="${ids['gw']}"]`);
    await page.waitForSelector('#details table.attributes tr[data-key="user.comment"]');
    const v = await page.textContent('#details table.attributes tr[data-key="user.comment"] td.v');
    assert.equal(v, XSS);
    assert.equal(await page.$$eval('#details script, #details img, #trace-pane script', (e) => e.length), 0);
    await page.click('#raw-toggle');
    assert.ok((await page.textContent('#raw-json')).includes('<script>window.__pwned'));
    await page.click('#raw-toggle');
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(dialogs, []);
  });

  await check('in-trace search highlights matching spans', async () => {
    await page.fill('#trace-search', 'postgres');
    assert.equal(await page.textContent('#trace-search-count'), '1 matching spans');
    assert.deepEqual(await page.$$eval('.span-row.match', (r) => r.map((x) => x.dataset.spanId)), [ids['db']]);
    await page.fill('#trace-search', '');
  });

  await check('a deep link opens the trace with the span selected', async () => {
    const p2 = await context.newPage();
    await p2.goto(`${UI}/#/trace/${traceId}/${ids['db']}`);
    await p2.waitForSelector('#details:not([hidden])');
    assert.match(await p2.textContent('#details h3'), /INSERT orders/);
    assert.equal(await p2.$$eval('.span-row.selected', (r) => r.map((x) => x.dataset.spanId).join()), ids['db']);
    await p2.close();
  });

  await check('links are navigable both ways', async () => {
    // a consumer trace whose span links to the charge span of the main trace
    const consumerTrace = hex(16);
    const consumerSpan = hex(8);
    const t = BigInt(Date.now()) * 1000000n;
    await send({ resourceSpans: [{ resource: { attributes: [str('service.name', 'ledger')] }, scopeSpans: [{ spans: [{
      traceId: consumerTrace, spanId: consumerSpan, name: 'record payment', kind: 5,
      startTimeUnixNano: String(t), endTimeUnixNano: String(t + 2000000n),
      links: [{ traceId, spanId: ids['charge'], attributes: [str('link.reason', 'payment event')] }] }] }] }] });
    // from the target: "Linked from" lists the consumer span and navigates to it
    await page.goto(`${UI}/#/trace/${traceId}/${ids['charge']}`);
    await page.reload();
    await page.waitForSelector('#details ul.incoming a');
    assert.equal(await page.textContent('#details ul.incoming a'), 'ledger: record payment');
    await page.click('#details ul.incoming a');
    await page.waitForFunction((id) => document.querySelector('#details h3')?.textContent === 'record payment' &&
      location.hash.includes(id), consumerTrace);
    // and back through the outgoing link
    // (named by the span it points at, issue 14)
    const out = await page.textContent('#details ul.links a');
    assert.equal(out, 'payments: charge card');
    assert.equal(await page.getAttribute('#details ul.links a', 'href'), `#/trace/${traceId}/${ids['charge']}`);
    assert.match(await page.textContent('#details table.link-attributes'), /payment event/);
    await page.click('#details ul.links a');
    await page.waitForFunction(() => document.querySelector('#details h3')?.textContent === 'charge card');
  });

  await check('the live list updates when a new trace arrives, and pauses', async () => {
    await page.selectOption('#service', '');
    await page.fill('#attr', '');
    const live = simpleTrace('live-svc', 'GET /live');
    await send(live.body);
    await page.waitForSelector(`#trace-list .trace-row[data-trace-id="${live.traceId}"]`);
    assert.equal(await page.getAttribute('#trace-list .trace-row', 'data-trace-id'), live.traceId, 'newest first');
    await page.click('#live-pause');
    const held = simpleTrace('live-svc', 'GET /held');
    await send(held.body);
    await page.waitForFunction(() => document.querySelector('#pending').textContent === '1 new');
    assert.equal(await page.$(`#trace-list .trace-row[data-trace-id="${held.traceId}"]`), null);
    await page.click('#live-pause');
    await page.waitForSelector(`#trace-list .trace-row[data-trace-id="${held.traceId}"]`);
  });

  await check('a trace whose parent ids form a cycle shows every span (issue 13)', async () => {
    // a root with a child, and two spans that are each other's parent (the trace)
    const cyc = hex(16);
    const [r, c, a, b] = [hex(8), hex(8), hex(8), hex(8)];
    const t = BigInt(Date.now()) * 1000000n;
    const sp = (spanId, parentSpanId, name, ms) => ({ traceId: cyc, spanId, parentSpanId, name, kind: 1,
      startTimeUnixNano: String(t + BigInt(ms) * 1000000n), endTimeUnixNano: String(t + BigInt(ms + 1) * 1000000n) });
    await send({ resourceSpans: [{ resource: { attributes: [str('service.name', 'loop')] }, scopeSpans: [{ spans: [
      sp(r, '', 'root', 0), sp(c, r, 'child', 1), sp(a, b, 'cycle a', 2), sp(b, a, 'cycle b', 3)] }] }] });
    await page.goto(`${UI}/#/trace/${cyc}`);
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('#rows .span-row').length === 4);
    const rows = await page.$$eval('#rows .span-row', (rs) => rs.map((row) =>
      '  '.repeat(+row.dataset.depth) + row.querySelector('.name').textContent + (row.textContent.includes('(parent cycle)') ? ' [cycle]' : '')));
    assert.deepEqual(rows, ['root', '  child', 'cycle a [cycle]', '  cycle b']);
    await page.click('#collapse-all');
    assert.equal(await page.$$eval('#rows .span-row', (x) => x.length), 2);
    await page.click('#expand-all');
    assert.equal(await page.$$eval('#rows .span-row', (x) => x.length), 4);
  });

  await check('screenshot of a multi-service trace', async () => {
    await page.goto(`${UI}/#/trace/${traceId}/${ids['charge']}`);
    await page.reload();
    await page.waitForSelector('#details:not([hidden])');
    await page.waitForTimeout(200);
    mkdirSync(dirname(SHOT), { recursive: true });
    await page.screenshot({ path: SHOT, fullPage: false });
  });

  await check('no script errors on the page', async () => {
    assert.deepEqual(pageErrors, []);
  });
} finally {
  await browser.close();
}
if (failures) { console.log(`${failures} browser check(s) failed`); process.exit(1); }
console.log('all browser checks passed');
