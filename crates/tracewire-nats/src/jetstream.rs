//! JetStream: traced publishes (the send span ends with the stream's ack), traced consumers
//! (push and pull: a process span per message, or one with a link per message for a pull
//! batch), and acks as settlements.

use std::cell::OnceCell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::ops::Deref;
use std::pin::Pin;
use std::str::FromStr as _;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, AckKind};
use async_nats::{HeaderMap, ToSubject};
use bytes::Bytes;
use futures_core::Stream;
use tracewire_core::{TraceContext, semconv};
use tracewire_messaging::{Destination, MessageInfo, Messaging, ProcessSpan, SendSpan};

use crate::carrier::HeaderExtractor;
use crate::client::{Client, error_type, ids};

/// A JetStream context whose publishes are traced, made from a traced [`Client`]. It reads as
/// the [`async_nats::jetstream::Context`] for everything else (streams, consumers).
///
/// ```no_run
/// # async fn run(client: tracewire_nats::Client) -> Result<(), async_nats::Error> {
/// use tokio_stream::StreamExt as _;
///
/// let js = tracewire_nats::jetstream::new(&client);
/// js.publish("orders.created", "42".into()).await?.await?;
/// let stream = js.get_stream("ORDERS").await?;
/// let consumer: async_nats::jetstream::consumer::PullConsumer =
///     stream.get_consumer("workers").await?;
/// let mut messages = js.messages(consumer.messages().await?);
/// while let Some(message) = messages.next().await {
///     let mut message = message?;
///     // ... the handler, in `message.instrument(...)`
///     message.ack().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Context {
    inner: jetstream::Context,
    client: Client,
}

/// The JetStream context of a traced client.
pub fn new(client: &Client) -> Context {
    Context {
        inner: jetstream::new(client.inner().clone()),
        client: client.clone(),
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("client", &self.client)
            .finish()
    }
}

impl Deref for Context {
    type Target = jetstream::Context;

    fn deref(&self) -> &jetstream::Context {
        &self.inner
    }
}

impl Context {
    /// A traced context over an untraced one (a domain or prefix of your own), sharing the
    /// client's configuration.
    pub fn with_context(client: &Client, context: jetstream::Context) -> Self {
        Context {
            inner: context,
            client: client.clone(),
        }
    }

    /// The tracing configuration.
    pub fn messaging(&self) -> &Messaging {
        self.client.messaging()
    }

    /// Publishes to a stream in a PRODUCER span that ends when the stream acknowledges the
    /// message (await the returned future) — recording the stream and sequence, or the
    /// error.
    pub async fn publish<S: ToSubject>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> Result<PublishAckFuture, PublishError> {
        self.publish_with_headers(subject, HeaderMap::new(), payload)
            .await
    }

