//! Helpers to record exceptions and typed values on fastrace spans.

use std::borrow::Cow;

use fastrace::{Event, Span};
use tracewire_core::span;

/// An `exception` event (OpenTelemetry semantic conventions) for `error`: `exception.type`
/// is `type_name`, `exception.message` the error's `Display`. Exporters send it as a span
/// event (OTLP) or an annotation (Zipkin).
///
/// ```
/// use fastrace::Span;
/// let err = std::io::Error::other("disk full");
/// let span = Span::noop();
/// span.add_event(tracewire_export::event::exception("std::io::Error", &err));
/// ```
pub fn exception(type_name: &str, error: &dyn std::fmt::Display) -> Event {
    span::exception_event(type_name.to_owned(), error.to_string())
}

/// Records `error` on a span you hold yourself: an `exception` event, status `ERROR` with the
/// message as description, and `error.type` — what
/// [`PendingSpan::record_exception`](tracewire_core::PendingSpan::record_exception) records on
/// the spans of the integrations.
pub fn record_error(span: &Span, type_name: &str, error: &dyn std::fmt::Display) {
    let msg = error.to_string();
    span.add_event(span::exception_event(type_name.to_owned(), msg.clone()));
    let ty = type_name.to_owned();
    span.add_properties(move || span::error_attributes(Cow::Owned(ty), Cow::Owned(msg)));
}

/// Typed property helpers: fastrace properties are strings, so typed values are recorded
/// under a key with a type suffix ([`semconv::TYPE_SUFFIXES`](tracewire_core::semconv::TYPE_SUFFIXES)) that the mapping strips.
///
/// ```
/// use tracewire_export::event::typed;
/// assert_eq!(typed::int("retries", 3), ("retries:int".to_string(), "3".to_string()));
/// assert_eq!(typed::string_array("tags", ["a", "b"]).1, r#"["a","b"]"#);
/// ```
pub mod typed {
    /// `(key:int, value)`.
    pub fn int(key: &str, value: i64) -> (String, String) {
        (format!("{key}:int"), value.to_string())
    }
    /// `(key:double, value)`.
    pub fn double(key: &str, value: f64) -> (String, String) {
        (format!("{key}:double"), value.to_string())
    }
    /// `(key:bool, value)`.
    pub fn bool(key: &str, value: bool) -> (String, String) {
        (format!("{key}:bool"), value.to_string())
    }
    /// `(key:string[], JSON array)`.
    pub fn string_array<S: AsRef<str>>(
        key: &str,
        values: impl IntoIterator<Item = S>,
    ) -> (String, String) {
        let values: Vec<String> = values.into_iter().map(|s| s.as_ref().to_owned()).collect();
        (
            format!("{key}:string[]"),
            serde_json::to_string(&values).unwrap_or_else(|_| "[]".to_owned()),
        )
    }
}
