//! The Jaeger v1 read API (what Jaeger UI and Grafana's Jaeger data source call):
//! `/api/services`, `/api/services/{service}/operations`, `/api/operations`, `/api/traces`,
//! `/api/traces/{id}`, `/api/dependencies`, `POST /api/transform`; and, as Jaeger without an
//! archive or metrics store answers them, `POST /api/archive/{id}` and `/api/metrics/*`. Held
//! against a real Jaeger 2.13 by `tests/jaeger_parity.rs`; the differences that stay are in the
//! README ("Jaeger API compatibility").

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as Otel;
use serde::Serialize;
use serde_json::{Value, json};

use super::stream::{self, array, value};
use super::{MAX_LIMIT, MAX_RESPONSE_BYTES, json as json_resp, limit, now_ns, param};
use crate::query::{self, SpanFilter, parse_duration};
use crate::receive::{ApiError, Ctx};
use crate::store::{Origin, Store, StoreConfig, StoredSpan, TraceId};
use crate::util;

/// Jaeger's default `limit` of `/api/traces`.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Jaeger's default `lookback` of `/api/dependencies`, ms.
const DEFAULT_DEPENDENCY_LOOKBACK_MS: u64 = 24 * 3600 * 1000;

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

/// A Jaeger tag value.
#[derive(Serialize)]
#[serde(untagged)]
enum TagValue<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
}

/// A Jaeger tag: `{"key", "type", "value"}`.
#[derive(Serialize)]
struct Tag<'a> {
    key: &'a str,
    r#type: &'static str,
    value: TagValue<'a>,
}

/// A Jaeger tag from an OTLP attribute.
fn tag<'a>(key: &'a str, v: Option<&'a AnyValue>) -> Tag<'a> {
    let (r#type, value) = match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::BoolValue(b)) => ("bool", TagValue::Bool(*b)),
        Some(any_value::Value::IntValue(i)) => ("int64", TagValue::Int(*i)),
        Some(any_value::Value::DoubleValue(d)) => ("float64", TagValue::Float(*d)),
        // Go's JSON of a byte slice, as Jaeger writes it
        Some(any_value::Value::BytesValue(b)) => ("binary", TagValue::Str(base64(b).into())),
        Some(any_value::Value::StringValue(s)) => ("string", TagValue::Str(s.into())),
        _ => (
            "string",
            TagValue::Str(v.map(util::value_text).unwrap_or_default().into()),
        ),
    };
    Tag { key, r#type, value }
}

/// Standard base64 with padding (what Jaeger's JSON holds for a `binary` tag).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tags(kvs: &[KeyValue]) -> impl Iterator<Item = Tag<'_>> {
    kvs.iter().map(|kv| tag(&kv.key, kv.value.as_ref()))
}

fn str_tag<'a>(key: &'a str, v: &'a str) -> Tag<'a> {
    Tag {
        key,
        r#type: "string",
        value: TagValue::Str(v.into()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    ref_type: &'static str,
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Serialize)]
struct Log<'a> {
    timestamp: u64,
    fields: Vec<Tag<'a>>,
}

/// One stored span as a Jaeger span.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JaegerSpan<'a> {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    operation_name: &'a str,
    references: Vec<Reference>,
    // left out when 0, as Jaeger does
    #[serde(skip_serializing_if = "is_zero")]
    flags: u32,
    start_time: u64,
    duration: u64,
    tags: Vec<Tag<'a>>,
    logs: Vec<Log<'a>>,
    #[serde(rename = "processID")]
    process_id: &'a str,
    warnings: Option<()>,
}

