//! Search queries: span filters, trace filters, and the duration syntax of the query APIs.

use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use crate::span::StoredSpan;
use crate::util;

/// Status a span must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Status ERROR.
    Error,
    /// Status OK.
    Ok,
    /// Status UNSET.
    Unset,
}

impl std::str::FromStr for StatusFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(StatusFilter::Error),
            "ok" => Ok(StatusFilter::Ok),
            "unset" => Ok(StatusFilter::Unset),
            other => Err(format!("status must be error, ok or unset, not {other:?}")),
        }
    }
}

/// Conditions on one span. A trace matches when **one of its spans** meets all of them (the
/// rule of Jaeger's and Zipkin's own stores).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanFilter {
    /// `service.name` of the span's resource.
    pub service: Option<String>,
    /// Span name.
    pub name: Option<String>,
    /// Compare the name ignoring ASCII case (Zipkin lowercases names).
    pub name_ignore_case: bool,
    /// Span status.
    pub status: Option<StatusFilter>,
    /// Minimum span duration, ns.
    pub min_duration_ns: Option<u64>,
    /// Maximum span duration, ns.
    pub max_duration_ns: Option<u64>,
    /// The span starts at or after this time (ns since the epoch): Jaeger's `start`, which
    /// bounds the start of the matching span, not the trace.
    pub start_min_ns: Option<u64>,
    /// The span starts at or before this time (ns since the epoch): Jaeger's `end`.
    pub start_max_ns: Option<u64>,
    /// `key=value` (value `None`: the key exists, or an event has that name). Span attributes
    /// first, then the scope's, the resource's and the events' attributes (where Jaeger's stores
    /// look: a log field is a tag too); `error`, `span.kind`, `otel.status_code`,
    /// `otel.status_description` and `otel.scope.name` match the span's fields.
    pub attributes: Vec<(String, Option<String>)>,
}

impl SpanFilter {
    /// Whether the filter has no condition.
    pub fn is_empty(&self) -> bool {
        self.service.is_none()
            && self.name.is_none()
            && self.status.is_none()
            && self.min_duration_ns.is_none()
            && self.max_duration_ns.is_none()
            && self.start_min_ns.is_none()
            && self.start_max_ns.is_none()
            && self.attributes.is_empty()
    }

    /// Whether `s` meets every condition (`service_id` is the interned service, when known).
    pub(crate) fn matches(&self, s: &StoredSpan, service_id: Option<u32>) -> bool {
        if let Some(id) = service_id {
            if s.origin.service_id() != id {
                return false;
            }
        } else if let Some(svc) = &self.service {
            if &*s.origin.service != svc.as_str() {
                return false;
            }
        }
        if let Some(name) = &self.name {
            let ok = if self.name_ignore_case {
                s.span.name.eq_ignore_ascii_case(name)
            } else {
                s.span.name == *name
            };
            if !ok {
                return false;
            }
        }
        if let Some(st) = self.status {
            let code = util::status_code(&s.span);
            let want = match st {
                StatusFilter::Error => StatusCode::Error,
                StatusFilter::Ok => StatusCode::Ok,
                StatusFilter::Unset => StatusCode::Unset,
            };
            if code != want {
                return false;
            }
        }
        let start = s.span.start_time_unix_nano;
        if self.start_min_ns.is_some_and(|m| start < m)
            || self.start_max_ns.is_some_and(|m| start > m)
        {
            return false;
        }
        let d = s.duration_ns();
        if self.min_duration_ns.is_some_and(|m| d < m)
            || self.max_duration_ns.is_some_and(|m| d > m)
        {
            return false;
        }
        self.attributes
            .iter()
            .all(|(k, v)| attribute_matches(s, k, v.as_deref()))
    }
}

/// Keys matched against span fields rather than attributes.
pub(crate) fn is_special_key(key: &str) -> bool {
    matches!(
        key,
        "error" | "span.kind" | "otel.status_code" | "otel.status_description" | "otel.scope.name"
    )
}

fn attribute_matches(s: &StoredSpan, key: &str, value: Option<&str>) -> bool {
    let special: Option<String> = match key {
        "error" => {
            if !util::is_error(&s.span) {
                return false;
            }
            return value.is_none_or(|v| v == "true" || v.is_empty());
        }
        "span.kind" => Some(util::kind_name(s.span.kind).to_owned()),
        "otel.status_code" => Some(util::status_name(util::status_code(&s.span)).to_owned()),
        "otel.status_description" => s.span.status.as_ref().map(|st| st.message.clone()),
        "otel.scope.name" => Some(s.origin.scope.name.clone()),
        _ => None,
    };
    if let Some(actual) = special {
        return value.is_none_or(|v| v == actual);
    }
    // the first attribute of each list with the key decides for that list (as Jaeger's stores)
    let lists = [
        &s.span.attributes,
        &s.origin.scope.attributes,
        &s.origin.resource.attributes,
    ]
    .into_iter()
    .chain(s.span.events.iter().map(|e| &e.attributes));
    for list in lists {
        if let Some(kv) = list.iter().find(|kv| kv.key == key) {
            match value {
                None => return true,
                Some(v) if kv.value.as_ref().is_some_and(|x| util::value_eq(x, v)) => return true,
                Some(_) => {}
            }
        }
    }
    // a key alone also names an event
    value.is_none() && s.span.events.iter().any(|e| e.name == key)
}

