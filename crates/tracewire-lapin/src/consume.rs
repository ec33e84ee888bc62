//! The consumer side: a traced [`Consumer`] stream and the [`Delivery`]s it yields, each with
//! its process span; acks, nacks and rejects as settlements.

use std::cell::OnceCell;
use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use lapin::message::Delivery as LapinDelivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::types::{MessageCount, ShortString};
use tracewire_core::semconv;
use tracewire_messaging::{MessageInfo, Messaging, ProcessSpan};

use crate::carrier::HeaderExtractor;
use crate::facts;

/// A traced [`lapin::Consumer`]: a [`Stream`] of [`Delivery`]s, each with its process span
/// started when it is yielded. Errors pass through as they are: with lapin's
/// `enable_auto_recover()`, a connection loss may come as an `Err`, and the stream goes on
/// with the deliveries of the recovered consumer (see the crate's "Reconnection").
pub struct Consumer {
    inner: lapin::Consumer,
    queue: ShortString,
    messaging: Messaging,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .field("tag", &self.inner.tag())
            .finish()
    }
}

impl Consumer {
    /// Traces the deliveries of `consumer` (made with lapin's own `basic_consume`).
    pub fn new(consumer: lapin::Consumer, messaging: Messaging) -> Self {
        Consumer {
            queue: consumer.queue(),
            inner: consumer,
            messaging,
        }
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        self.queue.as_str()
    }

    /// The consumer tag (the server's, if none was given).
    pub fn tag(&self) -> ShortString {
        self.inner.tag()
    }

    /// The untraced consumer.
    pub fn inner(&self) -> &lapin::Consumer {
        &self.inner
    }
}

impl Stream for Consumer {
    type Item = lapin::Result<Delivery>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(delivery))) => Poll::Ready(Some(Ok(Delivery::process(
                &this.messaging,
                delivery,
                this.queue.as_str(),
            )))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A received message with its process span; it reads as the [`lapin::message::Delivery`]
/// (`data`, `properties`, `routing_key`, `redelivered`, ...).
///
/// Run the handler in the span with [`instrument`](Delivery::instrument), then settle the
/// message through [`ack`](Delivery::ack), [`nack`](Delivery::nack) or
/// [`reject`](Delivery::reject) — recorded as `messaging.settlement` on the process span (and
/// as a settle span with [`Messaging::settle_spans`]). The span ends when the delivery is
/// dropped.
///
/// ```no_run
/// # async fn run(channel: tracewire_lapin::Channel) -> lapin::Result<()> {
/// use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions};
/// use lapin::types::FieldTable;
/// use tokio_stream::StreamExt as _;
///
/// # async fn handle(_: &[u8]) -> Result<(), std::io::Error> { Ok(()) }
/// let mut orders = channel
///     .basic_consume("orders".into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
///     .await?;
/// while let Some(delivery) = orders.next().await {
///     let mut delivery = delivery?;
///     let result = delivery.instrument(handle(&delivery.data)).await;
///     delivery.record_result(&result);
///     match result {
///         Ok(()) => delivery.ack(BasicAckOptions::default()).await?,
///         Err(_) => delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await?,
///     };
/// }
/// # Ok(()) }
/// ```
pub struct Delivery {
    delivery: LapinDelivery,
    span: ProcessSpan,
    pub(crate) message_count: Option<MessageCount>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("delivery_tag", &self.delivery.delivery_tag)
            .field("exchange", &self.delivery.exchange)
            .field("routing_key", &self.delivery.routing_key)
            .field("redelivered", &self.delivery.redelivered)
            .field("span", &self.span)
            .finish()
    }
}

impl Deref for Delivery {
    type Target = LapinDelivery;

    fn deref(&self) -> &LapinDelivery {
        &self.delivery
    }
}

