//! The viewer's own JSON API (`/tw/api/...`), its live stream, and the embedded UI assets.
//!
//! | Route | What |
//! |---|---|
//! | `GET /tw/api/services` | `{"services": [..]}` |
//! | `GET /tw/api/operations?service=S` | `{"operations": [..]}` |
//! | `GET /tw/api/search?service&name&status&minDuration&maxDuration&attr&q&start&end&lookback&limit` | `{"traces": [TraceSummary]}` (`limit` 50 by default, at most 1000) |
//! | `GET /tw/api/map?focus&<search parameters>` | the service map of the traces the search finds (`limit` 1000 by default; `focus`: the paths through one service): `{"nodes", "edges", "traces", "spans", "truncated"}` |
//! | `GET /tw/api/map/traces?from&to&kind&focus&<search parameters>` | `{"traces": [TraceSummary]}` of one edge of the map |
//! | `GET /tw/api/traces/{id}` | the trace for the UI (spans with resource, events, links both ways, the traces connected by links) |
//! | `GET /tw/api/traces/{id}/otlp` | the trace as an OTLP JSON `ExportTraceServiceRequest` (download) |
//! | `POST /tw/api/import` | OTLP JSON or protobuf body; `{"accepted","rejected","traceIds"}` |
//! | `GET /tw/api/live` | Server-Sent Events: `event: trace`, data = `{"kind":"new"/"update","trace":TraceSummary}` |
//! | `GET /tw/api/stats` | store counters |

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::{self, Write};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::Serialize;
use serde_json::json;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use super::stream::{self, array, value};
use super::{json as json_resp, limit, now_ns, param};
use crate::links;
use crate::map;
use crate::query::{self, SpanFilter, StatusFilter, parse_duration};
use crate::receive::{ApiError, Ctx, Format, otlp_format};
use crate::store::{Origin, Store, StoredSpan, TraceId, TraceSummary};
use crate::util;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const JS: &str = "text/javascript; charset=utf-8";

/// The UI's files besides the page: path, content type, content.
const UI_FILES: &[(&str, &str, &str)] = &[
    ("/app.js", JS, include_str!("../../ui/app.js")),
    ("/tree.js", JS, include_str!("../../ui/tree.js")),
    ("/colour.js", JS, include_str!("../../ui/colour.js")),
    ("/messaging.js", JS, include_str!("../../ui/messaging.js")),
    ("/critical.js", JS, include_str!("../../ui/critical.js")),
    ("/map.js", JS, include_str!("../../ui/map.js")),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/app.css"),
    ),
];

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

/// Attributes as the UI shows them: `[{"key", "value" (text), "type"}]`.
struct Kvs<'a>(&'a [KeyValue]);

impl Serialize for Kvs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Kv<'a> {
            key: &'a str,
            value: String,
            r#type: &'static str,
        }
        s.collect_seq(self.0.iter().map(|kv| {
            let (value, r#type) = kv
                .value
                .as_ref()
                .map(|v| (util::value_text(v), util::value_type(v)))
                .unwrap_or_default();
            Kv {
                key: &kv.key,
                value,
                r#type,
            }
        }))
    }
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
        limit: limit(num("limit")?, 50),
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