/// A boolean as Go's `strconv.ParseBool` reads it.
pub(crate) fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Jaeger's `raw` parameter: the trace as received, not as its adjusters leave it.
fn raw_param(q: &[(String, String)]) -> Result<bool, String> {
    param(q, "raw").map_or(Ok(false), |v| {
        go_bool(v).ok_or_else(|| format!("unable to parse param 'raw': {v:?}"))
    })
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One stored span as a Jaeger span (`processID` given by the caller). `adjusted`: in the order
/// Jaeger's adjusters leave a trace unless `raw` is asked for — tags sorted by key, logs by
/// time and their fields by key (after `event`); else as received.
fn to_jaeger<'a>(s: &'a StoredSpan, process_id: &'a str, adjusted: bool) -> JaegerSpan<'a> {
    let sp = &*s.span;
    let trace_id = util::hex(&sp.trace_id);
    let mut references = Vec::new();
    if !util::is_empty_id(&sp.parent_span_id) {
        references.push(Reference {
            ref_type: "CHILD_OF",
            trace_id: trace_id.clone(),
            span_id: util::hex(&sp.parent_span_id),
        });
    }
    for l in &sp.links {
        references.push(Reference {
            ref_type: "FOLLOWS_FROM",
            trace_id: util::hex(&l.trace_id),
            span_id: util::hex(&l.span_id),
        });
    }
    // Jaeger's order when `raw`: scope, attributes, kind, status
    let mut t: Vec<Tag<'a>> = Vec::with_capacity(sp.attributes.len() + 6);
    if !s.origin.scope.name.is_empty() {
        t.push(str_tag("otel.scope.name", &s.origin.scope.name));
    }
    if !s.origin.scope.version.is_empty() {
        t.push(str_tag("otel.scope.version", &s.origin.scope.version));
    }
    t.extend(tags(&sp.attributes));
    let kind = util::kind_name(sp.kind);
    if kind != "unspecified" {
        t.push(str_tag("span.kind", kind));
    }
    match util::status_code(sp) {
        Otel::Error => {
            t.push(str_tag("otel.status_code", "ERROR"));
            t.push(Tag {
                key: "error",
                r#type: "bool",
                value: TagValue::Bool(true),
            });
            if let Some(st) = sp.status.as_ref().filter(|s| !s.message.is_empty()) {
                t.push(str_tag("otel.status_description", &st.message));
            }
        }
        Otel::Ok => t.push(str_tag("otel.status_code", "OK")),
        Otel::Unset => {}
    }
    if !sp.trace_state.is_empty() {
        t.push(str_tag("w3c.tracestate", &sp.trace_state));
    }
    let mut events: Vec<_> = sp.events.iter().collect();
    if adjusted {
        t.sort_by(|a, b| a.key.cmp(b.key));
        events.sort_by_key(|e| e.time_unix_nano);
    }
    let logs = events
        .into_iter()
        .map(|e| {
            let mut fields = vec![str_tag("event", &e.name)];
            let start = fields.len();
            fields.extend(tags(&e.attributes));
            if adjusted {
                fields[start..].sort_by(|a, b| a.key.cmp(b.key));
            }
            Log {
                timestamp: e.time_unix_nano / 1000,
                fields,
            }
        })
        .collect();
    JaegerSpan {
        trace_id,
        span_id: util::hex(&sp.span_id),
        operation_name: &sp.name,
        references,
        flags: sp.flags & 0xff,
        start_time: sp.start_time_unix_nano / 1000,
        duration: s.duration_ns() / 1000,
        tags: t,
        logs,
        process_id,
        warnings: None,
    }
}

/// Writes a whole trace in Jaeger's JSON shape (spans by start time, one process per
/// distinct resource), span by span; `adjusted` as in [`to_jaeger`] (process tags sorted too).
fn write_trace<W: Write>(
    w: &mut W,
    tid: &[u8],
    spans: &[StoredSpan],
    adjusted: bool,
) -> io::Result<()> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Process<'a> {
        service_name: &'a str,
        tags: Vec<Tag<'a>>,
    }
    let mut sorted: Vec<&StoredSpan> = spans.iter().collect();
    sorted.sort_by_key(|s| s.span.start_time_unix_nano);
    // one process per distinct resource; batches of one process share it
    let mut processes: Vec<(String, String)> = Vec::new();
    let mut keys: HashMap<String, usize> = HashMap::new();
    let mut by_origin: HashMap<*const Origin, usize> = HashMap::new();
    w.write_all(b"{\"traceID\":")?;
    value(w, &util::hex(tid))?;
    w.write_all(b",\"spans\":")?;
    array(w, sorted, |w, s| {
        let ptr = std::sync::Arc::as_ptr(&s.origin);
        let i = match by_origin.get(&ptr) {
            Some(i) => *i,
            None => {
                let mut process = Process {
                    service_name: &s.origin.service,
                    tags: s
                        .origin
                        .resource
                        .attributes
                        .iter()
                        .filter(|kv| kv.key != util::SERVICE_NAME)
                        .map(|kv| tag(&kv.key, kv.value.as_ref()))
                        .collect(),
                };
                if adjusted {
                    process.tags.sort_by(|a, b| a.key.cmp(b.key));
                }
                let json = serde_json::to_string(&process).map_err(io::Error::other)?;
                let i = *keys.entry(json.clone()).or_insert_with(|| {
                    processes.push((format!("p{}", processes.len() + 1), json));
                    processes.len() - 1
                });
                by_origin.insert(ptr, i);
                i
            }
        };
        value(w, &to_jaeger(s, &processes[i].0, adjusted))
    })?;
    w.write_all(b",\"processes\":{")?;
    for (i, (pid, json)) in processes.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        value(w, pid)?;
        w.write_all(b":")?;
        w.write_all(json.as_bytes())?;
    }
    w.write_all(b"},\"warnings\":null}")
}

