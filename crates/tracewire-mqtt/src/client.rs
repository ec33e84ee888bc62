//! The traced [`Client`]: publishes in send spans whose context travels in the MQTT 5 user
//! properties, and subscriptions registered for naming the spans of what they deliver.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, PublishProperties, SubscribeProperties};
use rumqttc::v5::{AsyncClient, ClientError, MqttOptions};
use tracewire_core::semconv;
use tracewire_messaging::{Destination, MessageInfo, Messaging, SendSpan};

use crate::carrier::UserPropertiesMut;
use crate::eventloop::EventLoop;
use crate::shared::{Shared, error_type, qos_text};
use crate::subscriptions::Subscriptions;

/// A [`rumqttc::v5::AsyncClient`] whose publishes are traced, and whose subscriptions name the
/// process spans of the messages they bring (see [`EventLoop`]).
///
/// Every publish gets a PRODUCER span (`publish {topic}`) whose context travels in the
/// message's **user properties** (`traceparent`, `tracestate`, `baggage`); the span ends when
/// the publish is handed to the event loop (rumqttc does not say which PUBACK or PUBCOMP
/// belongs to which publish). The methods have rumqttc's signatures; functions that publish
/// take this type (an `&AsyncClient` would not be traced); the untraced client is
/// [`inner`](Client::inner).
///
/// ```no_run
/// use rumqttc::v5::MqttOptions;
/// use rumqttc::v5::mqttbytes::QoS;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (client, mut eventloop) =
///     tracewire_mqtt::Client::new(MqttOptions::new("orders-1", "127.0.0.1", 1883), 10);
/// client.subscribe("sensors/+/temperature", QoS::AtLeastOnce).await?;
/// client.publish("orders/created", QoS::AtLeastOnce, false, "42").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: AsyncClient,
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("messaging", &self.shared.messaging)
            .finish_non_exhaustive()
    }
}

/// A topic rumqttc refuses to publish to.
fn invalid(topic: &str) -> bool {
    topic.contains(['+', '#'])
}

/// Ends a send span with the outcome of handing the publish to the event loop.
fn finish(mut span: SendSpan, invalid_topic: bool, result: &Result<(), ClientError>) {
    if let Err(e) = result {
        span.record_error(error_type(e, invalid_topic), e.to_string());
    }
    span.end();
}

impl Client {
    /// A traced client and its event loop, as [`AsyncClient::new`] makes them, with
    /// [`Tracer::global`](tracewire_core::Tracer::global): `messaging.system` = `mqtt`,
    /// `server.address` / `server.port` and `messaging.client.id` from `options`.
    pub fn new(options: MqttOptions, cap: usize) -> (Client, EventLoop) {
        let (host, port) = options.broker_address();
        let mut messaging = Messaging::new("mqtt").server(host, Some(port));
        let id = options.client_id();
        if !id.is_empty() {
            messaging = messaging.client_id(id);
        }
        Client::with_messaging(options, cap, messaging)
    }

    /// [`new`](Client::new) with this configuration (tracer, relation, conventions,
    /// settle spans, ...).
    pub fn with_messaging(
        options: MqttOptions,
        cap: usize,
        messaging: Messaging,
    ) -> (Client, EventLoop) {
        let (client, eventloop) = AsyncClient::new(options, cap);
        Client::from_parts(client, eventloop, messaging)
    }

    /// Traces a client and its event loop made elsewhere (they must be a pair:
    /// `AsyncClient::new`'s).
    pub fn from_parts(
        client: AsyncClient,
        eventloop: rumqttc::v5::EventLoop,
        messaging: Messaging,
    ) -> (Client, EventLoop) {
        let shared = Arc::new(Shared {
            messaging,
            subscriptions: Subscriptions::default(),
        });
        let eventloop = EventLoop::new(eventloop, client.clone(), shared.clone());
        (
            Client {
                inner: client,
                shared,
            },
            eventloop,
        )
    }

