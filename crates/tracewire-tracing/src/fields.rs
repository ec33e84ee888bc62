//! `tracing` field values → fastrace properties with their types, and the `otel.*` fields that
//! name, kind and status a span.
//!
//! | `tracing` value | property | exported as |
//! |---|---|---|
//! | `i64`, `u64`/`i128`/`u128` that fit in `i64` | `name:int` | int |
//! | `u64`/`i128`/`u128` beyond `i64` | `name` | string (decimal) |
//! | `f64` | `name:double` | double |
//! | `bool` | `name:bool` | bool |
//! | `&str`, `Display` (`%x`), `Debug` (`?x`), `&dyn Error` | `name` | string |
//!
//! A key the conventions already type (`http.response.status_code`) carries no suffix.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracewire_core::SpanKind;
use tracewire_core::intern;
use tracewire_core::semconv::{self, ValueType};
use tracewire_core::span::Attribute;
use tracing_core::field::{Field, Visit};

use crate::keys;

/// `otel.name`: the span's name (instead of the callsite's).
pub const OTEL_NAME: &str = "otel.name";
/// `otel.kind`: `server`, `client`, `producer`, `consumer` or `internal` (any case).
pub const OTEL_KIND: &str = "otel.kind";
/// `otel.status_code`: `OK` or `ERROR` (any case; anything else leaves the status unset).
pub const OTEL_STATUS_CODE: &str = semconv::OTEL_STATUS_CODE;
/// `otel.status_description`: the status description (exported with an `ERROR` status).
pub const OTEL_STATUS_DESCRIPTION: &str = semconv::OTEL_STATUS_DESCRIPTION;
/// The field of an event that carries an error (`#[instrument(err)]` writes it).
pub const ERROR: &str = "error";
/// The field of an event that carries its text.
pub const MESSAGE: &str = "message";

fn int(name: &'static str, v: i64) -> Attribute {
    let value = match u64::try_from(v) {
        Ok(u) => intern::number(u),
        Err(_) => Cow::Owned(v.to_string()),
    };
    (keys::typed(name, ValueType::Int), value)
}

fn wide(name: &'static str, v: i128) -> Attribute {
    match i64::try_from(v) {
        Ok(v) => int(name, v),
        Err(_) => (Cow::Borrowed(name), Cow::Owned(v.to_string())),
    }
}

fn double(name: &'static str, v: f64) -> Attribute {
    (
        keys::typed(name, ValueType::Double),
        Cow::Owned(v.to_string()),
    )
}

fn boolean(name: &'static str, v: bool) -> Attribute {
    let value = if v { "true" } else { "false" };
    (keys::typed(name, ValueType::Bool), Cow::Borrowed(value))
}

fn debug_string(value: &dyn fmt::Debug) -> String {
    let mut s = String::new();
    let _ = write!(s, "{value:?}");
    s
}

/// What a span's fields say: attributes, and the `otel.*` fields.
#[derive(Debug, Default)]
pub(crate) struct SpanFields {
    pub(crate) attributes: Vec<Attribute>,
    pub(crate) name: Option<String>,
    pub(crate) kind: Option<SpanKind>,
    /// `OK` or `ERROR`.
    pub(crate) status: Option<&'static str>,
    pub(crate) description: Option<String>,
}

impl SpanFields {
    fn text(&mut self, name: &'static str, value: String) {
        match name {
            OTEL_NAME => self.name = Some(value),
            OTEL_KIND => self.kind = SpanKind::parse(value.trim()),
            OTEL_STATUS_CODE => {
                let v = value.trim();
                if v.eq_ignore_ascii_case(semconv::STATUS_ERROR) {
                    self.status = Some(semconv::STATUS_ERROR);
                } else if v.eq_ignore_ascii_case(semconv::STATUS_OK) {
                    self.status = Some(semconv::STATUS_OK);
                }
            }
            OTEL_STATUS_DESCRIPTION => self.description = Some(value),
            _ => self
                .attributes
                .push((Cow::Borrowed(name), Cow::Owned(value))),
        }
    }

    /// The status properties (code, then description), if any field set them.
    pub(crate) fn status_attributes(&mut self) -> impl Iterator<Item = Attribute> + use<> {
        let code = self
            .status
            .take()
            .map(|c| (Cow::Borrowed(OTEL_STATUS_CODE), Cow::Borrowed(c)));
        let description = self
            .description
            .take()
            .map(|d| (Cow::Borrowed(OTEL_STATUS_DESCRIPTION), Cow::Owned(d)));
        code.into_iter().chain(description)
    }
}

impl Visit for SpanFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(int(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes.push(wide(field.name(), i128::from(value)));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.attributes.push(wide(field.name(), value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match i128::try_from(value) {
            Ok(v) => self.attributes.push(wide(field.name(), v)),
            Err(_) => self.text(field.name(), value.to_string()),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(double(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(boolean(field.name(), value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field.name(), value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field.name(), debug_string(value));
    }
}

/// What an event's fields say: its message, an error it carries, the other fields as
/// attributes.
#[derive(Debug, Default)]
pub(crate) struct EventFields {
    pub(crate) attributes: Vec<Attribute>,
    pub(crate) message: Option<String>,
    /// The `error` field, or any `&dyn Error` value.
    pub(crate) error: Option<String>,
}

impl EventFields {
    fn text(&mut self, name: &'static str, value: String) {
        match name {
            MESSAGE => self.message = Some(value),
            ERROR => self.error = Some(value),
            _ => self
                .attributes
                .push((Cow::Borrowed(name), Cow::Owned(value))),
        }
    }
}

impl Visit for EventFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(int(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes.push(wide(field.name(), i128::from(value)));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.attributes.push(wide(field.name(), value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match i128::try_from(value) {
            Ok(v) => self.attributes.push(wide(field.name(), v)),
            Err(_) => self.text(field.name(), value.to_string()),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(double(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(boolean(field.name(), value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field.name(), value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.error.is_none() {
            self.error = Some(value.to_string());
            if field.name() == ERROR {
                return;
            }
        }
        self.text(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field.name(), debug_string(value));
    }
}
