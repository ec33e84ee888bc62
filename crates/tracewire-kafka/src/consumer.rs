//! The consumers: a traced [`StreamConsumer`] (async) and [`BaseConsumer`] (poll), the
//! records they yield with their process spans ([`Message`]), batches in one span
//! ([`Batch`]), and commits as settlements.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::config::{FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{self, CommitMode, Consumer as _, ConsumerContext, DefaultConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::{AsyncRuntime, DefaultRuntime, Timeout};
use tracewire_messaging::{Destination, MessageInfo, Messaging, ProcessSpan};

use crate::carrier::Incoming;
use crate::config::messaging;
use crate::record::{Scratch, consumed};

/// What every traced consumer shares: the configuration and the consumer group.
#[derive(Clone, Debug)]
struct Tracing {
    messaging: Messaging,
    group: Option<String>,
}

impl Tracing {
    fn from_config(config: &ClientConfig) -> Self {
        Tracing {
            messaging: messaging(config),
            group: config
                .get("group.id")
                .filter(|g| !g.is_empty())
                .map(str::to_owned),
        }
    }

    /// Starts the process span of one record.
    fn message<'a>(&self, message: BorrowedMessage<'a>, consumer: &'a dyn Settle) -> Message<'a> {
        let span = {
            // The headers are read once; the facts gathered only for a recorded span.
            let headers = Incoming::new(message.headers());
            let scratch = Scratch::default();
            self.messaging.process_lazy(
                || consumed(&message, &headers, self.group.as_deref(), &scratch),
                Some(&headers),
            )
        };
        Message {
            message,
            span,
            consumer,
        }
    }

    /// One process span for `messages`, a link per record.
    fn batch<'a>(&self, messages: Vec<BorrowedMessage<'a>>, consumer: &'a dyn Settle) -> Batch<'a> {
        let span = {
            let scratch: Vec<Scratch<'_>> = messages.iter().map(|_| Scratch::default()).collect();
            let carriers: Vec<Incoming<'_>> = messages
                .iter()
                .map(|m| Incoming::new(m.headers()))
                .collect();
            let infos: Vec<(MessageInfo<'_>, Option<&Incoming<'_>>)> = messages
                .iter()
                .zip(&scratch)
                .zip(&carriers)
                .map(|((m, s), c)| (consumed(m, c, self.group.as_deref(), s), Some(c)))
                .collect();
            let first = messages.first();
            let destination = match first {
                Some(f) if messages.iter().all(|m| m.topic() == f.topic()) => {
                    Destination::new(f.topic())
                }
                _ => Destination::default(),
            };
            self.messaging.process_batch(destination, &infos)
        };
        Batch {
            messages,
            span,
            consumer,
        }
    }
}

/// How a record's offset is settled, whatever the consumer's type.
trait Settle: Send + Sync {
    fn commit_message(&self, message: &BorrowedMessage<'_>, mode: CommitMode) -> KafkaResult<()>;
    fn store_offset(&self, message: &BorrowedMessage<'_>) -> KafkaResult<()>;
    fn commit(&self, offsets: &TopicPartitionList, mode: CommitMode) -> KafkaResult<()>;
    fn store_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()>;
}

macro_rules! settle {
    ($ty:ty) => {
        impl<C: ConsumerContext + 'static> Settle for $ty {
            fn commit_message(
                &self,
                message: &BorrowedMessage<'_>,
                mode: CommitMode,
            ) -> KafkaResult<()> {
                self.inner.commit_message(message, mode)
            }
            fn store_offset(&self, message: &BorrowedMessage<'_>) -> KafkaResult<()> {
                self.inner.store_offset_from_message(message)
            }
            fn commit(&self, offsets: &TopicPartitionList, mode: CommitMode) -> KafkaResult<()> {
                self.inner.commit(offsets, mode)
            }
            fn store_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
                self.inner.store_offsets(offsets)
            }
        }
    };
}

settle!(StreamConsumer<C>);
settle!(BaseConsumer<C>);

