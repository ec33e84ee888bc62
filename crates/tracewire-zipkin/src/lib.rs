#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tracewire_export::console::value_text;
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::proto::common::v1::any_value::Value;
use tracewire_export::proto::common::v1::{InstrumentationScope, KeyValue};
use tracewire_export::proto::trace::v1::Span as OtlpSpan;
use tracewire_export::proto::trace::v1::span::SpanKind;
use tracewire_export::proto::trace::v1::status::StatusCode;
use tracewire_export::{BoxFuture, ExportError, SpanExporter};

/// The default endpoint (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";

/// A Zipkin v2 span (the `Span` definition of `zipkin2-api.yaml`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub id: String,
    /// The parent's id, absent for a root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// The span name.
    pub name: String,
    /// `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER`; absent for internal spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Start, microseconds since the epoch.
    pub timestamp: u64,
    /// Duration in microseconds (at least 1).
    pub duration: u64,
    /// True for a server span that shares the client's span id (B3 "joined" spans).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    /// This service.
    pub local_endpoint: ZipkinEndpoint,
    /// The peer, from `server.address`/`client.address`/`network.peer.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<ZipkinEndpoint>,
    /// Span events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// Attributes as strings, plus `otel.status_code`/`error` and `otel.scope.*`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A Zipkin endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinEndpoint {
    /// Service name (lowercase is conventional; sent as given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// IPv4 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// Port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A Zipkin annotation (a span event).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Annotation {
    /// Microseconds since the epoch.
    pub timestamp: u64,
    /// The event name; with attributes, the quoted name and the attributes as a JSON object
    /// (`"exception": {"exception.type":"io::Error"}`), as the OTel Zipkin mapping writes it.
    pub value: String,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn tag_text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::ArrayValue(a)) => {
            let items: Vec<serde_json::Value> = a
                .values
                .iter()
                .map(|v| match &v.value {
                    Some(Value::IntValue(i)) => serde_json::Value::from(*i),
                    Some(Value::DoubleValue(d)) => serde_json::Value::from(*d),
                    Some(Value::BoolValue(b)) => serde_json::Value::from(*b),
                    _ => serde_json::Value::from(value_text(v)),
                })
                .collect();
            serde_json::Value::Array(items).to_string()
        }
        Some(_) => kv.value.as_ref().map(value_text).unwrap_or_default(),
        None => String::new(),
    }
}

fn remote_endpoint(span: &OtlpSpan, kind: SpanKind) -> Option<ZipkinEndpoint> {
    let (addr_keys, port_keys): (&[&str], &[&str]) = match kind {
        SpanKind::Server => (
            &["client.address", "network.peer.address"],
            &["client.port", "network.peer.port"],
        ),
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer => (
            &["network.peer.address", "server.address"],
            &["network.peer.port", "server.port"],
        ),
        _ => return None,
    };
    let text = |v: &Value| match v {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    };
    // The OTel Zipkin mapping's ranking: `peer.service` names the remote service, else a host
    // name among the address keys; an IP address among them and the port fill in the rest.
    let values: Vec<String> = addr_keys
        .iter()
        .filter_map(|k| attr(&span.attributes, k).and_then(text))
        .collect();
    let ip = values
        .iter()
        .find_map(|v| v.parse::<std::net::IpAddr>().ok());
    let service_name = attr(&span.attributes, "peer.service")
        .and_then(text)
        .or_else(|| {
            values
                .iter()
                .find(|v| v.parse::<std::net::IpAddr>().is_err())
                .cloned()
        });
    if service_name.is_none() && ip.is_none() {
        return None;
    }
    let mut ep = ZipkinEndpoint {
        service_name,
        ..ZipkinEndpoint::default()
    };
    match ip {
        Some(std::net::IpAddr::V4(ip)) => ep.ipv4 = Some(ip.to_string()),
        Some(std::net::IpAddr::V6(ip)) => ep.ipv6 = Some(ip.to_string()),
        None => {}
    }
    if !values.is_empty() {
        ep.port = port_keys
            .iter()
            .find_map(|k| match attr(&span.attributes, k) {
                Some(Value::IntValue(p)) => u16::try_from(*p).ok(),
                _ => None,
            });
    }
    Some(ep)
}

/// Converts one OTLP request (the output of tracewire's one mapping) to Zipkin spans.
pub fn to_zipkin(batch: &ExportTraceServiceRequest) -> Vec<ZipkinSpan> {
    let mut out = Vec::new();
    for rs in &batch.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| match attr(&r.attributes, "service.name") {
                Some(Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or("unknown_service");
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                out.push(span_to_zipkin(service, ss.scope.as_ref(), span));
            }
        }
    }
    out
}

