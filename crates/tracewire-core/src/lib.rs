#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod baggage;
pub mod carrier;
pub mod context;
pub mod env;
mod hex;
pub mod intern;
mod kind;
mod link;
pub mod propagation;
pub mod reserved;
pub mod sampling;
pub mod semconv;
pub mod span;
pub mod tracer;
pub mod tracestate;

pub use baggage::Baggage;
pub use carrier::{Extractor, Injector, Pairs};
pub use context::{Sampling, TraceContext};
pub use kind::SpanKind;
pub use link::Link;
pub use propagation::{Extracted, Format, Propagators};
pub use sampling::Sampler;
pub use span::{Abort, PendingSpan};
pub use tracer::{Child, Inbound, Origin, Root, Tracer};
pub use tracestate::TraceState;

/// fastrace's id and context types, re-exported so users need not depend on fastrace directly
/// to name them.
pub use fastrace::collector::{SpanContext, SpanId, TraceId};
