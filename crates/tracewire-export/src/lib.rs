#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod console;
pub mod encode;
pub mod event;
pub mod exporter;
pub mod map;
pub mod pipeline;
pub mod resource;

pub use encode::EncodedRequest;
pub use exporter::{BoxFuture, ExportError, Input, SpanExporter};
pub use map::SpanLimits;
pub use pipeline::{
    BatchConfig, Counters, Pipeline, PipelineBuilder, PipelineReporter, RetryPolicy,
};
pub use resource::{Resource, ResourceValue};

/// The official OTLP wire types (`opentelemetry-proto`), re-exported for exporters.
pub use opentelemetry_proto::tonic as proto;
