//! The Jaeger v3 query API over HTTP (the gRPC gateway's JSON, what newer Jaeger UIs and
//! Grafana's Jaeger data source with its v3 option call): `/api/v3/services`,
//! `/api/v3/operations`, `/api/v3/traces/{trace_id}`, `/api/v3/traces`. Traces are OTLP JSON,
//! `{"result": {"resourceSpans": [..]}}`, as Jaeger writes them (proto3 JSON: ids in hex, 64-bit
//! integers as strings, default values left out); errors are
//! `{"error": {"httpCode": .., "message": ..}}`. Held against a real Jaeger 2.13 by
//! `tests/jaeger_parity.rs`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::jaeger::{DEFAULT_LIMIT, go_bool, operations_of};
use super::stream::{self, value};
use super::{MAX_RESPONSE_BYTES, json as json_resp, limit, param};
use crate::query::{self, SpanFilter, parse_duration};
use crate::receive::Ctx;
use crate::store::{Origin, Store, StoredSpan, TraceId};
use crate::util;

type Params = Query<Vec<(String, String)>>;

/// Jaeger's v3 error: `{"error": {"httpCode", "message"}}`.
fn error(code: StatusCode, message: String) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({ "error": { "httpCode": code.as_u16(), "message": message } }).to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "No traces found".into())
}

/// Drops what proto3 JSON leaves out: `null`, `0`, `""`, `[]`, `{}` — except inside an
/// attribute's `value`, where `{"intValue": "0"}` or `{"stringValue": ""}` is the value.
fn strip_defaults(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k != "value" {
                    strip_defaults(x);
                }
            }
            m.retain(|k, x| k == "value" || !is_default(x));
        }
        Value::Array(a) => a.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Bool(_) => false,
    }
}

/// Sorts the OTLP JSON attribute list `v` (`[{key, value}]`) by key.
fn sort_attributes(v: Option<&mut Value>) {
    if let Some(Value::Array(a)) = v {
        a.sort_by(|x, y| x["key"].as_str().cmp(&y["key"].as_str()));
    }
}

/// Puts a span (OTLP JSON) in the order Jaeger's adjusters leave it: attributes (its own, its
/// events' and links') by key, events by name.
fn adjust_span(span: &mut Value) {
    sort_attributes(span.get_mut("attributes"));
    if let Some(Value::Array(events)) = span.get_mut("events") {
        events.sort_by(|x, y| x["name"].as_str().cmp(&y["name"].as_str()));
        for e in events {
            sort_attributes(e.get_mut("attributes"));
        }
    }
    if let Some(Value::Array(links)) = span.get_mut("links") {
        for l in links {
            sort_attributes(l.get_mut("attributes"));
        }
    }
}

/// `v` as proto3 JSON (see [`strip_defaults`]).
fn proto_json<T: Serialize>(v: &T) -> io::Result<Value> {
    let mut v = serde_json::to_value(v).map_err(io::Error::other)?;
    strip_defaults(&mut v);
    Ok(v)
}

