//! The producer: a traced [`FutureProducer`] whose send spans end with the delivery report.
// rdkafka's own results carry the record or message back in the error, and are large; they are
// kept as rdkafka has them.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use rdkafka::client::DefaultClientContext;
use rdkafka::config::{FromClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::ToBytes;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{self, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::{AsyncRuntime, DefaultRuntime, Timeout};
use rdkafka::{ClientConfig, ClientContext};
use tracewire_core::{TraceContext, semconv};
use tracewire_messaging::{Destination, MessageInfo, Messaging, SendSpan};

use crate::carrier::{Outgoing, Written};
use crate::config::{error_type, messaging};
use crate::record::{CORRELATION_ID, key_text, partition_id};

/// An [`rdkafka::producer::FutureProducer`] whose sends are traced.
///
/// Every record gets a PRODUCER span (`send {topic}`) whose context travels in the record's
/// headers; the span ends with the record's delivery report, recording the partition and
/// offset, or the error. A batch ([`send_batch`](FutureProducer::send_batch)) gets a `create`
/// span per record and one CLIENT `send` span linking them. Everything else (`flush`,
/// transactions, metadata) goes to the inner producer through `Deref`.
///
/// Built like rdkafka's: `config.create::<tracewire_kafka::FutureProducer>()`.
///
/// ```no_run
/// # async fn run() -> Result<(), rdkafka::error::KafkaError> {
/// use rdkafka::producer::FutureRecord;
/// use std::time::Duration;
///
/// let producer: tracewire_kafka::FutureProducer = rdkafka::ClientConfig::new()
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .create()?;
/// let delivery = producer
///     .send(FutureRecord::to("orders").key("42").payload("created"), Duration::from_secs(5))
///     .await;
/// # Ok(()) }
/// ```
pub struct FutureProducer<C: ClientContext + 'static = DefaultClientContext> {
    inner: producer::FutureProducer<C>,
    messaging: Messaging,
}

impl<C: ClientContext + 'static> fmt::Debug for FutureProducer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FutureProducer")
            .field("messaging", &self.messaging)
            .finish_non_exhaustive()
    }
}

impl<C: ClientContext + 'static> Clone for FutureProducer<C> {
    fn clone(&self) -> Self {
        FutureProducer {
            inner: self.inner.clone(),
            messaging: self.messaging.clone(),
        }
    }
}

impl FromClientConfig for FutureProducer {
    /// The producer of `config`, traced with [`messaging(config)`](crate::messaging).
    fn from_config(config: &ClientConfig) -> KafkaResult<Self> {
        Ok(FutureProducer::with_messaging(
            producer::FutureProducer::from_config(config)?,
            messaging(config),
        ))
    }
}

impl<C: ClientContext + 'static> FromClientConfigAndContext<C> for FutureProducer<C> {
    /// The producer of `config` with `context`, traced with
    /// [`messaging(config)`](crate::messaging).
    fn from_config_and_context(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        Ok(FutureProducer::with_messaging(
            producer::FutureProducer::from_config_and_context(config, context)?,
            messaging(config),
        ))
    }
}

impl<C: ClientContext + 'static> Deref for FutureProducer<C> {
    type Target = producer::FutureProducer<C>;

    fn deref(&self) -> &producer::FutureProducer<C> {
        &self.inner
    }
}

