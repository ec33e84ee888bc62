//! The traced [`Client`]: publishing (PUBLISH, RPUSH/LPUSH, XADD) in send spans, and the
//! consumers it makes.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ErrorKind, RedisError, RedisResult};
use tracewire_messaging::{Destination, MessageInfo, Messaging, SendSpan};

use crate::carrier::{FieldsMut, Headers};
use crate::envelope::{self, DecodeError};

/// The envelope header FastStream puts a message's correlation id in (always written; recorded
/// as `messaging.message.conversation_id`).
pub const CORRELATION_ID: &str = "correlation_id";
/// The envelope header of the body's content type (`application/json`, `text/plain`).
pub const CONTENT_TYPE: &str = "content-type";
/// The envelope header of a message id (`messaging.message.id` when present).
pub const MESSAGE_ID: &str = "message_id";
/// The stream entry field FastStream puts its envelope in.
pub const DATA_FIELD: &str = "__data__";

/// A message to publish or push: its body and the envelope headers FastStream reads.
///
/// The envelope carries, in this order (FastStream's): `correlation_id` (the one given, or a
/// fresh UUID, as FastStream makes one), `content-type` (when known), the headers given, then
/// the trace headers.
///
/// ```
/// use tracewire_redis::Outgoing;
///
/// let order = Outgoing::json(br#"{"id": 42}"#.as_slice()).correlation_id("order-42");
/// let note = Outgoing::text("hello").header("x-tenant", "acme");
/// let bytes = Outgoing::new(vec![0u8, 1, 2]);
/// # let _ = (order, note, bytes);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing<'a> {
    body: Cow<'a, [u8]>,
    correlation_id: Option<Cow<'a, str>>,
    content_type: Option<Cow<'a, str>>,
    headers: Headers<'a>,
}

impl<'a> Outgoing<'a> {
    /// Bytes, no content type (FastStream writes none for `bytes` either).
    pub fn new(body: impl Into<Cow<'a, [u8]>>) -> Self {
        Outgoing {
            body: body.into(),
            ..Outgoing::default()
        }
    }

    /// Text: `content-type: text/plain`.
    pub fn text(body: &'a str) -> Self {
        Outgoing::new(body.as_bytes()).content_type("text/plain")
    }

    /// JSON: `content-type: application/json`.
    pub fn json(body: impl Into<Cow<'a, [u8]>>) -> Self {
        Outgoing::new(body).content_type("application/json")
    }

    /// The correlation id (FastStream's `correlation_id`; default: a fresh UUID).
    pub fn correlation_id(mut self, id: impl Into<Cow<'a, str>>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The content type.
    pub fn content_type(mut self, content_type: impl Into<Cow<'a, str>>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// A header of your own (a `traceparent` you set is kept, and the send span links it).
    pub fn header(mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The envelope headers without the trace headers: correlation id (made up if none was
    /// given), content type, then the headers given.
    pub(crate) fn envelope_headers(&self) -> Headers<'a> {
        let mut h = Headers::new();
        let id = self
            .correlation_id
            .clone()
            .unwrap_or_else(|| Cow::Owned(uuid4()));
        h.insert(CORRELATION_ID, id);
        if let Some(ct) = &self.content_type {
            h.insert(CONTENT_TYPE, ct.clone());
        }
        for (k, v) in self.headers.iter() {
            h.insert(k.to_owned(), v.to_owned());
        }
        h
    }
}

/// A random (version 4) UUID in its usual text form, as FastStream's correlation ids are.
fn uuid4() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// A [`redis::Client`] whose publishes are traced, and the factory of traced consumers.
///
/// Publishing goes through one multiplexed connection (cheap to clone with the client);
/// every consumer gets a connection of its own, because blocking reads (BLPOP, XREADGROUP
/// BLOCK) hold the connection they run on.
///
/// Pub/sub messages and list elements travel in FastStream's binary envelope by default, which
/// carries `correlation_id`, `content-type` and the trace headers;
/// [`raw_payloads`](Client::raw_payloads) sends bare payloads instead, for consumers that are not
/// tracing-aware — and then **nothing is propagated**: the consumer starts a new trace.
/// Stream entries carry the trace headers as fields of their own ([`xadd`](Client::xadd)), or
/// FastStream's `__data__` envelope ([`xadd_envelope`](Client::xadd_envelope)).
///
/// ```no_run
/// # async fn run() -> redis::RedisResult<()> {
/// use tracewire_redis::{Client, Outgoing};
///
/// let client = Client::connect(redis::Client::open("redis://127.0.0.1:6379")?).await?;
/// client.publish("orders", Outgoing::text("order 42")).await?;
/// client.rpush("jobs", Outgoing::json(br#"{"id": 42}"#.as_slice())).await?;
/// client.xadd("events", [("kind", "created")]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) client: redis::Client,
    conn: MultiplexedConnection,
    pub(crate) messaging: Messaging,
    raw: bool,
    failures: Arc<AtomicU64>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("messaging", &self.messaging)
            .field("raw_payloads", &self.raw)
            .field("decode_failures", &self.decode_failures())
            .finish()
    }
}

/// The error type recorded for a redis error: its kind (`Io`, `Server(ResponseError)`, ...),
/// low cardinality.
pub(crate) fn error_type(e: &RedisError) -> String {
    format!("{:?}", e.kind())
}

/// Ends a send span with the operation's outcome.
pub(crate) fn finish<T>(mut span: SendSpan, result: &RedisResult<T>) {
    if let Err(e) = result {
        span.record_error(error_type(e), e.to_string());
    }
    span.end();
}

/// Ends the send span of a message that could not be put in an envelope, and the error.
fn refuse(mut span: SendSpan, e: envelope::EncodeError) -> RedisError {
    span.record_error("envelope", e.to_string());
    span.end();
    RedisError::from((ErrorKind::Client, "envelope", e.to_string()))
}

impl Client {
    /// Traces `client` with [`Tracer::global`](tracewire_core::Tracer::global):
    /// `messaging.system` = `redis`, `server.address`/`server.port` from its address. Opens
    /// the publishing connection.
    pub async fn connect(client: redis::Client) -> RedisResult<Client> {
        let mut messaging = Messaging::new("redis");
        if let ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } =
            client.get_connection_info().addr()
        {
            messaging = messaging.server(host.clone(), Some(*port));
        }
        Client::with_messaging(client, messaging).await
    }

