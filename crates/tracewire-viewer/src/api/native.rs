//! The viewer's own JSON API (`/tw/api/...`), its live stream, and the embedded UI assets.
//!
//! | Route | What |
//! |---|---|
//! | `GET /tw/api/services` | `{"services": [..]}` |
//! | `GET /tw/api/operations?service=S` | `{"operations": [..]}` |
//! | `GET /tw/api/search?service&name&status&minDuration&maxDuration&attr&q&start&end&lookback&limit` | `{"traces": [TraceSummary]}` |
//! | `GET /tw/api/traces/{id}` | the trace for the UI (spans with resource, events, links both ways) |
//! | `GET /tw/api/traces/{id}/otlp` | the trace as an OTLP JSON `ExportTraceServiceRequest` (download) |
//! | `POST /tw/api/import` | OTLP JSON or protobuf body; `{"accepted","rejected","traceIds"}` |
//! | `GET /tw/api/live` | Server-Sent Events: `event: trace`, data = `{"kind":"new"/"update","trace":TraceSummary}` |
//! | `GET /tw/api/stats` | store counters |

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use super::{json as json_resp, now_ns, param};
use crate::query::{self, SpanFilter, StatusFilter, parse_duration};
use crate::receive::{ApiError, Ctx, Format, content_format, decode_otlp, read_body};
use crate::store::{StoredSpan, to_request};
use crate::util;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");

fn bad(e: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e)
}

fn asset(ct: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut r = asset("text/html; charset=utf-8", INDEX_HTML);
    // No inline scripts, no third-party anything: span text can never become code.
    if let Ok(v) = http::HeaderValue::from_str(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn kvs(list: &[KeyValue]) -> Vec<Value> {
    list.iter()
        .map(|kv| {
            let (text, ty) = kv
                .value
                .as_ref()
                .map(|v| (util::value_text(v), util::value_type(v)))
                .unwrap_or_default();
            json!({ "key": kv.key, "value": text, "type": ty })
        })
        .collect()
}

/// Builds a [`query::Query`] from the own API's parameters.
pub(crate) fn native_query(q: &[(String, String)]) -> Result<query::Query, ApiError> {
    let num = |k: &str| -> Result<Option<u64>, ApiError> {
        param(q, k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{k} must be a number, not {v:?}")))
            })
            .transpose()
    };
    let dur = |k: &str| {
        param(q, k)
            .map(|v| parse_duration(v, 1e6))
            .transpose()
            .map_err(bad)
    };
    let mut attributes = Vec::new();
    for (_, v) in q.iter().filter(|(k, _)| k == "attr") {
        attributes.extend(query::parse_terms(v));
    }
    let status = param(q, "status")
        .filter(|s| *s != "any")
        .map(|s| s.parse::<StatusFilter>())
        .transpose()
        .map_err(bad)?;
    let end_us = num("end")?;
    let mut start_ns = num("start")?.map(|s| s.saturating_mul(1000));
    if start_ns.is_none() {
        if let Some(lb) = param(q, "lookback").filter(|l| *l != "all") {
            let end = end_us
                .map(|e| e.saturating_mul(1000))
                .unwrap_or_else(now_ns);
            start_ns = Some(end.saturating_sub(parse_duration(lb, 1e9).map_err(bad)?));
        }
    }
    Ok(query::Query {
        span: SpanFilter {
            service: param(q, "service").map(str::to_owned),
            name: param(q, "name").map(str::to_owned),
            status,
            min_duration_ns: dur("minDuration")?,
            max_duration_ns: dur("maxDuration")?,
            attributes,
            ..Default::default()
        },
        text: param(q, "q").map(str::to_owned),
        start_ns,
        end_ns: end_us.map(|e| e.saturating_mul(1000)),
        limit: num("limit")?.unwrap_or(50) as usize,
        ..Default::default()
    })
}

type Params = Query<Vec<(String, String)>>;

async fn services(State(ctx): State<Ctx>) -> Response {
    json_resp(&json!({ "services": ctx.store.services() }))
}

async fn operations(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let ops: Vec<String> = param(&q, "service")
        .map(|s| {
            ctx.store
                .operations(s)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        })
        .unwrap_or_default();
    json_resp(&json!({ "operations": ops }))
}

async fn search(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let query = native_query(&q)?;
    let traces = ctx.store.search(&query);
    Ok(json_resp(&json!({ "traces": traces })))
}

fn span_json(s: &StoredSpan, t0: u64, present: &std::collections::HashSet<&[u8]>) -> Value {
    let sp = &s.span;
    let parent = if util::is_empty_id(&sp.parent_span_id) {
        String::new()
    } else {
        util::hex(&sp.parent_span_id)
    };
    let missing_parent = !parent.is_empty() && !present.contains(sp.parent_span_id.as_slice());
    let code = util::status_code(sp);
    json!({
        "spanId": util::hex(&sp.span_id),
        "parentSpanId": parent,
        "missingParent": missing_parent,
        "name": sp.name,
        "kind": util::kind_name(sp.kind),
        "service": &*s.origin.service,
        "startNs": sp.start_time_unix_nano.saturating_sub(t0),
        "durationNs": s.duration_ns(),
        "startUs": sp.start_time_unix_nano / 1000,
        "status": { "code": util::status_name(code),
                    "message": sp.status.as_ref().map(|s| s.message.as_str()).unwrap_or("") },
        "attributes": kvs(&sp.attributes),
        "resource": kvs(&s.origin.resource.attributes),
        "scope": { "name": s.origin.scope.name, "version": s.origin.scope.version },
        "events": sp.events.iter().map(|e| json!({
            "name": e.name,
            "offsetNs": e.time_unix_nano.saturating_sub(t0),
            "attributes": kvs(&e.attributes),
        })).collect::<Vec<_>>(),
        "links": sp.links.iter().map(|l| json!({
            "traceId": util::hex(&l.trace_id),
            "spanId": util::hex(&l.span_id),
            "attributes": kvs(&l.attributes),
        })).collect::<Vec<_>>(),
        "traceState": sp.trace_state,
        "flags": sp.flags,
        "droppedAttributes": sp.dropped_attributes_count,
        "droppedEvents": sp.dropped_events_count,
        "droppedLinks": sp.dropped_links_count,
    })
}

/// The trace as the UI wants it.
pub(crate) fn trace_json(ctx: &Ctx, tid: &[u8; 16]) -> Option<Value> {
    let spans = ctx.store.trace(tid)?;
    let summary = ctx.store.summary(tid)?;
    let t0 = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let present: std::collections::HashSet<&[u8]> =
        spans.iter().map(|s| s.span.span_id.as_slice()).collect();
    let mut sorted: Vec<&StoredSpan> = spans.iter().collect();
    sorted.sort_by_key(|s| s.span.start_time_unix_nano);
    let incoming: Vec<Value> = ctx
        .store
        .incoming_links(tid)
        .into_iter()
        .map(|l| {
            json!({
                "fromTraceId": util::hex(&l.from_trace),
                "fromSpanId": util::hex(&l.from_span),
                "fromName": l.from_name,
                "fromService": l.from_service,
                "toSpanId": util::hex(&l.to_span),
            })
        })
        .collect();
    // Links within the same trace are incoming links too.
    let mut internal = Vec::new();
    for s in &spans {
        for l in &s.span.links {
            if l.trace_id.as_slice() == tid.as_slice() {
                internal.push(json!({
                    "fromTraceId": util::hex(tid),
                    "fromSpanId": util::hex(&s.span.span_id),
                    "fromName": s.span.name,
                    "fromService": &*s.origin.service,
                    "toSpanId": util::hex(&l.span_id),
                }));
            }
        }
    }
    let incoming: Vec<Value> = incoming.into_iter().chain(internal).collect();
    Some(json!({
        "traceId": util::hex(tid),
        "summary": summary,
        "startUs": t0 / 1000,
        "spans": sorted.into_iter().map(|s| span_json(s, t0, &present)).collect::<Vec<_>>(),
        "incomingLinks": incoming,
    }))
}

async fn trace(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tid = util::parse_trace_id(&id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?;
    trace_json(&ctx, &tid)
        .map(|v| json_resp(&v))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("trace {id} not found")))
}