impl<C: ClientContext + 'static> FutureProducer<C> {
    /// Traces `inner` with this configuration (see [`messaging`](crate::messaging())).
    pub fn with_messaging(inner: producer::FutureProducer<C>, messaging: Messaging) -> Self {
        FutureProducer { inner, messaging }
    }

    /// The untraced producer.
    pub fn inner(&self) -> &producer::FutureProducer<C> {
        &self.inner
    }

    /// The tracing configuration.
    pub fn messaging(&self) -> &Messaging {
        &self.messaging
    }

    /// Starts the send span of `record` and writes its context into the record's headers.
    fn start<K, P>(&self, record: &mut FutureRecord<'_, K, P>) -> SendSpan
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (span, written) = {
            // The record's headers read once; what the propagators write is applied after.
            let mut carrier = Outgoing::new(record.headers.as_ref());
            let (key, sys_storage) = facts(record);
            let partition = record.partition.and_then(partition_id);
            let info = MessageInfo {
                conversation_id: carrier.existing(CORRELATION_ID),
                body_size: record.payload.map(|p| p.to_bytes().len()),
                partition_id: partition.as_deref(),
                system_attributes: &sys_storage
                    [..usize::from(key.is_some()) + usize::from(record.payload.is_none())],
                ..MessageInfo::new(Destination::new(record.topic))
            };
            let span = self.messaging.send(&info, &mut carrier);
            (span, carrier.written())
        };
        record.headers = written.apply(record.headers.take());
        span
    }

    /// Sends `record` in a PRODUCER span (`send {topic}`) that ends with its delivery report;
    /// the span's context goes into the record's headers (a creation context you put there is
    /// kept, and linked). As rdkafka's `send`: waits up to `queue_timeout` for room in the
    /// producer's queue, then for the delivery report.
    pub async fn send<K, P, T>(
        &self,
        mut record: FutureRecord<'_, K, P>,
        queue_timeout: T,
    ) -> OwnedDeliveryResult
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
        T: Into<Timeout>,
    {
        let partitioned = record.partition.is_some();
        let span = self.start(&mut record);
        let result = self.inner.send(record, queue_timeout).await;
        delivered(span, &result, partitioned);
        result
    }

    /// Enqueues `record` without waiting (rdkafka's `send_result`): the send span ends when
    /// the returned future yields the delivery report (or, dropped unawaited, as it is). A
    /// full queue (or another error) returns the record, its span ended with the error.
    pub fn send_result<'a, K, P>(
        &self,
        mut record: FutureRecord<'a, K, P>,
    ) -> Result<DeliveryFuture, (KafkaError, FutureRecord<'a, K, P>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let partitioned = record.partition.is_some();
        let mut span = self.start(&mut record);
        match self.inner.send_result(record) {
            Ok(inner) => Ok(DeliveryFuture {
                inner,
                span: Some(span),
                partitioned,
            }),
            Err((e, record)) => {
                span.record_error(error_type(&e), e.to_string());
                span.end();
                Err((e, record))
            }
        }
    }

    /// Sends a batch: a PRODUCER `create {topic}` span per record (ended at once; its context
    /// goes into that record's headers), then one CLIENT `send {topic}` span that links every
    /// record's creation context (with the record's facts on the link) and ends when the last
    /// delivery report is in. The records are all enqueued before any report is awaited;
    /// each waits up to `queue_timeout` for room in the queue. The results are in the
    /// records' order.
    pub async fn send_batch<'a, K, P, T>(
        &self,
        records: impl IntoIterator<Item = FutureRecord<'a, K, P>>,
        queue_timeout: T,
    ) -> Vec<OwnedDeliveryResult>
    where
        K: ToBytes + ?Sized + 'a,
        P: ToBytes + ?Sized + 'a,
        T: Into<Timeout>,
    {
        let mut records: Vec<FutureRecord<'a, K, P>> = records.into_iter().collect();
        let (mut span, written) = {
            let mut carriers: Vec<Outgoing<'_>> = records
                .iter()
                .map(|r| Outgoing::new(r.headers.as_ref()))
                .collect();
            let conversations: Vec<Option<&str>> = carriers
                .iter()
                .map(|c| c.existing(CORRELATION_ID))
                .collect();
            let keys: Vec<KeyFacts<'_>> = records.iter().map(facts).collect();
            let partitions: Vec<Option<std::borrow::Cow<'static, str>>> = records
                .iter()
                .map(|r| r.partition.and_then(partition_id))
                .collect();
            let infos = records
                .iter()
                .zip(&keys)
                .zip(&conversations)
                .zip(&partitions)
                .map(|(((r, (key, sys)), conversation), partition)| MessageInfo {
                    conversation_id: *conversation,
                    body_size: r.payload.map(|p| p.to_bytes().len()),
                    partition_id: partition.as_deref(),
                    system_attributes: &sys
                        [..usize::from(key.is_some()) + usize::from(r.payload.is_none())],
                    ..MessageInfo::new(Destination::new(r.topic))
                });
            let span = self.messaging.send_batch(infos.zip(carriers.iter_mut()));
            let written: Vec<Written> = carriers.into_iter().map(Outgoing::written).collect();
            (span, written)
        };
        for (r, w) in records.iter_mut().zip(written) {
            r.headers = w.apply(r.headers.take());
        }
        let timeout: Timeout = queue_timeout.into();
        let deadline = match timeout {
            Timeout::After(d) => Some(std::time::Instant::now() + d),
            Timeout::Never => None,
        };
        let mut pending = Vec::with_capacity(records.len());
        for record in records {
            pending.push(self.enqueue(record, deadline).await);
        }
        let mut results = Vec::with_capacity(pending.len());
        for p in pending {
            results.push(match p {
                Ok(future) => future
                    .await
                    .unwrap_or_else(|_| Err((KafkaError::Canceled, canceled_message()))),
                Err(e) => Err(e),
            });
        }
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(Err((e, _))) = results.iter().find(|r| r.is_err()) {
            span.record_error(
                error_type(e),
                format!("{failed} of {} records not delivered: {e}", results.len()),
            );
        }
        span.end();
        results
    }

    /// Enqueues one record of a batch, waiting for room in the queue until `deadline`.
    async fn enqueue<K, P>(
        &self,
        mut record: FutureRecord<'_, K, P>,
        deadline: Option<std::time::Instant>,
    ) -> Result<producer::DeliveryFuture, (KafkaError, rdkafka::message::OwnedMessage)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        loop {
            match self.inner.send_result(record) {
                Ok(future) => return Ok(future),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if deadline.is_none_or(|d| std::time::Instant::now() < d) =>
                {
                    record = r;
                    DefaultRuntime::delay_for(std::time::Duration::from_millis(100)).await;
                }
                Err((e, r)) => return Err((e, owned(&r))),
            }
        }
    }
}

