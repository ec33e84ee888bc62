//! The Jaeger v1 read API (what Jaeger UI and Grafana's Jaeger data source call):
//! `/api/services`, `/api/services/{service}/operations`, `/api/operations`, `/api/traces`,
//! `/api/traces/{id}`, `/api/dependencies`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as Otel;
use serde_json::{Value, json};

use super::{json as json_resp, now_ns, param};
use crate::query::{self, SpanFilter, parse_duration};
use crate::receive::Ctx;
use crate::store::StoredSpan;
use crate::util;

fn envelope(data: Value, total: usize) -> Response {
    json_resp(&json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
}

fn error(code: StatusCode, msg: String) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({ "data": null, "total": 0, "limit": 0, "offset": 0,
                "errors": [{ "code": code.as_u16(), "msg": msg }] })
        .to_string(),
    )
        .into_response()
}

/// A Jaeger tag from an OTLP attribute.
fn tag(key: &str, v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::BoolValue(b)) => json!({ "key": key, "type": "bool", "value": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "key": key, "type": "int64", "value": i }),
        Some(any_value::Value::DoubleValue(d)) => {
            json!({ "key": key, "type": "float64", "value": d })
        }
        Some(any_value::Value::BytesValue(b)) => {
            json!({ "key": key, "type": "binary", "value": util::hex(b) })
        }
        _ => json!({ "key": key, "type": "string",
                     "value": v.map(util::value_text).unwrap_or_default() }),
    }
}

fn tags(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| tag(&kv.key, kv.value.as_ref()))
        .collect()
}

fn str_tag(key: &str, v: &str) -> Value {
    json!({ "key": key, "type": "string", "value": v })
}

/// One stored span as a Jaeger span (`processID` given by the caller).
pub(crate) fn to_jaeger(s: &StoredSpan, process_id: &str) -> Value {
    let sp = &s.span;
    let trace_id = util::hex(&sp.trace_id);
    let mut references = Vec::new();
    if !util::is_empty_id(&sp.parent_span_id) {
        references.push(json!({ "refType": "CHILD_OF", "traceID": trace_id,
                                "spanID": util::hex(&sp.parent_span_id) }));
    }
    for l in &sp.links {
        references.push(
            json!({ "refType": "FOLLOWS_FROM", "traceID": util::hex(&l.trace_id),
                                "spanID": util::hex(&l.span_id) }),
        );
    }
    let mut t = tags(&sp.attributes);
    let kind = util::kind_name(sp.kind);
    if kind != "internal" && kind != "unspecified" {
        t.push(str_tag("span.kind", kind));
    }
    match util::status_code(sp) {
        Otel::Error => {
            t.push(str_tag("otel.status_code", "ERROR"));
            t.push(json!({ "key": "error", "type": "bool", "value": true }));
            if let Some(st) = sp.status.as_ref().filter(|s| !s.message.is_empty()) {
                t.push(str_tag("otel.status_description", &st.message));
            }
        }
        Otel::Ok => t.push(str_tag("otel.status_code", "OK")),
        Otel::Unset => {}
    }
    if !s.origin.scope.name.is_empty() {
        t.push(str_tag("otel.scope.name", &s.origin.scope.name));
    }
    if !s.origin.scope.version.is_empty() {
        t.push(str_tag("otel.scope.version", &s.origin.scope.version));
    }
    if !sp.trace_state.is_empty() {
        t.push(str_tag("w3c.tracestate", &sp.trace_state));
    }
    let logs: Vec<Value> = sp
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![str_tag("event", &e.name)];
            fields.extend(tags(&e.attributes));
            json!({ "timestamp": e.time_unix_nano / 1000, "fields": fields })
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spanID": util::hex(&sp.span_id),
        "operationName": sp.name,
        "references": references,
        "flags": sp.flags & 0xff,
        "startTime": sp.start_time_unix_nano / 1000,
        "duration": s.duration_ns() / 1000,
        "tags": t,
        "logs": logs,
        "processID": process_id,
        "warnings": null,
    })
}

/// A whole trace in Jaeger's JSON shape (spans by start time, one process per resource).
pub(crate) fn jaeger_trace(tid: &[u8], spans: &[StoredSpan]) -> Value {
    let mut processes: Vec<(String, Value)> = Vec::new();
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut sorted: Vec<&StoredSpan> = spans.iter().collect();
    sorted.sort_by_key(|s| s.span.start_time_unix_nano);
    let mut out = Vec::with_capacity(sorted.len());
    // one process per distinct resource; batches of one process share it
    let mut by_origin: HashMap<*const crate::store::Origin, String> = HashMap::new();
    for s in sorted {
        let ptr = std::sync::Arc::as_ptr(&s.origin);
        if let Some(pid) = by_origin.get(&ptr) {
            out.push(to_jaeger(s, pid));
            continue;
        }
        let ptags: Vec<Value> = s
            .origin
            .resource
            .attributes
            .iter()
            .filter(|kv| kv.key != util::SERVICE_NAME)
            .map(|kv| tag(&kv.key, kv.value.as_ref()))
            .collect();
        let process = json!({ "serviceName": &*s.origin.service, "tags": ptags });
        let key = process.to_string();
        let pid = match keys.get(&key) {
            Some(p) => p.clone(),
            None => {
                let p = format!("p{}", processes.len() + 1);
                keys.insert(key, p.clone());
                processes.push((p.clone(), process));
                p
            }
        };
        by_origin.insert(ptr, pid.clone());
        out.push(to_jaeger(s, &pid));
    }
    json!({
        "traceID": util::hex(tid),
        "spans": out,
        "processes": processes.into_iter().collect::<serde_json::Map<_, _>>(),
        "warnings": null,
    })
}