    /// [`publish`](Context::publish) with headers of your own; a `Nats-Msg-Id` header is the
    /// message id (`messaging.message.id`) and JetStream's de-duplication key.
    pub async fn publish_with_headers<S: ToSubject>(
        &self,
        subject: S,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<PublishAckFuture, PublishError> {
        let subject = subject.to_subject();
        let mut span = self.client.send_span(&subject, &mut headers, &payload);
        match self
            .inner
            .publish_with_headers(subject, headers, payload)
            .await
        {
            Ok(ack) => Ok(PublishAckFuture { inner: ack, span }),
            Err(e) => {
                span.record_error(error_type(&e.kind()), e.to_string());
                span.end();
                Err(e)
            }
        }
    }

    /// [`publish_with_headers`](Context::publish_with_headers) with `Nats-Msg-Id` set to
    /// `id`.
    pub async fn publish_with_id<S: ToSubject>(
        &self,
        subject: S,
        id: &str,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<PublishAckFuture, PublishError> {
        match async_nats::header::HeaderValue::from_str(id) {
            Ok(value) => headers.insert(async_nats::header::NATS_MESSAGE_ID, value),
            Err(_) => log::debug!("not a valid Nats-Msg-Id, not set: {id:?}"),
        }
        self.publish_with_headers(subject, headers, payload).await
    }

    /// Traces a consumer's message stream (`consumer.messages().await?` of a push or pull
    /// consumer, or a pull `fetch`/`batch`): each message with its process span.
    pub fn messages<S>(&self, stream: S) -> Messages<S> {
        Messages {
            inner: stream,
            client: self.client.clone(),
        }
    }

    /// Starts the process span of one JetStream message.
    pub fn process(&self, message: jetstream::Message) -> Message {
        process(&self.client, message)
    }

    /// One process span for a pulled batch (`process {subject}`, or `process {stream}` when
    /// the subjects differ), with a link per message to its creation context that carries
    /// the message's id, size and delivery count. No span is made per message.
    pub fn process_batch(&self, messages: Vec<jetstream::Message>) -> Batch {
        let acks: Vec<Option<AckInfo<'_>>> = messages
            .iter()
            .map(|m| m.reply.as_deref().and_then(AckInfo::parse))
            .collect();
        let carriers: Vec<Option<HeaderExtractor<'_>>> = messages
            .iter()
            .map(|m| m.headers.as_ref().map(HeaderExtractor))
            .collect();
        let infos: Vec<(MessageInfo<'_>, Option<&HeaderExtractor<'_>>)> = messages
            .iter()
            .zip(&acks)
            .zip(&carriers)
            .map(|((m, ack), carrier)| (info(&self.client, m, ack.as_ref()), carrier.as_ref()))
            .collect();
        let first = messages.first();
        let same = first.is_some_and(|f| messages.iter().all(|m| m.subject == f.subject));
        let destination = match (first, same) {
            (Some(f), true) => self.client.destination(&f.subject),
            _ => Destination {
                template: acks.iter().flatten().next().map(|a| a.stream),
                ..Destination::default()
            },
        };
        let span = self.messaging().process_batch(destination, &infos);
        Batch { messages, span }
    }
}

/// The reply subject of a JetStream message, parsed: `$JS.ACK.<stream>.<consumer>.
/// <delivered>.<stream seq>.<consumer seq>.<published nanos>.<pending>` (or the form with
/// domain and account hash in front). Parsed here rather than through `Message::info` so the
/// publish time does not depend on async-nats's `chrono` feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AckInfo<'a> {
    pub(crate) stream: &'a str,
    pub(crate) consumer: &'a str,
    pub(crate) delivered: u64,
    pub(crate) stream_sequence: &'a str,
    pub(crate) consumer_sequence: &'a str,
    pub(crate) published_nanos: u64,
}

impl<'a> AckInfo<'a> {
    pub(crate) fn parse(reply: &'a str) -> Option<Self> {
        let rest = reply.strip_prefix("$JS.ACK.")?;
        // Up to 12 tokens on the stack: no allocation per message.
        let mut tokens = [""; 12];
        let mut n = 0;
        for t in rest.split('.') {
            *tokens.get_mut(n)? = t;
            n += 1;
        }
        // v1: 7 tokens; v2: domain and account hash first, and a random token at the end.
        let t = match n {
            7 => &tokens[..7],
            9..=12 => &tokens[2..9],
            _ => return None,
        };
        Some(AckInfo {
            stream: t[0],
            consumer: t[1],
            delivered: decimal(t[2])?,
            stream_sequence: t[3],
            consumer_sequence: t[4],
            published_nanos: decimal(t[5])?,
        })
    }

    fn published(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.published_nanos)
    }
}

/// A decimal `u64` (digits only, no sign, no overflow).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// The facts of a JetStream message.
fn info<'a>(
    client: &Client,
    message: &'a jetstream::Message,
    ack: Option<&AckInfo<'a>>,
) -> MessageInfo<'a> {
    let (id, conversation_id) = message.headers.as_ref().map_or((None, None), ids);
    MessageInfo {
        id,
        conversation_id,
        body_size: Some(message.payload.len()),
        consumer_group: ack.map(|a| a.consumer),
        delivery_count: ack.map(|a| a.delivered),
        published_at: ack.map(AckInfo::published),
        ..MessageInfo::new(client.destination(&message.subject))
    }
}

