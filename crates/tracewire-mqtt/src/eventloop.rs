//! The traced [`EventLoop`]: rumqttc's event loop, whose incoming publishes come out as
//! [`Message`]s, each with its process span.

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, ConnectionError};
use tracewire_core::semconv;
use tracewire_messaging::{Destination, MessageInfo};

use crate::carrier::UserProperties;
use crate::message::Message;
use crate::shared::{Shared, qos_text};

/// What [`EventLoop::poll`] yields.
#[derive(Debug)]
pub enum Event {
    /// An incoming PUBLISH, with its process span (started as it came out of the loop).
    Message(Message),
    /// Every other event, as rumqttc reports it (CONNACK, SUBACK, acks, pings, outgoing
    /// packets).
    Other(rumqttc::v5::Event),
}

/// rumqttc's [`EventLoop`](rumqttc::v5::EventLoop), made by [`Client::new`](crate::Client::new)
/// with its client: poll it as you would rumqttc's (it connects, reconnects, sends and
/// receives); an incoming PUBLISH comes out as [`Event::Message`], whose process span starts
/// there — the child of the creation context in the message's user properties (and linked to
/// it), named by the subscription it was delivered for.
///
/// Acknowledgements: rumqttc acks QoS 1 and 2 deliveries itself as it reads them, before the
/// handler runs, unless `MqttOptions::set_manual_acks(true)`: then
/// [`Message::ack`] is the settlement, recorded on the process span.
///
/// ```no_run
/// # async fn handle(_: &tracewire_mqtt::Client, _: &[u8]) {}
/// use rumqttc::v5::MqttOptions;
/// use rumqttc::v5::mqttbytes::QoS;
/// use tracewire_mqtt::{Client, Event};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (client, mut eventloop) = Client::new(MqttOptions::new("sensors-1", "127.0.0.1", 1883), 10);
/// client.subscribe("sensors/+/temperature", QoS::AtLeastOnce).await?;
/// loop {
///     if let Event::Message(message) = eventloop.poll().await? {
///         let client = client.clone();
///         tokio::spawn(async move {
///             message.instrument(handle(&client, &message.payload)).await;
///         });
///     }
/// }
/// # }
/// ```
pub struct EventLoop {
    inner: rumqttc::v5::EventLoop,
    /// For manual acks.
    acks: AsyncClient,
    shared: Arc<Shared>,
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("messaging", &self.shared.messaging)
            .field("manual_acks", &self.inner.state.manual_acks)
            .finish_non_exhaustive()
    }
}

impl EventLoop {
    pub(crate) fn new(
        inner: rumqttc::v5::EventLoop,
        acks: AsyncClient,
        shared: Arc<Shared>,
    ) -> Self {
        EventLoop {
            inner,
            acks,
            shared,
        }
    }

    /// The next event, as [`rumqttc::v5::EventLoop::poll`] gives it (same errors, same
    /// reconnection by polling again), an incoming PUBLISH as a [`Message`] with its process
    /// span.
    pub async fn poll(&mut self) -> Result<Event, ConnectionError> {
        match self.inner.poll().await? {
            rumqttc::v5::Event::Incoming(Packet::Publish(publish)) => {
                Ok(Event::Message(self.process(publish)))
            }
            event => {
                if let rumqttc::v5::Event::Incoming(Packet::ConnAck(connack)) = &event {
                    self.shared.subscriptions.connected(connack);
                }
                Ok(Event::Other(event))
            }
        }
    }

    /// Starts the process span of a PUBLISH received outside [`poll`](EventLoop::poll).
    ///
    /// Garbage or oversized trace properties never cost the message: it is handed over as it
    /// came, in a new trace.
    ///
    /// ```
    /// use rumqttc::v5::MqttOptions;
    /// use rumqttc::v5::mqttbytes::QoS;
    /// use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
    /// use tracewire_core::{Sampler, SpanId, TraceId, Tracer};
    /// use tracewire_messaging::Messaging;
    ///
    /// let messaging = Messaging::new("mqtt").tracer(Tracer::new().with_sampler(Sampler::AlwaysOn));
    /// let options = MqttOptions::new("doc", "127.0.0.1", 1883);
    /// let (_client, eventloop) = tracewire_mqtt::Client::with_messaging(options, 10, messaging);
    /// let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let properties = PublishProperties {
    ///     user_properties: vec![("traceparent".into(), traceparent.into())],
    ///     ..PublishProperties::default()
    /// };
    /// let publish = Publish::new("orders/42", QoS::AtLeastOnce, "42", Some(properties));
    /// let message = eventloop.process(publish);
    /// // The process span continues the publisher's trace, as its child.
    /// assert_eq!(message.context().trace_id, TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736));
    /// assert_ne!(message.context().span_id, SpanId(0x00f067aa0ba902b7));
    /// assert!(message.span().is_recording());
    /// assert_eq!(&message.payload[..], b"42");
    /// ```
    pub fn process(&self, publish: Publish) -> Message {
        let manual = self.inner.state.manual_acks && publish.qos != QoS::AtMostOnce;
        let span = {
            let properties = publish.properties.as_ref();
            let carrier = properties
                .filter(|p| !p.user_properties.is_empty())
                .map(|p| UserProperties(&p.user_properties));
            let mut system = [(semconv::MESSAGING_MQTT_QOS, qos_text(publish.qos)); 3];
            let mut n = 1;
            for (flag, key) in [
                (publish.retain, semconv::MESSAGING_MQTT_RETAIN),
                (publish.dup, semconv::MESSAGING_MQTT_DUPLICATE),
            ] {
                if flag {
                    system[n] = (key, "true");
                    n += 1;
                }
            }
            let matched = OnceCell::new();
            // The facts (which subscription, the correlation id) only for a recorded span.
            let info = || {
                let topic = std::str::from_utf8(&publish.topic).unwrap_or_default();
                let ids = properties.map_or(&[][..], |p| &p.subscription_identifiers[..]);
                let subscription =
                    matched.get_or_init(|| self.shared.subscriptions.resolve(topic, ids));
                let mut destination = Destination::new(topic);
                destination.template = subscription.as_ref().and_then(|s| s.template());
                MessageInfo {
                    conversation_id: properties
                        .and_then(|p| p.correlation_data.as_deref())
                        .and_then(|d| std::str::from_utf8(d).ok()),
                    body_size: Some(publish.payload.len()),
                    consumer_group: subscription.as_ref().and_then(|s| s.group()),
                    system_attributes: &system[..n],
                    ..MessageInfo::new(destination)
                }
            };
            self.shared.messaging.process_lazy(info, carrier.as_ref())
        };
        Message::new(publish, span, manual.then(|| self.acks.clone()))
    }

    /// rumqttc's event loop (its options, state, pending requests).
    pub fn inner(&self) -> &rumqttc::v5::EventLoop {
        &self.inner
    }

    /// rumqttc's event loop, to change.
    pub fn inner_mut(&mut self) -> &mut rumqttc::v5::EventLoop {
        &mut self.inner
    }
}
