//! Streams with consumer groups: XREADGROUP (one process span per entry, or one for a COUNT n
//! read with a link per entry), XACK as the settlement, and redelivery of pending entries
//! (XAUTOCLAIM, or XREADGROUP of this consumer's own history) with the delivery count from
//! XPENDING.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::time::{Duration, SystemTime};

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};
use tracewire_messaging::{Destination, MessageInfo, Messaging, ProcessSpan};

use crate::carrier::{Fields, Headers};
use crate::client::{Client, DATA_FIELD, error_type};
use crate::message::Delivery;
use crate::semconv::MESSAGING_REDIS_ENVELOPE;

/// The trace headers tracewire writes as entry fields (left out of `messaging.message.body.size`).
const TRACE_FIELDS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// One stream entry as a consumer read it.
///
/// Its [`fields`](StreamEntry::fields) are exactly what the stream holds — the trace fields
/// tracewire adds (`traceparent`, ...) included. An entry FastStream wrote holds one
/// `__data__` field with an envelope: [`body`](StreamEntry::body) and
/// [`headers`](StreamEntry::headers) are then the envelope's.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamEntry {
    stream: String,
    id: String,
    fields: Vec<(String, Vec<u8>)>,
    delivery_count: u64,
    envelope: Option<Delivery>,
}

impl fmt::Debug for StreamEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamEntry")
            .field("stream", &self.stream)
            .field("id", &self.id)
            .field("fields", &self.fields.len())
            .field("delivery_count", &self.delivery_count)
            .field("envelope", &self.envelope)
            .finish()
    }
}

impl StreamEntry {
    /// The stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The entry id (`<milliseconds>-<sequence>`): `messaging.message.id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fields, in entry order.
    pub fn fields(&self) -> &[(String, Vec<u8>)] {
        &self.fields
    }

    /// The first value of field `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Which delivery this is: 1 for the first, more for a redelivered pending entry
    /// (`messaging.message.delivery_count`).
    pub fn delivery_count(&self) -> u64 {
        self.delivery_count
    }

    /// The envelope's body, for an entry with a `__data__` field.
    pub fn body(&self) -> Option<&[u8]> {
        self.envelope.as_ref().map(Delivery::body)
    }

    /// The envelope, opened, for an entry with a `__data__` field.
    pub fn envelope(&self) -> Option<&Delivery> {
        self.envelope.as_ref()
    }

    /// The envelope's headers (none for an entry without `__data__`).
    pub fn headers(&self) -> Option<&Headers<'static>> {
        self.envelope.as_ref().map(Delivery::headers)
    }

    /// When the entry was added: the millisecond part of its id.
    fn added_at(&self) -> Option<SystemTime> {
        let ms = self.id.split_once('-')?.0.parse::<u64>().ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    fn body_size(&self) -> usize {
        match &self.envelope {
            Some(d) => d.body().len(),
            None => self
                .fields
                .iter()
                .filter(|(k, _)| !TRACE_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| k.len() + v.len())
                .sum(),
        }
    }

    fn envelope_label(&self) -> &'static str {
        match &self.envelope {
            None => "fields",
            Some(d) if d.decode_error().is_some() => "invalid",
            Some(d) => d.format().as_str(),
        }
    }

    fn facts<'a>(
        &'a self,
        group: &'a str,
        system: &'a [(&'static str, &'a str); 1],
    ) -> MessageInfo<'a> {
        let correlation = self.envelope.as_ref().and_then(Delivery::correlation_id);
        MessageInfo {
            id: Some(&self.id),
            conversation_id: correlation,
            body_size: Some(self.body_size()),
            consumer_group: Some(group),
            delivery_count: Some(self.delivery_count),
            published_at: self.added_at(),
            system_attributes: system,
            ..MessageInfo::new(Destination::new(&self.stream))
        }
    }
}

/// The carrier of an entry, borrowed: its envelope's headers, or its (text) fields.
fn carrier(entry: &StreamEntry) -> Option<Headers<'_>> {
    let h = match &entry.envelope {
        Some(d) => d.carrier()?.view(),
        None => Headers::from_vec(
            Fields(&entry.fields)
                .0
                .iter()
                .filter_map(|(k, v)| {
                    let v = std::str::from_utf8(v).ok()?;
                    Some((Cow::Borrowed(k.as_str()), Cow::Borrowed(v)))
                })
                .collect(),
        ),
    };
    (!h.is_empty()).then_some(h)
}