    /// Whether each SUBSCRIBE gets a subscription identifier of its own, by which the process
    /// span of a message names the subscription it was delivered for (on by default, for this
    /// client and its clones; skipped anyway once the broker's CONNACK says it has none, and
    /// for a SUBSCRIBE that has one already). Off: a message is named by the most specific
    /// of the client's filters it matches (see the README, "Which subscription names a
    /// span").
    pub fn subscription_identifiers(self, yes: bool) -> Self {
        self.shared.subscriptions.set_assign(yes);
        self
    }

    /// The untraced client.
    pub fn inner(&self) -> &AsyncClient {
        &self.inner
    }

    /// The tracing configuration.
    pub fn messaging(&self) -> &Messaging {
        &self.shared.messaging
    }

    /// Starts the send span of a publish and writes its context into the user properties.
    fn send_span(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: &Bytes,
        properties: &mut PublishProperties,
    ) -> SendSpan {
        let system = [
            (semconv::MESSAGING_MQTT_QOS, qos_text(qos)),
            (semconv::MESSAGING_MQTT_RETAIN, "true"),
        ];
        let correlation = &properties.correlation_data;
        // The facts only for a recorded span.
        let info = || MessageInfo {
            conversation_id: correlation
                .as_deref()
                .and_then(|d| std::str::from_utf8(d).ok()),
            body_size: Some(payload.len()),
            system_attributes: &system[..if retain { 2 } else { 1 }],
            ..MessageInfo::new(Destination::new(topic))
        };
        self.shared.messaging.send_lazy(
            info,
            &mut UserPropertiesMut(&mut properties.user_properties),
        )
    }

    /// Publishes `payload` to `topic` in a PRODUCER span (`publish {topic}`,
    /// `messaging.mqtt.qos`, `messaging.mqtt.retain` when retained); the span's context goes
    /// into the message's user properties.
    pub async fn publish<S, P>(
        &self,
        topic: S,
        qos: QoS,
        retain: bool,
        payload: P,
    ) -> Result<(), ClientError>
    where
        S: Into<String>,
        P: Into<Bytes>,
    {
        self.publish_with_properties(topic, qos, retain, payload, PublishProperties::default())
            .await
    }

    /// [`publish`](Client::publish) with properties of your own: they are kept, the trace
    /// context is added to the user properties (a creation context already there is kept and
    /// linked instead — so do not copy a received message's user properties into a new
    /// publish wholesale), and `correlation_data` that is UTF-8 is recorded as
    /// `messaging.message.conversation_id`.
    pub async fn publish_with_properties<S, P>(
        &self,
        topic: S,
        qos: QoS,
        retain: bool,
        payload: P,
        mut properties: PublishProperties,
    ) -> Result<(), ClientError>
    where
        S: Into<String>,
        P: Into<Bytes>,
    {
        let (topic, payload) = (topic.into(), payload.into());
        let span = self.send_span(&topic, qos, retain, &payload, &mut properties);
        let invalid = invalid(&topic);
        let result = self
            .inner
            .publish_with_properties(topic, qos, retain, payload, properties)
            .await;
        finish(span, invalid, &result);
        result
    }

    /// [`publish`](Client::publish) without waiting for room in the event loop's queue
    /// (`TryRequest` when it is full).
    #[allow(clippy::result_large_err)] // rumqttc's error: it hands the request back
    pub fn try_publish<S, P>(
        &self,
        topic: S,
        qos: QoS,
        retain: bool,
        payload: P,
    ) -> Result<(), ClientError>
    where
        S: Into<String>,
        P: Into<Bytes>,
    {
        self.try_publish_with_properties(topic, qos, retain, payload, PublishProperties::default())
    }

    /// [`publish_with_properties`](Client::publish_with_properties) without waiting.
    #[allow(clippy::result_large_err)] // rumqttc's error: it hands the request back
    pub fn try_publish_with_properties<S, P>(
        &self,
        topic: S,
        qos: QoS,
        retain: bool,
        payload: P,
        mut properties: PublishProperties,
    ) -> Result<(), ClientError>
    where
        S: Into<String>,
        P: Into<Bytes>,
    {
        let (topic, payload) = (topic.into(), payload.into());
        let span = self.send_span(&topic, qos, retain, &payload, &mut properties);
        let invalid = invalid(&topic);
        let result = self
            .inner
            .try_publish_with_properties(topic, qos, retain, payload, properties);
        finish(span, invalid, &result);
        result
    }

