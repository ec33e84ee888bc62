//! OTLP/HTTP (protobuf and JSON) over hyper.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tracewire_export::{BoxFuture, EncodedRequest, ExportError, Input, SpanExporter};

use crate::config::{Compression, ConfigError, OtlpConfig, Protocol};

/// `application/x-protobuf`
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// `application/json`
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// The most of a collector's response body that is read (64 KiB: a response holds a
/// partial-success count and message; a collector answering with more is not trusted to
/// fill the application's memory).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Exports over OTLP/HTTP: `POST` of an `ExportTraceServiceRequest` as protobuf or JSON.
///
/// Status handling follows the OTLP spec: 2xx is success (a partial success is logged);
/// 429, 502, 503, 504 and connection failures are retryable, honouring `Retry-After`
/// (seconds); everything else is permanent.
pub struct OtlpHttpExporter {
    uri: Uri,
    json: bool,
    gzip: bool,
    headers: HeaderMap,
    timeout: Duration,
    client: Client<Connector, Full<Bytes>>,
}

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

#[cfg(feature = "tls")]
fn connector(http: HttpConnector, config: &OtlpConfig) -> Result<Connector, ConfigError> {
    let tls = crate::tls::client_config(config)?;
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

#[cfg(not(feature = "tls"))]
fn connector(http: HttpConnector, config: &OtlpConfig) -> Result<Connector, ConfigError> {
    if config.traces_url().starts_with("https://") {
        return Err(ConfigError::new(
            "endpoint",
            "https needs the `tls` feature of tracewire-otlp",
        ));
    }
    Ok(http)
}

impl std::fmt::Debug for OtlpHttpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpExporter")
            .field("uri", &self.uri)
            .field("json", &self.json)
            .field("gzip", &self.gzip)
            .finish_non_exhaustive()
    }
}

impl OtlpHttpExporter {
    /// Builds the exporter; fails on a bad URL or header, or a TLS setting this build cannot
    /// honour.
    pub fn new(config: &OtlpConfig) -> Result<Self, ConfigError> {
        let url = config.traces_url();
        let uri: Uri = url
            .parse()
            .map_err(|e| ConfigError::new("endpoint", format!("{url:?}: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(ConfigError::new(
                    "endpoint",
                    format!("{url:?}: expected an http:// or https:// URL"),
                ));
            }
        }
        let headers = header_map(&config.headers)?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.effective_timeout()));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector(http, config)?);
        Ok(OtlpHttpExporter {
            uri,
            json: config.protocol == Protocol::HttpJson,
            gzip: config.compression == Compression::Gzip,
            headers,
            timeout: config.effective_timeout(),
            client,
        })
    }

    /// The URL requests go to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Encodes a request body exactly as it is sent (protobuf or JSON, gzipped if set).
    pub fn encode(&self, batch: &ExportTraceServiceRequest) -> Result<Vec<u8>, ExportError> {
        let body = if self.json {
            serde_json::to_vec(batch)
                .map_err(|e| ExportError::permanent(format!("JSON encoding failed: {e}")))?
        } else {
            tracewire_export::encode::encode_request(batch)
        };
        if self.gzip { gzip(&body) } else { Ok(body) }
    }

    async fn send(&self, batch: &ExportTraceServiceRequest) -> Result<(), ExportError> {
        let body = self.encode(batch)?;
        self.post(Bytes::from(body)).await
    }

    /// Sends a request the pipeline encoded as protobuf (not JSON: see `input`).
    async fn send_encoded(&self, batch: &EncodedRequest) -> Result<(), ExportError> {
        let body = if self.gzip {
            Bytes::from(gzip(&batch.bytes)?)
        } else {
            batch.bytes.clone()
        };
        self.post(body).await
    }

    async fn post(&self, body: Bytes) -> Result<(), ExportError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .body(Full::new(body))
            .map_err(|e| ExportError::permanent(format!("request: {e}")))?;
        let h = req.headers_mut();
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(crate::USER_AGENT),
        );
        // Configured headers (`OTEL_EXPORTER_OTLP_HEADERS`) replace ours, a User-Agent too.
        h.extend(self.headers.clone());
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(if self.json {
                CONTENT_TYPE_JSON
            } else {
                CONTENT_TYPE_PROTOBUF
            }),
        );
        if self.gzip {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let resp = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => return Err(ExportError::timeout(self.timeout)),
            Ok(Err(e)) => {
                return Err(ExportError::retryable(format!(
                    "{}: {e} ({})",
                    self.uri,
                    std::error::Error::source(&e)
                        .map(ToString::to_string)
                        .unwrap_or_default()
                )));
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        // A response is an `ExportTraceServiceResponse` (a partial-success count and message):
        // a body past `MAX_RESPONSE_BYTES` is not read further, and counts as empty.
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES);
        let body = match tokio::time::timeout(self.timeout, limited.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            _ => Bytes::new(),
        };
        classify(status, retry_after, &body, self.json)
    }
}

