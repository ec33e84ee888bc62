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
/// Reserved: the typed value marker prefix. A property `tracewire.type.<key>` with value
/// `int`, `double`, `bool` or `string[]` (JSON array) tells exporters the type of `<key>`.
pub const TRACEWIRE_TYPE_PREFIX: &str = "tracewire.type.";
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