/// The traces `ids` in Jaeger's envelope, written while they are sent (see [`stream::traces`]);
/// `missing` (ids asked for by `traceID=` that are not stored) become Jaeger's per-trace errors.
/// `total` is 0, as Jaeger writes it for traces. `raw`: as received (see [`to_jaeger`]).
fn traces_response(ctx: &Ctx, ids: Vec<TraceId>, missing: Vec<TraceId>, raw: bool) -> Response {
    let store = ctx.store.clone();
    stream::json(move |w| {
        w.write_all(b"{\"data\":[")?;
        stream::traces(
            w,
            &store,
            &ids,
            MAX_RESPONSE_BYTES,
            "Jaeger",
            |w, id, spans| write_trace(w, id, spans, !raw),
        )?;
        w.write_all(b"],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":")?;
        if missing.is_empty() {
            w.write_all(b"null}")
        } else {
            let errors: Vec<Value> = missing
                .iter()
                .map(|id| json!({ "msg": "trace not found", "traceID": util::hex(id) }))
                .collect();
            value(w, &errors)?;
            w.write_all(b"}")
        }
    })
}

type Params = Query<Vec<(String, String)>>;

async fn services(State(ctx): State<Ctx>) -> Response {
    let s = ctx.store.services();
    let n = s.len();
    // Jaeger: `null` when there is none
    envelope(if n == 0 { Value::Null } else { json!(s) }, n)
}

async fn service_operations(State(ctx): State<Ctx>, Path(service): Path<String>) -> Response {
    let ops: Vec<String> = ctx
        .store
        .operations(&service)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let n = ops.len();
    // Jaeger: `null` for a service it does not know
    envelope(if n == 0 { Value::Null } else { json!(ops) }, n)
}

/// The operations of `service` as Jaeger lists them (v1 and v3): a `(name, kind)` pair per kind
/// seen, the kind `""` when unspecified (so `unspecified` finds nothing), only those of
/// `want_kind` when one is asked for.
pub(super) fn operations_of(
    store: &Store,
    service: &str,
    want_kind: Option<&str>,
) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (name, kinds) in store.operations(service) {
        for k in kinds {
            let kind = match util::kind_name(k) {
                "unspecified" => "",
                other => other,
            };
            if want_kind.is_none_or(|w| w == kind) {
                out.push((name.clone(), kind));
            }
        }
    }
    out
}

async fn operations(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let Some(service) = param(&q, "service") else {
        return error(
            StatusCode::BAD_REQUEST,
            "parameter 'service' is required".into(),
        );
    };
    let out: Vec<Value> = operations_of(&ctx.store, service, param(&q, "spanKind"))
        .into_iter()
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind }))
        .collect();
    let n = out.len();
    envelope(Value::Array(out), n)
}