/// An [`rdkafka::consumer::StreamConsumer`] whose records come with their process spans.
///
/// [`recv`](StreamConsumer::recv) and [`stream`](StreamConsumer::stream) yield [`Message`]s
/// (a process span each); [`recv_batch`](StreamConsumer::recv_batch) a [`Batch`] (one span,
/// a link per record). Everything else (`subscribe`, `assign`, `commit`, ...) goes to the inner
/// consumer through `Deref` (with `rdkafka::consumer::Consumer` in scope).
///
/// Built like rdkafka's: `config.create::<tracewire_kafka::StreamConsumer>()`; the
/// consumer group (`messaging.consumer.group.name`) is the configuration's `group.id`.
///
/// ```no_run
/// # async fn run() -> Result<(), rdkafka::error::KafkaError> {
/// use rdkafka::consumer::{CommitMode, Consumer as _};
/// use rdkafka::message::Message as _;
///
/// # async fn handle(_: &[u8]) -> Result<(), std::io::Error> { Ok(()) }
/// let consumer: tracewire_kafka::StreamConsumer = rdkafka::ClientConfig::new()
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .set("group.id", "billing")
///     .create()?;
/// consumer.subscribe(&["orders"])?;
/// loop {
///     let mut message = consumer.recv().await?;
///     let result = message.instrument(handle(message.payload().unwrap_or_default())).await;
///     message.record_result(&result);
///     message.commit(CommitMode::Async)?;
/// }
/// # }
/// ```
pub struct StreamConsumer<C: ConsumerContext + 'static = DefaultConsumerContext> {
    inner: consumer::StreamConsumer<C>,
    tracing: Tracing,
}

/// An [`rdkafka::consumer::BaseConsumer`] whose polled records come with their process
/// spans: [`poll`](BaseConsumer::poll) yields [`Message`]s, [`poll_batch`](BaseConsumer::poll_batch)
/// a [`Batch`]. Synchronous handlers run in the span with [`Message::enter`].
pub struct BaseConsumer<C: ConsumerContext + 'static = DefaultConsumerContext> {
    inner: consumer::BaseConsumer<C>,
    tracing: Tracing,
}

macro_rules! common {
    ($name:ident, $inner:ident) => {
        impl<C: ConsumerContext + 'static> fmt::Debug for $name<C> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("messaging", &self.tracing.messaging)
                    .field("group", &self.tracing.group)
                    .finish_non_exhaustive()
            }
        }

        impl FromClientConfig for $name {
            /// The consumer of `config`, traced with [`messaging(config)`](crate::messaging) and
            /// its `group.id`.
            fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
                Ok($name {
                    inner: consumer::$inner::from_config(config)?,
                    tracing: Tracing::from_config(config),
                })
            }
        }

        impl<C: ConsumerContext + 'static> FromClientConfigAndContext<C> for $name<C> {
            /// The consumer of `config` with `context`, traced with
            /// [`messaging(config)`](crate::messaging) and its `group.id`.
            fn from_config_and_context(config: &ClientConfig, context: C) -> KafkaResult<Self> {
                Ok($name {
                    inner: consumer::$inner::from_config_and_context(config, context)?,
                    tracing: Tracing::from_config(config),
                })
            }
        }

        impl<C: ConsumerContext + 'static> Deref for $name<C> {
            type Target = consumer::$inner<C>;

            fn deref(&self) -> &consumer::$inner<C> {
                &self.inner
            }
        }

        impl<C: ConsumerContext + 'static> $name<C> {
            /// Traces `inner` with this configuration (see [`messaging`](crate::messaging())),
            /// recording `group` as `messaging.consumer.group.name`.
            pub fn with_messaging(
                inner: consumer::$inner<C>,
                messaging: Messaging,
                group: Option<String>,
            ) -> Self {
                $name {
                    inner,
                    tracing: Tracing { messaging, group },
                }
            }

            /// The untraced consumer.
            pub fn inner(&self) -> &consumer::$inner<C> {
                &self.inner
            }

            /// The tracing configuration.
            pub fn messaging(&self) -> &Messaging {
                &self.tracing.messaging
            }

            /// Starts the process span of a record received outside this wrapper (from a
            /// partition queue, say); its commits go through this consumer.
            pub fn process<'a>(&'a self, message: BorrowedMessage<'a>) -> Message<'a> {
                self.tracing.message(message, self)
            }

            /// One process span for records received outside this wrapper: see
            /// [`Batch`].
            pub fn process_batch<'a>(&'a self, messages: Vec<BorrowedMessage<'a>>) -> Batch<'a> {
                self.tracing.batch(messages, self)
            }
        }
    };
}

