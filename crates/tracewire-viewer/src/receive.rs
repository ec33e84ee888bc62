//! The receivers: OTLP/HTTP (protobuf and JSON, gzip), OTLP/gRPC, Zipkin v2 JSON; body limits and
//! CORS for localhost origins.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message;

use crate::store::{IngestOutcome, Store};

/// Default limit of a request body, compressed or not: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) store: Arc<Store>,
    pub(crate) max_body: usize,
    /// Becomes `true` at shutdown (ends live streams).
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
}

/// An error answered to a client: status + plain message.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.0.as_u16(), "message": self.1 });
        (
            self.0,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// Reads a whole body, enforcing `limit` before and after gzip decompression.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than the {limit}-byte limit"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let raw: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(raw.to_vec()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out)
        }
        other => Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {other:?} (gzip or identity)"),
        )),
    }
}

/// Body formats of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    Json,
}

pub(crate) fn content_format(headers: &HeaderMap) -> Option<Format> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let ct = ct.split(';').next().unwrap_or("").trim();
    match ct {
        "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
        "application/json" => Some(Format::Json),
        _ => None,
    }
}

/// Decodes an OTLP request in either encoding.
pub fn decode_otlp(bytes: &[u8], json: bool) -> Result<ExportTraceServiceRequest, String> {
    if json {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid OTLP JSON: {e}"))
    } else {
        ExportTraceServiceRequest::decode(bytes).map_err(|e| format!("invalid OTLP protobuf: {e}"))
    }
}

fn response(outcome: IngestOutcome, format: Format) -> Response {
    let partial = (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: outcome.rejected as i64,
        error_message: "spans with an invalid trace id or span id were dropped".to_owned(),
    });
    let resp = ExportTraceServiceResponse {
        partial_success: partial,
    };
    match format {
        Format::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            resp.encode_to_vec(),
        )
            .into_response(),
        Format::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response(),
    }
}

pub(crate) async fn otlp_http_handler(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = content_format(&headers).ok_or_else(|| {
        ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/x-protobuf or application/json".to_owned(),
        )
    })?;
    let bytes = read_body(&headers, body, ctx.max_body).await?;
    let req = decode_otlp(&bytes, format == Format::Json)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let outcome = ctx.store.ingest(req);
    Ok(response(outcome, format))
}

async fn zipkin_http(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only Zipkin v2 JSON (application/json) is accepted".to_owned(),
        ));
    }
    let bytes = read_body(&headers, body, ctx.max_body).await?;
    let req = crate::api::zipkin::decode_spans(&bytes)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    ctx.store.ingest(req);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Whether an `Origin` header names a loopback host (`localhost`, `*.localhost`, `127.0.0.1`, `[::1]`).
pub(crate) fn is_local_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    let host = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, _)) => return h == "::1",
            None => return false,
        }
    } else {
        rest.split(':').next().unwrap_or("")
    };
    host == "localhost" || host.ends_with(".localhost") || host == "127.0.0.1"
}

/// CORS for loopback origins only: answers preflights and tags responses.
pub(crate) async fn cors(req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| is_local_origin(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let Some(origin) = origin else {
            return (
                StatusCode::FORBIDDEN,
                "CORS is allowed for localhost origins only",
            )
                .into_response();
        };
        let allow_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("content-type, content-encoding"));
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return resp;
    }
    let mut resp = next.run(req).await;
    if let Some(origin) = origin {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// The OTLP/HTTP receiver: `POST /v1/traces`.
pub(crate) fn otlp_http_router(ctx: Ctx) -> Router {
    Router::new()
        .route("/v1/traces", post(otlp_http_handler))
        .layer(axum::middleware::from_fn(cors))
        .with_state(ctx)
}

/// The Zipkin receiver (`POST /api/v2/spans`) plus the Zipkin read API.
pub(crate) fn zipkin_router(ctx: Ctx) -> Router {
    Router::new()
        .route("/api/v2/spans", post(zipkin_http))
        .merge(crate::api::zipkin::read_routes())
        .layer(axum::middleware::from_fn(cors))
        .with_state(ctx)
}

/// The OTLP/gRPC `TraceService`.
#[derive(Clone, Debug)]
pub(crate) struct GrpcReceiver {
    pub(crate) store: Arc<Store>,
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let outcome = self.store.ingest(request.into_inner());
        let partial = (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: outcome.rejected as i64,
            error_message: "spans with an invalid trace id or span id were dropped".to_owned(),
        });
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: partial,
        }))
    }
}

pub(crate) fn grpc_service(store: Arc<Store>, max_body: usize) -> TraceServiceServer<GrpcReceiver> {
    TraceServiceServer::new(GrpcReceiver { store })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(max_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_origins() {
        assert!(is_local_origin("http://localhost:3000"));
        assert!(is_local_origin("http://app.localhost"));
        assert!(is_local_origin("https://127.0.0.1:8443"));
        assert!(is_local_origin("http://[::1]:5173"));
        assert!(!is_local_origin("http://localhost.evil.com"));
        assert!(!is_local_origin("https://example.com"));
        assert!(!is_local_origin("null"));
        assert!(!is_local_origin("http://[::2]:80"));
    }
}
