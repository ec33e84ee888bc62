//! The traced [`Connection`] and [`Channel`]: publishes (ending with the publisher confirm when
//! confirms are on), consumers and `basic_get`.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, ConnectionProperties, PublisherConfirm};
use tracewire_core::{TraceContext, semconv};
use tracewire_messaging::{MessageInfo, Messaging, SendSpan};

use crate::carrier::HeaderInjector;
use crate::consume::{Consumer, Delivery};
use crate::facts;

/// The `messaging.system` of every span: `rabbitmq`.
pub const SYSTEM: &str = "rabbitmq";

/// A [`lapin::Connection`] whose channels are traced. It reads as the lapin connection for
/// everything else (status, events, close).
///
/// ```no_run
/// # async fn run() -> lapin::Result<()> {
/// use lapin::ConnectionProperties;
///
/// let connection = tracewire_lapin::Connection::connect(
///     "amqp://127.0.0.1:5672/%2f",
///     // lapin reconnects and replays queues, bindings and consumers by itself:
///     ConnectionProperties::default().enable_auto_recover(),
/// )
/// .await?;
/// let channel = connection.create_channel().await?;
/// # Ok(()) }
/// ```
pub struct Connection {
    inner: lapin::Connection,
    messaging: Messaging,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("messaging", &self.messaging)
            .finish_non_exhaustive()
    }
}

impl Deref for Connection {
    type Target = lapin::Connection;

    fn deref(&self) -> &lapin::Connection {
        &self.inner
    }
}

/// The tracing configuration of a connection to `uri`: `messaging.system` = `rabbitmq`, the
/// host and port of the URI as `server.address` / `server.port` (none when the URI does not
/// parse), [`Tracer::global`](tracewire_core::Tracer::global).
pub fn messaging(uri: &str) -> Messaging {
    let messaging = Messaging::new(SYSTEM);
    match uri.parse::<lapin::uri::AMQPUri>() {
        Ok(uri) => messaging.server(uri.authority.host, Some(uri.authority.port)),
        Err(_) => messaging,
    }
}

impl Connection {
    /// Connects to `uri` ([`lapin::Connection::connect`]) and traces the connection with
    /// [`messaging(uri)`](messaging).
    pub async fn connect(uri: &str, options: ConnectionProperties) -> lapin::Result<Self> {
        let inner = lapin::Connection::connect(uri, options).await?;
        Ok(Connection::with_messaging(inner, messaging(uri)))
    }

    /// Traces `connection` with this configuration (tracer, relation, settle spans, ...).
    pub fn with_messaging(connection: lapin::Connection, messaging: Messaging) -> Self {
        Connection {
            inner: connection,
            messaging,
        }
    }

    /// Opens a traced channel.
    pub async fn create_channel(&self) -> lapin::Result<Channel> {
        let channel = self.inner.create_channel().await?;
        Ok(Channel::with_messaging(channel, self.messaging.clone()))
    }

    /// The untraced connection.
    pub fn inner(&self) -> &lapin::Connection {
        &self.inner
    }

    /// The tracing configuration.
    pub fn messaging(&self) -> &Messaging {
        &self.messaging
    }
}

/// A [`lapin::Channel`] whose publishes, consumers and gets are traced; it reads as the lapin
/// channel for everything else (declarations, bindings, `basic_qos`, `confirm_select`).
///
/// - [`basic_publish`](Channel::basic_publish): a PRODUCER span `publish {exchange}:{routing
///   key}` whose context travels in the message's AMQP headers. With publisher confirms on
///   (`confirm_select`), it lasts until the broker confirms (or refuses) the message: await
///   the returned [`PublishConfirm`]. Without, it ends when the message is handed to the
///   connection.
/// - [`basic_consume`](Channel::basic_consume) and [`basic_get`](Channel::basic_get): each
///   message comes as a [`Delivery`] with its CONSUMER span `process {queue}`, whose ack,
///   nack or reject is recorded.
#[derive(Clone)]
pub struct Channel {
    inner: lapin::Channel,
    messaging: Messaging,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.inner.id())
            .field("messaging", &self.messaging)
            .finish()
    }
}

impl Deref for Channel {
    type Target = lapin::Channel;

    fn deref(&self) -> &lapin::Channel {
        &self.inner
    }
}

impl Channel {
    /// Traces `channel` with `messaging` (build one with [`messaging`](crate::messaging) to
    /// record the broker's address).
    pub fn with_messaging(channel: lapin::Channel, messaging: Messaging) -> Self {
        Channel {
            inner: channel,
            messaging,
        }
    }

    /// The untraced channel.
    pub fn inner(&self) -> &lapin::Channel {
        &self.inner
    }

    /// The tracing configuration.
    pub fn messaging(&self) -> &Messaging {
        &self.messaging
    }