/// The service map of the traces a search finds (its parameters; `limit` 1000 by default);
/// `focus=S`: only the paths through service S.
async fn service_map(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let mut query = native_query(&q)?;
    if param(&q, "limit").is_none() {
        query.limit = super::MAX_LIMIT;
    }
    let focus = param(&q, "focus").map(str::to_owned);
    let store = ctx.store.clone();
    let m = tokio::task::spawn_blocking(move || {
        map::service_map(
            &store,
            &query,
            focus.as_deref(),
            map::Bounds::keeping(MAP_TRACE_IDS),
        )
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json_resp(&json!(m)))
}

/// Trace ids the map gives per edge.
const MAP_TRACE_IDS: usize = 20;

/// The traces of one edge of the service map (`from`, `to`, `kind` = `call`|`message`, and the
/// search's parameters): `{"traces": [TraceSummary]}`, newest first.
async fn service_map_traces(
    State(ctx): State<Ctx>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let mut query = native_query(&q)?;
    if param(&q, "limit").is_none() {
        query.limit = super::MAX_LIMIT;
    }
    let from = param(&q, "from").ok_or_else(|| bad("from is required".into()))?;
    let to = param(&q, "to").ok_or_else(|| bad("to is required".into()))?;
    let kind = param(&q, "kind")
        .and_then(map::EdgeKind::parse)
        .ok_or_else(|| bad("kind must be call or message".into()))?;
    let (from, to) = (from.to_owned(), to.to_owned());
    let focus = param(&q, "focus").map(str::to_owned);
    let store = ctx.store.clone();
    let traces = tokio::task::spawn_blocking(move || {
        let m = map::service_map(
            &store,
            &query,
            focus.as_deref(),
            map::Bounds::keeping(super::MAX_LIMIT),
        );
        m.edges
            .into_iter()
            .find(|e| e.from == from && e.to == to && e.kind == kind)
            .map(|e| {
                e.trace_ids
                    .iter()
                    .filter_map(|id| util::parse_trace_id(id))
                    .filter_map(|id| store.summary(&id))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json_resp(&json!({ "traces": traces })))
}

async fn search(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let query = native_query(&q)?;
    let traces = ctx.store.search(&query);
    Ok(json_resp(&json!({ "traces": traces })))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiStatus<'a> {
    code: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct UiScope<'a> {
    name: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiEvent<'a> {
    name: &'a str,
    offset_ns: u64,
    attributes: Kvs<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiLink<'a> {
    trace_id: String,
    span_id: String,
    attributes: Kvs<'a>,
    /// The target is a span of this trace.
    in_trace: bool,
    /// The target span's name and service, when it is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    /// The target's start, ns after this trace's start (negative: before).
    #[serde(skip_serializing_if = "Option::is_none")]
    start_offset_ns: Option<i64>,
}

/// One span as the UI wants it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiSpan<'a> {
    span_id: String,
    parent_span_id: String,
    missing_parent: bool,
    name: &'a str,
    kind: &'static str,
    service: &'a str,
    start_ns: u64,
    duration_ns: u64,
    start_us: u64,
    status: UiStatus<'a>,
    attributes: Kvs<'a>,
    resource: Kvs<'a>,
    scope: UiScope<'a>,
    events: Vec<UiEvent<'a>>,
    links: Vec<UiLink<'a>>,
    trace_state: &'a str,
    flags: u32,
    dropped_attributes: u32,
    dropped_events: u32,
    dropped_links: u32,
}

fn ui_span<'a>(
    s: &'a StoredSpan,
    t0: u64,
    present: &HashSet<&[u8]>,
    targets: &'a HashMap<(TraceId, u64), links::Target>,
) -> UiSpan<'a> {
    let sp = &*s.span;
    let parent = if util::is_empty_id(&sp.parent_span_id) {
        String::new()
    } else {
        util::hex(&sp.parent_span_id)
    };
    UiSpan {
        span_id: util::hex(&sp.span_id),
        missing_parent: !parent.is_empty() && !present.contains(sp.parent_span_id.as_slice()),
        parent_span_id: parent,
        name: &sp.name,
        kind: util::kind_name(sp.kind),
        service: &s.origin.service,
        start_ns: sp.start_time_unix_nano.saturating_sub(t0),
        duration_ns: s.duration_ns(),
        start_us: sp.start_time_unix_nano / 1000,
        status: UiStatus {
            code: util::status_name(util::status_code(sp)),
            message: sp.status.as_ref().map(|s| s.message.as_str()).unwrap_or(""),
        },
        attributes: Kvs(&sp.attributes),
        resource: Kvs(&s.origin.resource.attributes),
        scope: UiScope {
            name: &s.origin.scope.name,
            version: &s.origin.scope.version,
        },
        events: sp
            .events
            .iter()
            .map(|e| UiEvent {
                name: &e.name,
                offset_ns: e.time_unix_nano.saturating_sub(t0),
                attributes: Kvs(&e.attributes),
            })
            .collect(),
        links: sp
            .links
            .iter()
            .map(|l| {
                let target = TraceId::try_from(l.trace_id.as_slice())
                    .ok()
                    .and_then(|t| targets.get(&(t, links::id64(&l.span_id))));
                UiLink {
                    trace_id: util::hex(&l.trace_id),
                    span_id: util::hex(&l.span_id),
                    attributes: Kvs(&l.attributes),
                    in_trace: l.trace_id == sp.trace_id,
                    name: target.map(|t| t.name.as_str()),
                    service: target.map(|t| &*t.service),
                    kind: target.map(|t| util::kind_name(t.kind)),
                    start_offset_ns: target
                        .map(|t| (i128::from(t.start_ns) - i128::from(t0)) as i64),
                }
            })
            .collect(),
        trace_state: &sp.trace_state,
        flags: sp.flags,
        dropped_attributes: sp.dropped_attributes_count,
        dropped_events: sp.dropped_events_count,
        dropped_links: sp.dropped_links_count,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiIncoming {
    from_trace_id: String,
    from_span_id: String,
    from_name: String,
    from_service: String,
    to_span_id: String,
}

/// A trace connected to the shown one by links (see [`links::connected`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiConnected {
    trace_id: String,
    direction: &'static str,
    hops: u32,
    /// `null` when the trace is not stored.
    summary: Option<TraceSummary>,
}

/// Writes the trace as the UI wants it: `{"traceId", "summary", "startUs", "spans" (by start
/// time), "incomingLinks", "incomingLinksTruncated", "linkedTraces", "linkedTracesTruncated"}`,
/// span by span. `false` if
/// the trace is not stored.
pub(crate) fn write_trace<W: Write>(w: &mut W, store: &Store, tid: &TraceId) -> io::Result<bool> {
    let (Some(spans), Some(summary)) = (store.trace(tid), store.summary(tid)) else {
        return Ok(false);
    };
    let t0 = spans
        .iter()
        .map(|s| s.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let present: HashSet<&[u8]> = spans.iter().map(|s| s.span.span_id.as_slice()).collect();
    let mut sorted: Vec<&StoredSpan> = spans.iter().collect();
    sorted.sort_by_key(|s| s.span.start_time_unix_nano);
    let (incoming, incoming_truncated) = links::incoming(store, tid);
    let mut incoming: Vec<UiIncoming> = incoming
        .into_iter()
        .map(|l| UiIncoming {
            from_trace_id: util::hex(&l.from_trace),
            from_span_id: util::hex(&l.from_span),
            from_name: l.from_name,
            from_service: l.from_service,
            to_span_id: util::hex(&l.to_span),
        })
        .collect();
    // Links within the same trace are incoming links too.
    for s in &spans {
        for l in &s.span.links {
            if l.trace_id.as_slice() == tid.as_slice() {
                incoming.push(UiIncoming {
                    from_trace_id: util::hex(tid),
                    from_span_id: util::hex(&s.span.span_id),
                    from_name: s.span.name.clone(),
                    from_service: s.origin.service.to_string(),
                    to_span_id: util::hex(&l.span_id),
                });
            }
        }
    }
    w.write_all(b"{\"traceId\":")?;
    value(w, &util::hex(tid))?;
    w.write_all(b",\"summary\":")?;
    value(w, &summary)?;
    write!(w, ",\"startUs\":{},\"spans\":", t0 / 1000)?;
    let targets = links::targets(store, tid, &spans);
    array(w, sorted, |w, s| {
        value(w, &ui_span(s, t0, &present, &targets))
    })?;
    w.write_all(b",\"incomingLinks\":")?;
    value(w, &incoming)?;
    write!(w, ",\"incomingLinksTruncated\":{incoming_truncated}")?;
    let (connected, truncated) = links::connected(store, tid);
    let connected: Vec<UiConnected> = connected
        .into_iter()
        .map(|c| UiConnected {
            trace_id: util::hex(&c.trace),
            direction: c.direction.name(),
            hops: c.hops,
            summary: c.summary,
        })
        .collect();
    w.write_all(b",\"linkedTraces\":")?;
    value(w, &connected)?;
    write!(w, ",\"linkedTracesTruncated\":{truncated}}}")?;
    Ok(true)
}

async fn trace(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tid = util::parse_trace_id(&id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?;
    if ctx.store.summary(&tid).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("trace {id} not found"),
        ));
    }
    let store = ctx.store.clone();
    Ok(stream::json(move |w| {
        // (evicted in between: an empty object rather than half a trace)
        if !write_trace(w, &store, &tid)? {
            w.write_all(b"{}")?;
        }
        Ok(())
    }))
}

/// A trace as an OTLP JSON request (one `ResourceSpans` per origin), serialized from the
/// stored spans without copying them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpExport<'a> {
    resource_spans: Vec<OtlpResourceSpans<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpResourceSpans<'a> {
    resource: &'a Resource,
    scope_spans: [OtlpScopeSpans<'a>; 1],
    schema_url: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpScopeSpans<'a> {
    scope: &'a InstrumentationScope,
    spans: Vec<&'a Span>,
    schema_url: &'a str,
}

fn otlp_export(spans: &[StoredSpan]) -> OtlpExport<'_> {
    let mut groups: Vec<(&Origin, Vec<&Span>)> = Vec::new();
    let mut by_origin: std::collections::HashMap<*const Origin, usize> =
        std::collections::HashMap::new();
    for s in spans {
        let i = *by_origin
            .entry(std::sync::Arc::as_ptr(&s.origin))
            .or_insert_with(|| {
                groups.push((&s.origin, Vec::new()));
                groups.len() - 1
            });
        groups[i].1.push(&s.span);
    }
    OtlpExport {
        resource_spans: groups
            .into_iter()
            .map(|(o, spans)| OtlpResourceSpans {
                resource: &o.resource,
                scope_spans: [OtlpScopeSpans {
                    scope: &o.scope,
                    spans,
                    schema_url: &o.scope_schema_url,
                }],
                schema_url: &o.resource_schema_url,
            })
            .collect(),
    }
}