/// One OTLP span of `service` (its resource's `service.name`), recorded by `scope`, as a
/// Zipkin v2 span: the one OTLP→Zipkin mapping, used by [`to_zipkin`] (the exporter) and by
/// the embedded viewer's Zipkin read API.
///
/// Attributes become string tags (arrays as JSON arrays), the scope `otel.scope.name` /
/// `.version`, an ERROR status `otel.status_code` = `ERROR` and `error` = its message, events
/// annotations (`name`, or `"name": {attributes as JSON}`); the remote endpoint's service is
/// `peer.service`, else a host name among the peer's address keys (by kind), with the peer's IP
/// address and port. A server span whose parent id is
/// its own id is Zipkin's "joined" span (`shared`); an empty or all-zero parent id is none.
pub fn span_to_zipkin(
    service: &str,
    scope: Option<&InstrumentationScope>,
    span: &OtlpSpan,
) -> ZipkinSpan {
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    let mut tags: BTreeMap<String, String> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), tag_text(kv)))
        .collect();
    if let Some(scope) = scope {
        if !scope.name.is_empty() {
            tags.insert("otel.scope.name".into(), scope.name.clone());
        }
        if !scope.version.is_empty() {
            tags.insert("otel.scope.version".into(), scope.version.clone());
        }
    }
    if let Some(st) = &span.status {
        if st.code == StatusCode::Error as i32 {
            tags.insert("otel.status_code".into(), "ERROR".into());
            tags.insert("error".into(), st.message.clone());
        } else if st.code == StatusCode::Ok as i32 {
            tags.insert("otel.status_code".into(), "OK".into());
        }
    }
    let has_parent = span.parent_span_id.iter().any(|b| *b != 0);
    // Zipkin's "joined" server span reuses the client's span id.
    let shared = kind == SpanKind::Server && has_parent && span.parent_span_id == span.span_id;
    let annotations = span
        .events
        .iter()
        .map(|e| {
            let value = if e.attributes.is_empty() {
                e.name.clone()
            } else {
                let attrs: serde_json::Map<String, serde_json::Value> = e
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), serde_json::Value::from(tag_text(kv))))
                    .collect();
                // `"name": {attributes}`, as the OTel Zipkin mapping writes it
                format!(
                    "{}: {}",
                    serde_json::Value::from(e.name.as_str()),
                    serde_json::Value::Object(attrs)
                )
            };
            Annotation {
                timestamp: e.time_unix_nano / 1_000,
                value,
            }
        })
        .collect();
    ZipkinSpan {
        trace_id: hex(&span.trace_id),
        id: hex(&span.span_id),
        parent_id: (has_parent && !shared).then(|| hex(&span.parent_span_id)),
        name: span.name.clone(),
        kind: match kind {
            SpanKind::Server => Some("SERVER"),
            SpanKind::Client => Some("CLIENT"),
            SpanKind::Producer => Some("PRODUCER"),
            SpanKind::Consumer => Some("CONSUMER"),
            _ => None,
        },
        timestamp: span.start_time_unix_nano / 1_000,
        duration: (span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano)
            / 1_000)
            .max(1),
        shared: shared.then_some(true),
        local_endpoint: ZipkinEndpoint {
            service_name: Some(service.to_owned()),
            ..ZipkinEndpoint::default()
        },
        remote_endpoint: remote_endpoint(span, kind),
        annotations,
        tags,
    }
}