/// Writes the spans of a trace as OTLP `resourceSpans` items (comma-separated), one per
/// resource and scope (the spans of a batch share it), span by span; unless `raw`, in the order
/// Jaeger's adjusters leave them (resource, scope and span attributes sorted by key, see
/// [`adjust_span`]).
fn write_resource_spans<W: Write>(w: &mut W, spans: &[StoredSpan], raw: bool) -> io::Result<()> {
    let mut groups: Vec<(&Origin, Vec<&StoredSpan>)> = Vec::new();
    let mut by_origin: HashMap<*const Origin, usize> = HashMap::new();
    for s in spans {
        let i = *by_origin.entry(Arc::as_ptr(&s.origin)).or_insert_with(|| {
            groups.push((&s.origin, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(s);
    }
    for (n, (origin, spans)) in groups.into_iter().enumerate() {
        if n > 0 {
            w.write_all(b",")?;
        }
        let mut head = Map::new();
        let mut resource = proto_json(&origin.resource)?;
        let mut scope_json = proto_json(&origin.scope)?;
        if !raw {
            sort_attributes(resource.get_mut("attributes"));
            sort_attributes(scope_json.get_mut("attributes"));
        }
        head.insert("resource".into(), resource);
        if !origin.resource_schema_url.is_empty() {
            head.insert("schemaUrl".into(), json!(origin.resource_schema_url));
        }
        let mut scope = Map::new();
        scope.insert("scope".into(), scope_json);
        if !origin.scope_schema_url.is_empty() {
            scope.insert("schemaUrl".into(), json!(origin.scope_schema_url));
        }
        // `{"resource":..,"scopeSpans":[{"scope":..,"spans":[` .. `]}]}`
        let head = serde_json::to_string(&head).map_err(io::Error::other)?;
        let scope = serde_json::to_string(&scope).map_err(io::Error::other)?;
        w.write_all(&head.as_bytes()[..head.len() - 1])?;
        w.write_all(b",\"scopeSpans\":[")?;
        w.write_all(&scope.as_bytes()[..scope.len() - 1])?;
        w.write_all(b",\"spans\":[")?;
        for (n, s) in spans.into_iter().enumerate() {
            if n > 0 {
                w.write_all(b",")?;
            }
            let mut span = proto_json(&*s.span)?;
            if !raw {
                adjust_span(&mut span);
            }
            // Jaeger writes `status` even when it is unset (`{}`)
            if let Value::Object(m) = &mut span {
                m.entry("status").or_insert_with(|| json!({}));
            }
            value(w, &span)?;
        }
        w.write_all(b"]}]}")?;
    }
    Ok(())
}

/// The traces `ids` as one OTLP document, written while it is sent; 404 when there is none.
/// `raw`: as received (see [`write_resource_spans`]).
fn traces_response(store: Arc<Store>, ids: Vec<TraceId>, raw: bool) -> Response {
    if ids.is_empty() {
        return not_found();
    }
    stream::json(move |w| {
        w.write_all(b"{\"result\":{\"resourceSpans\":[")?;
        // (`stream::traces` writes the comma between traces)
        stream::traces(
            w,
            &store,
            &ids,
            MAX_RESPONSE_BYTES,
            "Jaeger v3",
            |w, _, spans| write_resource_spans(w, spans, raw),
        )?;
        w.write_all(b"]}}")
    })
}

async fn services(State(ctx): State<Ctx>) -> Response {
    let s = ctx.store.services();
    json_resp(&if s.is_empty() {
        json!({})
    } else {
        json!({ "services": s })
    })
}

async fn operations(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let service = param(&q, "service").unwrap_or_default();
    // Jaeger: no `spanKind` for an unspecified kind
    let out: Vec<Value> = operations_of(&ctx.store, service, param(&q, "span_kind"))
        .into_iter()
        .map(|(name, kind)| {
            if kind.is_empty() {
                json!({ "name": name })
            } else {
                json!({ "name": name, "spanKind": kind })
            }
        })
        .collect();
    json_resp(&json!({ "operations": out }))
}

/// An RFC 3339 time (`2026-01-02T03:04:05.678Z`, `+01:00` offsets) as ns since the epoch.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let kept = &digits[..digits.len().min(9)];
        nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
    }
    let offset = match s.get(i..)? {
        "Z" | "z" => 0,
        o if o.len() == 6 && matches!(&o[..1], "+" | "-") && &o[3..4] == ":" => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if &o[..1] == "+" { m * 60 } else { -m * 60 }
        }
        _ => return None,
    };
    // days from civil (Howard Hinnant's algorithm)
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos as u64)
}

/// `GET /api/v3/traces/{trace_id}` (`start_time`, `end_time`, `raw_traces` are checked like
/// Jaeger checks them; the viewer holds every trace whole, so they change nothing).
async fn trace(State(ctx): State<Ctx>, Path(id): Path<String>, Query(q): Params) -> Response {
    let Some(tid) = util::parse_trace_id(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("malformed parameter trace_id: {id:?} is not a trace id"),
        );
    };
    for p in ["start_time", "end_time"] {
        if let Some(v) = param(&q, p) {
            if parse_rfc3339(v).is_none() {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("malformed parameter {p}: {v:?} is not an RFC 3339 time"),
                );
            }
        }
    }
    let raw = match param(&q, "raw_traces").map(|v| (v, go_bool(v))) {
        None => false,
        Some((_, Some(raw))) => raw,
        Some((v, None)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed parameter raw_traces: {v:?}"),
            );
        }
    };
    if ctx.store.summary(&tid).is_none() {
        return not_found();
    }
    traces_response(ctx.store.clone(), vec![tid], raw)
}