async fn trace_otlp(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tid = util::parse_trace_id(&id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?;
    let spans = ctx
        .store
        .trace(&tid)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("trace {id} not found")))?;
    let mut resp = stream::json(move |w| {
        serde_json::to_writer_pretty(w, &otlp_export(&spans)).map_err(io::Error::other)
    });
    let disposition = format!(
        "attachment; filename=\"trace-{}.otlp.json\"",
        util::hex(&tid)
    );
    if let Ok(v) = http::HeaderValue::from_str(&disposition) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn import(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // no "simple" cross-site POST can write traces (see `otlp_format`)
    let format = otlp_format(&headers)?;
    let body = ctx.receive_body(&headers, body).await?;
    let (out, ids) = ctx
        .decode_and_ingest(body, move |bytes| {
            let req = crate::decode::decode_otlp(bytes, format == Format::Json).map_err(bad)?;
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
            Ok((req, ids))
        })
        .await?;
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
    let mut router = Router::new()
        .route("/", get(index))
        .route("/index.html", get(index));
    for &(path, ct, body) in UI_FILES {
        router = router.route(path, get(move || async move { asset(ct, body) }));
    }
    router
        .route("/tw/api/services", get(services))
        .route("/tw/api/operations", get(operations))
        .route("/tw/api/search", get(search))
        .route("/tw/api/map", get(service_map))
        .route("/tw/api/map/traces", get(service_map_traces))
        .route("/tw/api/traces/{id}", get(trace))
        .route("/tw/api/traces/{id}/otlp", get(trace_otlp))
        .route("/tw/api/import", post(import))
        .route("/tw/api/live", get(live))
        .route("/tw/api/stats", get(stats))
}