    /// The properties of a SUBSCRIBE of `filters`, with a subscription identifier of its own
    /// (unless it has one or they are off); the filters are registered under it.
    fn register(
        &self,
        filters: &[Filter],
        properties: Option<SubscribeProperties>,
    ) -> Option<SubscribeProperties> {
        let subscriptions = &self.shared.subscriptions;
        let mut properties = properties;
        let id = match properties.as_ref().and_then(|p| p.id) {
            Some(id) => Some(id),
            None => subscriptions.next_identifier().inspect(|&id| {
                properties
                    .get_or_insert_with(|| SubscribeProperties {
                        id: None,
                        user_properties: Vec::new(),
                    })
                    .id = Some(id);
            }),
        };
        // Registered before the SUBSCRIBE is queued: the first message (a retained one) may
        // come right after it.
        subscriptions.add(filters.iter().map(|f| f.path.as_str()), id);
        properties
    }

    /// Subscribes to `filter` (`+` and `#` wildcards; `$share/{group}/{filter}` for a shared
    /// subscription). The process spans of what it delivers are named by the filter when it
    /// has a wildcard (`messaging.destination.template`), by the topic otherwise; a shared
    /// subscription's group is `messaging.consumer.group.name`.
    pub async fn subscribe<S: Into<String>>(&self, filter: S, qos: QoS) -> Result<(), ClientError> {
        self.subscribe_many(Some(Filter::new(filter, qos))).await
    }

    /// [`subscribe`](Client::subscribe) with properties of your own (an `id` of yours is
    /// kept and used to name spans).
    pub async fn subscribe_with_properties<S: Into<String>>(
        &self,
        filter: S,
        qos: QoS,
        properties: SubscribeProperties,
    ) -> Result<(), ClientError> {
        self.subscribe_many_with_properties(Some(Filter::new(filter, qos)), properties)
            .await
    }

    /// Subscribes to several filters in one SUBSCRIBE (one subscription identifier for all).
    pub async fn subscribe_many<T>(&self, filters: T) -> Result<(), ClientError>
    where
        T: IntoIterator<Item = Filter>,
    {
        let filters: Vec<Filter> = filters.into_iter().collect();
        match self.register(&filters, None) {
            Some(p) => self.inner.subscribe_many_with_properties(filters, p).await,
            None => self.inner.subscribe_many(filters).await,
        }
    }

    /// [`subscribe_many`](Client::subscribe_many) with properties of your own.
    pub async fn subscribe_many_with_properties<T>(
        &self,
        filters: T,
        properties: SubscribeProperties,
    ) -> Result<(), ClientError>
    where
        T: IntoIterator<Item = Filter>,
    {
        let filters: Vec<Filter> = filters.into_iter().collect();
        match self.register(&filters, Some(properties)) {
            Some(p) => self.inner.subscribe_many_with_properties(filters, p).await,
            None => self.inner.subscribe_many(filters).await,
        }
    }

    /// [`subscribe`](Client::subscribe) without waiting for room in the event loop's queue.
    #[allow(clippy::result_large_err)] // rumqttc's error: it hands the request back
    pub fn try_subscribe<S: Into<String>>(&self, filter: S, qos: QoS) -> Result<(), ClientError> {
        let filters = vec![Filter::new(filter, qos)];
        match self.register(&filters, None) {
            Some(p) => self.inner.try_subscribe_many_with_properties(filters, p),
            None => self.inner.try_subscribe_many(filters),
        }
    }

    /// Unsubscribes from `filter` (as it was subscribed) and forgets it.
    pub async fn unsubscribe<S: Into<String>>(&self, filter: S) -> Result<(), ClientError> {
        let filter = filter.into();
        self.shared.subscriptions.remove([filter.as_str()]);
        self.inner.unsubscribe(filter).await
    }

    /// Sends a DISCONNECT (untraced).
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        self.inner.disconnect().await
    }
}
