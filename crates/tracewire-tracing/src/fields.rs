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
use tracewire_core::intern::{self, Decimal};
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

/// A `u64`: an int when it fits in `i64` (its text read from the small-number table or written
/// digit by digit), else its decimal string.
fn unsigned(name: &'static str, v: u64) -> Attribute {
    if i64::try_from(v).is_ok() {
        (keys::typed(name, ValueType::Int), intern::number(v))
    } else {
        (Cow::Borrowed(name), intern::number(v))
    }
}

fn wide(name: &'static str, v: i128) -> Attribute {
    match i64::try_from(v) {
        Ok(v) => int(name, v),
        Err(_) => (Cow::Borrowed(name), Cow::Owned(v.to_string())),
    }
}

fn double(name: &'static str, v: f64) -> Attribute {
    let value = match short_decimal(v) {
        Some(s) => s,
        None => v.to_string(),
    };
    (keys::typed(name, ValueType::Double), Cow::Owned(value))
}

/// `10^k` for the fractional digits [`short_decimal`] tries, as `f64` and as `u64`.
const POW10: [(f64, u64); 7] = [
    (1.0, 1),
    (1e1, 10),
    (1e2, 100),
    (1e3, 1_000),
    (1e4, 10_000),
    (1e5, 100_000),
    (1e6, 1_000_000),
];

/// The text of `v` when it is a decimal with at most 6 fractional digits whose digits, as one
/// integer, stay below 2^53 (`24.5`, `0.25`, `3.0`): written as two integers, without the
/// shortest-digits search of `Display` (~900 instructions). `None` for anything else, which
/// `Display` writes.
///
/// Exact: `n` and `10^k` are integers that `f64` holds exactly, so `n / 10^k` is the double
/// nearest to the decimal `n / 10^k` — the one the text reads back as; it is returned only
/// when that is `v` itself.
fn short_decimal(v: f64) -> Option<String> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    for (k, &(p, pi)) in POW10.iter().enumerate() {
        let scaled = v * p;
        if scaled.fract() != 0.0 || scaled.abs() >= LIMIT {
            continue;
        }
        if scaled / p != v {
            return None;
        }
        // An integer below 2^53: the conversion is exact.
        #[allow(clippy::cast_possible_truncation)]
        let n = scaled.abs() as u64;
        let (int, frac) = (n / pi, n % pi);
        let mut s = String::with_capacity(24);
        if v < 0.0 {
            s.push('-');
        }
        s.push_str(Decimal::new(int, 1).as_str());
        s.push('.');
        if k == 0 {
            s.push('0');
        } else {
            s.push_str(Decimal::new(frac, k).as_str());
        }
        return Some(s);
    }
    None
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

/// The `Visit` methods both field readers share: typed values become typed attributes, text
/// goes through the reader's own `text` (which picks out the fields it treats apart).
macro_rules! typed_visits {
    () => {
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.attributes.push(int(field.name(), value));
        }

        fn record_u64(&mut self, field: &Field, value: u64) {
            self.attributes.push(unsigned(field.name(), value));
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

        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.text(field.name(), debug_string(value));
        }
    };
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
    /// Room for `fields` attributes and `extra` more (the kind, the trace flags and
    /// `tracestate` the layer adds), so the list is allocated once.
    pub(crate) fn with_capacity(fields: usize, extra: usize) -> Self {
        SpanFields {
            attributes: Vec::with_capacity(fields + extra),
            ..SpanFields::default()
        }
    }

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
    typed_visits!();

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field.name(), value.to_string());
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
    typed_visits!();

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.error.is_none() {
            self.error = Some(value.to_string());
            if field.name() == ERROR {
                return;
            }
        }
        self.text(field.name(), value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_decimals_read_back_as_the_same_double() {
        for (v, text) in [
            (24.5, "24.5"),
            (0.25, "0.25"),
            (3.0, "3.0"),
            (-19.5, "-19.5"),
            (0.1, "0.1"),
            (0.0, "0.0"),
            (1_234.000_001, "1234.000001"),
            (0.05, "0.05"),
        ] {
            assert_eq!(short_decimal(v).as_deref(), Some(text), "{v}");
        }
        // Not short decimals: `Display` writes them.
        for v in [
            f64::NAN,
            f64::INFINITY,
            -0.0,
            1e300,
            1e-7,
            1.0 / 3.0,
            2f64.powi(60),
        ] {
            assert_eq!(short_decimal(v), None, "{v}");
        }
        // Whatever is written reads back exactly.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 7) as i32;
            let v = (x >> 20) as f64 % 1e9 / 10f64.powi(digits);
            for v in [v, -v, f64::from_bits(x)] {
                if let Some(s) = short_decimal(v) {
                    assert_eq!(
                        s.parse::<f64>().unwrap().to_bits(),
                        v.to_bits(),
                        "{v} as {s}"
                    );
                }
            }
        }
    }
}