common!(StreamConsumer, StreamConsumer);
common!(BaseConsumer, BaseConsumer);

impl<C: ConsumerContext + 'static> StreamConsumer<C> {
    /// Receives the next record, with its process span (`process {topic}`): the child of the
    /// record's creation context, and linked to it.
    pub async fn recv(&self) -> KafkaResult<Message<'_>> {
        let message = self.inner.recv().await?;
        Ok(self.tracing.message(message, self))
    }

    /// The records as a stream of [`Message`]s (each with its process span, started when it
    /// is yielded).
    pub fn stream(&self) -> MessageStream<'_, C> {
        MessageStream {
            inner: self.inner.stream(),
            consumer: self,
        }
    }

    /// Waits for a record, then takes those that arrive within `linger` after it, up to `max`
    /// in all, and processes them in one span ([`Batch`]). An error while lingering ends the
    /// batch early (it is logged, not returned); an error on the first record is returned.
    pub async fn recv_batch(&self, max: usize, linger: Duration) -> KafkaResult<Batch<'_>> {
        let mut stream = self.inner.stream();
        let first = self.inner.recv().await?;
        let mut messages = vec![first];
        let mut timer = Box::pin(DefaultRuntime::delay_for(linger));
        while messages.len() < max {
            let next = std::future::poll_fn(|cx| {
                if let Poll::Ready(m) = Pin::new(&mut stream).poll_next(cx) {
                    return Poll::Ready(m);
                }
                timer.as_mut().poll(cx).map(|()| None)
            })
            .await;
            match next {
                Some(Ok(m)) => messages.push(m),
                Some(Err(e)) => {
                    log::debug!("Kafka batch ended early: {e}");
                    break;
                }
                None => break,
            }
        }
        Ok(self.tracing.batch(messages, self))
    }
}

impl<C: ConsumerContext + 'static> BaseConsumer<C> {
    /// Polls for a record (rdkafka's `poll`), with its process span.
    pub fn poll<T: Into<Timeout>>(&self, timeout: T) -> Option<KafkaResult<Message<'_>>> {
        Some(
            self.inner
                .poll(timeout)?
                .map(|m| self.tracing.message(m, self)),
        )
    }

    /// Polls until `max` records are in or `timeout` has passed, and processes them in one
    /// span ([`Batch`]; empty when nothing came). An error ends the batch early: it is
    /// returned when no record came, logged otherwise.
    pub fn poll_batch(&self, max: usize, timeout: Duration) -> KafkaResult<Batch<'_>> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        while messages.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inner.poll(left) {
                Some(Ok(m)) => messages.push(m),
                Some(Err(e)) if messages.is_empty() => return Err(e),
                Some(Err(e)) => {
                    log::debug!("Kafka batch ended early: {e}");
                    break;
                }
                None => break,
            }
            if left.is_zero() {
                break;
            }
        }
        Ok(self.tracing.batch(messages, self))
    }
}

/// The records of a [`StreamConsumer`], each with its process span: made by
/// [`StreamConsumer::stream`].
pub struct MessageStream<'a, C: ConsumerContext + 'static> {
    inner: consumer::MessageStream<'a, C>,
    consumer: &'a StreamConsumer<C>,
}

impl<C: ConsumerContext + 'static> fmt::Debug for MessageStream<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream").finish_non_exhaustive()
    }
}

impl<'a, C: ConsumerContext + 'static> Stream for MessageStream<'a, C> {
    type Item = KafkaResult<Message<'a>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let consumer = this.consumer;
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|m| m.map(|m| m.map(|m| consumer.tracing.message(m, consumer))))
    }
}

/// A received record with its process span (it reads as the [`BorrowedMessage`]).
///
/// Run the handler in the span ([`instrument`](Message::instrument), or
/// [`enter`](Message::enter) for synchronous code), record its outcome, then commit
/// ([`commit`](Message::commit), [`store_offset`](Message::store_offset): recorded as
/// `messaging.settlement`). The span ends when the message is dropped.
pub struct Message<'a> {
    message: BorrowedMessage<'a>,
    span: ProcessSpan,
    consumer: &'a dyn Settle,
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("message", &self.message)
            .field("span", &self.span)
            .finish()
    }
}

