#![doc = include_str!("../README.md")]

mod api;
mod bloom;
mod decode;
mod exporter;
mod host;
mod limits;
mod links;
mod map;
mod names;
mod persist;
pub mod query;
mod receive;
mod server;
mod span;
pub mod store;
#[cfg(test)]
mod testing;
mod text;
mod util;

pub use decode::{ZipkinSpans, decode_otlp, decode_zipkin};
pub use exporter::StoreExporter;
pub use query::{Query, SpanFilter, StatusFilter};
pub use receive::{
    BUDGET_WAIT, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_BODY,
    DEFAULT_MAX_BODY_MEMORY,
};
pub use server::{
    Addrs, OTLP_GRPC_PORT, OTLP_HTTP_PORT, RunningViewer, SHUTDOWN_GRACE, StartError, UI_PORT,
    ViewerBuilder, ZIPKIN_PORT,
};
pub use store::{SpanLimits, Store, StoreConfig, StoreStats, TraceSummary};
