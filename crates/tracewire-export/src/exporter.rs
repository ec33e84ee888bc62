//! The [`SpanExporter`] trait every exporter implements, and its error type.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::encode::EncodedRequest;

/// A boxed, `Send` future (what [`SpanExporter`] methods return, so the trait stays
/// object-safe and exporters can be fanned out as `Box<dyn SpanExporter>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends batches of spans somewhere.
///
/// The pipeline calls `export` from its own worker thread, inside a single-threaded tokio
/// runtime (so tokio-based clients work), one call at a time per exporter. It applies the
/// export timeout and the retry policy around each call: an exporter makes **one attempt**
/// and classifies its failure with [`ExportError::retryable`] / [`ExportError::permanent`].
///
/// Every batch is an OTLP request with one resource and one scope: the output of
/// [the one mapping](crate::map). Exporters of other formats convert from it.
pub trait SpanExporter: Send + Sync + 'static {
    /// A short name for logs and [`describe`](crate::Pipeline::describe) (`otlp-http`).
    fn name(&self) -> &str;

    /// One attempt to send `batch`.
    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>>;

    /// What the pipeline hands this exporter: the OTLP request's structs (the default; it
    /// calls [`export`](SpanExporter::export)) or the request already encoded as OTLP protobuf
    /// ([`Input::Protobuf`]; it calls [`export_protobuf`](SpanExporter::export_protobuf)).
    /// Exporters that send OTLP protobuf as it is should take the bytes: the pipeline then
    /// encodes straight from the spans, and builds no structs unless another exporter asks
    /// for them.
    fn input(&self) -> Input {
        Input::Request
    }

    /// One attempt to send a batch encoded as an OTLP/protobuf `ExportTraceServiceRequest`
    /// (called instead of [`export`](SpanExporter::export) when [`input`](SpanExporter::input)
    /// is [`Input::Protobuf`]). The default decodes it and calls `export`.
    fn export_protobuf<'a>(
        &'a self,
        batch: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let request = ExportTraceServiceRequest::decode(batch.bytes.as_ref())
                .map_err(|e| ExportError::permanent(format!("undecodable request: {e}")))?;
            self.export(&request).await
        })
    }

    /// Called once when the pipeline shuts down, after the last export.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

impl<E: SpanExporter + ?Sized> SpanExporter for Box<E> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        (**self).export(batch)
    }

    fn input(&self) -> Input {
        (**self).input()
    }

    fn export_protobuf<'a>(
        &'a self,
        batch: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        (**self).export_protobuf(batch)
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        (**self).shutdown()
    }
}

/// What an exporter takes from the pipeline (see [`SpanExporter::input`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Input {
    /// The OTLP request's structs, through [`SpanExporter::export`].
    #[default]
    Request,
    /// The request encoded as OTLP protobuf, through [`SpanExporter::export_protobuf`].
    Protobuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Retryable,
    Permanent,
    Timeout,
}

/// Why one export attempt failed, and whether trying again may help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportError {
    kind: Kind,
    message: String,
    retry_after: Option<Duration>,
}

impl ExportError {
    /// A transient failure (connection refused, HTTP 429/502/503/504, gRPC `UNAVAILABLE`...):
    /// the pipeline retries with backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        ExportError {
            kind: Kind::Retryable,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure retrying cannot fix (HTTP 400, gRPC `INVALID_ARGUMENT`, encoding error).
    pub fn permanent(message: impl Into<String>) -> Self {
        ExportError {
            kind: Kind::Permanent,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The attempt did not finish within the export timeout (retryable).
    pub fn timeout(after: Duration) -> Self {
        ExportError {
            kind: Kind::Timeout,
            message: format!("export timed out after {after:?}"),
            retry_after: None,
        }
    }

    /// The server asked to wait this long before retrying (`Retry-After`, gRPC `RetryInfo`).
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// True when another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind != Kind::Permanent
    }

    /// True for a timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::Timeout
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Retryable => "retryable",
            Kind::Permanent => "permanent",
            Kind::Timeout => "timeout",
        };
        write!(f, "{kind} export error: {}", self.message)
    }
}

impl std::error::Error for ExportError {}

/// Number of spans in a request.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}
