//! Exporter configuration (what the `OTEL_EXPORTER_OTLP_*` variables set).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`), default port 4317.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`), default port 4318 — the spec default.
    #[default]
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies (`http/json`).
    HttpJson,
}

impl Protocol {
    /// Parses the `OTEL_EXPORTER_OTLP_PROTOCOL` value.
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => Some(Protocol::HttpJson),
            _ => None,
        }
    }

    /// The spec name (`grpc`, `http/protobuf`, `http/json`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    /// The default endpoint: `http://localhost:4317` (gRPC) or
    /// `http://localhost:4318/v1/traces` (HTTP).
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            _ => "http://localhost:4318/v1/traces",
        }
    }
}

/// Body compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// None (the spec default).
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// Where to send spans.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// The protocol's default.
    #[default]
    Default,
    /// A base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`): for OTLP/HTTP, `v1/traces` is appended.
    Base(String),
    /// The full URL (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), used as-is.
    Traces(String),
}

/// Configuration of an [`OtlpExporter`](crate::OtlpExporter).
///
/// ```
/// use std::time::Duration;
/// use tracewire_otlp::{Compression, OtlpConfig, Protocol};
///
/// let cfg = OtlpConfig::new(Protocol::HttpProtobuf)
///     .base_endpoint("http://collector:4318")
///     .header("x-tenant", "a")
///     .compression(Compression::Gzip)
///     .timeout(Duration::from_secs(5));
/// assert_eq!(cfg.traces_url(), "http://collector:4318/v1/traces");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct OtlpConfig {
    /// The transport.
    pub protocol: Protocol,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Extra request headers (gRPC metadata), e.g. an API key.
    pub headers: Vec<(String, String)>,
    /// Time allowed for one request (default 10 s, the spec default).
    pub timeout: Option<Duration>,
    /// Body compression.
    pub compression: Compression,
    /// gRPC only: plain-text even for a non-`http` scheme (`OTEL_EXPORTER_OTLP_INSECURE`).
    pub insecure: bool,
    /// PEM file with the CA certificate(s) that verify the server.
    pub certificate: Option<PathBuf>,
    /// PEM file with the client's private key (mTLS).
    pub client_key: Option<PathBuf>,
    /// PEM file with the client's certificate chain (mTLS).
    pub client_certificate: Option<PathBuf>,
}

impl fmt::Debug for OtlpConfig {
    /// Header values are redacted: they often carry API keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, _)| format!("{k}=<redacted>"))
            .collect();
        f.debug_struct("OtlpConfig")
            .field("protocol", &self.protocol.as_str())
            .field("endpoint", &self.traces_url())
            .field("headers", &headers)
            .field("timeout", &self.effective_timeout())
            .field("compression", &self.compression)
            .field("insecure", &self.insecure)
            .field("certificate", &self.certificate)
            .field("client_key", &self.client_key)
            .field("client_certificate", &self.client_certificate)
            .finish()
    }
}

impl OtlpConfig {
    /// Defaults for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        OtlpConfig {
            protocol,
            ..OtlpConfig::default()
        }
    }

    /// Sets the full traces URL, used as-is.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Endpoint::Traces(url.into());
        self
    }

    /// Sets a base URL; OTLP/HTTP appends `v1/traces`.
    pub fn base_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Endpoint::Base(url.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the compression.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The request timeout in effect (10 s unless set).
    pub fn effective_timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(10))
    }

    /// The URL requests go to.
    pub fn traces_url(&self) -> String {
        match (&self.endpoint, self.protocol) {
            (Endpoint::Default, p) => p.default_endpoint().to_owned(),
            (Endpoint::Traces(url), _) => url.clone(),
            (Endpoint::Base(url), Protocol::Grpc) => url.clone(),
            (Endpoint::Base(url), _) => {
                if url.ends_with('/') {
                    format!("{url}v1/traces")
                } else {
                    format!("{url}/v1/traces")
                }
            }
        }
    }
}

/// A configuration the exporter cannot work with (names the option).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    option: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(option: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            option,
            message: message.into(),
        }
    }

    /// The option (`endpoint`, `headers`, `certificate`...).
    pub fn option(&self) -> &str {
        self.option
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid OTLP {}: {}", self.option, self.message)
    }
}

impl std::error::Error for ConfigError {}