/// Builds a store query from `/api/v3/traces` parameters (`query.*`), and `query.raw_traces`.
fn v3_query(q: &[(String, String)]) -> Result<(query::Query, bool), String> {
    let (Some(min), Some(max)) = (
        param(q, "query.start_time_min"),
        param(q, "query.start_time_max"),
    ) else {
        return Err("query.start_time_min and query.start_time_max are required".into());
    };
    let time = |name: &str, v: &str| {
        parse_rfc3339(v)
            .ok_or_else(|| format!("malformed parameter {name}: {v:?} is not an RFC 3339 time"))
    };
    let start_ns = time("query.start_time_min", min)?;
    let end_ns = time("query.start_time_max", max)?;
    let dur = |name: &str| {
        param(q, name)
            .map(|v| parse_duration(v, 1e3).map_err(|e| format!("malformed parameter {name}: {e}")))
            .transpose()
    };
    let num_traces = param(q, "query.num_traces")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("malformed parameter query.num_traces: {v:?}"))
        })
        .transpose()?;
    let raw = match param(q, "query.raw_traces") {
        None => false,
        Some(v) => {
            go_bool(v).ok_or_else(|| format!("malformed parameter query.raw_traces: {v:?}"))?
        }
    };
    // attributes (the viewer's own: Jaeger 2.13's gateway ignores them): a JSON object
    // `query.attributes={"k":"v"}`, or `query.attributes[k]=v` as the gRPC gateway spells maps
    let mut attributes = Vec::new();
    for (k, v) in q {
        if k == "query.attributes" && !v.is_empty() {
            let m: HashMap<String, Value> = serde_json::from_str(v)
                .map_err(|e| format!("malformed parameter query.attributes: {e}"))?;
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                attributes.push((k, Some(v)));
            }
        } else if let Some(key) = k
            .strip_prefix("query.attributes[")
            .and_then(|r| r.strip_suffix(']'))
        {
            attributes.push((key.to_owned(), Some(v.clone())));
        }
    }
    let query = query::Query {
        span: SpanFilter {
            service: param(q, "query.service_name").map(str::to_owned),
            name: param(q, "query.operation_name").map(str::to_owned),
            min_duration_ns: dur("query.duration_min")?,
            max_duration_ns: dur("query.duration_max")?,
            start_min_ns: Some(start_ns),
            start_max_ns: Some(end_ns),
            attributes,
            ..Default::default()
        },
        start_ns: Some(start_ns),
        end_ns: Some(end_ns),
        limit: limit(num_traces, DEFAULT_LIMIT),
        ..Default::default()
    };
    Ok((query, raw))
}

/// `GET /api/v3/traces?query.service_name=..`: the matching traces as one OTLP document.
async fn find_traces(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let (query, raw) = match v3_query(&q) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store = ctx.store.clone();
    let ids = tokio::task::spawn_blocking(move || store.search_ids(&query))
        .await
        .unwrap_or_default();
    traces_response(ctx.store.clone(), ids, raw)
}

/// The Jaeger v3 query API.
pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/api/v3/services", get(services))
        .route("/api/v3/operations", get(operations))
        .route("/api/v3/traces", get(find_traces))
        .route("/api/v3/traces/{trace_id}", get(trace))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00.5Z"),
            Some(1_767_225_600_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Some(1_767_225_600_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-12-02T12:22:14.620000000Z"),
            Some(1_796_214_134_620_000_000)
        );
        assert_eq!(parse_rfc3339("2026-01-01"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00"), None);
    }

    #[test]
    fn proto3_json_leaves_defaults_out() {
        let mut v = json!({
            "name": "x", "kind": 0, "traceState": "", "events": [], "status": {},
            "attributes": [{"key": "n", "value": {"intValue": "0"}},
                           {"key": "s", "value": {"stringValue": ""}}]
        });
        strip_defaults(&mut v);
        assert_eq!(
            v,
            json!({"name": "x", "attributes": [
                {"key": "n", "value": {"intValue": "0"}},
                {"key": "s", "value": {"stringValue": ""}}]})
        );
    }
}