    /// Publishes `payload` to `exchange` with `routing_key` (the default exchange: `""`) in a
    /// PRODUCER span, with lapin's signature. The span's context goes into the AMQP headers of
    /// `properties` (other headers kept; a creation context already there is kept too, and
    /// linked); `message_id` is `messaging.message.id`, `correlation_id`
    /// `messaging.message.conversation_id`.
    ///
    /// With publisher confirms on, the span ends when the returned [`PublishConfirm`]
    /// resolves (a `nack` or a returned, unroutable mandatory message is recorded as an error);
    /// dropped unawaited, it ends then. Without confirms it has ended when this returns. A
    /// publish that fails (the connection is down, the channel closed) records the error.
    pub async fn basic_publish(
        &self,
        exchange: ShortString,
        routing_key: ShortString,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> lapin::Result<PublishConfirm> {
        let (span, properties) =
            self.publish_span(exchange.as_str(), routing_key.as_str(), payload, properties);
        let confirms = self.inner.status().confirm();
        let result = self
            .inner
            .basic_publish(exchange, routing_key, options, payload, properties)
            .await;
        match result {
            Ok(inner) => Ok(PublishConfirm {
                inner,
                span: if confirms {
                    Some(span)
                } else {
                    span.end();
                    None
                },
            }),
            Err(e) => {
                finish(span, &e);
                Err(e)
            }
        }
    }

    /// Starts the send span of a message published some other way (through the untraced
    /// channel, a lapin channel of your own) and returns the properties that carry its
    /// context — what [`basic_publish`](Channel::basic_publish) does before it calls lapin.
    /// End the span when the broker has the message, recording a failure first.
    pub fn publish_span(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> (SendSpan, BasicProperties) {
        let mut headers = properties.headers().clone().unwrap_or_default();
        let span = {
            let name = facts::publish_name(exchange, routing_key);
            let (id, conversation_id) = facts::ids(&properties);
            let key = [(
                semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
                routing_key,
            )];
            let info = MessageInfo {
                id,
                conversation_id,
                body_size: Some(payload.len()),
                system_attributes: if routing_key.is_empty() { &[] } else { &key },
                ..MessageInfo::new(facts::publish_destination(&name, exchange, routing_key))
            };
            self.messaging
                .send(&info, &mut HeaderInjector(&mut headers))
        };
        let properties = if headers.inner().is_empty() {
            properties
        } else {
            properties.with_headers(headers)
        };
        (span, properties)
    }

    /// Starts consuming `queue` (lapin's signature); each message comes with its process span.
    pub async fn basic_consume(
        &self,
        queue: ShortString,
        consumer_tag: ShortString,
        options: BasicConsumeOptions,
        arguments: FieldTable,
    ) -> lapin::Result<Consumer> {
        let inner = self
            .inner
            .basic_consume(queue, consumer_tag, options, arguments)
            .await?;
        Ok(Consumer::new(inner, self.messaging.clone()))
    }

    /// Gets one message from `queue` (lapin's signature), with its process span — `None`
    /// when the queue is empty (no span). [`Delivery::message_count`] is what was left.
    pub async fn basic_get(
        &self,
        queue: ShortString,
        options: BasicGetOptions,
    ) -> lapin::Result<Option<Delivery>> {
        let got = self.inner.basic_get(queue.clone(), options).await?;
        Ok(got.map(|m| {
            let mut d = Delivery::process(&self.messaging, m.delivery, queue.as_str());
            d.message_count = Some(m.message_count);
            d
        }))
    }

    /// Starts the process span of a delivery received outside a traced [`Consumer`] (a
    /// consumer delegate, say), consumed from `queue`.
    pub fn process(&self, delivery: lapin::message::Delivery, queue: &str) -> Delivery {
        Delivery::process(&self.messaging, delivery, queue)
    }
}

/// Ends a send span with an error.
fn finish(mut span: SendSpan, error: &lapin::Error) {
    span.record_error(facts::error_type(error), error.to_string());
    span.end();
}

pin_project_lite::pin_project! {
    /// The broker's confirmation of a traced publish ([`lapin::PublisherConfirm`]): await it
    /// for the [`Confirmation`]. With publisher confirms on, the send span ends when it
    /// resolves.
    #[must_use = "with publisher confirms on, the publish is confirmed (and its span ends) when this is awaited"]
    pub struct PublishConfirm {
        #[pin]
        inner: PublisherConfirm,
        span: Option<SendSpan>,
    }
}

impl fmt::Debug for PublishConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishConfirm")
            .field("span", &self.span)
            .finish()
    }
}

impl PublishConfirm {
    /// The context the message carries (`None` once the span has ended: without publisher
    /// confirms, at once).
    pub fn context(&self) -> Option<&TraceContext> {
        self.span.as_ref().and_then(SendSpan::context)
    }
}

impl Future for PublishConfirm {
    type Output = lapin::Result<Confirmation>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = this.inner.poll(cx);
        if let Poll::Ready(result) = &out
            && let Some(mut span) = this.span.take()
        {
            match result {
                Ok(Confirmation::Nack(_)) => {
                    span.record_error("nack", "the broker refused the message (nack)");
                }
                Ok(Confirmation::Ack(Some(returned))) => {
                    span.record_error(
                        returned.reply_text.to_string(),
                        format!("returned: {} {}", returned.reply_code, returned.reply_text),
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    span.record_error(facts::error_type(e), e.to_string());
                }
            }
            span.end();
        }
        out
    }
}
