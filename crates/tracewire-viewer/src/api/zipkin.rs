//! Zipkin v2: decoding `POST /api/v2/spans` into OTLP, and the read API
//! (`/api/v2/services`, `/api/v2/spans`, `/api/v2/remoteServices`, `/api/v2/traces`,
//! `/api/v2/trace/{id}`).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event, span::SpanKind,
    status::StatusCode as Otel,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{json as json_resp, now_ns, param};
use crate::query::{self, SpanFilter};
use crate::receive::{ApiError, Ctx};
use crate::store::StoredSpan;
use crate::util;

// Attribute keys of the Zipkin <-> OTLP mapping (OpenTelemetry's Zipkin exporter spec).
const PEER_SERVICE: &str = "peer.service";
const NET_PEER_ADDR: &str = "network.peer.address";
const NET_PEER_PORT: &str = "network.peer.port";
const SERVER_ADDRESS: &str = "server.address";
const STATUS_CODE_TAG: &str = "otel.status_code";
const STATUS_DESC_TAG: &str = "otel.status_description";
const SCOPE_NAME_TAG: &str = "otel.scope.name";
const SCOPE_VERSION_TAG: &str = "otel.scope.version";
const ERROR_TAG: &str = "error";
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
    trace_id: String,
    id: String,
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

fn id_bytes(s: &str, len: usize, what: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > len * 2 {
        return Err(format!("invalid {what} {s:?}"));
    }
    util::unhex(&format!("{s:0>width$}", width = len * 2))
        .ok_or_else(|| format!("invalid {what} {s:?}"))
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
pub(crate) fn decode_spans(bytes: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let spans: Vec<ZSpan> =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid Zipkin v2 JSON: {e}"))?;
    let mut by_service: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for z in spans {
        let trace_id = id_bytes(&z.trace_id, 16, "traceId")?;
        let span_id = id_bytes(&z.id, 8, "id")?;
        let parent = match z.parent_id.as_deref() {
            Some(p) if !p.is_empty() => id_bytes(p, 8, "parentId")?,
            _ => Vec::new(),
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
    Ok(ExportTraceServiceRequest {
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
    })
}

fn attr<'a>(s: &'a StoredSpan, key: &str) -> Option<&'a AnyValue> {
    s.span
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// One stored span as a Zipkin v2 span.
pub(crate) fn to_zipkin(s: &StoredSpan) -> Value {
    let sp = &s.span;
    let mut o = serde_json::Map::new();
    o.insert("traceId".into(), json!(util::hex(&sp.trace_id)));
    o.insert("id".into(), json!(util::hex(&sp.span_id)));
    if !util::is_empty_id(&sp.parent_span_id) {
        o.insert("parentId".into(), json!(util::hex(&sp.parent_span_id)));
    }
    o.insert("name".into(), json!(sp.name));
    let kind = match SpanKind::try_from(sp.kind) {
        Ok(SpanKind::Server) => Some("SERVER"),
        Ok(SpanKind::Client) => Some("CLIENT"),
        Ok(SpanKind::Producer) => Some("PRODUCER"),
        Ok(SpanKind::Consumer) => Some("CONSUMER"),
        _ => None,
    };
    if let Some(k) = kind {
        o.insert("kind".into(), json!(k));
    }
    o.insert("timestamp".into(), json!(sp.start_time_unix_nano / 1000));
    o.insert("duration".into(), json!((s.duration_ns() / 1000).max(1)));
    o.insert(
        "localEndpoint".into(),
        json!({ "serviceName": &*s.origin.service }),
    );
    let mut remote = serde_json::Map::new();
    if let Some(v) = attr(s, PEER_SERVICE) {
        remote.insert("serviceName".into(), json!(util::value_text(v)));
    }
    if let Some(v) = attr(s, NET_PEER_ADDR).or_else(|| attr(s, SERVER_ADDRESS)) {
        let ip = util::value_text(v);
        let key = if ip.contains(':') { "ipv6" } else { "ipv4" };
        if ip.parse::<std::net::IpAddr>().is_ok() {
            remote.insert(key.into(), json!(ip));
        }
    }
    if let Some(any_value::Value::IntValue(p)) =
        attr(s, NET_PEER_PORT).and_then(|v| v.value.as_ref())
    {
        remote.insert("port".into(), json!(p));
    }
    if !remote.is_empty() {
        o.insert("remoteEndpoint".into(), Value::Object(remote));
    }
    if !sp.events.is_empty() {
        let anns: Vec<Value> = sp
            .events
            .iter()
            .map(|e| {
                let value = if e.attributes.is_empty() {
                    e.name.clone()
                } else {
                    let attrs: serde_json::Map<String, Value> = e
                        .attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv.key.clone(),
                                kv.value
                                    .as_ref()
                                    .map(util::value_json)
                                    .unwrap_or(Value::Null),
                            )
                        })
                        .collect();
                    format!("{} {}", e.name, Value::Object(attrs))
                };
                json!({ "timestamp": e.time_unix_nano / 1000, "value": value })
            })
            .collect();
        o.insert("annotations".into(), Value::Array(anns));
    }
    let mut tags = serde_json::Map::new();
    for kv in &sp.attributes {
        tags.insert(
            kv.key.clone(),
            json!(kv.value.as_ref().map(util::value_text).unwrap_or_default()),
        );
    }
    match util::status_code(sp) {
        Otel::Error => {
            let msg = sp
                .status
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default();
            tags.insert(STATUS_CODE_TAG.into(), json!("ERROR"));
            tags.insert(ERROR_TAG.into(), json!(msg));
        }
        Otel::Ok => {
            tags.insert(STATUS_CODE_TAG.into(), json!("OK"));
        }
        Otel::Unset => {}
    }
    if !s.origin.scope.name.is_empty() {
        tags.insert(SCOPE_NAME_TAG.into(), json!(s.origin.scope.name));
    }
    if !s.origin.scope.version.is_empty() {
        tags.insert(SCOPE_VERSION_TAG.into(), json!(s.origin.scope.version));
    }
    if !tags.is_empty() {
        o.insert("tags".into(), Value::Object(tags));
    }
    Value::Object(o)
}

