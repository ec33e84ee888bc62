//! The decoders of what the receivers accept: OTLP (protobuf and JSON) and Zipkin v2 JSON.
//!
//! Both are public so they can be fuzzed (`fuzz/fuzz_targets/viewer_*.rs`) and reused; neither
//! touches the store. A Zipkin span with an invalid id is rejected on its own and counted, the
//! way OTLP partial success reports rejected spans; only a body that is not Zipkin v2 JSON at
//! all is an error.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind,
    status::StatusCode as Otel,
};
use prost::Message;
use serde::Deserialize;

use crate::util;

/// Decodes an OTLP `ExportTraceServiceRequest` in either encoding (`json`: OTLP/JSON, else
/// protobuf).
pub fn decode_otlp(bytes: &[u8], json: bool) -> Result<ExportTraceServiceRequest, String> {
    if json {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid OTLP JSON: {e}"))
    } else {
        ExportTraceServiceRequest::decode(bytes).map_err(|e| format!("invalid OTLP protobuf: {e}"))
    }
}

// Attribute keys of the Zipkin -> OTLP mapping of received spans (the other way is
// `tracewire_zipkin::span_to_zipkin`).
pub(crate) const PEER_SERVICE: &str = "peer.service";
pub(crate) const NET_PEER_ADDR: &str = "network.peer.address";
pub(crate) const NET_PEER_PORT: &str = "network.peer.port";
pub(crate) const STATUS_CODE_TAG: &str = "otel.status_code";
pub(crate) const STATUS_DESC_TAG: &str = "otel.status_description";
pub(crate) const ERROR_TAG: &str = "error";
/// Scope given to spans received over Zipkin.
const ZIPKIN_SCOPE: &str = "zipkin";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<i64>,
}

#[derive(Deserialize)]
struct ZAnnotation {
    timestamp: u64,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<ZEndpoint>,
    remote_endpoint: Option<ZEndpoint>,
    #[serde(default)]
    annotations: Vec<ZAnnotation>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// A Zipkin v2 JSON body decoded into OTLP: the valid spans, and what was rejected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZipkinSpans {
    /// The valid spans, one resource per `localEndpoint.serviceName`.
    pub request: ExportTraceServiceRequest,
    /// Spans rejected for an invalid `traceId`, `id` or `parentId`.
    pub rejected: usize,
    /// Why the first rejected span was rejected.
    pub error: Option<String>,
}

/// Hex of exactly one of `lens` digits (any case), not all zero.
fn id_bytes(s: Option<&str>, lens: &[usize], what: &str) -> Result<Vec<u8>, String> {
    let s = s.unwrap_or("");
    let want = || {
        let lens: Vec<String> = lens.iter().map(|l| l.to_string()).collect();
        format!(
            "invalid {what} {s:?}: {} hex digits, not all zero",
            lens.join(" or ")
        )
    };
    if !lens.contains(&s.len()) {
        return Err(want());
    }
    let mut bytes = util::unhex(s).ok_or_else(want)?;
    if util::is_empty_id(&bytes) {
        return Err(want());
    }
    // a 64-bit trace id is the low half of a 128-bit one
    if bytes.len() < 16 && what == "traceId" {
        let mut full = vec![0; 16 - bytes.len()];
        full.append(&mut bytes);
        bytes = full;
    }
    Ok(bytes)
}

/// The parent: none when absent, empty or all zero; else exactly 16 hex digits.
fn parent_bytes(s: Option<&str>) -> Result<Vec<u8>, String> {
    match s {
        None | Some("") => Ok(Vec::new()),
        Some(p) if p.len() == 16 && p.bytes().all(|b| b == b'0') => Ok(Vec::new()),
        Some(p) => id_bytes(Some(p), &[16], "parentId"),
    }
}