fn process(client: &Client, message: jetstream::Message) -> Message {
    let span = {
        // The ack subject is parsed, and the headers searched for ids, only for a recorded
        // span.
        let ack: OnceCell<Option<AckInfo<'_>>> = OnceCell::new();
        let stream: OnceCell<[(&'static str, &str); 3]> = OnceCell::new();
        let facts = || {
            let ack = ack
                .get_or_init(|| message.reply.as_deref().and_then(AckInfo::parse))
                .as_ref();
            let system: &[(&'static str, &str)] = match ack {
                Some(a) => stream.get_or_init(|| {
                    [
                        (semconv::MESSAGING_NATS_STREAM, a.stream),
                        (semconv::MESSAGING_NATS_STREAM_SEQUENCE, a.stream_sequence),
                        (
                            semconv::MESSAGING_NATS_CONSUMER_SEQUENCE,
                            a.consumer_sequence,
                        ),
                    ]
                }),
                None => &[],
            };
            MessageInfo {
                system_attributes: system,
                ..info(client, &message, ack)
            }
        };
        let carrier = message.headers.as_ref().map(HeaderExtractor);
        client.messaging().process_lazy(facts, carrier.as_ref())
    };
    Message { message, span }
}

/// The stream's ack of a traced publish: await it; the send span ends with the ack.
#[must_use = "the publish is acknowledged (and its span ends) when this is awaited"]
pub struct PublishAckFuture {
    inner: jetstream::context::PublishAckFuture,
    span: SendSpan,
}

impl fmt::Debug for PublishAckFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishAckFuture")
            .field("span", &self.span)
            .finish()
    }
}

impl PublishAckFuture {
    /// The context the message carries.
    pub fn context(&self) -> Option<&TraceContext> {
        self.span.context()
    }
}

impl IntoFuture for PublishAckFuture {
    type Output = Result<PublishAck, PublishError>;
    type IntoFuture = AckFuture;

    fn into_future(self) -> AckFuture {
        AckFuture {
            inner: self.inner.into_future(),
            span: Some(self.span),
        }
    }
}

/// The future of a [`PublishAckFuture`].
#[must_use = "futures do nothing unless polled"]
pub struct AckFuture {
    inner: <jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture,
    span: Option<SendSpan>,
}

impl fmt::Debug for AckFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckFuture")
            .field("span", &self.span)
            .finish()
    }
}

impl Future for AckFuture {
    type Output = Result<PublishAck, PublishError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let out = this.inner.as_mut().poll(cx);
        if let Poll::Ready(result) = &out {
            if let Some(mut span) = this.span.take() {
                match result {
                    Ok(ack) => {
                        if span.is_recording() {
                            span.set(semconv::MESSAGING_NATS_STREAM, ack.stream.clone());
                            span.set(
                                semconv::MESSAGING_NATS_STREAM_SEQUENCE,
                                ack.sequence.to_string(),
                            );
                            if ack.duplicate {
                                span.set(semconv::MESSAGING_NATS_DUPLICATE, "true");
                            }
                        }
                    }
                    Err(e) => span.record_error(error_type(&e.kind()), e.to_string()),
                }
                span.end();
            }
        }
        out
    }
}

pin_project_lite::pin_project! {
    /// A consumer's messages, traced: made by [`Context::messages`].
    pub struct Messages<S> {
        #[pin]
        inner: S,
        client: Client,
    }
}

impl<S> fmt::Debug for Messages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages").finish_non_exhaustive()
    }
}