fn process(messaging: &Messaging, group: &str, entry: &StreamEntry) -> ProcessSpan {
    let label = [(MESSAGING_REDIS_ENVELOPE, entry.envelope_label())];
    messaging.process_lazy(|| entry.facts(group, &label), carrier(entry).as_ref())
}

/// A consumer in a consumer group of one stream, on a connection of its own: made by
/// [`Client::stream_group`].
///
/// ```no_run
/// # async fn run(client: tracewire_redis::Client) -> redis::RedisResult<()> {
/// use std::time::Duration;
///
/// let mut events = client.stream_group("events", "billing", "billing-1").await?;
/// events.create_group("$").await?;
/// loop {
///     for mut entry in events.read(10, Duration::from_secs(5)).await? {
///         let result: Result<(), std::io::Error> = entry.instrument(async { Ok(()) }).await;
///         entry.record_result(&result);
///         if result.is_ok() {
///             entry.ack().await?;
///         }
///     }
///     // Entries another consumer read and never acknowledged, idle for a minute: ours now.
///     for mut entry in events.claim(Duration::from_secs(60), 10).await? {
///         // entry.delivery_count() > 1
///         entry.ack().await?;
///     }
/// }
/// # }
/// ```
pub struct StreamConsumer {
    conn: MultiplexedConnection,
    stream: String,
    group: String,
    consumer: String,
    messaging: Messaging,
    client: Client,
    cursor: String,
}

impl fmt::Debug for StreamConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamConsumer")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish()
    }
}

/// An entry as read: its id and fields.
type RawEntry = (String, Vec<(String, Vec<u8>)>);

/// `[f1, v1, f2, v2, ...]` (or a RESP3 map) → pairs; names that are not UTF-8 are dropped.
fn fields(v: Value) -> Vec<(String, Vec<u8>)> {
    let text = |v: Value| match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    };
    let pairs: Vec<(Value, Value)> = match v {
        Value::Map(m) => m,
        Value::Array(items) => {
            let mut it = items.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((String::from_utf8(text(k)?).ok()?, text(v)?)))
        .collect()
}

fn string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// `[[id, fields], ...]` → `(id, fields)`; deleted entries (`[id, nil]`) are skipped.
fn entries(v: Value) -> Vec<RawEntry> {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|e| {
            let Value::Array(e) = e else { return None };
            let mut e = e.into_iter();
            let id = string(e.next()?)?;
            match e.next()? {
                Value::Nil => None,
                f => Some((id, fields(f))),
            }
        })
        .collect()
}

/// An XREAD(GROUP) reply for one stream → its entries.
fn read_reply(v: Value) -> Vec<RawEntry> {
    match v {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(kv) => kv.into_iter().nth(1).map(entries).unwrap_or_default(),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().flat_map(|(_, e)| entries(e)).collect(),
        _ => Vec::new(),
    }
}

impl StreamConsumer {
    pub(crate) async fn new(
        client: &Client,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> RedisResult<Self> {
        Ok(StreamConsumer {
            conn: client.consumer_connection().await?,
            stream: stream.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            messaging: client.messaging.clone().client_id(consumer.to_owned()),
            client: client.clone(),
            cursor: "0-0".to_owned(),
        })
    }

    /// The stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This consumer's name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// XGROUP CREATE stream group `start` MKSTREAM (`$`: entries added from now on; `0`: the
    /// whole stream). A group that exists already is left as it is.
    pub async fn create_group(&mut self, start: &str) -> RedisResult<()> {
        let result: RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut self.conn)
            .await;
        match result {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map(drop),
        }
    }

    fn entry(
        &self,
        id: String,
        fields: Vec<(String, Vec<u8>)>,
        delivery_count: u64,
    ) -> StreamEntry {
        let envelope = fields
            .iter()
            .find(|(k, _)| k == DATA_FIELD)
            .map(|(_, data)| Delivery::open(&self.client, self.stream.clone(), None, data.clone()));
        StreamEntry {
            stream: self.stream.clone(),
            id,
            fields,
            delivery_count,
            envelope,
        }
    }

