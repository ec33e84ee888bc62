#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod grpc;
pub mod http;
#[cfg(feature = "tls")]
mod tls;

pub use config::{Compression, ConfigError, Endpoint, OtlpConfig, Protocol};
pub use grpc::OtlpGrpcExporter;
pub use http::OtlpHttpExporter;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// The `User-Agent` both exporters send, naming the exporter, its language and version as the
/// OTLP exporter specification asks (`OTel-OTLP-Exporter-Python/1.2.3` is the spec's example).
/// A `User-Agent` in the configured headers replaces it on OTLP/HTTP; on OTLP/gRPC tonic
/// appends its own name.
pub const USER_AGENT: &str = concat!(
    "OTel-OTLP-Exporter-Rust-tracewire/",
    env!("CARGO_PKG_VERSION")
);
use tracewire_export::{BoxFuture, ExportError, SpanExporter};

/// An OTLP exporter for the configured [`Protocol`].
#[derive(Debug)]
pub enum OtlpExporter {
    /// OTLP/gRPC.
    Grpc(Box<OtlpGrpcExporter>),
    /// OTLP/HTTP (protobuf or JSON).
    Http(Box<OtlpHttpExporter>),
}

impl OtlpExporter {
    /// Builds the exporter for `config.protocol`.
    pub fn new(config: &OtlpConfig) -> Result<Self, ConfigError> {
        Ok(match config.protocol {
            Protocol::Grpc => OtlpExporter::Grpc(Box::new(OtlpGrpcExporter::new(config)?)),
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                OtlpExporter::Http(Box::new(OtlpHttpExporter::new(config)?))
            }
        })
    }
}

impl SpanExporter for OtlpExporter {
    fn name(&self) -> &str {
        match self {
            OtlpExporter::Grpc(e) => e.name(),
            OtlpExporter::Http(e) => e.name(),
        }
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        match self {
            OtlpExporter::Grpc(e) => e.export(batch),
            OtlpExporter::Http(e) => e.export(batch),
        }
    }
}