/// Reads `Retry-After` in either form RFC 9110 allows: delay seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`, turned into the delay from `now`; a date in the past means
/// "retry now"). Anything else is ignored (the exporter's own backoff applies).
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Turns a response into the export result (see [`OtlpHttpExporter`]).
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    json: bool,
) -> Result<(), ExportError> {
    if status.is_success() {
        let resp = if json {
            serde_json::from_slice::<ExportTraceServiceResponse>(body).ok()
        } else {
            ExportTraceServiceResponse::decode(body).ok()
        };
        if let Some(p) = resp.and_then(|r| r.partial_success)
            && (p.rejected_spans > 0 || !p.error_message.is_empty())
        {
            log::warn!(target: "tracewire", "OTLP partial success: {} spans rejected: {}", p.rejected_spans, p.error_message);
        }
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    let message = format!("HTTP {status}: {text}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => {
            let e = ExportError::retryable(message);
            Err(match retry_after {
                Some(d) => e.with_retry_after(d),
                None => e,
            })
        }
        _ => Err(ExportError::permanent(message)),
    }
}

pub(crate) fn gzip(body: &[u8]) -> Result<Vec<u8>, ExportError> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body)
        .and_then(|()| enc.finish())
        .map_err(|e| ExportError::permanent(format!("gzip failed: {e}")))
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .map_err(|_| ConfigError::new("headers", format!("invalid header name {k:?}")))?;
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| ConfigError::new("headers", format!("invalid value for header {k:?}")))?;
        map.append(name, value);
    }
    Ok(map)
}

impl SpanExporter for OtlpHttpExporter {
    fn name(&self) -> &str {
        if self.json {
            "otlp-http-json"
        } else {
            "otlp-http-protobuf"
        }
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch))
    }

    /// OTLP/HTTP protobuf takes the pipeline's bytes as they are (written straight from the
    /// spans); JSON takes the structs.
    fn input(&self) -> Input {
        if self.json {
            Input::Request
        } else {
            Input::Protobuf
        }
    }

    fn export_protobuf<'a>(
        &'a self,
        batch: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send_encoded(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = httpdate::parse_http_date("Sat, 21 Nov 2026 10:00:00 GMT")
            .unwrap_or(std::time::UNIX_EPOCH);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn classifies_statuses() {
        assert!(classify(StatusCode::OK, None, b"", false).is_ok());
        for code in [429, 502, 503, 504] {
            let e = classify(
                StatusCode::from_u16(code).unwrap_or_default(),
                None,
                b"",
                false,
            )
            .err()
            .unwrap_or_else(|| ExportError::permanent("missing"));
            assert!(e.is_retryable(), "{code}");
        }
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            b"",
            true,
        )
        .err();
        assert_eq!(
            e.and_then(|e| e.retry_after()),
            Some(Duration::from_secs(3))
        );
        for code in [400, 401, 404, 413, 500] {
            let e = classify(
                StatusCode::from_u16(code).unwrap_or_default(),
                None,
                b"x",
                false,
            );
            assert!(matches!(e, Err(e) if !e.is_retryable()), "{code}");
        }
    }
}