    /// Traces `client` with this configuration (tracer, relation, conventions, server, ...).
    pub async fn with_messaging(
        client: redis::Client,
        messaging: Messaging,
    ) -> RedisResult<Client> {
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(Client {
            client,
            conn,
            messaging,
            raw: false,
            failures: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Sends pub/sub messages and list elements as bare payloads, with no envelope, for
    /// consumers that are not tracing-aware: the payload is the body, byte for byte, and
    /// **no context is propagated** (the send span is still recorded; the consumer starts a
    /// new trace). Streams are not affected: [`xadd`](Client::xadd) writes fields.
    pub fn raw_payloads(mut self, yes: bool) -> Self {
        self.raw = yes;
        self
    }

    /// The tracing configuration.
    pub fn messaging(&self) -> &Messaging {
        &self.messaging
    }

    /// The untraced publishing connection (for commands of your own).
    pub fn connection(&self) -> MultiplexedConnection {
        self.conn.clone()
    }

    /// The untraced client.
    pub fn inner(&self) -> &redis::Client {
        &self.client
    }

    /// How many payloads that began like a binary envelope could not be read, over every
    /// consumer made from this client (and its clones). Each was handed to its handler as it
    /// arrived, in a new trace; the reason is logged at `debug`.
    pub fn decode_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn count_failure(&self, destination: &str, e: &DecodeError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        log::debug!("{destination}: {e}; the payload is handled as it arrived, untraced");
    }

    /// A connection of its own for a consumer: no response timeout, since blocking reads wait
    /// as long as they are told to.
    pub(crate) async fn consumer_connection(&self) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(5)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// The send span of one message and its payload (the envelope, or the bare body).
    fn prepare(
        &self,
        destination: &str,
        message: &Outgoing<'_>,
    ) -> RedisResult<(SendSpan, Vec<u8>)> {
        let mut headers = message.envelope_headers();
        let span = self.send_span(destination, message, &mut headers);
        if self.raw {
            return Ok((span, message.body.to_vec()));
        }
        let mut payload =
            Vec::with_capacity(envelope::encoded_len(headers.iter(), message.body.len()));
        match envelope::encode(headers.iter(), &message.body, &mut payload) {
            Ok(()) => Ok((span, payload)),
            Err(e) => Err(refuse(span, e)),
        }
    }

    fn send_span(
        &self,
        destination: &str,
        message: &Outgoing<'_>,
        headers: &mut Headers<'_>,
    ) -> SendSpan {
        // Copied out: the headers then take the context.
        let conversation = headers.get_exact(CORRELATION_ID).map(str::to_owned);
        let id = headers.get_exact(MESSAGE_ID).map(str::to_owned);
        let info = MessageInfo {
            id: id.as_deref(),
            conversation_id: conversation.as_deref(),
            body_size: Some(message.body.len()),
            ..MessageInfo::new(Destination::new(destination))
        };
        self.messaging.send(&info, headers)
    }

    /// PUBLISH to `channel` in a PRODUCER span (`publish {channel}`); the span's context
    /// travels in the envelope. Returns the number of subscribers that received it.
    pub async fn publish(&self, channel: &str, message: Outgoing<'_>) -> RedisResult<usize> {
        let (span, payload) = self.prepare(channel, &message)?;
        let result = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut self.conn.clone())
            .await;
        finish(span, &result);
        result
    }

    /// RPUSH to `list` (the tail: consumers pop from the head, FIFO) in a PRODUCER span
    /// (`publish {list}`). Returns the list's length.
    pub async fn rpush(&self, list: &str, message: Outgoing<'_>) -> RedisResult<usize> {
        self.push("RPUSH", list, message).await
    }

    /// LPUSH to `list` (the head) in a PRODUCER span. Returns the list's length.
    pub async fn lpush(&self, list: &str, message: Outgoing<'_>) -> RedisResult<usize> {
        self.push("LPUSH", list, message).await
    }

    async fn push(&self, command: &str, list: &str, message: Outgoing<'_>) -> RedisResult<usize> {
        let (span, payload) = self.prepare(list, &message)?;
        let result = redis::cmd(command)
            .arg(list)
            .arg(payload)
            .query_async(&mut self.conn.clone())
            .await;
        finish(span, &result);
        result
    }

    /// RPUSH of several messages in one command: a PRODUCER `create {list}` span per message
    /// (its context in that message's envelope) and one CLIENT `publish {list}` span that links
    /// them, with `messaging.batch.message_count`.
    pub async fn rpush_batch<'m>(
        &self,
        list: &str,
        messages: impl IntoIterator<Item = Outgoing<'m>>,
    ) -> RedisResult<usize> {
        let messages: Vec<Outgoing<'m>> = messages.into_iter().collect();
        let mut headers: Vec<Headers<'m>> =
            messages.iter().map(Outgoing::envelope_headers).collect();
        let ids: Vec<Option<String>> = headers
            .iter()
            .map(|h| h.get_exact(CORRELATION_ID).map(str::to_owned))
            .collect();
        let span =
            self.messaging
                .send_batch(messages.iter().zip(&ids).zip(headers.iter_mut()).map(
                    |((m, id), h)| {
                        (
                            MessageInfo {
                                conversation_id: id.as_deref(),
                                body_size: Some(m.body.len()),
                                ..MessageInfo::new(Destination::new(list))
                            },
                            h,
                        )
                    },
                ));
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(list);
        for (m, h) in messages.iter().zip(&headers) {
            if self.raw {
                cmd.arg(&*m.body);
                continue;
            }
            let mut payload = Vec::with_capacity(envelope::encoded_len(h.iter(), m.body.len()));
            if let Err(e) = envelope::encode(h.iter(), &m.body, &mut payload) {
                return Err(refuse(span, e));
            }
            cmd.arg(payload);
        }
        let result = cmd.query_async(&mut self.conn.clone()).await;
        finish(span, &result);
        result
    }

    /// XADD an entry of `fields` to `stream` (id `*`) in a PRODUCER span (`publish {stream}`):
    /// the span's context goes in as fields of their own (`traceparent`, and `tracestate` /
    /// `baggage` when there are any), readable by any tool; a `traceparent` field already
    /// among `fields` is kept, and linked. Records the entry id as `messaging.message.id` and
    /// returns it.
    pub async fn xadd<K, V>(
        &self,
        stream: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> RedisResult<String>
    where
        K: Into<String>,
        V: Into<Vec<u8>>,
    {
        let mut fields: Vec<(String, Vec<u8>)> = fields
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let span = {
            let size = fields.iter().map(|(k, v)| k.len() + v.len()).sum();
            let info = MessageInfo {
                body_size: Some(size),
                ..MessageInfo::new(Destination::new(stream))
            };
            self.messaging.send(&info, &mut FieldsMut(&mut fields))
        };
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream).arg("*");
        for (k, v) in &fields {
            cmd.arg(k).arg(v);
        }
        self.add(span, cmd).await
    }

    /// XADD `message` to `stream` as FastStream does: one `__data__` field holding the binary
    /// envelope (with the trace headers), what FastStream's stream subscribers read. Records
    /// and returns the entry id.
    pub async fn xadd_envelope(&self, stream: &str, message: Outgoing<'_>) -> RedisResult<String> {
        let mut headers = message.envelope_headers();
        let span = self.send_span(stream, &message, &mut headers);
        let mut payload =
            Vec::with_capacity(envelope::encoded_len(headers.iter(), message.body.len()));
        if let Err(e) = envelope::encode(headers.iter(), &message.body, &mut payload) {
            return Err(refuse(span, e));
        }
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream).arg("*").arg(DATA_FIELD).arg(payload);
        self.add(span, cmd).await
    }

    async fn add(&self, mut span: SendSpan, cmd: redis::Cmd) -> RedisResult<String> {
        let result: RedisResult<String> = cmd.query_async(&mut self.conn.clone()).await;
        if let (Ok(id), true) = (&result, span.is_recording()) {
            span.set(tracewire_core::semconv::MESSAGING_MESSAGE_ID, id.clone());
        }
        finish(span, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_faststreams() {
        let id = uuid4();
        assert_eq!(id.len(), 36, "{id}");
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
        assert_ne!(uuid4(), uuid4());
    }

    #[test]
    fn envelope_headers_come_in_faststreams_order() {
        let m = Outgoing::text("x")
            .header("x-app", "1")
            .correlation_id("c-1")
            .header(CORRELATION_ID, "c-2");
        let h = m.envelope_headers();
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [
                ("correlation_id", "c-2"),
                ("content-type", "text/plain"),
                ("x-app", "1")
            ]
        );
    }
}