impl Delivery {
    /// Starts the process span of `delivery`, consumed from `queue`. Its facts are gathered
    /// only when the span is recorded: an unsampled message costs the extraction of its
    /// context.
    pub(crate) fn process(messaging: &Messaging, delivery: LapinDelivery, queue: &str) -> Self {
        let span = {
            let d = &delivery;
            let tag: OnceCell<String> = OnceCell::new();
            let system: OnceCell<([(&'static str, &str); 3], usize)> = OnceCell::new();
            let facts = || {
                let (system, n) = system.get_or_init(|| {
                    let mut a = [("", ""); 3];
                    let mut n = 0;
                    if !d.routing_key.as_str().is_empty() {
                        a[n] = (
                            semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
                            d.routing_key.as_str(),
                        );
                        n += 1;
                    }
                    a[n] = (
                        semconv::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
                        tag.get_or_init(|| d.delivery_tag.to_string()),
                    );
                    n += 1;
                    if d.redelivered {
                        a[n] = (semconv::MESSAGING_RABBITMQ_MESSAGE_REDELIVERED, "true");
                        n += 1;
                    }
                    (a, n)
                });
                let (id, conversation_id) = facts::ids(&d.properties);
                MessageInfo {
                    id,
                    conversation_id,
                    body_size: Some(d.data.len()),
                    delivery_count: facts::delivery_count(d.redelivered, &d.properties),
                    published_at: facts::published_at(&d.properties),
                    system_attributes: system.get(..*n).unwrap_or_default(),
                    ..MessageInfo::new(facts::queue_destination(queue))
                }
            };
            let carrier = d.properties.headers().as_ref().map(HeaderExtractor);
            messaging.process_lazy(facts, carrier.as_ref())
        };
        Delivery {
            delivery,
            span,
            message_count: None,
        }
    }

    tracewire_messaging::process_span_methods!(span);

    /// For a message from [`Channel::basic_get`](crate::Channel::basic_get): how many
    /// messages were left in the queue.
    pub fn message_count(&self) -> Option<MessageCount> {
        self.message_count
    }

    /// Acknowledges the message (recorded: `messaging.settlement` = `ack`). lapin's
    /// `Ok(false)` — the delivery was settled already, or its channel is gone (a reconnect:
    /// the broker will deliver it again) — is recorded as a failed settlement on the settle
    /// span.
    pub async fn ack(&mut self, options: BasicAckOptions) -> lapin::Result<bool> {
        let settle = self.span.settle("ack");
        let result = self.delivery.acker.ack(options).await;
        settled(settle, &result);
        result
    }

    /// Negatively acknowledges the message, requeued or not (`options.requeue`; recorded:
    /// `messaging.settlement` = `nack`, `messaging.rabbitmq.requeue`).
    pub async fn nack(&mut self, options: BasicNackOptions) -> lapin::Result<bool> {
        self.span
            .set(semconv::MESSAGING_RABBITMQ_REQUEUE, flag(options.requeue));
        let settle = self.span.settle("nack");
        let result = self.delivery.acker.nack(options).await;
        settled(settle, &result);
        result
    }

    /// Rejects the message, requeued or not (`options.requeue`; recorded:
    /// `messaging.settlement` = `reject`, `messaging.rabbitmq.requeue`).
    pub async fn reject(&mut self, options: BasicRejectOptions) -> lapin::Result<bool> {
        self.span
            .set(semconv::MESSAGING_RABBITMQ_REQUEUE, flag(options.requeue));
        let settle = self.span.settle("reject");
        let result = self.delivery.acker.reject(options).await;
        settled(settle, &result);
        result
    }

    /// The delivery and its span, apart.
    pub fn into_parts(self) -> (LapinDelivery, ProcessSpan) {
        (self.delivery, self.span)
    }

    /// The delivery; its span ends.
    pub fn into_inner(self) -> LapinDelivery {
        self.delivery
    }
}

fn flag(yes: bool) -> &'static str {
    if yes { "true" } else { "false" }
}

/// Ends a settle span with the settlement's outcome.
fn settled(mut settle: tracewire_messaging::SettleSpan, result: &lapin::Result<bool>) {
    match result {
        Ok(true) => {}
        Ok(false) => settle.record_error(
            "unusable",
            "the delivery was settled already, or its channel is closed",
        ),
        Err(e) => settle.record_error(facts::error_type(e), e.to_string()),
    }
    settle.end();
}
