// Takes the README's screenshots of the viewer from real traffic: run `tracewire view`, send
// it the demo's traffic, then
//   VIEWER_URL=http://127.0.0.1:16686 OUT_DIR=docs node crates/tracewire-cli/tests/browser/screenshots.mjs
// (the commands are in crates/tracewire-viewer/README.md, "Screenshots"). Writes
// viewer-map.png (the service map) and viewer-messaging.png (an order's trace, the redelivered
// RabbitMQ message selected).
import { chromium } from 'playwright-core';
import { join } from 'node:path';

const UI = process.env.VIEWER_URL.replace(/\/$/, '');
const OUT = process.env.OUT_DIR || '.';
const get = async (path) => (await fetch(UI + path)).json();

// the order with the redelivery: a trace with a RabbitMQ span delivered twice
const { traces } = await get('/tw/api/search?attr=messaging.rabbitmq.message.redelivered=true&limit=10');
if (!traces.length) throw new Error('no trace with a redelivered RabbitMQ message: send the demo\'s traffic first');
const order = traces.sort((a, b) => b.spanCount - a.spanCount)[0];
const t = await get('/tw/api/traces/' + order.traceId);
const redelivered = t.spans.find((s) => s.attributes.some((a) => a.key === 'messaging.rabbitmq.message.redelivered'));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1920, height: 640 }, deviceScaleFactor: 1 })).newPage();
  await page.goto(`${UI}/#/map`);
  await page.waitForSelector('#map-svg .map-edge');
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(OUT, 'viewer-map.png') });
  await page.setViewportSize({ width: 1600, height: 1320 });
  await page.goto(`${UI}/#/trace/${order.traceId}/${redelivered.spanId}`);
  await page.reload();
  await page.waitForSelector('#details:not([hidden]) table.messaging');
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(OUT, 'viewer-messaging.png') });
  console.log('wrote', join(OUT, 'viewer-map.png'), 'and', join(OUT, 'viewer-messaging.png'), 'from trace', order.traceId);
} finally {
  await browser.close();
}