impl<'a> Deref for Message<'a> {
    type Target = BorrowedMessage<'a>;

    fn deref(&self) -> &BorrowedMessage<'a> {
        &self.message
    }
}

impl<'a> Message<'a> {
    tracewire_messaging::process_span_methods!(span);

    /// Commits the record's offset (rdkafka's `commit_message`), recorded as
    /// `messaging.settlement` = `commit` (and a `commit {topic}` settle span when
    /// [settle spans](tracewire_messaging::Messaging::settle_spans) are on).
    pub fn commit(&mut self, mode: CommitMode) -> KafkaResult<()> {
        let mut settle = self.span.settle("commit");
        let result = self.consumer.commit_message(&self.message, mode);
        if let Err(e) = &result {
            settle.record_error(crate::config::error_type(e), e.to_string());
        }
        settle.end();
        result
    }

    /// Stores the record's offset for the next automatic commit (rdkafka's
    /// `store_offset_from_message`, with `enable.auto.offset.store=false`), recorded as
    /// `messaging.settlement` = `store`.
    pub fn store_offset(&mut self) -> KafkaResult<()> {
        let mut settle = self.span.settle("store");
        let result = self.consumer.store_offset(&self.message);
        if let Err(e) = &result {
            settle.record_error(crate::config::error_type(e), e.to_string());
        }
        settle.end();
        result
    }

    /// The record and its span, apart.
    pub fn into_parts(self) -> (BorrowedMessage<'a>, ProcessSpan) {
        (self.message, self.span)
    }

    /// The record; its span ends.
    pub fn into_inner(self) -> BorrowedMessage<'a> {
        self.message
    }
}

/// Records processed together in one CONSUMER span (`process {topic}`, or `process` when the
/// topics differ) with `messaging.batch.message_count` and one link per record that carries a
/// creation context, the record's facts (partition, offset, key, size) on its link. No span
/// is made per record.
pub struct Batch<'a> {
    messages: Vec<BorrowedMessage<'a>>,
    span: ProcessSpan,
    consumer: &'a dyn Settle,
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("messages", &self.messages.len())
            .field("span", &self.span)
            .finish()
    }
}

impl<'a> Batch<'a> {
    /// The records, in the order received.
    pub fn messages(&self) -> &[BorrowedMessage<'a>] {
        &self.messages
    }

    tracewire_messaging::process_span_methods!(span);

    /// The offsets to commit: one past the last record of each partition.
    fn offsets(&self) -> KafkaResult<TopicPartitionList> {
        let mut next: Vec<(&str, i32, i64)> = Vec::new();
        for m in &self.messages {
            let (topic, partition, offset) = (m.topic(), m.partition(), m.offset() + 1);
            match next
                .iter_mut()
                .find(|(t, p, _)| *t == topic && *p == partition)
            {
                Some(entry) => entry.2 = entry.2.max(offset),
                None => next.push((topic, partition, offset)),
            }
        }
        let mut tpl = TopicPartitionList::with_capacity(next.len());
        for (topic, partition, offset) in next {
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        Ok(tpl)
    }

    /// Commits the batch: one past the last record of each partition, in one request,
    /// recorded as `messaging.settlement` = `commit`. An empty batch commits nothing.
    pub fn commit(&mut self, mode: CommitMode) -> KafkaResult<()> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let mut settle = self.span.settle("commit");
        let result = self
            .offsets()
            .and_then(|tpl| self.consumer.commit(&tpl, mode));
        if let Err(e) = &result {
            settle.record_error(crate::config::error_type(e), e.to_string());
        }
        settle.end();
        result
    }

    /// Stores the batch's offsets for the next automatic commit, recorded as
    /// `messaging.settlement` = `store`.
    pub fn store_offsets(&mut self) -> KafkaResult<()> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let mut settle = self.span.settle("store");
        let result = self
            .offsets()
            .and_then(|tpl| self.consumer.store_offsets(&tpl));
        if let Err(e) = &result {
            settle.record_error(crate::config::error_type(e), e.to_string());
        }
        settle.end();
        result
    }

    /// The records and the span, apart.
    pub fn into_parts(self) -> (Vec<BorrowedMessage<'a>>, ProcessSpan) {
        (self.messages, self.span)
    }
}
