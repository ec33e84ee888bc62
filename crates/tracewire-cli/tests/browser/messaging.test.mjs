// Drives the tracewire viewer on a messaging pipeline shaped like the demo's (demo/README.md:
// gateway ─NATS─▶ payments ─Redis─▶ warehouse ─RabbitMQ─▶ shipping ─MQTT─▶ notifications
// ─Kafka─▶ ledger, the same services, a redelivery and a batch consumer), and on a pipeline of
// one trace per message (links only). Run by tests/browser.rs with VIEWER_URL and OTLP_URL.
// Exits non-zero when a check fails.
import { chromium } from 'playwright-core';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';

const UI = process.env.VIEWER_URL.replace(/\/$/, '');
const OTLP = process.env.OTLP_URL;
const hex = (n) => randomBytes(n).toString('hex');

const str = (key, v) => ({ key, value: { stringValue: v } });
const int = (key, v) => ({ key, value: { intValue: String(v) } });
const bool = (key, v) => ({ key, value: { boolValue: v } });
const [INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER] = [1, 2, 3, 4, 5];

// Spans of one or more traces, grouped by service into an OTLP/JSON request.
class Traffic {
  constructor(t0) { this.t0 = t0; this.byService = new Map(); this.ids = {}; }
  id(key) { return (this.ids[key] ??= hex(8)); }
  ns(ms) { return String(BigInt(this.t0) * 1000000n + BigInt(Math.round(ms * 1e6))); }
  // sp(trace, service, key, parentKey, name, kind, startMs, endMs, attributes, extra)
  sp(traceId, service, key, parent, name, kind, start, end, attributes = [], extra = {}) {
    const s = { traceId, spanId: this.id(key), parentSpanId: parent ? this.id(parent) : '', name, kind,
      startTimeUnixNano: this.ns(start), endTimeUnixNano: this.ns(end), attributes, ...extra };
    if (!this.byService.has(service)) this.byService.set(service, []);
    this.byService.get(service).push(s);
    return s;
  }
  body() {
    return { resourceSpans: [...this.byService].map(([service, spans]) => ({
      resource: { attributes: [str('service.name', service)] },
      scopeSpans: [{ scope: { name: 'tracewire', version: '0.1.0' }, spans }],
    })) };
  }
}

const msg = (system, dest, op, id, more = []) => [str('messaging.system', system), str('messaging.destination.name', dest),
  str('messaging.operation.type', op), str('messaging.message.id', id), ...more];
const link = (tr, traceId, key, attributes = []) => ({ traceId, spanId: tr.id(key), attributes });