    fn message(&self, entry: StreamEntry) -> StreamMessage {
        let span = process(&self.messaging, &self.group, &entry);
        StreamMessage {
            entry,
            span,
            conn: self.conn.clone(),
            group: self.group.clone(),
        }
    }

    async fn xreadgroup(
        &mut self,
        id: &str,
        count: usize,
        block: Option<Duration>,
    ) -> RedisResult<Vec<RawEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count.max(1));
        if let Some(block) = block {
            // `BLOCK 0`: for ever.
            cmd.arg("BLOCK")
                .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX));
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        let reply: Value = cmd.query_async(&mut self.conn).await?;
        Ok(read_reply(reply))
    }

    /// The delivery counts of pending entries (XPENDING's `times_delivered`), one XPENDING per
    /// entry in one pipelined round trip (a range could hold older pending entries too).
    async fn delivered(&mut self, ids: &[String]) -> RedisResult<HashMap<String, u64>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(id)
                .arg(id)
                .arg(1);
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn).await?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| {
                let Value::Array(rows) = reply else {
                    return None;
                };
                let Value::Array(row) = rows.into_iter().next()? else {
                    return None;
                };
                let mut row = row.into_iter();
                let id = string(row.next()?)?;
                let delivered = match row.nth(2)? {
                    Value::Int(n) => u64::try_from(n).ok()?,
                    _ => return None,
                };
                Some((id, delivered))
            })
            .collect())
    }

    /// XREADGROUP ... COUNT `count` BLOCK `block` STREAMS stream `>`: up to `count` new
    /// entries, each in its own process span (`process {stream}`, delivery count 1). Empty
    /// when `block` ran out (`Duration::ZERO`: wait for ever).
    pub async fn read(&mut self, count: usize, block: Duration) -> RedisResult<Vec<StreamMessage>> {
        let read = self.xreadgroup(">", count, Some(block)).await?;
        Ok(read
            .into_iter()
            .map(|(id, f)| {
                let entry = self.entry(id, f, 1);
                self.message(entry)
            })
            .collect())
    }

    /// [`read`](StreamConsumer::read) in one process span for all the entries
    /// (`messaging.batch.message_count`), with a link per entry to its creation context
    /// carrying the entry's id and delivery count. `None` when `block` ran out.
    pub async fn read_batch(
        &mut self,
        count: usize,
        block: Duration,
    ) -> RedisResult<Option<StreamBatch>> {
        let read = self.xreadgroup(">", count, Some(block)).await?;
        if read.is_empty() {
            return Ok(None);
        }
        let entries: Vec<StreamEntry> = read
            .into_iter()
            .map(|(id, f)| self.entry(id, f, 1))
            .collect();
        let labels: Vec<[(&'static str, &str); 1]> = entries
            .iter()
            .map(|e| [(MESSAGING_REDIS_ENVELOPE, e.envelope_label())])
            .collect();
        let carriers: Vec<Option<Headers<'_>>> = entries.iter().map(carrier).collect();
        let infos: Vec<(MessageInfo<'_>, Option<&Headers<'_>>)> = entries
            .iter()
            .zip(&labels)
            .zip(&carriers)
            .map(|((e, label), c)| (e.facts(&self.group, label), c.as_ref()))
            .collect();
        let span = self
            .messaging
            .process_batch(Destination::new(&self.stream), &infos);
        drop(infos);
        Ok(Some(StreamBatch {
            entries,
            span,
            conn: self.conn.clone(),
            group: self.group.clone(),
        }))
    }

    /// XREADGROUP ... STREAMS stream `0`: this consumer's own pending entries (read before, never
    /// acknowledged — after a restart under the same name), each in its own process span
    /// with its delivery count.
    pub async fn read_pending(&mut self, count: usize) -> RedisResult<Vec<StreamMessage>> {
        let read = self.xreadgroup("0", count, None).await?;
        self.redelivered(read).await
    }

    /// XAUTOCLAIM: up to `count` entries pending in the group for at least `min_idle` (their
    /// consumer died or gave up), now this consumer's, each in its own process span with its
    /// delivery count (2 for the first redelivery) and a link to its creation context — the
    /// same one every earlier attempt linked. Walks the pending list across calls.
    pub async fn claim(
        &mut self,
        min_idle: Duration,
        count: usize,
    ) -> RedisResult<Vec<StreamMessage>> {
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(&self.cursor)
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.conn)
            .await?;
        let Value::Array(parts) = reply else {
            return Ok(Vec::new());
        };
        let mut parts = parts.into_iter();
        if let Some(next) = parts.next().and_then(string) {
            self.cursor = next;
        }
        let claimed = parts.next().map(entries).unwrap_or_default();
        self.redelivered(claimed).await
    }

    async fn redelivered(&mut self, read: Vec<RawEntry>) -> RedisResult<Vec<StreamMessage>> {
        let ids: Vec<String> = read.iter().map(|(id, _)| id.clone()).collect();
        let counts = self.delivered(&ids).await?;
        Ok(read
            .into_iter()
            .map(|(id, f)| {
                let n = counts.get(&id).copied().unwrap_or(1);
                let entry = self.entry(id, f, n);
                self.message(entry)
            })
            .collect())
    }
}

