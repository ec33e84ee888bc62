//! Reading the standard `OTEL_*` environment variables: one warning per bad value, then the
//! default — never a panic.

use std::fmt;

/// A configuration value that could not be used as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The variable (or option) the value came from.
    pub variable: &'static str,
    /// What was wrong and what is used instead.
    pub message: String,
}

impl Warning {
    /// A warning about `variable`.
    pub fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Warning {
            variable,
            message: message.into(),
        }
    }

    /// Logs the warning (`log::warn!`, target `tracewire`).
    pub fn emit(&self) {
        log::warn!(target: "tracewire", "{self}");
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Reads a variable from the process environment. Per the OpenTelemetry spec an empty value
/// means "unset".
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable that selects semantic-convention versions per domain (`http`, `rpc`,
/// `messaging`, ...): a comma-separated list of `{domain}` and `{domain}/dup`.
pub const OTEL_SEMCONV_STABILITY_OPT_IN: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";

/// What [`OTEL_SEMCONV_STABILITY_OPT_IN`] says for one domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OptIn {
    /// The domain is not listed.
    #[default]
    Absent,
    /// `{domain}`: the newer conventions only.
    New,
    /// `{domain}/dup`: both the older and the newer (wins over `{domain}`).
    Duplicate,
}

/// Parses an [`OTEL_SEMCONV_STABILITY_OPT_IN`] value for `domain` (case-insensitive; other
/// domains are ignored; an unknown `{domain}/...` entry logs one warning).
///
/// ```
/// use tracewire_core::env::{OptIn, stability_opt_in};
///
/// assert_eq!(stability_opt_in(Some("http, messaging"), "messaging"), OptIn::New);
/// assert_eq!(stability_opt_in(Some("messaging/dup,messaging"), "messaging"), OptIn::Duplicate);
/// assert_eq!(stability_opt_in(Some("rpc"), "messaging"), OptIn::Absent);
/// assert_eq!(stability_opt_in(None, "rpc"), OptIn::Absent);
/// ```
pub fn stability_opt_in(value: Option<&str>, domain: &str) -> OptIn {
    let mut out = OptIn::Absent;
    for item in value.unwrap_or("").split(',').map(str::trim) {
        let Some(head) = item.get(..domain.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(domain) {
            continue;
        }
        match &item[domain.len()..] {
            "" if out == OptIn::Absent => out = OptIn::New,
            "" => {}
            dup if dup.eq_ignore_ascii_case("/dup") => out = OptIn::Duplicate,
            other if other.starts_with('/') => Warning::new(
                OTEL_SEMCONV_STABILITY_OPT_IN,
                format!("unknown value {item:?} ignored (expected `{domain}` or `{domain}/dup`)"),
            )
            .emit(),
            _ => {}
        }
    }
    out
}

/// [`stability_opt_in`] on the process environment.
pub fn stability_opt_in_from_env(domain: &str) -> OptIn {
    stability_opt_in(var(OTEL_SEMCONV_STABILITY_OPT_IN).as_deref(), domain)
}
