//! The query APIs: Jaeger v1 read API and v3 query API, Zipkin v2 read API (and Zipkin JSON
//! decoding), and the viewer's own JSON API with its live stream.

pub(crate) mod jaeger;
pub(crate) mod jaeger_v3;
pub(crate) mod native;
pub(crate) mod stream;
pub(crate) mod zipkin;

/// Most traces one search returns: a larger `limit`, or `limit=0`, is this.
pub(crate) const MAX_LIMIT: usize = 1000;
/// A search response stops adding traces once it is this large (it always holds one).
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The number of traces a search returns: `default` when not asked, at most [`MAX_LIMIT`]
/// (also for `0`, which some clients send for "no limit").
pub(crate) fn limit(requested: Option<u64>, default: usize) -> usize {
    match requested {
        None => default.min(MAX_LIMIT),
        Some(0) => MAX_LIMIT,
        Some(n) => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    }
}

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, ns since the epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Looks up the first value of `key` in decoded query pairs.
pub(crate) fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// JSON response with the right content type.
pub(crate) fn json(v: &serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}
