//! Small helpers shared by the store, the receivers and the query APIs.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};

/// The resource attribute naming the service.
pub(crate) const SERVICE_NAME: &str = "service.name";
/// Service name used when a resource has none (OTel SDK convention).
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parses hex (any case) into bytes; `None` on odd length or a non-hex digit.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.chunks(2)
        .map(|p| Some((nib(p[0])? << 4) | nib(p[1])?))
        .collect()
}

/// Parses a trace id given as 32 (or, Zipkin/Jaeger style, 16) hex digits.
pub(crate) fn parse_trace_id(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let padded = format!("{s:0>32}");
    let v = unhex(&padded)?;
    v.try_into().ok()
}

/// The trace id of a span as a fixed array; `None` when it is not 16 bytes or all zero.
pub(crate) fn trace_id_of(span: &Span) -> Option<[u8; 16]> {
    let id: [u8; 16] = span.trace_id.as_slice().try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

/// Whether `id` is empty or all zero (no parent).
pub(crate) fn is_empty_id(id: &[u8]) -> bool {
    id.iter().all(|b| *b == 0)
}

/// The `service.name` of a resource.
pub(crate) fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == SERVICE_NAME))
        .and_then(|kv| kv.value.as_ref())
        .map(value_text)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned())
}

/// The text of an attribute value (strings as is, arrays/maps as JSON).
pub(crate) fn value_text(v: &AnyValue) -> String {
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        Some(_) => serde_json::to_string(&JsonValue(v)).unwrap_or_default(),
        None => String::new(),
    }
}

/// Whether the value's text equals `want`, without allocating for scalars.
pub(crate) fn value_eq(v: &AnyValue, want: &str) -> bool {
    match &v.value {
        Some(Value::StringValue(s)) => s == want,
        Some(Value::BoolValue(b)) => want.parse::<bool>().is_ok_and(|w| w == *b),
        Some(Value::IntValue(i)) => want.parse::<i64>().is_ok_and(|w| w == *i),
        Some(Value::DoubleValue(d)) => want.parse::<f64>().is_ok_and(|w| w == *d),
        _ => value_text(v) == want,
    }
}

/// An attribute value as plain JSON (`"x"`, `1`, `true`, `[..]`, `{..}`), serialized
/// straight to the output (no intermediate `serde_json::Value` tree).
pub(crate) struct JsonValue<'a>(pub(crate) &'a AnyValue);

impl serde::Serialize for JsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match &self.0.value {
            Some(Value::StringValue(v)) => s.serialize_str(v),
            Some(Value::BoolValue(b)) => s.serialize_bool(*b),
            Some(Value::IntValue(i)) => s.serialize_i64(*i),
            Some(Value::DoubleValue(d)) if d.is_finite() => s.serialize_f64(*d),
            Some(Value::DoubleValue(d)) => s.serialize_str(&d.to_string()),
            Some(Value::BytesValue(b)) => s.serialize_str(&hex(b)),
            Some(Value::ArrayValue(a)) => {
                let mut seq = s.serialize_seq(Some(a.values.len()))?;
                for v in &a.values {
                    seq.serialize_element(&JsonValue(v))?;
                }
                seq.end()
            }
            Some(Value::StringValueStrindex(i)) => s.serialize_i32(*i),
            Some(Value::KvlistValue(l)) => {
                let mut map = s.serialize_map(Some(l.values.len()))?;
                for kv in &l.values {
                    map.serialize_entry(&kv.key, &kv.value.as_ref().map(JsonValue))?;
                }
                map.end()
            }
            None => s.serialize_unit(),
        }
    }
}

/// A type name for an attribute value (`string`, `bool`, `int`, `double`, `bytes`, `array`, `map`).
pub(crate) fn value_type(v: &AnyValue) -> &'static str {
    match &v.value {
        Some(Value::StringValue(_)) | None => "string",
        Some(Value::BoolValue(_)) => "bool",
        Some(Value::IntValue(_)) => "int",
        Some(Value::DoubleValue(_)) => "double",
        Some(Value::BytesValue(_)) => "bytes",
        Some(Value::ArrayValue(_)) => "array",
        Some(Value::KvlistValue(_)) => "map",
        Some(Value::StringValueStrindex(_)) => "int",
    }
}

/// A string attribute.
pub(crate) fn kv_str(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The lowercase name of a span kind (`server`, `client`, ..., `internal`, `unspecified`).
pub(crate) fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Ok(SpanKind::Internal) => "internal",
        _ => "unspecified",
    }
}

/// The status code of a span.
pub(crate) fn status_code(span: &Span) -> StatusCode {
    span.status
        .as_ref()
        .and_then(|s| StatusCode::try_from(s.code).ok())
        .unwrap_or(StatusCode::Unset)
}

/// The status name (`UNSET`, `OK`, `ERROR`).
pub(crate) fn status_name(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Ok => "OK",
        StatusCode::Error => "ERROR",
        StatusCode::Unset => "UNSET",
    }
}

/// Whether the span is an error (status ERROR).
pub(crate) fn is_error(span: &Span) -> bool {
    status_code(span) == StatusCode::Error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex("0001ABff").as_deref(), Some(&b[..]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn short_trace_ids_are_left_padded() {
        let id = parse_trace_id("463ac35c9f6413ad").map(|i| hex(&i));
        assert_eq!(id.as_deref(), Some("0000000000000000463ac35c9f6413ad"));
        assert_eq!(parse_trace_id(""), None);
        assert_eq!(parse_trace_id(&"1".repeat(33)), None);
    }
}
