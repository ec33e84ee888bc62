//! What the traced client, its clones, its event loop and its messages share: the messaging
//! settings and subscriptions, and the QoS and error texts their spans record.

use rumqttc::v5::ClientError;
use rumqttc::v5::mqttbytes::QoS;
use tracewire_messaging::Messaging;

use crate::subscriptions::Subscriptions;

/// What a client, its clones and its event loop share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) messaging: Messaging,
    pub(crate) subscriptions: Subscriptions,
}

/// The text of a QoS (`messaging.mqtt.qos`).
pub(crate) fn qos_text(qos: QoS) -> &'static str {
    match qos {
        QoS::AtMostOnce => "0",
        QoS::AtLeastOnce => "1",
        QoS::ExactlyOnce => "2",
    }
}

/// The `error.type` of a client error: `InvalidTopic` (rumqttc refuses a topic with a
/// wildcard), else the variant (`Request`: the event loop is gone; `TryRequest`: gone, or its
/// queue is full).
pub(crate) fn error_type(e: &ClientError, invalid_topic: bool) -> &'static str {
    if invalid_topic {
        return "InvalidTopic";
    }
    match e {
        ClientError::Request(_) => "Request",
        ClientError::TryRequest(_) => "TryRequest",
    }
}
