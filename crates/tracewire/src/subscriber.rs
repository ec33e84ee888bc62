//! The global `tracing` subscriber [`Builder::install_tracing_subscriber`](crate::Builder::install_tracing_subscriber)
//! installs: a registry with a `RUST_LOG` filter, log lines with trace ids
//! ([`WithTraceIds`]), and tracewire's layer
//! ([`TracewireLayer`]), which records `tracing` spans in tracewire traces.

use tracewire_core::env::Warning;
use tracewire_tracing::TracewireLayer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::logs::WithTraceIds;

/// The variable read for the filter.
pub const RUST_LOG: &str = "RUST_LOG";

/// The filter of `RUST_LOG` (`info`, `my_crate=debug,hyper=warn`: the directives of
/// [`Targets`]; `env_logger`'s span filters are not understood). Unset: `INFO` and above. An
/// invalid value: a warning, then the default.
pub fn filter(rust_log: Option<&str>) -> Targets {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => default(),
        Some(v) => match v.parse::<Targets>() {
            Ok(t) => t,
            Err(e) => {
                Warning::new(RUST_LOG, format!("{e} in {v:?}; using `info`")).emit();
                default()
            }
        },
    }
}

/// Installs the subscriber as the global default. Another one already set: a warning, and
/// nothing changes (the caller can add [`TracewireLayer`] to theirs). True when installed.
pub(crate) fn install(layer: TracewireLayer, rust_log: Option<&str>) -> bool {
    let subscriber = tracing_subscriber::registry()
        .with(filter(rust_log))
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(WithTraceIds::new(tracing_subscriber::fmt::format())),
        )
        .with(layer);
    match tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber)) {
        Ok(()) => true,
        Err(_) => {
            Warning::new(
                "tracing",
                "a global tracing subscriber is already set: tracewire's is not installed; add \
                 `tracewire::tracing::layer()` to yours to record tracing spans",
            )
            .emit();
            false
        }
    }
}
