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