/// Builds a store query from Jaeger's `/api/traces` parameters (without `traceID`), refusing
/// what Jaeger refuses: no `service`, a `tag` without `:`, `maxDuration` below `minDuration`.
/// `start`/`end` bound the start of the matching span, as in Jaeger's stores.
pub(crate) fn jaeger_query(q: &[(String, String)]) -> Result<query::Query, String> {
    let Some(service) = param(q, "service") else {
        return Err("parameter 'service' is required".into());
    };
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
                None => {
                    return Err(format!(
                        "malformed 'tag' parameter, expecting key:value, received: {v}"
                    ));
                }
            }
        } else {
            attributes.extend(query::parse_terms(v));
        }
    }
    let dur = |k: &str| param(q, k).map(|v| parse_duration(v, 1e3)).transpose();
    let (min_duration_ns, max_duration_ns) = (dur("minDuration")?, dur("maxDuration")?);
    if let (Some(min), Some(max)) = (min_duration_ns, max_duration_ns) {
        if min > 0 && max > 0 && max < min {
            return Err("'maxDuration' should be greater than 'minDuration'".into());
        }
    }
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
    let start_ns = start_us.map(|s| s.saturating_mul(1000));
    let end_ns = end_us.map(|e| e.saturating_mul(1000));
    Ok(query::Query {
        span: SpanFilter {
            service: Some(service.to_owned()),
            name: param(q, "operation").map(str::to_owned),
            min_duration_ns,
            max_duration_ns,
            start_min_ns: start_ns,
            start_max_ns: end_ns,
            attributes,
            ..Default::default()
        },
        // implied by the span's bounds; rules traces out before their spans are read
        start_ns,
        end_ns,
        limit: limit(num("limit")?, DEFAULT_LIMIT),
        ..Default::default()
    })
}

async fn traces(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let raw = match raw_param(&q) {
        Ok(raw) => raw,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let ids: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| v.as_str())
        .collect();
    if !ids.is_empty() {
        // the Jaeger UI's compare view: these traces, an error for each one not stored
        let mut tids = Vec::new();
        let mut missing = Vec::new();
        for id in ids.into_iter().take(MAX_LIMIT) {
            let Some(tid) = util::parse_trace_id(id) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot parse traceID param: {id:?}"),
                );
            };
            if ctx.store.summary(&tid).is_some() {
                tids.push(tid);
            } else {
                missing.push(tid);
            }
        }
        return traces_response(&ctx, tids, missing, raw);
    }
    let query = match jaeger_query(&q) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store = ctx.store.clone();
    let ids = tokio::task::spawn_blocking(move || store.search_ids(&query))
        .await
        .unwrap_or_default();
    traces_response(&ctx, ids, Vec::new(), raw)
}

/// `GET /api/traces/{id}`: `start` and `end` (µs, Grafana sends them) and `raw` are checked as
/// Jaeger checks them; the viewer holds every trace whole, so they change nothing.
async fn trace(State(ctx): State<Ctx>, Path(id): Path<String>, Query(q): Params) -> Response {
    let Some(tid) = util::parse_trace_id(&id) else {
        return error(StatusCode::BAD_REQUEST, format!("invalid trace id {id:?}"));
    };
    for k in ["start", "end"] {
        if let Some(v) = param(&q, k).filter(|v| v.parse::<i64>().is_err()) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unable to parse param '{k}': {v:?} is not a number"),
            );
        }
    }
    let raw = match raw_param(&q) {
        Ok(raw) => raw,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if ctx.store.summary(&tid).is_none() {
        return error(StatusCode::NOT_FOUND, "trace not found".into());
    }
    traces_response(&ctx, vec![tid], Vec::new(), raw)
}

/// Service dependency links (parent span service -> child span service, between distinct
/// services) of the traces that start after `endTs - lookback` and end before `endTs` (ms;
/// defaults: now and 24 h, as Jaeger's), at most the 10 000 newest, read one trace at a time;
/// `service=` keeps the links of that service.
async fn dependencies(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let ms = |k: &str| -> Result<Option<u64>, String> {
        param(&q, k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("unable to parse param '{k}': {v:?} is not a number"))
            })
            .transpose()
    };
    let (end_ms, lookback_ms) = match (ms("endTs"), ms("lookback")) {
        (Ok(e), Ok(l)) => (e, l),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let end_ns = end_ms.map_or_else(now_ns, |e| e.saturating_mul(1_000_000));
    let start_ns = end_ns.saturating_sub(
        lookback_ms
            .unwrap_or(DEFAULT_DEPENDENCY_LOOKBACK_MS)
            .saturating_mul(1_000_000),
    );
    let service = param(&q, "service").map(str::to_owned);
    let store = ctx.store.clone();
    let counts = tokio::task::spawn_blocking(move || {
        let ids = store.search_ids(&query::Query {
            start_ns: Some(start_ns),
            end_ns: Some(end_ns),
            limit: 10_000,
            ..Default::default()
        });
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        for id in ids {
            let Some(spans) = store.trace(&id) else {
                continue;
            };
            // Jaeger: the whole trace within the window
            let first = spans.iter().map(|s| s.span.start_time_unix_nano).min();
            let last = spans.iter().map(|s| s.span.end_time_unix_nano).max();
            if first.is_none_or(|f| f <= start_ns) || last.is_none_or(|l| l >= end_ns) {
                continue;
            }
            let by_id: HashMap<&[u8], &StoredSpan> = spans
                .iter()
                .map(|s| (s.span.span_id.as_slice(), s))
                .collect();
            for s in &spans {
                if let Some(p) = by_id.get(s.span.parent_span_id.as_slice()) {
                    if p.origin.service != s.origin.service {
                        *counts
                            .entry((p.origin.service.to_string(), s.origin.service.to_string()))
                            .or_default() += 1;
                    }
                }
            }
        }
        counts
    })
    .await
    .unwrap_or_default();
    let out: Vec<Value> = counts
        .into_iter()
        .filter(|((parent, child), _)| service.as_deref().is_none_or(|s| parent == s || child == s))
        .map(|((parent, child), n)| json!({ "parent": parent, "child": child, "callCount": n }))
        .collect();
    // `total` 0, as Jaeger writes it here
    envelope(Value::Array(out), 0)
}