type Params = Query<Vec<(String, String)>>;

async fn services(State(ctx): State<Ctx>) -> Response {
    let s = ctx.store.services();
    let n = s.len();
    envelope(json!(s), n)
}

async fn service_operations(State(ctx): State<Ctx>, Path(service): Path<String>) -> Response {
    let ops: Vec<String> = ctx
        .store
        .operations(&service)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let n = ops.len();
    envelope(json!(ops), n)
}

async fn operations(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let Some(service) = param(&q, "service") else {
        return error(
            StatusCode::BAD_REQUEST,
            "parameter 'service' is required".into(),
        );
    };
    let want_kind = param(&q, "spanKind");
    let mut out = Vec::new();
    for (name, kinds) in ctx.store.operations(service) {
        for k in kinds {
            let kind = match util::kind_name(k) {
                "unspecified" | "internal" => "internal",
                other => other,
            };
            if want_kind.is_none_or(|w| w == kind) {
                out.push(json!({ "name": name, "spanKind": kind }));
            }
        }
    }
    let n = out.len();
    envelope(Value::Array(out), n)
}

/// Builds a store query from Jaeger's `/api/traces` parameters.
pub(crate) fn jaeger_query(q: &[(String, String)]) -> Result<query::Query, String> {
    let num = |k: &str| -> Result<Option<u64>, String> {
        param(q, k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k} must be a number, not {v:?}"))
            })
            .transpose()
    };
    let mut attributes = Vec::new();
    for (k, v) in q.iter().filter(|(k, _)| k == "tags" || k == "tag") {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        if v.starts_with('{') {
            let m: HashMap<String, Value> =
                serde_json::from_str(v).map_err(|e| format!("malformed tags parameter: {e}"))?;
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                attributes.push((k, Some(v)));
            }
        } else if k == "tag" {
            // Jaeger's `tag=key:value` form.
            match v.split_once(':') {
                Some((k, v)) => attributes.push((k.to_owned(), Some(v.to_owned()))),
                None => attributes.push((v.to_owned(), None)),
            }
        } else {
            attributes.extend(query::parse_terms(v));
        }
    }
    let dur = |k: &str| param(q, k).map(|v| parse_duration(v, 1e3)).transpose();
    let end_us = num("end")?;
    let mut start_us = num("start")?;
    if start_us.is_none() {
        if let Some(lb) = param(q, "lookback").filter(|l| *l != "custom") {
            let lb_ns = parse_duration(lb, 1e3)?;
            let end = end_us
                .map(|e| e.saturating_mul(1000))
                .unwrap_or_else(now_ns);
            start_us = Some(end.saturating_sub(lb_ns) / 1000);
        }
    }
    Ok(query::Query {
        span: SpanFilter {
            service: param(q, "service").map(str::to_owned),
            name: param(q, "operation").map(str::to_owned),
            min_duration_ns: dur("minDuration")?,
            max_duration_ns: dur("maxDuration")?,
            attributes,
            ..Default::default()
        },
        start_ns: start_us.map(|s| s.saturating_mul(1000)),
        end_ns: end_us.map(|e| e.saturating_mul(1000)),
        limit: num("limit")?.unwrap_or(20) as usize,
        ..Default::default()
    })
}

async fn traces(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let ids: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| v.as_str())
        .collect();
    if !ids.is_empty() {
        let mut out = Vec::new();
        for id in ids {
            let Some(tid) = util::parse_trace_id(id) else {
                return error(StatusCode::BAD_REQUEST, format!("invalid trace id {id:?}"));
            };
            if let Some(spans) = ctx.store.trace(&tid) {
                out.push(jaeger_trace(&tid, &spans));
            }
        }
        let n = out.len();
        return envelope(Value::Array(out), n);
    }
    let query = match jaeger_query(&q) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let out: Vec<Value> = ctx
        .store
        .search_traces(&query)
        .iter()
        .map(|(tid, spans)| jaeger_trace(tid, spans))
        .collect();
    let n = out.len();
    envelope(Value::Array(out), n)
}

async fn trace(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let Some(tid) = util::parse_trace_id(&id) else {
        return error(StatusCode::BAD_REQUEST, format!("invalid trace id {id:?}"));
    };
    match ctx.store.trace(&tid) {
        Some(spans) => envelope(json!([jaeger_trace(&tid, &spans)]), 1),
        None => error(StatusCode::NOT_FOUND, "trace not found".into()),
    }
}

/// Service dependency links (parent span service -> child span service) over stored traces.
async fn dependencies(State(ctx): State<Ctx>) -> Response {
    let all = ctx.store.search_traces(&query::Query {
        limit: 10_000,
        ..Default::default()
    });
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    for (_, spans) in &all {
        let by_id: HashMap<&[u8], &StoredSpan> = spans
            .iter()
            .map(|s| (s.span.span_id.as_slice(), s))
            .collect();
        for s in spans {
            if let Some(p) = by_id.get(s.span.parent_span_id.as_slice()) {
                if p.origin.service != s.origin.service {
                    *counts
                        .entry((p.origin.service.to_string(), s.origin.service.to_string()))
                        .or_default() += 1;
                }
            }
        }
    }
    let out: Vec<Value> = counts
        .into_iter()
        .map(|((parent, child), n)| json!({ "parent": parent, "child": child, "callCount": n }))
        .collect();
    let n = out.len();
    envelope(Value::Array(out), n)
}

/// The Jaeger v1 read API.
pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(traces))
        .route("/api/traces/{id}", get(trace))
        .route("/api/dependencies", get(dependencies))
}