fn int_kv(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// Decodes a Zipkin v2 JSON list of spans into an OTLP request (one resource per service).
///
/// Ids follow the Zipkin v2 API: `traceId` 16 or 32 hex digits, `id` and `parentId` 16, ids
/// not all zero (an all-zero `parentId` means no parent). A span with an invalid id is left out
/// and counted in [`ZipkinSpans::rejected`]; a body that is not a JSON list of Zipkin spans is
/// an error.
pub fn decode_zipkin(bytes: &[u8]) -> Result<ZipkinSpans, String> {
    let spans: Vec<ZSpan> =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid Zipkin v2 JSON: {e}"))?;
    let mut by_service: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    let mut rejected = 0;
    let mut error = None;
    for z in spans {
        let ids = id_bytes(z.trace_id.as_deref(), &[16, 32], "traceId").and_then(|t| {
            let s = id_bytes(z.id.as_deref(), &[16], "id")?;
            Ok((t, s, parent_bytes(z.parent_id.as_deref())?))
        });
        let (trace_id, span_id, parent) = match ids {
            Ok(ids) => ids,
            Err(e) => {
                rejected += 1;
                error.get_or_insert(e);
                continue;
            }
        };
        let kind = match z.kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("SERVER") => SpanKind::Server,
            Some("CLIENT") => SpanKind::Client,
            Some("PRODUCER") => SpanKind::Producer,
            Some("CONSUMER") => SpanKind::Consumer,
            _ => SpanKind::Internal,
        };
        let start = z.timestamp.unwrap_or(0).saturating_mul(1000);
        let end = start.saturating_add(z.duration.unwrap_or(0).saturating_mul(1000));
        let mut status = None;
        let mut attributes = Vec::new();
        let (mut code, mut desc) = (None, None);
        for (k, v) in z.tags {
            match k.as_str() {
                ERROR_TAG => {
                    code = Some(Otel::Error);
                    if !v.is_empty() && desc.is_none() {
                        desc = Some(v);
                    }
                }
                STATUS_CODE_TAG => match v.as_str() {
                    "ERROR" => code = Some(Otel::Error),
                    "OK" => code = code.or(Some(Otel::Ok)),
                    _ => {}
                },
                STATUS_DESC_TAG => desc = Some(v),
                _ => attributes.push(util::kv_str(&k, v)),
            }
        }
        if let Some(code) = code {
            status = Some(Status {
                code: code as i32,
                message: desc.unwrap_or_default(),
            });
        }
        if let Some(r) = z.remote_endpoint {
            if let Some(s) = r.service_name.filter(|s| !s.is_empty()) {
                attributes.push(util::kv_str(PEER_SERVICE, s));
            }
            if let Some(ip) = r.ipv4.or(r.ipv6) {
                attributes.push(util::kv_str(NET_PEER_ADDR, ip));
            }
            if let Some(p) = r.port {
                attributes.push(int_kv(NET_PEER_PORT, p));
            }
        }
        let events = z
            .annotations
            .into_iter()
            .map(|a| Event {
                time_unix_nano: a.timestamp.saturating_mul(1000),
                name: a.value,
                ..Default::default()
            })
            .collect();
        let service = z
            .local_endpoint
            .and_then(|e| e.service_name)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| util::UNKNOWN_SERVICE.to_owned());
        by_service.entry(service).or_default().push(Span {
            trace_id,
            span_id,
            parent_span_id: parent,
            name: z.name.unwrap_or_default(),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            events,
            status,
            ..Default::default()
        });
    }
    let request = ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![util::kv_str(util::SERVICE_NAME, service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: ZIPKIN_SCOPE.to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    };
    Ok(ZipkinSpans {
        request,
        rejected,
        error,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn one(trace: &str, id: &str, parent: Option<&str>) -> String {
        let parent = parent
            .map(|p| format!(",\"parentId\":\"{p}\""))
            .unwrap_or_default();
        format!("[{{\"traceId\":\"{trace}\",\"id\":\"{id}\"{parent}}}]")
    }

    #[test]
    fn zipkin_ids_follow_the_v2_api() {
        let t16 = "463ac35c9f6413ad";
        let t32 = "463ac35c9f6413ad48485a3953bb6124";
        let id = "a2fb4a1d1a96d312";
        for (trace, sid, parent, ok) in [
            (t32, id, None, true),
            (t16, id, None, true),
            (t32, id, Some("b3fb4a1d1a96d313"), true),
            (t32, id, Some("0000000000000000"), true), // all-zero parent: a root
            (t32, id, Some(""), true),
            ("0".repeat(32).as_str(), id, None, false),
            ("0".repeat(16).as_str(), id, None, false),
            (t32, "0000000000000000", None, false),
            (t32, "a2fb", None, false),
            ("463ac35c9f6413ad4", id, None, false), // 17 digits
            (t32, id, Some("b3fb"), false),
            (t32, id, Some("b3fb4a1d1a96d31344"), false),
            (t32, id, Some("zzfb4a1d1a96d313"), false),
        ] {
            let out = decode_zipkin(one(trace, sid, parent).as_bytes()).unwrap();
            let stored: usize = out
                .request
                .resource_spans
                .iter()
                .map(|r| r.scope_spans[0].spans.len())
                .sum();
            assert_eq!(
                (stored, out.rejected),
                if ok { (1, 0) } else { (0, 1) },
                "{trace} {sid} {parent:?}"
            );
            assert_eq!(out.error.is_some(), !ok);
        }
        // a missing id rejects that span, not the body
        let out = decode_zipkin(br#"[{"traceId":"463ac35c9f6413ad"}]"#).unwrap();
        assert_eq!(out.rejected, 1);
        assert!(decode_zipkin(b"[{").is_err());
        // a 64-bit trace id is the low half
        let out = decode_zipkin(one(t16, id, None).as_bytes()).unwrap();
        let span = &out.request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            util::hex(&span.trace_id),
            format!("{}{t16}", "0".repeat(16))
        );
    }
}