fn zipkin_trace(spans: &[StoredSpan]) -> Value {
    let mut v: Vec<&StoredSpan> = spans.iter().collect();
    v.sort_by_key(|s| s.span.start_time_unix_nano);
    Value::Array(v.into_iter().map(to_zipkin).collect())
}

type Params = Query<Vec<(String, String)>>;

async fn services(State(ctx): State<Ctx>) -> Response {
    json_resp(&json!(ctx.store.services()))
}

async fn span_names(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let service = param(&q, "serviceName")
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "serviceName is required".into()))?;
    let mut names: Vec<String> = ctx
        .store
        .operations(service)
        .into_iter()
        .map(|(n, _)| n.to_lowercase())
        .collect();
    names.sort();
    names.dedup();
    Ok(json_resp(&json!(names)))
}

async fn remote_services(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let service = param(&q, "serviceName")
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "serviceName is required".into()))?;
    let query = crate::query::Query {
        span: SpanFilter {
            service: Some(service.to_owned()),
            attributes: vec![(PEER_SERVICE.to_owned(), None)],
            ..Default::default()
        },
        limit: 1000,
        ..Default::default()
    };
    let mut out: Vec<String> = ctx
        .store
        .search_traces(&query)
        .iter()
        .flat_map(|(_, spans)| spans.iter())
        .filter(|s| &*s.origin.service == service)
        .filter_map(|s| attr(s, PEER_SERVICE).map(util::value_text))
        .collect();
    out.sort();
    out.dedup();
    Ok(json_resp(&json!(out)))
}

fn bad(e: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e)
}

/// Builds a store query from Zipkin's `/api/v2/traces` parameters.
pub(crate) fn zipkin_query(q: &[(String, String)]) -> Result<crate::query::Query, ApiError> {
    let num = |k: &str| -> Result<Option<u64>, ApiError> {
        param(q, k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{k} must be a number, not {v:?}")))
            })
            .transpose()
    };
    let end_ms = num("endTs")?.unwrap_or(now_ns() / 1_000_000);
    let lookback_ms = num("lookback")?.unwrap_or(86_400_000);
    Ok(crate::query::Query {
        span: SpanFilter {
            service: param(q, "serviceName").map(str::to_owned),
            name: param(q, "spanName")
                .filter(|n| *n != "all")
                .map(str::to_owned),
            name_ignore_case: true,
            min_duration_ns: num("minDuration")?.map(|us| us.saturating_mul(1000)),
            max_duration_ns: num("maxDuration")?.map(|us| us.saturating_mul(1000)),
            attributes: param(q, "annotationQuery")
                .map(query::parse_terms)
                .unwrap_or_default(),
            ..Default::default()
        },
        start_ns: Some(end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000)),
        end_ns: Some(end_ms.saturating_mul(1_000_000)),
        limit: num("limit")?.unwrap_or(10) as usize,
        ..Default::default()
    })
}

async fn traces(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let query = zipkin_query(&q)?;
    let out: Vec<Value> = ctx
        .store
        .search_traces(&query)
        .iter()
        .map(|(_, spans)| zipkin_trace(spans))
        .collect();
    Ok(json_resp(&Value::Array(out)))
}

async fn trace(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tid = util::parse_trace_id(&id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?;
    match ctx.store.trace(&tid) {
        Some(spans) => Ok(json_resp(&zipkin_trace(&spans))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("trace {id} not found"),
        )),
    }
}

async fn trace_many(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let ids = param(&q, "traceIds").ok_or_else(|| bad("traceIds is required".into()))?;
    let mut out = Vec::new();
    for id in ids.split(',') {
        let tid =
            util::parse_trace_id(id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?;
        if let Some(spans) = ctx.store.trace(&tid) {
            out.push(zipkin_trace(&spans));
        }
    }
    Ok(json_resp(&Value::Array(out)))
}

/// The Zipkin v2 read API.
pub(crate) fn read_routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v2/services", get(services))
        .route("/api/v2/spans", get(span_names))
        .route("/api/v2/remoteServices", get(remote_services))
        .route("/api/v2/traces", get(traces))
        .route("/api/v2/trace/{id}", get(trace))
        .route("/api/v2/traceMany", get(trace_many))
        .route(
            "/api/v2/dependencies",
            get(|| async { json_resp(&json!([])) }),
        )
}
