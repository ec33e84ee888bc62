//! Attribute keys and the property conventions tracewire writes onto fastrace spans.
//!
//! fastrace properties are string pairs. The span kind and status travel as the
//! OpenTelemetry-named properties below; what has no name there (the remote-parent flag, W3C
//! trace flags and `tracestate`, link attributes) as the `tracewire.*` properties of
//! [`reserved`](crate::reserved), which exporters decode there and never export as attributes.
//!
//! Integrations take every key from here: no attribute key is a string literal elsewhere.

/// Span kind: one of [`SpanKind::as_str`](crate::SpanKind::as_str) (`server`, `client`,
/// `producer`, `consumer`, `internal`). Absent means `internal`.
pub const SPAN_KIND: &str = "span.kind";
/// Span status code: `OK` or `ERROR` (absent = `UNSET`), as in the OpenTelemetry API.
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// Span status description; only meaningful with `ERROR`.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";
/// fastrace-opentelemetry's name for the status code property (`unset`, `ok`, `error`,
/// case-insensitive): read like [`OTEL_STATUS_CODE`], so spans instrumented for that bridge
/// keep their status.
pub const FASTRACE_STATUS_CODE: &str = "span.status_code";
/// fastrace-opentelemetry's name for the status description property.
pub const FASTRACE_STATUS_DESCRIPTION: &str = "span.status_description";
/// Status code value for an error.
pub const STATUS_ERROR: &str = "ERROR";
/// Status code value for an explicit OK.
pub const STATUS_OK: &str = "OK";

/// Reserved: see [`reserved::PARENT_REMOTE`](crate::reserved::PARENT_REMOTE).
pub const TRACEWIRE_PARENT_REMOTE: &str = crate::reserved::PARENT_REMOTE;
/// Reserved: see [`reserved::TRACE_FLAGS`](crate::reserved::TRACE_FLAGS).
pub const TRACEWIRE_TRACE_FLAGS: &str = crate::reserved::TRACE_FLAGS;
/// Reserved: see [`reserved::TRACE_STATE`](crate::reserved::TRACE_STATE).
pub const TRACEWIRE_TRACE_STATE: &str = crate::reserved::TRACE_STATE;
/// Prefix shared by every reserved key ([`reserved`](crate::reserved)); exporters skip
/// properties that start with it.
pub const TRACEWIRE_RESERVED_PREFIX: &str = crate::reserved::PREFIX;

/// Jaeger's debug id tag, set on a root started because of a `jaeger-debug-id` header.
pub const JAEGER_DEBUG_ID: &str = "jaeger.debug_id";

/// Name of the exception event.
pub const EXCEPTION_EVENT: &str = "exception";
/// `exception.type`
pub const EXCEPTION_TYPE: &str = "exception.type";
/// `exception.message`
pub const EXCEPTION_MESSAGE: &str = "exception.message";
/// `error.type`
pub const ERROR_TYPE: &str = "error.type";

// ---------------------------------------------------------------------------------------------
// OpenTelemetry semantic conventions (stable HTTP, RPC, messaging, network, URL).
// Integrations add keys for their domain here, in their section.
// ---------------------------------------------------------------------------------------------

/// The semantic-conventions version the exported telemetry follows (`schema_url` of the
/// resource and of the instrumentation scope): 1.37, the last release of the RPC conventions
/// tracewire emits by default (the HTTP and messaging names are the same in it as today).
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.37.0";

