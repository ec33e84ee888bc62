//! A received PUBLISH with its process span, and its acknowledgement.

use std::fmt;
use std::ops::Deref;

use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::{AsyncClient, ClientError};
use tracewire_messaging::ProcessSpan;

use crate::shared::error_type;

/// An incoming PUBLISH with its process span (it reads as rumqttc's [`Publish`]).
///
/// Run the handler in the span with [`instrument`](Message::instrument); the span ends when
/// the message is dropped (or [`into_inner`](Message::into_inner)).
pub struct Message {
    publish: Publish,
    span: ProcessSpan,
    /// The client to acknowledge with: only with manual acks, QoS 1 or 2, not yet acked.
    acks: Option<AsyncClient>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic())
            .field("qos", &self.publish.qos)
            .field("retain", &self.publish.retain)
            .field("payload_len", &self.publish.payload.len())
            .field("span", &self.span)
            .field("to_ack", &self.acks.is_some())
            .finish()
    }
}

impl Deref for Message {
    type Target = Publish;

    fn deref(&self) -> &Publish {
        &self.publish
    }
}

impl Message {
    pub(crate) fn new(publish: Publish, span: ProcessSpan, acks: Option<AsyncClient>) -> Self {
        Message {
            publish,
            span,
            acks,
        }
    }

    /// The topic as text (empty if it is not UTF-8, which MQTT forbids).
    pub fn topic(&self) -> &str {
        std::str::from_utf8(&self.publish.topic).unwrap_or_default()
    }

    /// The user properties (empty when there are none).
    pub fn user_properties(&self) -> &[(String, String)] {
        self.publish
            .properties
            .as_ref()
            .map_or(&[][..], |p| &p.user_properties[..])
    }

    tracewire_messaging::process_span_methods!(span);

    /// Acknowledges the message (PUBACK for QoS 1, PUBREC for QoS 2 — the event loop completes
    /// the QoS 2 exchange) when the event loop has manual acks
    /// (`MqttOptions::set_manual_acks(true)`): the settlement, `messaging.settlement` = `ack`
    /// on the process span (and an `ack {destination}` CLIENT span with
    /// `Messaging::settle_spans(true)`, lasting the hand-over to the event loop). Without
    /// manual acks rumqttc has acknowledged it already, and for QoS 0 there is nothing to
    /// acknowledge: then this does nothing. A second call does nothing either.
    ///
    /// Not acknowledged (dropped without `ack`), a QoS 1 or 2 message is sent again by the
    /// broker when the session resumes after a reconnect (with `messaging.mqtt.duplicate`).
    pub async fn ack(&mut self) -> Result<(), ClientError> {
        let Some(client) = self.acks.take() else {
            return Ok(());
        };
        let mut settle = self.span.settle("ack");
        let result = client.ack(&self.publish).await;
        if let Err(e) = &result {
            settle.record_error(error_type(e, false), e.to_string());
        }
        settle.end();
        result
    }

    /// [`ack`](Message::ack) without waiting for room in the event loop's queue.
    #[allow(clippy::result_large_err)] // rumqttc's error: it hands the request back
    pub fn try_ack(&mut self) -> Result<(), ClientError> {
        let Some(client) = self.acks.take() else {
            return Ok(());
        };
        let mut settle = self.span.settle("ack");
        let result = client.try_ack(&self.publish);
        if let Err(e) = &result {
            settle.record_error(error_type(e, false), e.to_string());
            // Full queue: it can be tried again.
            self.acks = Some(client);
        }
        settle.end();
        result
    }

    /// The PUBLISH and its span, apart (the ack, if due, is then yours:
    /// `client.inner().ack(&publish)`).
    pub fn into_parts(self) -> (Publish, ProcessSpan) {
        (self.publish, self.span)
    }

    /// The PUBLISH; its span ends.
    pub fn into_inner(self) -> Publish {
        self.publish
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_goes_to_another_task_with_its_span() {
        fn send_static<T: Send + 'static>() {}
        send_static::<Message>();
        send_static::<crate::Event>();
        send_static::<crate::Client>();
    }
}