impl<S, E> Stream for Messages<S>
where
    S: Stream<Item = Result<jetstream::Message, E>>,
{
    type Item = Result<Message, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        match this.inner.poll_next(cx) {
            Poll::Ready(Some(Ok(m))) => Poll::Ready(Some(Ok(process(this.client, m)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The verb an ack kind is recorded as (`messaging.settlement`, the settle span's name).
fn verb(kind: &AckKind) -> &'static str {
    match kind {
        AckKind::Ack => "ack",
        AckKind::Nak(_) => "nak",
        AckKind::Progress => "in_progress",
        AckKind::Next => "next",
        AckKind::Term => "term",
    }
}

/// A JetStream message with its process span (it reads as the
/// [`async_nats::jetstream::Message`]). Acks through it are recorded: `messaging.settlement`
/// on the process span and a settle span (`ack {subject}`, `nak {subject}`, ...) that lasts
/// the ack. The process span records the delivery count, the stream and sequences, and the
/// time the message waited in the stream.
pub struct Message {
    message: jetstream::Message,
    span: ProcessSpan,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("subject", &self.message.subject)
            .field("span", &self.span)
            .finish()
    }
}

impl Deref for Message {
    type Target = jetstream::Message;

    fn deref(&self) -> &jetstream::Message {
        &self.message
    }
}

impl Message {
    tracewire_messaging::process_span_methods!(span);

    /// Acknowledges the message (recorded).
    pub async fn ack(&mut self) -> Result<(), async_nats::Error> {
        self.ack_with(AckKind::Ack).await
    }

    /// Settles the message: ack, nak (redelivered, after an optional delay), term (never
    /// redelivered), in progress (more time), next (recorded).
    pub async fn ack_with(&mut self, kind: AckKind) -> Result<(), async_nats::Error> {
        let mut settle = self.span.settle(verb(&kind));
        let result = self.message.ack_with(kind).await;
        if let Err(e) = &result {
            settle.record_error("ack_failed", e.to_string());
        }
        settle.end();
        result
    }

    /// Acknowledges and waits for the server to confirm (recorded; the settle span lasts the
    /// round trip).
    pub async fn double_ack(&mut self) -> Result<(), async_nats::Error> {
        let mut settle = self.span.settle("ack");
        let result = self.message.double_ack().await;
        if let Err(e) = &result {
            settle.record_error("ack_failed", e.to_string());
        }
        settle.end();
        result
    }

    /// The message and its span, apart.
    pub fn into_parts(self) -> (jetstream::Message, ProcessSpan) {
        (self.message, self.span)
    }
}

/// A pulled batch in one process span: made by [`Context::process_batch`].
pub struct Batch {
    messages: Vec<jetstream::Message>,
    span: ProcessSpan,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("messages", &self.messages.len())
            .field("span", &self.span)
            .finish()
    }
}

impl Batch {
    /// The messages.
    pub fn messages(&self) -> &[jetstream::Message] {
        &self.messages
    }

    tracewire_messaging::process_span_methods!(span);

    /// Settles every message the same way, in one settle span; the first error is returned
    /// (after trying every message).
    pub async fn ack_all_with(&mut self, kind: AckKind) -> Result<(), async_nats::Error> {
        let mut settle = self.span.settle(verb(&kind));
        let mut first = Ok(());
        for m in &self.messages {
            let result = m.ack_with(kind).await;
            if first.is_ok() {
                first = result;
            }
        }
        if let Err(e) = &first {
            settle.record_error("ack_failed", e.to_string());
        }
        settle.end();
        first
    }

    /// The messages and the span, apart.
    pub fn into_parts(self) -> (Vec<jetstream::Message>, ProcessSpan) {
        (self.messages, self.span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_parse_in_both_forms() {
        let v1 = AckInfo::parse("$JS.ACK.ORDERS.workers.2.17.40.1796197401115296289.3").unwrap();
        assert_eq!(
            v1,
            AckInfo {
                stream: "ORDERS",
                consumer: "workers",
                delivered: 2,
                stream_sequence: "17",
                consumer_sequence: "40",
                published_nanos: 1796197401115296289,
            }
        );
        let v2 =
            AckInfo::parse("$JS.ACK.hub.ACCHASH.ORDERS.workers.1.17.40.1796197401115296289.3.tok")
                .unwrap();
        assert_eq!((v2.stream, v2.delivered), ("ORDERS", 1));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal("18446744073709551616"), None);
        assert_eq!(decimal("+1"), None);
        for bad in [
            "",
            "_INBOX.x",
            "$JS.ACK.a.b.c.d.e.f.g.h.i.j.k.l.m.n",
            "$JS.ACK.a.b.c",
            "$JS.ACK.ORDERS.workers.x.17.40.1.3",
            "$JS.ACK.ORDERS.workers.1.17.40.notanumber.3",
        ] {
            assert_eq!(AckInfo::parse(bad), None, "{bad}");
        }
    }
}