/// `http.request.method`
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// `http.request.method_original`
pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
/// `http.response.status_code` (int)
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `http.route`
pub const HTTP_ROUTE: &str = "http.route";
/// `http.request.resend_count` (int)
pub const HTTP_REQUEST_RESEND_COUNT: &str = "http.request.resend_count";
/// `http.request.body.size` (int)
pub const HTTP_REQUEST_BODY_SIZE: &str = "http.request.body.size";
/// `http.response.body.size` (int)
pub const HTTP_RESPONSE_BODY_SIZE: &str = "http.response.body.size";
/// Prefix of captured request headers, `http.request.header.<lowercase name>` (string[])
pub const HTTP_REQUEST_HEADER_PREFIX: &str = "http.request.header.";
/// Prefix of captured response headers, `http.response.header.<lowercase name>` (string[])
pub const HTTP_RESPONSE_HEADER_PREFIX: &str = "http.response.header.";
/// `url.full`
pub const URL_FULL: &str = "url.full";
/// `url.path`
pub const URL_PATH: &str = "url.path";
/// `url.query`
pub const URL_QUERY: &str = "url.query";
/// `url.scheme`
pub const URL_SCHEME: &str = "url.scheme";
/// `url.template`
pub const URL_TEMPLATE: &str = "url.template";
/// `server.address`
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port` (int)
pub const SERVER_PORT: &str = "server.port";
/// `client.address`
pub const CLIENT_ADDRESS: &str = "client.address";
/// `client.port` (int)
pub const CLIENT_PORT: &str = "client.port";
/// `network.peer.address`
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
/// `network.peer.port` (int)
pub const NETWORK_PEER_PORT: &str = "network.peer.port";
/// `network.protocol.name`
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
/// `network.protocol.version`
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// `network.transport`
pub const NETWORK_TRANSPORT: &str = "network.transport";
/// `user_agent.original`
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";

/// `rpc.system`
pub const RPC_SYSTEM: &str = "rpc.system";
/// `rpc.service`
pub const RPC_SERVICE: &str = "rpc.service";
/// `rpc.method`
pub const RPC_METHOD: &str = "rpc.method";
/// `rpc.grpc.status_code` (int)
pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
/// `rpc.system.name`: the newer RPC conventions' name for [`RPC_SYSTEM`]
/// (`OTEL_SEMCONV_STABILITY_OPT_IN=rpc` or `rpc/dup`).
pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
/// `rpc.response.status_code`: the newer RPC conventions' status, a string (`"OK"`,
/// `"NOT_FOUND"`), replacing [`RPC_GRPC_STATUS_CODE`]. Under the newer conventions
/// [`RPC_METHOD`] holds the fully-qualified `package.Service/Method` and `rpc.service` is gone.
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
/// Value of [`RPC_SYSTEM`] / [`RPC_SYSTEM_NAME`] for gRPC.
pub const RPC_SYSTEM_GRPC: &str = "grpc";

/// `messaging.system` (`nats`, `redis`, `rabbitmq`, `kafka`, `mqtt`, ...)
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// `messaging.operation.type`: one of the `MESSAGING_OPERATION_TYPE_*` values
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.operation.name`: the system's own verb (`publish`, `process`, `ack`, ...)
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.destination.name`
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// `messaging.destination.template`: the low-cardinality name (a wildcard subscription)
pub const MESSAGING_DESTINATION_TEMPLATE: &str = "messaging.destination.template";
/// `messaging.destination.temporary` (bool): a reply inbox, a server-named queue
pub const MESSAGING_DESTINATION_TEMPORARY: &str = "messaging.destination.temporary";
/// `messaging.destination.anonymous` (bool)
pub const MESSAGING_DESTINATION_ANONYMOUS: &str = "messaging.destination.anonymous";
/// `messaging.destination.partition.id`
pub const MESSAGING_DESTINATION_PARTITION_ID: &str = "messaging.destination.partition.id";
/// `messaging.destination.subscription.name`
pub const MESSAGING_DESTINATION_SUBSCRIPTION_NAME: &str = "messaging.destination.subscription.name";
/// `messaging.consumer.group.name`
pub const MESSAGING_CONSUMER_GROUP_NAME: &str = "messaging.consumer.group.name";
/// `messaging.client.id`
pub const MESSAGING_CLIENT_ID: &str = "messaging.client.id";
/// `messaging.message.id`
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// `messaging.message.conversation_id`
pub const MESSAGING_MESSAGE_CONVERSATION_ID: &str = "messaging.message.conversation_id";
/// `messaging.message.body.size` (int, bytes)
pub const MESSAGING_MESSAGE_BODY_SIZE: &str = "messaging.message.body.size";
/// `messaging.message.envelope.size` (int, bytes)
pub const MESSAGING_MESSAGE_ENVELOPE_SIZE: &str = "messaging.message.envelope.size";
/// `messaging.batch.message_count` (int)
pub const MESSAGING_BATCH_MESSAGE_COUNT: &str = "messaging.batch.message_count";

/// `messaging.operation.type` value: a message is created (one per message of a batch send).
pub const MESSAGING_OPERATION_TYPE_CREATE: &str = "create";
/// `messaging.operation.type` value: messages sent to the broker.
pub const MESSAGING_OPERATION_TYPE_SEND: &str = "send";
/// `messaging.operation.type` value: messages pulled by the consumer.
pub const MESSAGING_OPERATION_TYPE_RECEIVE: &str = "receive";
/// `messaging.operation.type` value: messages processed by a handler.
pub const MESSAGING_OPERATION_TYPE_PROCESS: &str = "process";
/// `messaging.operation.type` value: messages settled (ack, nak, ...).
pub const MESSAGING_OPERATION_TYPE_SETTLE: &str = "settle";

/// Not in the conventions (which have only system-specific delivery counts such as
/// `messaging.servicebus.message.delivery_count`): `messaging.message.delivery_count` (int),
/// the delivery attempt of a consumed message, 1 for the first delivery.
pub const MESSAGING_MESSAGE_DELIVERY_COUNT: &str = "messaging.message.delivery_count";
/// Not in the conventions (which have no queue-time attribute):
/// `messaging.message.queue_time_ms` (int), milliseconds from the broker's publish timestamp
/// to the start of processing (clamped at 0 when clocks disagree).
pub const MESSAGING_MESSAGE_QUEUE_TIME_MS: &str = "messaging.message.queue_time_ms";
/// Not in the conventions: `messaging.settlement`, the verb that settled a processed message
/// (`ack`, `nak`, `term`, `reject`, ...), on its process span.
pub const MESSAGING_SETTLEMENT: &str = "messaging.settlement";

/// NATS (the conventions have no NATS attributes yet; these follow the names proposed for
/// them): `messaging.nats.stream`, the JetStream stream of a published or consumed message.
pub const MESSAGING_NATS_STREAM: &str = "messaging.nats.stream";
/// `messaging.nats.stream.sequence` (int): the message's sequence in its stream.
pub const MESSAGING_NATS_STREAM_SEQUENCE: &str = "messaging.nats.stream.sequence";
/// `messaging.nats.consumer.sequence` (int): the delivery's sequence in its consumer.
pub const MESSAGING_NATS_CONSUMER_SEQUENCE: &str = "messaging.nats.consumer.sequence";
/// `messaging.nats.duplicate` (bool): JetStream dropped the publish as a duplicate of an
/// earlier `Nats-Msg-Id`.
pub const MESSAGING_NATS_DUPLICATE: &str = "messaging.nats.duplicate";

/// Kafka: `messaging.kafka.offset` (int), the offset of a record in its partition (on process
/// spans, and on send spans once the delivery report gives it).
pub const MESSAGING_KAFKA_OFFSET: &str = "messaging.kafka.offset";
/// `messaging.kafka.message.key`: the record's key, when it is text.
pub const MESSAGING_KAFKA_MESSAGE_KEY: &str = "messaging.kafka.message.key";
/// `messaging.kafka.message.tombstone` (bool): the record has no value (a tombstone);
/// recorded only when true.
pub const MESSAGING_KAFKA_MESSAGE_TOMBSTONE: &str = "messaging.kafka.message.tombstone";

/// RabbitMQ (semconv): `messaging.rabbitmq.destination.routing_key`, the routing key of a
/// published or consumed message (set when not empty).
pub const MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY: &str =
    "messaging.rabbitmq.destination.routing_key";
/// RabbitMQ (semconv): `messaging.rabbitmq.message.delivery_tag` (int), the delivery's tag on
/// its channel.
pub const MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG: &str = "messaging.rabbitmq.message.delivery_tag";
/// Not in the conventions: `messaging.rabbitmq.message.redelivered` (bool), AMQP's
/// `redelivered` flag — the message was delivered before (set when true; the attempt itself is
/// [`MESSAGING_MESSAGE_DELIVERY_COUNT`] when the queue counts, as quorum queues do).
pub const MESSAGING_RABBITMQ_MESSAGE_REDELIVERED: &str = "messaging.rabbitmq.message.redelivered";
/// Not in the conventions: `messaging.rabbitmq.requeue` (bool), whether a `nack` or `reject`
/// settlement asked the broker to requeue the message.
pub const MESSAGING_RABBITMQ_REQUEUE: &str = "messaging.rabbitmq.requeue";

/// MQTT (the conventions have no MQTT attributes yet): `messaging.mqtt.qos` (int), the QoS of
/// a publish (0, 1, 2), or of a delivery (the lower of the publish's and the subscription's).
pub const MESSAGING_MQTT_QOS: &str = "messaging.mqtt.qos";
/// `messaging.mqtt.retain` (bool): a publish asks the broker to retain the message, or a
/// delivery comes from the broker's retained store (set when true).
pub const MESSAGING_MQTT_RETAIN: &str = "messaging.mqtt.retain";
/// `messaging.mqtt.duplicate` (bool): the delivery's DUP flag — the broker sends it again, an
/// earlier attempt unacknowledged (set when true).
pub const MESSAGING_MQTT_DUPLICATE: &str = "messaging.mqtt.duplicate";

/// Older name (semconv ≤ 1.25, still emitted by FastStream) of `messaging.operation.type`,
/// with the values `publish`, `receive`, `process`. Written only under
/// `OTEL_SEMCONV_STABILITY_OPT_IN=messaging/dup`.
pub const MESSAGING_OPERATION_LEGACY: &str = "messaging.operation";
/// Older name (semconv 1.22–1.26, FastStream): the concrete destination on a consumer span.
pub const MESSAGING_DESTINATION_PUBLISH_NAME_LEGACY: &str = "messaging.destination_publish.name";
/// Older name (semconv ≤ 1.21, FastStream) of `messaging.message.body.size`.
pub const MESSAGING_MESSAGE_PAYLOAD_SIZE_BYTES_LEGACY: &str =
    "messaging.message.payload_size_bytes";
/// Older name (semconv ≤ 1.25) of `messaging.client.id`.
pub const MESSAGING_CLIENT_ID_LEGACY: &str = "messaging.client_id";

/// The wire type of an attribute value. fastrace properties are strings; exporters use
/// [`value_type`] to send typed values (an `int` that does not parse is sent as a string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// A string (the default).
    String,
    /// A signed 64-bit integer.
    Int,
    /// A 64-bit float.
    Double,
    /// A boolean (`true`/`false`).
    Bool,
    /// An array of strings, recorded as a JSON array (`["a","b"]`).
    StringArray,
}

/// Suffix that marks a user property as typed: a key ending in `:int`, `:double`, `:bool` or
/// `:string[]` is exported under the key without the suffix, with that type — e.g.
/// `("retries:int", "3")` becomes the integer attribute `retries = 3`. See [`typed_key`].
pub const TYPE_SUFFIXES: [(&str, ValueType); 4] = [
    (":int", ValueType::Int),
    (":double", ValueType::Double),
    (":bool", ValueType::Bool),
    (":string[]", ValueType::StringArray),
];

/// **The one table of attribute types**: the type of a semantic-convention key, or of a user
/// key carrying a [type suffix](TYPE_SUFFIXES). Returns the key to export and its type.
pub fn typed_key(key: &str) -> (&str, ValueType) {
    for (suffix, ty) in TYPE_SUFFIXES {
        if let Some(base) = key.strip_suffix(suffix) {
            return (base, ty);
        }
    }
    (key, value_type(key))
}

/// The type of a semantic-convention key (`String` for keys not in the table).
pub fn value_type(key: &str) -> ValueType {
    match key {
        HTTP_RESPONSE_STATUS_CODE
        | HTTP_REQUEST_RESEND_COUNT
        | HTTP_REQUEST_BODY_SIZE
        | HTTP_RESPONSE_BODY_SIZE
        | SERVER_PORT
        | CLIENT_PORT
        | NETWORK_PEER_PORT
        | RPC_GRPC_STATUS_CODE
        | MESSAGING_BATCH_MESSAGE_COUNT
        | MESSAGING_MESSAGE_BODY_SIZE
        | MESSAGING_MESSAGE_ENVELOPE_SIZE
        | MESSAGING_MESSAGE_DELIVERY_COUNT
        | MESSAGING_MESSAGE_QUEUE_TIME_MS
        | MESSAGING_MESSAGE_PAYLOAD_SIZE_BYTES_LEGACY
        | MESSAGING_NATS_STREAM_SEQUENCE
        | MESSAGING_NATS_CONSUMER_SEQUENCE
        | MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG
        | MESSAGING_MQTT_QOS
        | "process.pid"
        | "thread.id"
        | "code.lineno"
        | "code.line.number"
        | MESSAGING_KAFKA_OFFSET => ValueType::Int,
        "exception.escaped"
        | MESSAGING_DESTINATION_TEMPORARY
        | MESSAGING_DESTINATION_ANONYMOUS
        | MESSAGING_NATS_DUPLICATE
        | MESSAGING_RABBITMQ_MESSAGE_REDELIVERED
        | MESSAGING_RABBITMQ_REQUEUE
        | MESSAGING_MQTT_RETAIN
        | MESSAGING_MQTT_DUPLICATE
        | MESSAGING_KAFKA_MESSAGE_TOMBSTONE => ValueType::Bool,
        k if k.starts_with(HTTP_REQUEST_HEADER_PREFIX)
            || k.starts_with(HTTP_RESPONSE_HEADER_PREFIX) =>
        {
            ValueType::StringArray
        }
        _ => ValueType::String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_keys() {
        assert_eq!(
            typed_key("http.response.status_code"),
            ("http.response.status_code", ValueType::Int)
        );
        assert_eq!(typed_key("retries:int"), ("retries", ValueType::Int));
        assert_eq!(typed_key("ratio:double"), ("ratio", ValueType::Double));
        assert_eq!(typed_key("cached:bool"), ("cached", ValueType::Bool));
        assert_eq!(typed_key("tags:string[]"), ("tags", ValueType::StringArray));
        assert_eq!(
            typed_key("http.request.header.x-id"),
            ("http.request.header.x-id", ValueType::StringArray)
        );
        assert_eq!(typed_key("user.id"), ("user.id", ValueType::String));
    }
}
