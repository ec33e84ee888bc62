//! Attribute keys and the property conventions tracewire writes onto fastrace spans.
//!
//! fastrace properties are string pairs. tracewire encodes what fastrace has no field for
//! (span kind, status, the remote-parent flag, W3C trace flags and `tracestate`) as properties
//! with the reserved keys below. Exporters read them back and map them to the real fields of
//! their wire format, and never export the `tracewire.*` keys themselves as attributes.
//!
//! Integrations take every key from here: no attribute key is a string literal elsewhere.

/// Span kind: one of [`SpanKind::as_str`](crate::SpanKind::as_str) (`server`, `client`,
/// `producer`, `consumer`, `internal`). Absent means `internal`.
pub const SPAN_KIND: &str = "span.kind";
/// Span status code: `OK` or `ERROR` (absent = `UNSET`), as in the OpenTelemetry API.
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// Span status description; only meaningful with `ERROR`.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";
/// Status code value for an error.
pub const STATUS_ERROR: &str = "ERROR";
/// Status code value for an explicit OK.
pub const STATUS_OK: &str = "OK";

/// Reserved: present (`"true"`) when the span's parent came from another process.
pub const TRACEWIRE_PARENT_REMOTE: &str = "tracewire.parent.remote";
/// Reserved: the W3C trace flags of the span as two lowercase hex digits (`"01"`, `"03"`).
pub const TRACEWIRE_TRACE_FLAGS: &str = "tracewire.trace_flags";
/// Reserved: the validated W3C `tracestate` of the span, when not empty.
pub const TRACEWIRE_TRACE_STATE: &str = "tracewire.tracestate";
/// Prefix shared by every reserved key; exporters skip properties that start with it.
pub const TRACEWIRE_RESERVED_PREFIX: &str = "tracewire.";

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

/// `messaging.system`
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// `messaging.destination.name`
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// `messaging.operation.type`
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.operation.name`
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.message.id`
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// `messaging.batch.message_count` (int)
pub const MESSAGING_BATCH_MESSAGE_COUNT: &str = "messaging.batch.message_count";
/// `messaging.message.body.size` (int)
pub const MESSAGING_MESSAGE_BODY_SIZE: &str = "messaging.message.body.size";

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
        | "process.pid"
        | "thread.id"
        | "code.lineno"
        | "code.line.number"
        | "messaging.kafka.offset" => ValueType::Int,
        "exception.escaped" => ValueType::Bool,
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
