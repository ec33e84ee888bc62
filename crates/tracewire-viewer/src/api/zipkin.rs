//! The Zipkin v2 read API (`/api/v2/services`, `/api/v2/spans`, `/api/v2/remoteServices`,
//! `/api/v2/traces`, `/api/v2/trace/{id}`, `/api/v2/traceMany`). Receiving Zipkin spans is in
//! [`crate::decode`] and [`crate::receive`].

use std::collections::BTreeSet;
use std::io::{self, Write};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use http::StatusCode;
use serde_json::json;

use super::stream::{self, array, value};
use super::{MAX_LIMIT, MAX_RESPONSE_BYTES, json as json_resp, limit, now_ns, param};
use crate::decode::PEER_SERVICE;
use crate::query::{self, SpanFilter};
use crate::receive::{ApiError, Ctx};
use crate::store::{StoredSpan, TraceId};
use crate::util;

/// One stored span as a Zipkin v2 span: tracewire's one OTLP→Zipkin mapping (the Zipkin
/// exporter's), so the viewer answers with what `tracewire-zipkin` would have sent.
fn to_zipkin(s: &StoredSpan) -> tracewire_zipkin::ZipkinSpan {
    tracewire_zipkin::span_to_zipkin(&s.origin.service, Some(&s.origin.scope), &s.span)
}

/// Writes a trace as a Zipkin list of spans (by start time), span by span.
fn write_trace<W: Write>(w: &mut W, spans: &[StoredSpan]) -> io::Result<()> {
    let mut v: Vec<&StoredSpan> = spans.iter().collect();
    v.sort_by_key(|s| s.span.start_time_unix_nano);
    array(w, v, |w, s| value(w, &to_zipkin(s)))
}

/// The traces `ids` as a Zipkin list of lists, written while they are sent (see
/// [`stream::traces`]).
fn traces_response(ctx: &Ctx, ids: Vec<TraceId>) -> Response {
    let store = ctx.store.clone();
    stream::json(move |w| {
        w.write_all(b"[")?;
        stream::traces(
            w,
            &store,
            &ids,
            MAX_RESPONSE_BYTES,
            "Zipkin",
            |w, _, spans| write_trace(w, spans),
        )?;
        w.write_all(b"]")
    })
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

/// The `peer.service` values of the service's spans in its 1 000 newest such traces, read one
/// trace at a time.
async fn remote_services(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let service = param(&q, "serviceName")
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "serviceName is required".into()))?
        .to_owned();
    let store = ctx.store.clone();
    let out = tokio::task::spawn_blocking(move || {
        let query = crate::query::Query {
            span: SpanFilter {
                service: Some(service.clone()),
                attributes: vec![(PEER_SERVICE.to_owned(), None)],
                ..Default::default()
            },
            limit: 1000,
            ..Default::default()
        };
        let mut out = BTreeSet::new();
        for id in store.search_ids(&query) {
            let Some(spans) = store.trace(&id) else {
                continue;
            };
            out.extend(
                spans
                    .iter()
                    .filter(|s| *s.origin.service == *service)
                    .filter_map(|s| {
                        let kv = s.span.attributes.iter().find(|kv| kv.key == PEER_SERVICE)?;
                        kv.value.as_ref().map(util::value_text)
                    }),
            );
        }
        out
    })
    .await
    .unwrap_or_default();
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
        limit: limit(num("limit")?, 10),
        ..Default::default()
    })
}

async fn traces(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let query = zipkin_query(&q)?;
    let store = ctx.store.clone();
    let ids = tokio::task::spawn_blocking(move || store.search_ids(&query))
        .await
        .unwrap_or_default();
    Ok(traces_response(&ctx, ids))
}

async fn trace(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tid = util::parse_trace_id(&id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?;
    let Some(spans) = ctx.store.trace(&tid) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("trace {id} not found"),
        ));
    };
    Ok(stream::json(move |w| write_trace(w, &spans)))
}

async fn trace_many(State(ctx): State<Ctx>, Query(q): Params) -> Result<Response, ApiError> {
    let ids = param(&q, "traceIds").ok_or_else(|| bad("traceIds is required".into()))?;
    let mut tids = Vec::new();
    for id in ids.split(',').take(MAX_LIMIT) {
        tids.push(util::parse_trace_id(id).ok_or_else(|| bad(format!("invalid trace id {id:?}")))?);
    }
    Ok(traces_response(&ctx, tids))
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
