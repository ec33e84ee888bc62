//! OTLP/gRPC over tonic.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracewire_export::{BoxFuture, ExportError, SpanExporter};

use crate::config::{Compression, ConfigError, OtlpConfig};

/// Exports over OTLP/gRPC (`TraceService/Export`).
///
/// Retryable per the OTLP spec: `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`,
/// `UNAVAILABLE`, `DATA_LOSS`, and `RESOURCE_EXHAUSTED` when the server sends a `RetryInfo`
/// (whose delay is honoured). Everything else is permanent.
pub struct OtlpGrpcExporter {
    endpoint: Endpoint,
    url: String,
    gzip: bool,
    metadata: MetadataMap,
    timeout: Duration,
    client: OnceLock<TraceServiceClient<Channel>>,
}

impl std::fmt::Debug for OtlpGrpcExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpGrpcExporter")
            .field("url", &self.url)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl OtlpGrpcExporter {
    /// Builds the exporter (the connection is made lazily, on the first export). Fails on a
    /// bad URL, header or certificate file.
    pub fn new(config: &OtlpConfig) -> Result<Self, ConfigError> {
        let mut url = config.traces_url();
        if !url.contains("://") {
            url = if config.insecure {
                format!("http://{url}")
            } else {
                format!("https://{url}")
            };
        }
        let timeout = config.effective_timeout();
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| ConfigError::new("endpoint", format!("{url:?}: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .user_agent(crate::USER_AGENT)
            .map_err(|e| ConfigError::new("endpoint", format!("user agent: {e}")))?;
        let endpoint = tls(endpoint, &url, config)?;
        let mut metadata = MetadataMap::new();
        for (k, v) in &config.headers {
            let key = AsciiMetadataKey::from_bytes(k.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| ConfigError::new("headers", format!("invalid header name {k:?}")))?;
            let value = AsciiMetadataValue::try_from(v.trim()).map_err(|_| {
                ConfigError::new("headers", format!("invalid value for header {k:?}"))
            })?;
            metadata.append(key, value);
        }
        Ok(OtlpGrpcExporter {
            endpoint,
            url,
            gzip: config.compression == Compression::Gzip,
            metadata,
            timeout,
            client: OnceLock::new(),
        })
    }

    /// The URL of the collector.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn client(&self) -> TraceServiceClient<Channel> {
        self.client
            .get_or_init(|| {
                let mut c = TraceServiceClient::new(self.endpoint.connect_lazy())
                    .max_encoding_message_size(8 * 1024 * 1024);
                if self.gzip {
                    c = c.send_compressed(CompressionEncoding::Gzip);
                }
                c.accept_compressed(CompressionEncoding::Gzip)
            })
            .clone()
    }

    async fn send(&self, batch: &ExportTraceServiceRequest) -> Result<(), ExportError> {
        let mut client = self.client();
        let mut req = tonic::Request::new(batch.clone());
        *req.metadata_mut() = self.metadata.clone();
        req.set_timeout(self.timeout);
        match client.export(req).await {
            Ok(resp) => {
                if let Some(p) = resp.into_inner().partial_success
                    && (p.rejected_spans > 0 || !p.error_message.is_empty())
                {
                    log::warn!(target: "tracewire", "OTLP partial success: {} spans rejected: {}", p.rejected_spans, p.error_message);
                }
                Ok(())
            }
            Err(status) => Err(classify(&status)),
        }
    }
}

#[cfg(feature = "tls")]
fn tls(endpoint: Endpoint, url: &str, config: &OtlpConfig) -> Result<Endpoint, ConfigError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let read = |option: &'static str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ConfigError::new(option, format!("cannot read {}: {e}", path.display())))
    };
    let mut tls = ClientTlsConfig::new().with_native_roots();
    if let Some(ca) = &config.certificate {
        tls = tls.ca_certificate(Certificate::from_pem(read("certificate", ca)?));
    }
    match (&config.client_certificate, &config.client_key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read("client_certificate", cert)?,
                read("client_key", key)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(ConfigError::new(
                "client_certificate",
                "mTLS needs both the client certificate and the client key",
            ));
        }
    }
    endpoint
        .tls_config(tls)
        .map_err(|e| ConfigError::new("certificate", e.to_string()))
}