// One order, as the demo sends it: the checkout (HTTP → gRPC → HTTP → HTTP), then the order
// event through the five brokers. `n` tells the keys apart; `nack`: the first RabbitMQ
// delivery fails and the message is delivered again.
function order(tr, traceId, n, at, nack) {
  const k = (x) => x + n;
  const S = (service, key, parent, name, kind, start, end, attrs, extra) =>
    tr.sp(traceId, service, k(key), parent ? k(parent) : null, name, kind, at + start, at + end, attrs, extra);
  S('gateway', 'root', null, 'GET /checkout/:item', SERVER, 0, 50, [str('http.route', '/checkout/:item')]);
  S('gateway', 'buy', 'root', 'shop.v1.Checkout/Buy', CLIENT, 2, 40, [str('rpc.system', 'grpc')]);
  S('backend', 'buy-s', 'buy', 'shop.v1.Checkout/Buy', SERVER, 3, 39, [str('rpc.system', 'grpc')]);
  S('backend', 'stock', 'buy-s', 'GET /stock/{item}', CLIENT, 4, 38);
  S('inventory', 'stock-s', 'stock', 'GET /stock/{item}', SERVER, 5, 37, [str('http.request.header.b3', 'x')]);
  S('inventory', 'lookup', 'stock-s', 'lookup_stock', INTERNAL, 6, 10);
  S('inventory', 'price', 'stock-s', 'GET /price/:item', CLIENT, 11, 36);
  S('pricing', 'price-s', 'price', 'GET /price/:item', SERVER, 12, 35);
  // the pipeline: every process span is the child of the send span and links it
  const P = (key, parent, service, name, start, end, attrs, extra = {}) =>
    S(service, key, parent, name, CONSUMER, start, end, attrs, { links: [link(tr, traceId, k(parent))], ...extra });
  S('gateway', 'pub-nats', 'root', 'publish orders.placed', PRODUCER, 42, 45, msg('nats', 'orders.placed', 'send', 'nats-' + n));
  P('proc-nats', 'pub-nats', 'payments', 'process orders.placed', 47, 80, msg('nats', 'orders.placed', 'process', 'nats-' + n,
    [int('messaging.message.queue_time_ms', 2)]));
  S('payments', 'pay-price', 'proc-nats', 'GET /price/:item', CLIENT, 50, 60);
  S('pricing', 'pay-price-s', 'pay-price', 'GET /price/:item', SERVER, 51, 59);
  S('payments', 'pub-redis', 'proc-nats', 'publish orders.paid', PRODUCER, 62, 66, msg('redis', 'orders.paid', 'send', '1-' + n));
  P('proc-redis', 'pub-redis', 'warehouse', 'process orders.paid', 70, 100, msg('redis', 'orders.paid', 'process', '1-' + n,
    [str('messaging.consumer.group.name', 'warehouse'), str('messaging.settlement', 'ack')]));
  S('warehouse', 'pub-amqp', 'proc-redis', 'publish orders.packed', PRODUCER, 72, 90, msg('rabbitmq', 'orders.packed', 'send', 'amqp-' + n));
  let t = 95;
  if (nack) {
    P('proc-amqp-1', 'pub-amqp', 'shipping', 'process orders.packed', 95, 105, msg('rabbitmq', 'orders.packed', 'process', 'amqp-' + n,
      [int('messaging.message.delivery_count', 1), str('messaging.settlement', 'nack'), bool('messaging.rabbitmq.requeue', true)]),
      { status: { code: 2, message: 'courier API timed out' } });
    t = 110;
  }
  P('proc-amqp', 'pub-amqp', 'shipping', 'process orders.packed', t, t + 20, msg('rabbitmq', 'orders.packed', 'process', 'amqp-' + n,
    [int('messaging.message.delivery_count', nack ? 2 : 1), str('messaging.settlement', 'ack'),
     ...(nack ? [bool('messaging.rabbitmq.message.redelivered', true)] : [])]));
  S('shipping', 'pub-mqtt', 'proc-amqp', 'publish shop/orders/shipped', PRODUCER, t + 5, t + 8, msg('mqtt', 'shop/orders/shipped', 'send', 'mqtt-' + n));
  P('proc-mqtt', 'pub-mqtt', 'notifications', 'process shop/orders/+', t + 10, t + 30, msg('mqtt', 'shop/orders/shipped', 'process', 'mqtt-' + n,
    [str('messaging.destination.template', 'shop/orders/+')]));
  S('notifications', 'pub-kafka', 'proc-mqtt', 'send orders.completed', PRODUCER, t + 12, t + 16, msg('kafka', 'orders.completed', 'send', 'kafka-' + n));
}

const t0 = Date.now() - 10000;
const tr = new Traffic(t0);
const order1 = hex(16), order2 = hex(16), batch = hex(16);
order(tr, order1, 1, 0, true);
order(tr, order2, 2, 200, false);
// the ledger takes both orders in one batch: a trace of its own, linked to both sends
tr.sp(batch, 'ledger', 'batch', null, 'process orders.completed', CONSUMER, 400, 420,
  [str('messaging.system', 'kafka'), str('messaging.destination.name', 'orders.completed'), str('messaging.operation.type', 'process'),
   int('messaging.batch.message_count', 2), str('messaging.settlement', 'commit')],
  { links: [link(tr, order1, 'pub-kafka1', [int('messaging.kafka.offset', 7)]), link(tr, order2, 'pub-kafka2', [int('messaging.kafka.offset', 8)])] });