/// A record that was never enqueued, as rdkafka reports a failed delivery.
fn owned<K, P>(record: &FutureRecord<'_, K, P>) -> rdkafka::message::OwnedMessage
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    rdkafka::message::OwnedMessage::new(
        record.payload.map(|p| p.to_bytes().to_vec()),
        record.key.map(|k| k.to_bytes().to_vec()),
        record.topic.to_owned(),
        record.timestamp.map_or(
            rdkafka::Timestamp::NotAvailable,
            rdkafka::Timestamp::CreateTime,
        ),
        record.partition.unwrap_or(-1),
        -1,
        record.headers.clone(),
    )
}

/// The message of a delivery whose report never came (the producer went away).
fn canceled_message() -> rdkafka::message::OwnedMessage {
    rdkafka::message::OwnedMessage::new(
        None,
        None,
        String::new(),
        rdkafka::Timestamp::NotAvailable,
        -1,
        -1,
        None,
    )
}

/// The key of a record as text, and room for its system attributes.
type KeyFacts<'r> = (Option<&'r str>, [(&'static str, &'r str); 2]);

/// The key of `record` as text, and the system attributes of a record: the key, then the
/// tombstone flag (take as many as are present: `key` first when it is there).
fn facts<'r, K, P>(record: &FutureRecord<'r, K, P>) -> KeyFacts<'r>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let key = record.key.and_then(|k| key_text(k.to_bytes()));
    let tombstone = (semconv::MESSAGING_KAFKA_MESSAGE_TOMBSTONE, "true");
    let sys = match key {
        Some(k) => [(semconv::MESSAGING_KAFKA_MESSAGE_KEY, k), tombstone],
        None => [tombstone, tombstone],
    };
    (key, sys)
}

/// Ends a send span with its delivery report: the partition (unless the record named it, and
/// it is recorded already) and offset, or the error.
fn delivered(mut span: SendSpan, result: &OwnedDeliveryResult, partitioned: bool) {
    match result {
        Ok(delivery) => {
            if span.is_recording() {
                if let Some(p) = partition_id(delivery.partition).filter(|_| !partitioned) {
                    span.set(semconv::MESSAGING_DESTINATION_PARTITION_ID, p);
                }
                span.set(semconv::MESSAGING_KAFKA_OFFSET, delivery.offset.to_string());
            }
        }
        Err((e, _)) => span.record_error(error_type(e), e.to_string()),
    }
    span.end();
}

/// The delivery report of a record enqueued with
/// [`send_result`](FutureProducer::send_result): the send span ends when it is ready.
#[must_use = "the send span ends when the delivery report is awaited"]
pub struct DeliveryFuture {
    inner: producer::DeliveryFuture,
    span: Option<SendSpan>,
    /// The record named its partition (recorded at the start).
    partitioned: bool,
}

impl fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("span", &self.span)
            .finish()
    }
}

impl DeliveryFuture {
    /// The context the record carries.
    pub fn context(&self) -> Option<&TraceContext> {
        self.span.as_ref().and_then(SendSpan::context)
    }
}

impl Future for DeliveryFuture {
    /// rdkafka's: the delivery report, or `Canceled` when the producer went away first.
    type Output = <producer::DeliveryFuture as Future>::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let out = Pin::new(&mut this.inner).poll(cx);
        if let Poll::Ready(result) = &out {
            if let Some(mut span) = this.span.take() {
                match result {
                    Ok(result) => delivered(span, result, this.partitioned),
                    Err(_) => {
                        span.record_error("Canceled", "the producer went away before the report");
                        span.end();
                    }
                }
            }
        }
        out
    }
}