#[cfg(not(feature = "tls"))]
fn tls(endpoint: Endpoint, url: &str, _config: &OtlpConfig) -> Result<Endpoint, ConfigError> {
    if url.starts_with("https://") {
        return Err(ConfigError::new(
            "endpoint",
            format!(
                "{url:?} needs TLS: enable the `tls` feature of tracewire-otlp, or set an http:// endpoint / OTEL_EXPORTER_OTLP_INSECURE=true"
            ),
        ));
    }
    Ok(endpoint)
}

/// The export result for a gRPC status (see [`OtlpGrpcExporter`]).
pub fn classify(status: &Status) -> ExportError {
    let retry_info = retry_delay(status.details());
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_info.is_some(),
        _ => false,
    };
    if !retryable {
        return ExportError::permanent(message);
    }
    let e = ExportError::retryable(message);
    match retry_info {
        Some(d) => e.with_retry_after(d),
        None => e,
    }
}

/// `google.rpc.Status`, `google.protobuf.Any`, `google.rpc.RetryInfo` and
/// `google.protobuf.Duration`: the four messages needed to read a server's retry delay from
/// the `grpc-status-details-bin` trailer.
mod rpc {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Status {
        #[prost(int32, tag = "1")]
        pub(super) code: i32,
        #[prost(string, tag = "2")]
        pub(super) message: String,
        #[prost(message, repeated, tag = "3")]
        pub(super) details: Vec<Any>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Any {
        #[prost(string, tag = "1")]
        pub(super) type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub(super) value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        pub(super) retry_delay: Option<Duration>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Duration {
        #[prost(int64, tag = "1")]
        pub(super) seconds: i64,
        #[prost(int32, tag = "2")]
        pub(super) nanos: i32,
    }
}

/// Type URL of `google.rpc.RetryInfo`.
pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

fn retry_delay(details: &[u8]) -> Option<Duration> {
    if details.is_empty() {
        return None;
    }
    let status = rpc::Status::decode(details).ok()?;
    status
        .details
        .iter()
        .find(|a| a.type_url == RETRY_INFO_TYPE_URL)
        .and_then(|a| rpc::RetryInfo::decode(a.value.as_slice()).ok())
        .and_then(|r| r.retry_delay)
        .map(|d| {
            Duration::from_secs(d.seconds.max(0) as u64)
                + Duration::from_nanos(d.nanos.max(0) as u64)
        })
}

/// Encodes a `google.rpc.Status` carrying a `RetryInfo` with `delay` — what a collector
/// sends in `grpc-status-details-bin` to ask for a later retry (for tests and fake servers).
pub fn retry_info_details(code: Code, delay: Duration) -> Vec<u8> {
    let info = rpc::RetryInfo {
        retry_delay: Some(rpc::Duration {
            seconds: delay.as_secs() as i64,
            nanos: delay.subsec_nanos() as i32,
        }),
    };
    rpc::Status {
        code: code as i32,
        message: String::new(),
        details: vec![rpc::Any {
            type_url: RETRY_INFO_TYPE_URL.to_owned(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

impl SpanExporter for OtlpGrpcExporter {
    fn name(&self) -> &str {
        "otlp-grpc"
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes_and_reads_retry_info() {
        assert!(classify(&Status::unavailable("x")).is_retryable());
        assert!(!classify(&Status::invalid_argument("x")).is_retryable());
        assert!(!classify(&Status::resource_exhausted("x")).is_retryable());
        let details = retry_info_details(Code::ResourceExhausted, Duration::from_millis(1500));
        let s = Status::with_details(
            Code::ResourceExhausted,
            "slow down",
            bytes::Bytes::from(details),
        );
        let e = classify(&s);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    }
}