tr.sp(batch, 'ledger', 'post', 'batch', 'post_to_ledger', INTERNAL, 405, 415);

// a pipeline of one trace per message: orders-api ─▶ billing ─▶ mailer, joined by links only
const lk = new Traffic(t0 + 1000);
const [lp, lc1, lc2] = [hex(16), hex(16), hex(16)];
lk.sp(lp, 'orders-api', 'p', null, 'publish invoices', PRODUCER, 0, 2, msg('kafka', 'invoices', 'send', 'inv-1'));
lk.sp(lc1, 'billing', 'c1', null, 'process invoices', CONSUMER, 5, 20, msg('kafka', 'invoices', 'process', 'inv-1'),
  { links: [link(lk, lp, 'p', [str('messaging.link', 'creation')])] });
lk.sp(lc1, 'billing', 'c1-pub', 'c1', 'publish mails', PRODUCER, 10, 12, msg('nats', 'mails', 'send', 'mail-1'));
lk.sp(lc2, 'mailer', 'c2', null, 'process mails', CONSUMER, 15, 30, msg('nats', 'mails', 'process', 'mail-1'),
  { links: [link(lk, lc1, 'c1-pub')] });

async function send(body) {
  const r = await fetch(OTLP, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200, await r.text());
}
await send(tr.body());
await send(lk.body());

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
// bypassCSP: Playwright's waitForFunction evaluates strings, which the viewer's CSP forbids.
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, bypassCSP: true });
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.setDefaultTimeout(10000);

async function open(traceId, spanId) {
  await page.goto(`${UI}/#/trace/${traceId}` + (spanId ? '/' + spanId : ''));
  await page.reload();
  await page.waitForSelector('#rows .span-row');
  if (spanId) await page.waitForSelector('#details:not([hidden])');
}
const I = tr.ids;

