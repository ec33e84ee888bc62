#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod baggage;
pub mod carrier;
pub mod context;
pub mod env;
mod hex;
mod kind;
pub mod propagation;
pub mod sampling;
pub mod semconv;
pub mod tracer;
pub mod tracestate;

pub use baggage::Baggage;
pub use carrier::{Extractor, Injector, Pairs};
pub use context::{Sampling, TraceContext};
pub use kind::SpanKind;
pub use propagation::{Extracted, Format, Propagators};
pub use sampling::Sampler;
pub use tracer::{Child, Origin, Root, Tracer};
pub use tracestate::TraceState;

/// fastrace's id and context types, re-exported so users need not depend on fastrace directly
/// to name them.
pub use fastrace::collector::{SpanContext, SpanId, TraceId};