#[cfg(feature = "tls")]
fn connector(
    http: HttpConnector,
    ca: Option<&std::path::Path>,
) -> Result<Connector, InvalidEndpoint> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| InvalidEndpoint(format!("CA file {}: {e}", path.display())))?;
            for c in certs {
                let c =
                    c.map_err(|e| InvalidEndpoint(format!("CA file {}: {e}", path.display())))?;
                roots
                    .add(c)
                    .map_err(|e| InvalidEndpoint(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| InvalidEndpoint(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

#[cfg(not(feature = "tls"))]
fn connector(
    http: HttpConnector,
    _ca: Option<&std::path::Path>,
) -> Result<Connector, InvalidEndpoint> {
    Ok(http)
}

/// Exports Zipkin v2 JSON (`POST /api/v2/spans`). HTTP 429/5xx and connection failures are
/// retryable; other statuses are permanent.
pub struct ZipkinExporter {
    uri: Uri,
    timeout: Duration,
    client: Client<Connector, Full<Bytes>>,
}

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

impl std::fmt::Debug for ZipkinExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipkinExporter")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

/// An endpoint the exporter cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidEndpoint(String);

impl std::fmt::Display for InvalidEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid Zipkin endpoint: {}", self.0)
    }
}

impl std::error::Error for InvalidEndpoint {}

impl ZipkinExporter {
    /// Sends to `endpoint` (the full URL, e.g. [`DEFAULT_ENDPOINT`]) with a per-request
    /// `timeout` (`OTEL_EXPORTER_ZIPKIN_TIMEOUT`, default 10 s). `https://` endpoints are
    /// verified against the system's roots (feature `tls`, on by default).
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self, InvalidEndpoint> {
        Self::build(endpoint, timeout, None)
    }

    /// Like [`new`](ZipkinExporter::new), trusting only the CA certificate(s) in the PEM file
    /// `ca` for `https://` endpoints.
    #[cfg(feature = "tls")]
    pub fn with_ca_certificate(
        endpoint: &str,
        timeout: Duration,
        ca: &std::path::Path,
    ) -> Result<Self, InvalidEndpoint> {
        Self::build(endpoint, timeout, Some(ca))
    }

    fn build(
        endpoint: &str,
        timeout: Duration,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, InvalidEndpoint> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|e| InvalidEndpoint(format!("{endpoint:?}: {e}")))?;
        let supported: &[&str] = if cfg!(feature = "tls") {
            &["http", "https"]
        } else {
            &["http"]
        };
        if !uri.scheme_str().is_some_and(|s| supported.contains(&s)) {
            return Err(InvalidEndpoint(format!(
                "{endpoint:?}: supported schemes: {}",
                supported.join(", ")
            )));
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        Ok(ZipkinExporter {
            uri,
            timeout,
            client: Client::builder(TokioExecutor::new()).build(connector(http, ca)?),
        })
    }

    async fn send(&self, batch: &ExportTraceServiceRequest) -> Result<(), ExportError> {
        let body = serde_json::to_vec(&to_zipkin(batch))
            .map_err(|e| ExportError::permanent(format!("JSON encoding failed: {e}")))?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ExportError::permanent(e.to_string()))?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let resp = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => return Err(ExportError::timeout(self.timeout)),
            Ok(Err(e)) => return Err(ExportError::retryable(format!("{}: {e}", self.uri))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let _ = tokio::time::timeout(self.timeout, resp.into_body().collect()).await;
        if status.is_success() {
            Ok(())
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(ExportError::retryable(format!("Zipkin HTTP {status}")))
        } else {
            Err(ExportError::permanent(format!("Zipkin HTTP {status}")))
        }
    }
}

impl SpanExporter for ZipkinExporter {
    fn name(&self) -> &str {
        "zipkin"
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tracewire_export::proto::common::v1::AnyValue;
    use tracewire_export::proto::trace::v1::span::Event;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn client(attributes: Vec<KeyValue>) -> OtlpSpan {
        OtlpSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind: SpanKind::Client as i32,
            attributes,
            ..OtlpSpan::default()
        }
    }

    #[test]
    fn the_remote_service_is_peer_service_else_a_host_name_with_the_peer_ip_and_port() {
        let host = kv(
            "server.address",
            Value::StringValue("users.internal".into()),
        );
        let ip = kv(
            "network.peer.address",
            Value::StringValue("10.0.0.7".into()),
        );
        let port = kv("network.peer.port", Value::IntValue(8080));
        let peer = kv("peer.service", Value::StringValue("users".into()));
        let ep = |attrs| span_to_zipkin("shop", None, &client(attrs)).remote_endpoint;

        let want = |name: &str| ZipkinEndpoint {
            service_name: Some(name.to_owned()),
            ipv4: Some("10.0.0.7".to_owned()),
            port: Some(8080),
            ..ZipkinEndpoint::default()
        };
        assert_eq!(
            ep(vec![peer.clone(), host.clone(), ip.clone(), port.clone()]),
            Some(want("users"))
        );
        assert_eq!(
            ep(vec![ip.clone(), host, port.clone()]),
            Some(want("users.internal"))
        );
        // peer.service alone: a name, no address or port.
        assert_eq!(
            ep(vec![peer, port]),
            Some(ZipkinEndpoint {
                service_name: Some("users".to_owned()),
                ..ZipkinEndpoint::default()
            })
        );
        assert_eq!(ep(vec![]), None);
    }

    #[test]
    fn annotations_quote_the_event_name_before_its_attributes_and_zero_parents_are_none() {
        let mut span = client(Vec::new());
        span.parent_span_id = vec![0; 8];
        span.events = vec![
            Event {
                time_unix_nano: 5_000,
                name: "retry".into(),
                attributes: vec![kv("attempt", Value::IntValue(2))],
                ..Event::default()
            },
            Event {
                time_unix_nano: 6_000,
                name: "done".into(),
                ..Event::default()
            },
        ];
        let z = span_to_zipkin("shop", None, &span);
        assert_eq!(z.parent_id, None);
        let values: Vec<&str> = z.annotations.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(values, [r#""retry": {"attempt":"2"}"#, "done"]);
        assert_eq!(z.annotations[0].timestamp, 5);
    }
}