/// A trace search.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Conditions one span of the trace must meet.
    pub span: SpanFilter,
    /// Case-insensitive text that must occur in a span name, service, attribute key or value,
    /// event name or attribute value, or status message of the trace.
    pub text: Option<String>,
    /// The trace must end at or after this time (ns since the epoch).
    pub start_ns: Option<u64>,
    /// The trace must start at or before this time (ns since the epoch).
    pub end_ns: Option<u64>,
    /// Minimum trace duration (earliest start to latest end), ns.
    pub min_trace_duration_ns: Option<u64>,
    /// Maximum trace duration, ns.
    pub max_trace_duration_ns: Option<u64>,
    /// At most this many traces (0: no limit).
    pub limit: usize,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            span: SpanFilter::default(),
            text: None,
            start_ns: None,
            end_ns: None,
            min_trace_duration_ns: None,
            max_trace_duration_ns: None,
            limit: 20,
        }
    }
}

fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle_lower.as_bytes());
    let Some((&first, rest)) = n.split_first() else {
        return true;
    };
    if n.len() > h.len() {
        return false;
    }
    if hay.is_ascii() && needle_lower.is_ascii() {
        let last = h.len() - n.len();
        let mut i = 0;
        while i <= last {
            // scan for the first byte, then compare the rest
            if h[i].to_ascii_lowercase() == first
                && h[i + 1..i + n.len()].eq_ignore_ascii_case(rest)
            {
                return true;
            }
            i += 1;
        }
        return false;
    }
    hay.to_lowercase().contains(needle_lower)
}

/// Whether an attribute value contains the lowercase `text` (no allocation for strings; other
/// scalars are only rendered when `text` could occur in their rendering).
fn value_contains(v: &AnyValue, text: &str, numeric: bool) -> bool {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match &v.value {
        Some(Value::StringValue(s)) => contains_ci(s, text),
        Some(Value::IntValue(_)) | Some(Value::DoubleValue(_)) if !numeric => false,
        Some(Value::BoolValue(b)) => contains_ci(if *b { "true" } else { "false" }, text),
        None => false,
        Some(_) => contains_ci(&util::value_text(v), text),
    }
}

/// Whether the lowercase `text` occurs in the span (name, service, attribute keys and values,
/// event names and attribute values, status message, span id).
pub(crate) fn contains_text(s: &StoredSpan, text: &str) -> bool {
    let numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'e' || b == b'+');
    let hexlike = text.len() <= 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
    contains_ci(&s.span.name, text)
        || contains_ci(&s.origin.service, text)
        || s.span.attributes.iter().any(|kv| {
            contains_ci(&kv.key, text)
                || kv
                    .value
                    .as_ref()
                    .is_some_and(|v| value_contains(v, text, numeric))
        })
        || s.span.events.iter().any(|e| {
            contains_ci(&e.name, text)
                || e.attributes.iter().any(|kv| {
                    kv.value
                        .as_ref()
                        .is_some_and(|v| value_contains(v, text, numeric))
                })
        })
        || s.span
            .status
            .as_ref()
            .is_some_and(|st| contains_ci(&st.message, text))
        || (hexlike && contains_ci(&util::hex(&s.span.span_id), text))
}

/// Parses a duration: a number with a unit `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` (Go syntax, as
/// Jaeger takes it; fractions allowed), or a bare number in `default_unit_ns` units. Returns ns.
pub fn parse_duration(s: &str, default_unit_ns: f64) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 1.5ms, 200us, 2s)"))?;
    let mult = match unit.trim() {
        "" => default_unit_ns,
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(v as u64)
}

/// Parses `key=value` pairs separated by spaces or ` and ` (`http.method=GET error`); a term
/// without `=` means "the key exists".
pub fn parse_terms(s: &str) -> Vec<(String, Option<String>)> {
    s.split(" and ")
        .flat_map(|part| part.split_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (t.to_owned(), None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5ms", 1e3).unwrap(), 1_500_000);
        assert_eq!(parse_duration("200us", 1e3).unwrap(), 200_000);
        assert_eq!(parse_duration("2s", 1e3).unwrap(), 2_000_000_000);
        assert_eq!(parse_duration("300", 1e3).unwrap(), 300_000);
        assert!(parse_duration("abc", 1.0).is_err());
        assert!(parse_duration("1parsec", 1.0).is_err());
    }

    #[test]
    fn terms() {
        assert_eq!(
            parse_terms("http.method=GET and error"),
            vec![
                ("http.method".to_owned(), Some("GET".to_owned())),
                ("error".to_owned(), None)
            ]
        );
    }

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_ci("Hello World", "world"));
        assert!(!contains_ci("Hello", "xyz"));
        assert!(contains_ci("ÉCOLE", "école"));
        assert!(contains_ci("abc", ""));
        assert!(contains_ci("xxABCab", "abcab"));
        assert!(!contains_ci("ab", "abc"));
    }
}
