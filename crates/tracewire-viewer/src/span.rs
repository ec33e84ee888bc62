//! What the store holds of one span: the span as received, shared, with its origin (resource
//! and scope). The types every reader of the store sees; the store itself is [`crate::store`].

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::bloom::Bloom;

/// A 16-byte trace id.
pub type TraceId = [u8; 16];

/// Where a span came from: the resource and instrumentation scope of its batch.
#[derive(Debug)]
pub struct Origin {
    /// The resource (process) that produced the span.
    pub resource: Resource,
    /// The resource's schema URL.
    pub resource_schema_url: String,
    /// The instrumentation scope.
    pub scope: InstrumentationScope,
    /// The scope's schema URL.
    pub scope_schema_url: String,
    /// `service.name` of the resource (`unknown_service` if absent).
    pub service: Arc<str>,
    pub(crate) service_id: u32,
    /// Resource attributes, pre-hashed once per batch.
    pub(crate) bloom: Bloom,
}

/// One stored span with its origin. Cloning it is cheap: the span is shared with the store.
#[derive(Clone, Debug)]
pub struct StoredSpan {
    /// The span, as received (after the [`SpanLimits`](crate::store::SpanLimits)).
    pub span: Arc<Span>,
    /// Its resource and scope.
    pub origin: Arc<Origin>,
    pub(crate) bytes: u32,
    /// Its name is counted in the operations index.
    pub(crate) op_indexed: bool,
}

impl Origin {
    pub(crate) fn service_id(&self) -> u32 {
        self.service_id
    }
}

impl StoredSpan {
    /// Duration in nanoseconds (0 if the end precedes the start).
    pub fn duration_ns(&self) -> u64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano)
    }
}