try {
  await check('the services of a trace never share a colour (the demo\'s services)', async () => {
    await open(order1);
    const legend = await page.$$eval('#legend > span', (ls) => ls.map((l) => [l.textContent.replace(/ \(\d+\)$/, ''), getComputedStyle(l.querySelector('.svc-dot')).backgroundColor]));
    assert.deepEqual(legend.map((l) => l[0]).sort(),
      ['backend', 'gateway', 'inventory', 'notifications', 'payments', 'pricing', 'shipping', 'warehouse']);
    assert.equal(new Set(legend.map((l) => l[1])).size, legend.length, JSON.stringify(legend));
    // the bars use the legend's colours
    const byService = Object.fromEntries(legend);
    const bars = await page.$$eval('#rows .span-row', (rs) => rs.map((r) => [r.querySelector('.svc').textContent, getComputedStyle(r.querySelector('.bar')).backgroundColor]));
    for (const [svc, c] of bars) assert.equal(c, byService[svc], svc);
    // and so do the dots of the trace's row in the list
    const row = await page.$$eval(`#trace-list .trace-row[data-trace-id="${order1}"] .badge .svc-dot`, (ds) => ds.map((d) => getComputedStyle(d).backgroundColor));
    assert.equal(new Set(row).size, legend.length);
  });

  await check('a span lists its links, named, with their attributes, and they navigate', async () => {
    await open(batch, I['batch']);
    const links = await page.$$eval('#details ul.links > li', (ls) => ls.map((l) => [l.querySelector('a').textContent, l.querySelector('a').getAttribute('href'), l.querySelector('table.link-attributes').textContent]));
    assert.deepEqual(links, [
      ['notifications: send orders.completed', `#/trace/${order1}/${I['pub-kafka1']}`, 'messaging.kafka.offset7'],
      ['notifications: send orders.completed', `#/trace/${order2}/${I['pub-kafka2']}`, 'messaging.kafka.offset8'],
    ]);
    assert.match(await page.textContent('#details ul.links'), new RegExp('in trace ' + order1.slice(0, 8)));
    await page.click('#details ul.links > li:first-child a');
    await page.waitForFunction((id) => location.hash.includes(id) && document.querySelector('#details h3')?.textContent === 'send orders.completed', I['pub-kafka1']);
    // ... and back through "linked from"
    assert.deepEqual(await page.$$eval('#details ul.incoming > li', (ls) => ls.map((l) => l.textContent)),
      ['← ledger: process orders.completed in trace ' + batch.slice(0, 8) + '…']);
    await page.click('#details ul.incoming a');
    await page.waitForFunction((id) => location.hash.includes(id) && document.querySelector('#details h3')?.textContent === 'process orders.completed', batch);
  });

  await check('links within a trace: "linked from" on the producer, arrows producer → consumer in the waterfall', async () => {
    await open(order1, I['pub-amqp1']);
    const incoming = await page.$$eval('#details ul.incoming > li', (ls) => ls.map((l) => l.textContent));
    assert.deepEqual(incoming, ['← shipping: process orders.packed (this trace)', '← shipping: process orders.packed (this trace)']);
    const arrows = await page.$$eval('#link-arrows path.arrow', (ps) => ps.map((p) => p.dataset.from + '>' + p.dataset.to).sort());
    const want = [['pub-nats1', 'proc-nats1'], ['pub-redis1', 'proc-redis1'], ['pub-amqp1', 'proc-amqp-11'], ['pub-amqp1', 'proc-amqp1'],
      ['pub-mqtt1', 'proc-mqtt1']].map(([a, b]) => I[a] + '>' + I[b]).sort();
    assert.deepEqual(arrows, want);
    // an arrow starts on its producer's row and ends on its consumer's
    const geo = await page.evaluate(([from, to]) => {
      const p = document.querySelector(`#link-arrows path[data-from="${from}"][data-to="${to}"]`);
      const len = p.getTotalLength();
      const a = p.getPointAtLength(0), b = p.getPointAtLength(len);
      const ra = document.querySelector(`.span-row[data-span-id="${from}"]`), rb = document.querySelector(`.span-row[data-span-id="${to}"]`);
      return { ay: a.y, by: b.y, ra: [ra.offsetTop, ra.offsetTop + ra.offsetHeight], rb: [rb.offsetTop, rb.offsetTop + rb.offsetHeight] };
    }, [I['pub-nats1'], I['proc-nats1']]);
    assert.ok(geo.ay >= geo.ra[0] && geo.ay <= geo.ra[1], JSON.stringify(geo));
    assert.ok(geo.by >= geo.rb[0] && geo.by <= geo.rb[1], JSON.stringify(geo));
    // collapsing the producer's subtree removes the arrows into it (and below it)
    await page.click(`.span-row[data-span-id="${I['pub-amqp1']}"] .toggle`);
    assert.equal(await page.$$eval('#link-arrows path.arrow', (ps) => ps.length), 2);
    await page.click('#expand-all');
  });

  await check('a pipeline of one trace per message shows its connected traces', async () => {
    const connected = async () => page.$$eval('#linked-traces .linked-trace', (ls) => ls.map((l) => [l.dataset.direction, l.querySelector('a').textContent, l.dataset.traceId]));
    await open(lc1);
    await page.waitForSelector('#linked-traces:not([hidden])');
    assert.deepEqual(await connected(), [['upstream', 'orders-api: publish invoices', lp], ['downstream', 'mailer: process mails', lc2]]);
    await open(lp);
    await page.waitForSelector('#linked-traces:not([hidden])');
    assert.deepEqual(await connected(), [['downstream', 'billing: process invoices', lc1], ['downstream', 'mailer: process mails', lc2]]);
    assert.match(await page.textContent('#linked-traces'), /2 hops/);
    await page.click(`#linked-traces .linked-trace[data-trace-id="${lc2}"] a`);
    await page.waitForFunction(() => document.querySelector('#trace-title')?.textContent === 'mailer: process mails');
    // the batch trace joins the two orders: from one order, the other is "related"
    await open(order1);
    await page.waitForSelector('#linked-traces:not([hidden])');
    assert.deepEqual(await connected(), [['downstream', 'ledger: process orders.completed', batch], ['related', 'gateway: GET /checkout/:item', order2]]);
  });

  const facts = () => page.$$eval('#details table.messaging tr', (trs) => Object.fromEntries(trs.map((tr) =>
    [tr.children[0].textContent, tr.children[1].firstChild.textContent])));

  await check('messaging attributes are shown by meaning: the redelivered RabbitMQ message', async () => {
    await open(order1, I['proc-amqp1']);
    assert.deepEqual(await facts(), {
      System: 'rabbitmq', Operation: 'process', Destination: 'orders.packed', 'Message id': 'amqp-1',
      Delivery: 'attempt 2 (redelivered)', 'Queue time': '38ms after warehouse: publish orders.packed started', Settlement: 'ack',
    });
    // the failed first delivery
    await open(order1, I['proc-amqp-11']);
    const f = await facts();
    assert.equal(f.Delivery, 'attempt 1');
    assert.equal(f.Settlement, 'nack (requeue)');
    // MQTT: the topic, and the subscription it matched; the broker's queue time
    await open(order1, I['proc-mqtt1']);
    assert.equal((await facts()).Destination, 'shop/orders/shipped (subscribed as shop/orders/+)');
    await open(order1, I['proc-nats1']);
    assert.equal((await facts())['Queue time'], '2ms (broker timestamp); 5ms after gateway: publish orders.placed started');
    // the ledger's batch: queue time from the send span in the other trace
    await open(batch, I['batch']);
    const b = await facts();
    assert.equal(b.Batch, '2 messages');
    assert.equal(b['Queue time'], '278ms after notifications: send orders.completed started');
    assert.equal(b.Settlement, 'commit');
    // spans of a messaging system are tagged in the waterfall
    assert.equal(await page.textContent(`.span-row[data-span-id="${I['batch']}"] .msg-tag`), 'kafka');
    assert.equal(await page.$(`.span-row[data-span-id="${I['post']}"] .msg-tag`), null);
  });

  const listed = () => page.$$eval('#trace-list .trace-row', (rs) => rs.map((r) => r.dataset.traceId).sort());
  const listIs = (ids) => page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('#trace-list .trace-row')].map((r) => r.dataset.traceId).sort();
    return JSON.stringify(got) === JSON.stringify(want);
  }, [...ids].sort());

  await check('search by messaging meaning: a fact\'s "find traces", and the search form', async () => {
    await open(order1, I['proc-amqp1']);
    await page.click('#details table.messaging tr[data-label="Message id"] a.find');
    await listIs([order1]);
    assert.equal(await page.inputValue('#attr'), 'messaging.message.id=amqp-1');
    await page.fill('#attr', '');
    await page.selectOption('#msg-system', 'mqtt');
    await page.fill('#msg-dest', 'shop/orders/shipped');
    await page.click('#search-btn');
    await listIs([order1, order2]);
    await page.selectOption('#msg-system', 'kafka');
    await page.fill('#msg-dest', 'orders.completed');
    await page.click('#search-btn');
    await listIs([order1, order2, batch]);
    await page.selectOption('#msg-system', '');
    await page.fill('#msg-dest', '');
    await page.fill('#msg-id', 'nats-2');
    await page.click('#search-btn');
    await listIs([order2]);
    // system and destination must hold on one span: no NATS span has the Kafka topic
    await page.fill('#msg-id', '');
    await page.selectOption('#msg-system', 'nats');
    await page.fill('#msg-dest', 'orders.completed');
    await page.click('#search-btn');
    await page.waitForFunction(() => /^0 traces/.test(document.querySelector('#list-title').textContent));
    assert.deepEqual(await listed(), []);
    await page.selectOption('#msg-system', '');
    await page.fill('#msg-dest', '');
    await page.click('#search-btn');
    await page.waitForFunction(() => document.querySelectorAll('#trace-list .trace-row').length === 6);
  });

  await check('the critical path of an order: the checkout and the publish, not the pipeline that outlives the request', async () => {
    await open(order1, I['root1']);
    const crit = await page.$$eval('#rows .span-row.critical', (rs) => rs.map((r) => r.dataset.spanId));
    const want = ['root', 'buy', 'buy-s', 'stock', 'stock-s', 'lookup', 'price', 'price-s', 'pub-nats'].map((k) => I[k + '1']);
    assert.deepEqual(crit.sort(), [...want].sort());
    // the root waited on itself for 0-2ms, 40-42ms and 45-50ms
    assert.equal(await page.$$eval(`.span-row[data-span-id="${I['root1']}"] .crit`, (c) => c.length), 3);
    assert.match(await page.textContent('#details .crit-time'), /On the critical path: 9ms$/);
    // the pricing call is on it end to end; the segment lies on its bar
    const [bar, seg] = await page.$eval(`.span-row[data-span-id="${I['price-s1']}"]`, (r) =>
      [r.querySelector('.bar'), r.querySelector('.crit')].map((e) => { const b = e.getBoundingClientRect(); return [Math.round(b.left), Math.round(b.right)]; }));
    assert.deepEqual(seg, bar);
    // a span of the pipeline is not on it, and says nothing
    await page.click(`.span-row[data-span-id="${I['proc-redis1']}"]`);
    assert.equal(await page.$('#details .crit-time'), null);
    // switched off, nothing is marked
    await page.uncheck('#critical-toggle');
    assert.equal(await page.$$eval('#rows .span-row.critical, #rows .crit', (x) => x.length), 0);
    await page.check('#critical-toggle');
    assert.equal(await page.$$eval('#rows .span-row.critical', (x) => x.length), 9);
  });

  await check('the service map: calls and messages with counts, errors and latency; an edge lists its traces', async () => {
    // a call two hours ago: on the map of every trace, not on the last hour's
    const old = new Traffic(Date.now() - 2 * 3600 * 1000);
    const oldTrace = hex(16);
    old.sp(oldTrace, 'old-client', 'c', null, 'GET /old', CLIENT, 0, 5);
    old.sp(oldTrace, 'old-server', 's', 'c', 'GET /old', SERVER, 1, 4);
    await send(old.body());
    await page.goto(`${UI}/#/`);
    await page.reload();
    await page.click('#map-link');
    await page.waitForSelector('#map-edges .map-edge-row');
    const table = () => page.$$eval('#map-edges .map-edge-row', (rs) => rs.map((r) => [...r.children].slice(0, 5).map((td) => td.textContent).join(' ')));
    assert.deepEqual(await table(), [
      'backend inventory call 2 0 (0%)',
      'billing mailer message 1 0 (0%)',
      'gateway backend call 2 0 (0%)',
      'gateway payments message 2 0 (0%)',
      'inventory pricing call 2 0 (0%)',
      'notifications ledger message 2 0 (0%)',
      'old-client old-server call 1 0 (0%)',
      'orders-api billing message 1 0 (0%)',
      'payments pricing call 2 0 (0%)',
      'payments warehouse message 2 0 (0%)',
      'shipping notifications message 2 0 (0%)',
      'warehouse shipping message 3 1 (33.3%)',
    ]);
    assert.match(await page.textContent('#map-meta'), /^14 services, 12 edges from 7 traces/);
    // latency: the callee's span (p50, p99), the queue from the producer's start
    const row = (from, to) => page.$$eval(`#map-edges .map-edge-row[data-from="${from}"][data-to="${to}"] td`, (tds) => tds.map((t) => t.textContent));
    assert.deepEqual((await row('gateway', 'backend')).slice(5, 7), ['36ms', '36ms']);
    assert.deepEqual((await row('warehouse', 'shipping')).slice(5, 9), ['20ms', '20ms', '23ms', '38ms']);
    // the graph: a node per service, an edge per row, messages dashed, errors red
    assert.equal(await page.$$eval('#map-svg .map-node', (n) => n.length), 14);
    assert.equal(await page.$$eval('#map-svg .map-edge', (n) => n.length), 12);
    assert.equal(await page.$$eval('#map-svg .map-edge.message', (n) => n.length), 7);
    assert.deepEqual(await page.$$eval('#map-svg .map-edge.has-errors', (n) => n.map((g) => g.dataset.from + '>' + g.dataset.to)), ['warehouse>shipping']);
    assert.equal(await page.$eval('#map-svg .map-edge[data-from="warehouse"] .edge-label', (t) => t.textContent), '3 messages · 33.3% errors');
    const dash = await page.$eval('#map-svg .map-edge[data-from="warehouse"] .line', (l) => getComputedStyle(l).strokeDasharray);
    assert.notEqual(dash, 'none');
    // services of the map never share a colour
    const fills = await page.$$eval('#map-svg .map-node rect:nth-of-type(2)', (rs) => rs.map((r) => r.getAttribute('fill')));
    assert.equal(new Set(fills).size, 14);
    // clicking an edge lists its traces
    await page.click('#map-svg .map-edge[data-from="warehouse"][data-to="shipping"] .line', { force: true });
    await listIs([order1, order2]);
    assert.match(await page.textContent('#list-title'), /2 traces: warehouse → shipping \(messages\)/);
    await page.click('#map-edges .map-edge-row[data-from="notifications"][data-to="ledger"]');
    await listIs([batch]);
    // the search's window and conditions make the map
    await page.selectOption('#lookback', '1h');
    await page.click('#search-btn');
    await page.waitForFunction(() => !document.querySelector('#map-edges .map-edge-row[data-from="old-client"]'));
    assert.equal((await table()).length, 11);
    await page.selectOption('#service', 'billing');
    await page.click('#search-btn');
    await page.waitForFunction(() => document.querySelectorAll('#map-edges .map-edge-row').length === 1);
    assert.deepEqual(await table(), ['orders-api billing message 1 0 (0%)']);
    await page.selectOption('#service', '');
    await page.selectOption('#lookback', 'all');
    // a service of the map searches its traces
    await page.click('#map-link');
    await page.click('#search-btn');
    await page.waitForFunction(() => document.querySelectorAll('#map-edges .map-edge-row').length === 12);
    await page.hover('#map-svg .map-node[data-service="payments"]');
    assert.deepEqual(await page.$$eval('#map-svg .map-edge:not(.dim)', (es) => es.map((e) => e.dataset.from + '>' + e.dataset.to).sort()),
      ['gateway>payments', 'payments>pricing', 'payments>warehouse']);
    // a service of the map: the paths through it (Jaeger's deep dependency graph), its traces
    await page.click('#map-svg .map-node[data-service="payments"]');
    await listIs([order1, order2]);
    assert.equal(await page.inputValue('#service'), 'payments');
    await page.waitForFunction(() => document.querySelector('#map-focus'));
    await page.waitForFunction(() => document.querySelectorAll('#map-edges .map-edge-row').length === 5);
    assert.deepEqual(await table(), [
      'gateway payments message 2 0 (0%)',
      'payments pricing call 2 0 (0%)',
      'payments warehouse message 2 0 (0%)',
      'shipping notifications message 2 0 (0%)',
      'warehouse shipping message 3 1 (33.3%)',
    ]);
    assert.ok(page.url().endsWith('#/map/payments'), page.url());
    await page.click('#map-focus a');
    await page.waitForFunction(() => document.querySelectorAll('#map-edges .map-edge-row').length === 12);
    assert.equal(await page.inputValue('#service'), '');
  });

  await check('no script errors on the page', async () => {
    assert.deepEqual(pageErrors, []);
  });
} finally {
  await browser.close();
}
if (failures) { console.log(`${failures} browser check(s) failed`); process.exit(1); }
console.log('all browser checks passed');
