// tracewire viewer: the messaging facts of a span, by meaning rather than by attribute key.
// Pure functions, no DOM: loaded by the page before app.js, and by node in the viewer's tests
// (crates/tracewire-viewer/tests/ui_logic.rs). Keys as tracewire-core's semconv.rs writes them.
'use strict';

const M = 'messaging.';
// Attributes shown under a meaning of their own (the rest of messaging.* is listed after them).
const KNOWN = new Set([
  'messaging.system', 'messaging.operation.type', 'messaging.operation.name', 'messaging.operation',
  'messaging.destination.name', 'messaging.destination.template', 'messaging.destination.temporary',
  'messaging.destination.anonymous', 'messaging.destination.partition.id', 'messaging.consumer.group.name',
  'messaging.destination.subscription.name', 'messaging.message.id', 'messaging.message.conversation_id',
  'messaging.message.delivery_count', 'messaging.message.queue_time_ms', 'messaging.batch.message_count',
  'messaging.settlement', 'messaging.message.body.size', 'messaging.client.id',
  'messaging.rabbitmq.message.redelivered', 'messaging.mqtt.duplicate', 'messaging.rabbitmq.requeue',
]);

function fmtNs(ns) {
  const a = Math.abs(ns);
  const t = a < 1e3 ? Math.round(a) + 'ns' : a < 1e6 ? +(a / 1e3).toFixed(1) + 'µs' : a < 1e9 ? +(a / 1e6).toFixed(1) + 'ms' : +(a / 1e9).toFixed(2) + 's';
  return (ns < 0 ? '-' : '') + t;
}

// The span this consumer span's message came from: a producer it links to (in this trace, or
// in another when the API knows the target's start), else its producer parent. Returns
// { startNs (relative to the trace), service, name } or null.
function producerOf(span, spans) {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (const l of span.links || []) {
    const t = l.inTrace ? byId.get(l.spanId) : null;
    if (t && t.kind === 'producer') return { startNs: t.startNs, service: t.service, name: t.name };
  }
  for (const l of span.links || []) {
    if (!l.inTrace && l.startOffsetNs !== undefined && l.kind === 'producer') return { startNs: l.startOffsetNs, service: l.service, name: l.name };
  }
  const p = span.parentSpanId ? byId.get(span.parentSpanId) : null;
  return p && p.kind === 'producer' ? { startNs: p.startNs, service: p.service, name: p.name } : null;
}

// The messaging facts of `span` (a span of the UI's trace JSON; `spans`: the trace's), as
// [{ label, value, key?, search? }] — `key=search` finds the traces with the same value —
// or [] for a span that is not about messaging.
function messagingFacts(span, spans) {
  const attrs = new Map((span.attributes || []).map((a) => [a.key, a.value]));
  if (!attrs.has('messaging.system') && ![...attrs.keys()].some((k) => k.startsWith(M))) return [];
  const out = [];
  const add = (label, value, key, search) => { if (value !== undefined && value !== '') out.push({ label, value: String(value), key, search }); };
  const a = (k) => attrs.get(k);
  add('System', a('messaging.system'), 'messaging.system', a('messaging.system'));
  const opType = a('messaging.operation.type') ?? a('messaging.operation');
  const opName = a('messaging.operation.name');
  add('Operation', opType && opName && opName !== opType ? opType + ' (' + opName + ')' : opType ?? opName,
    a('messaging.operation.type') !== undefined ? 'messaging.operation.type' : undefined, a('messaging.operation.type'));
  const dest = a('messaging.destination.name');
  const tpl = a('messaging.destination.template');
  const flags = [a('messaging.destination.temporary') === 'true' ? 'temporary' : '', a('messaging.destination.anonymous') === 'true' ? 'anonymous' : ''].filter(Boolean);
  add('Destination', dest !== undefined ? dest + (tpl && tpl !== dest ? ' (subscribed as ' + tpl + ')' : '') + (flags.length ? ' [' + flags.join(', ') + ']' : '') : tpl,
    dest !== undefined ? 'messaging.destination.name' : 'messaging.destination.template', dest ?? tpl);
  add('Partition', a('messaging.destination.partition.id'), 'messaging.destination.partition.id', a('messaging.destination.partition.id'));
  add('Consumer group', a('messaging.consumer.group.name') ?? a('messaging.destination.subscription.name'));
  add('Message id', a('messaging.message.id'), 'messaging.message.id', a('messaging.message.id'));
  add('Conversation id', a('messaging.message.conversation_id'), 'messaging.message.conversation_id', a('messaging.message.conversation_id'));
  const count = a('messaging.message.delivery_count');
  const again = a('messaging.rabbitmq.message.redelivered') === 'true' || a('messaging.mqtt.duplicate') === 'true';
  if (count !== undefined) add('Delivery', +count > 1 ? 'attempt ' + count + ' (redelivered)' : 'attempt ' + count, 'messaging.message.delivery_count', count);
  else if (again) add('Delivery', 'redelivered');
  const queued = [];
  const q = a('messaging.message.queue_time_ms');
  if (q !== undefined) queued.push(q + 'ms (broker timestamp)');
  if (span.kind === 'consumer' && spans) {
    const p = producerOf(span, spans);
    if (p) queued.push(fmtNs(span.startNs - p.startNs) + ' after ' + p.service + ': ' + p.name + ' started');
  }
  if (queued.length) add('Queue time', queued.join('; '));
  add('Batch', a('messaging.batch.message_count') !== undefined ? a('messaging.batch.message_count') + ' messages' : undefined);
  const settle = a('messaging.settlement');
  add('Settlement', settle !== undefined ? settle + (a('messaging.rabbitmq.requeue') === 'true' ? ' (requeue)' : '') : undefined, 'messaging.settlement', settle);
  add('Body size', a('messaging.message.body.size') !== undefined ? a('messaging.message.body.size') + ' bytes' : undefined);
  add('Client id', a('messaging.client.id'));
  for (const [k, v] of attrs) if (k.startsWith(M) && !KNOWN.has(k)) add(k.slice(M.length), v, k, v);
  return out;
}

if (typeof module === 'object' && module.exports) module.exports = { messagingFacts, producerOf };
