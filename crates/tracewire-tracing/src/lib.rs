#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod fields;
mod keys;
mod layer;
mod stack;

pub use layer::TracewireLayer;
/// `tracing`'s level type, for [`TracewireLayer::event_level`].
pub use tracing_core::Level;

/// A [`TracewireLayer`] with the defaults: events at `INFO` and above, no root spans, the
/// global [`Tracer`](tracewire_core::Tracer).
pub fn layer() -> TracewireLayer {
    TracewireLayer::new()
}