async fn trace_otlp(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tid = util::parse_trace_id(&id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?;
    let spans = ctx
        .store
        .trace(&tid)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("trace {id} not found")))?;
    let body = serde_json::to_vec_pretty(&to_request(&spans))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let disposition = format!(
        "attachment; filename=\"trace-{}.otlp.json\"",
        util::hex(&tid)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

async fn import(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = content_format(&headers).unwrap_or(Format::Json);
    let bytes = read_body(&headers, body, ctx.max_body).await?;
    let req = decode_otlp(&bytes, format == Format::Json).map_err(bad)?;
    let mut ids: Vec<String> = req
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter())
        .flat_map(|s| s.spans.iter())
        .filter_map(util::trace_id_of)
        .map(|t| util::hex(&t))
        .collect();
    ids.sort();
    ids.dedup();
    let out = ctx.store.ingest(req);
    Ok(json_resp(
        &json!({ "accepted": out.accepted, "rejected": out.rejected, "traceIds": ids }),
    ))
}

enum Item {
    Event(Event),
    Stop,
}

async fn live(State(ctx): State<Ctx>) -> impl IntoResponse {
    let events = BroadcastStream::new(ctx.store.subscribe()).filter_map(|ev| {
        let ev = ev.ok()?;
        let data = serde_json::to_string(&*ev).ok()?;
        Some(Item::Event(Event::default().event("trace").data(data)))
    });
    // The stream ends when the viewer shuts down, so graceful shutdown is not held up.
    let stop = WatchStream::new(ctx.stop.clone())
        .filter(|stopped| *stopped)
        .map(|_| Item::Stop);
    let stream = events
        .merge(stop)
        .take_while(|i| matches!(i, Item::Event(_)))
        .filter_map(|i| match i {
            Item::Event(e) => Some(Ok::<_, Infallible>(e)),
            Item::Stop => None,
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn stats(State(ctx): State<Ctx>) -> Response {
    json_resp(&json!(ctx.store.stats()))
}

/// The own API and the UI.
pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/tw/api/services", get(services))
        .route("/tw/api/operations", get(operations))
        .route("/tw/api/search", get(search))
        .route("/tw/api/traces/{id}", get(trace))
        .route("/tw/api/traces/{id}/otlp", get(trace_otlp))
        .route("/tw/api/import", post(import))
        .route("/tw/api/live", get(live))
        .route("/tw/api/stats", get(stats))
}
