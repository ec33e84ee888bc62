//! What a RabbitMQ message tells about itself: destinations per the RabbitMQ conventions,
//! ids, the delivery attempt, the publish time. The rules that turn these into spans are
//! `tracewire-messaging`'s.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use lapin::BasicProperties;
use lapin::types::AMQPValue;
use tracewire_messaging::Destination;

/// The destination name of a publish to the default exchange with no routing key
/// (semconv: `amq.default`).
pub const DEFAULT_EXCHANGE: &str = "amq.default";

/// The header quorum queues count earlier delivery attempts in (absent on the first).
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// The prefix of the queue names RabbitMQ makes up for a queue declared without a name.
const SERVER_NAMED: &str = "amq.gen-";

/// RabbitMQ's direct reply-to pseudo-queue (and the names it delivers under).
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// True for a queue that lives only as long as its client and whose name nobody chose: a
/// server-named queue (`amq.gen-...`) or direct reply-to.
pub(crate) fn is_server_named(queue: &str) -> bool {
    queue.starts_with(SERVER_NAMED) || queue.starts_with(DIRECT_REPLY_TO)
}

/// The destination name of a publish, per the RabbitMQ conventions: `{exchange}:{routing key}`
/// when both are set, either alone when the other is empty, `amq.default` when both are.
pub(crate) fn publish_name<'a>(exchange: &'a str, routing_key: &'a str) -> Cow<'a, str> {
    match (exchange.is_empty(), routing_key.is_empty()) {
        (false, false) => Cow::Owned(format!("{exchange}:{routing_key}")),
        (false, true) => Cow::Borrowed(exchange),
        (true, false) => Cow::Borrowed(routing_key),
        (true, true) => Cow::Borrowed(DEFAULT_EXCHANGE),
    }
}

/// The destination of a publish: temporary and anonymous when it goes to a server-named
/// queue through the default exchange (an RPC reply), which then never names a span.
pub(crate) fn publish_destination<'a>(
    name: &'a str,
    exchange: &str,
    routing_key: &str,
) -> Destination<'a> {
    let anonymous = exchange.is_empty() && is_server_named(routing_key);
    Destination {
        temporary: anonymous,
        anonymous,
        ..Destination::new(name)
    }
}

/// The destination of a consumed message: its queue (temporary and anonymous when
/// server-named).
pub(crate) fn queue_destination(queue: &str) -> Destination<'_> {
    let anonymous = is_server_named(queue);
    Destination {
        temporary: anonymous,
        anonymous,
        ..Destination::new(queue)
    }
}

/// The message id and correlation id of a message's properties.
pub(crate) fn ids(properties: &BasicProperties) -> (Option<&str>, Option<&str>) {
    (
        properties.message_id().as_ref().map(|s| s.as_str()),
        properties.correlation_id().as_ref().map(|s| s.as_str()),
    )
}

/// The publish time (the AMQP `timestamp` property: whole seconds since the epoch).
pub(crate) fn published_at(properties: &BasicProperties) -> Option<SystemTime> {
    properties
        .timestamp()
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
}

/// The delivery attempt, 1 for the first: a message that was never delivered before
/// (`redelivered` false) is on its first; a quorum queue's `x-delivery-count` counts the
/// attempts before this one. A classic queue's redelivery says only "not the first": `None`.
pub(crate) fn delivery_count(redelivered: bool, properties: &BasicProperties) -> Option<u64> {
    let counted = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DELIVERY_COUNT_HEADER))
        .and_then(integer);
    match counted {
        Some(n) => n.checked_add(1),
        None if !redelivered => Some(1),
        None => None,
    }
}

/// A non-negative integer of any AMQP integer type (RabbitMQ writes `x-delivery-count` as a
/// long-long; other brokers and versions may not).
fn integer(value: &AMQPValue) -> Option<u64> {
    match *value {
        AMQPValue::ShortShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(n)),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(n)),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(n)),
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        AMQPValue::Timestamp(n) => Some(n),
        _ => None,
    }
}

/// A low-cardinality `error.type` for a lapin error: its kind (and the AMQP error's, for a
/// protocol error: `NOTFOUND`, `ACCESSREFUSED`, ...).
pub(crate) fn error_type(error: &lapin::Error) -> Cow<'static, str> {
    use lapin::ErrorKind as K;
    Cow::Borrowed(match error.kind() {
        K::ProtocolError(e) => return Cow::Owned(format!("{:?}", e.kind())),
        K::ChannelsLimitReached => "ChannelsLimitReached",
        K::InvalidProtocolVersion(_) => "InvalidProtocolVersion",
        K::InvalidChannel(_) => "InvalidChannel",
        K::InvalidChannelState(..) => "InvalidChannelState",
        K::InvalidConnectionState(_) => "InvalidConnectionState",
        K::IOError(_) => "IOError",
        K::RuntimeShutdownError(_) => "RuntimeShutdownError",
        K::ParsingError(_) => "ParsingError",
        K::SerialisationError(_) => "SerialisationError",
        K::AuthProviderError(_) => "AuthProviderError",
        K::FutureCompleted => "FutureCompleted",
        K::NoDefaultRuntime => "NoDefaultRuntime",
        K::MissingHeartbeatError => "MissingHeartbeatError",
        _ => "lapin::Error",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldTable;

    #[test]
    fn publish_names_follow_the_rabbitmq_conventions() {
        assert_eq!(publish_name("logs", "info"), "logs:info");
        assert_eq!(publish_name("logs", ""), "logs");
        assert_eq!(publish_name("", "orders"), "orders");
        assert_eq!(publish_name("", ""), "amq.default");
        let reply = publish_destination("amq.gen-Xa2", "", "amq.gen-Xa2");
        assert!(reply.temporary && reply.anonymous && reply.label().is_none());
        assert!(!publish_destination("x:amq.gen-1", "x", "amq.gen-1").anonymous);
        assert!(queue_destination("amq.rabbitmq.reply-to.g1h").anonymous);
        assert_eq!(queue_destination("orders").label(), Some("orders"));
    }

    #[test]
    fn delivery_attempts() {
        let plain = BasicProperties::default();
        assert_eq!(delivery_count(false, &plain), Some(1));
        assert_eq!(delivery_count(true, &plain), None);
        for (value, want) in [
            (AMQPValue::LongLongInt(2), Some(3)),
            (AMQPValue::LongInt(0), Some(1)),
            (AMQPValue::ShortShortUInt(1), Some(2)),
            (AMQPValue::LongLongInt(-1), None),
            (AMQPValue::LongString("2".into()), None),
        ] {
            let mut h = FieldTable::default();
            h.insert(DELIVERY_COUNT_HEADER.into(), value.clone());
            let p = BasicProperties::default().with_headers(h);
            assert_eq!(delivery_count(true, &p), want, "{value:?}");
        }
        let p = BasicProperties::default().with_timestamp(u64::MAX);
        assert_eq!(published_at(&p), None, "no overflow");
        let p = BasicProperties::default().with_timestamp(1_700_000_000);
        assert_eq!(
            published_at(&p),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }
}