/// An entry with its process span: reads as the [`StreamEntry`]; [`ack`](StreamMessage::ack)
/// settles it (XACK).
pub struct StreamMessage {
    entry: StreamEntry,
    span: ProcessSpan,
    conn: MultiplexedConnection,
    group: String,
}

impl fmt::Debug for StreamMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamMessage")
            .field("entry", &self.entry)
            .field("span", &self.span)
            .finish()
    }
}

impl Deref for StreamMessage {
    type Target = StreamEntry;

    fn deref(&self) -> &StreamEntry {
        &self.entry
    }
}

async fn xack(
    conn: &mut MultiplexedConnection,
    span: &mut ProcessSpan,
    stream: &str,
    group: &str,
    ids: impl Iterator<Item = &str>,
) -> RedisResult<()> {
    let mut settle = span.settle("ack");
    let mut cmd = redis::cmd("XACK");
    cmd.arg(stream).arg(group);
    for id in ids {
        cmd.arg(id);
    }
    let result: RedisResult<i64> = cmd.query_async(conn).await;
    if let Err(e) = &result {
        settle.record_error(error_type(e), e.to_string());
    }
    settle.end();
    result.map(drop)
}

impl StreamMessage {
    tracewire_messaging::process_span_methods!(span);

    /// XACK, recorded: `messaging.settlement=ack` on the process span and a CLIENT
    /// `ack {stream}` span for the round trip. An entry never acknowledged stays pending, to
    /// be claimed again ([`StreamConsumer::claim`]).
    pub async fn ack(&mut self) -> RedisResult<()> {
        let id = self.entry.id.as_str();
        xack(
            &mut self.conn,
            &mut self.span,
            &self.entry.stream,
            &self.group,
            std::iter::once(id),
        )
        .await
    }

    /// The entry and its span, apart.
    pub fn into_parts(self) -> (StreamEntry, ProcessSpan) {
        (self.entry, self.span)
    }
}

/// Entries read together in one process span: made by [`StreamConsumer::read_batch`].
pub struct StreamBatch {
    entries: Vec<StreamEntry>,
    span: ProcessSpan,
    conn: MultiplexedConnection,
    group: String,
}

impl fmt::Debug for StreamBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamBatch")
            .field("entries", &self.entries.len())
            .field("span", &self.span)
            .finish()
    }
}

impl StreamBatch {
    /// The entries, in stream order.
    pub fn entries(&self) -> &[StreamEntry] {
        &self.entries
    }

    tracewire_messaging::process_span_methods!(span);

    /// One XACK for every entry, in one settle span.
    pub async fn ack_all(&mut self) -> RedisResult<()> {
        let Some(stream) = self.entries.first().map(|e| e.stream.clone()) else {
            return Ok(());
        };
        let ids = self.entries.iter().map(|e| e.id.as_str());
        xack(&mut self.conn, &mut self.span, &stream, &self.group, ids).await
    }

    /// The entries and the span, apart.
    pub fn into_parts(self) -> (Vec<StreamEntry>, ProcessSpan) {
        (self.entries, self.span)
    }
}

impl Client {
    /// A consumer named `consumer` in the consumer group `group` of `stream`, on a connection
    /// of its own (the group is `messaging.consumer.group.name`, the consumer name
    /// `messaging.client.id`).
    pub async fn stream_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
    ) -> RedisResult<StreamConsumer> {
        StreamConsumer::new(self, stream, group, consumer).await
    }
}