/// `POST /api/transform`: an OTLP JSON body as Jaeger traces (the Jaeger UI's upload), nothing
/// stored.
async fn transform(State(ctx): State<Ctx>, headers: HeaderMap, body: Body) -> Response {
    let body = match ctx.receive_body(&headers, body).await {
        Ok(b) => b,
        Err(ApiError(code, msg)) => return error(code, msg),
    };
    let out = ctx
        .bounds
        .decode(move || -> Result<Vec<u8>, ApiError> {
            let req = {
                let bytes = body.bytes()?;
                crate::decode::decode_otlp(&bytes, true).map_err(|e| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("cannot unmarshal OTLP : {e}"),
                    )
                })?
            };
            drop(body);
            // a store of its own, as large as the request
            let store = Store::new(StoreConfig {
                max_traces: usize::MAX,
                max_bytes: usize::MAX,
            });
            store.ingest(req);
            let ids = store.search_ids(&query::Query {
                limit: 0,
                ..Default::default()
            });
            let mut w = Vec::new();
            let written = (|| -> io::Result<()> {
                w.write_all(b"{\"data\":[")?;
                for (n, id) in ids.iter().enumerate() {
                    if n > 0 {
                        w.write_all(b",")?;
                    }
                    // as received: Jaeger's transform runs no adjusters
                    write_trace(&mut w, id, &store.trace(id).unwrap_or_default(), false)?;
                }
                w.write_all(b"],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":null}")
            })();
            written.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok(w)
        })
        .await;
    match out {
        Ok(Ok(json)) => ([(http::header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(Err(ApiError(code, msg))) => error(code, msg),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `POST /api/archive/{id}`: the viewer has no archive store; it answers as Jaeger does
/// without one.
async fn archive(Path(id): Path<String>) -> Response {
    if util::parse_trace_id(&id).is_none() {
        return error(StatusCode::BAD_REQUEST, format!("invalid trace id {id:?}"));
    }
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "archive span storage was not configured".into(),
    )
}

/// `/api/metrics/{latencies,calls,errors,minstep}` (the Jaeger UI's Monitor tab): the viewer
/// has no metrics store; it checks the parameters and answers as Jaeger does without one
/// (`501`).
async fn metrics(Path(kind): Path<String>, Query(q): Params) -> Response {
    if !matches!(kind.as_str(), "latencies" | "calls" | "errors" | "minstep") {
        return error(StatusCode::NOT_FOUND, "404 page not found".into());
    }
    if kind == "latencies" {
        let quantile = param(&q, "quantile").unwrap_or_default();
        if quantile.parse::<f64>().is_err() {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unable to parse param 'quantile': {quantile:?} is not a number"),
            );
        }
    }
    if kind != "minstep" && !q.iter().any(|(k, _)| k == "service") {
        return error(
            StatusCode::BAD_REQUEST,
            "unable to parse param 'service': please provide at least one service name".into(),
        );
    }
    error(
        StatusCode::NOT_IMPLEMENTED,
        "metrics querying is currently disabled".into(),
    )
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
        .route("/api/transform", post(transform))
        .route("/api/archive/{id}", post(archive))
        .route("/api/metrics/{kind}", get(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_tags_are_base64_as_jaeger_writes_them() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(&[0xde, 0xad, 0xbe, 0xef]), "3q2+7w==");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }
}
