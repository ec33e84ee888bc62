//! The receivers: OTLP/HTTP (protobuf and JSON, gzip), OTLP/gRPC, Zipkin v2 JSON; body limits,
//! the memory budget of request bodies, read timeouts, and CORS for localhost origins.
//!
//! A request body goes through two bounded stages. Receiving: its bytes are counted against
//! one budget shared by every HTTP receiver ([`DEFAULT_MAX_BODY_MEMORY`]); a request that
//! cannot get room within [`BUDGET_WAIT`] is answered `503` with `Retry-After` (OTLP exporters
//! retry it), and a body not received within the body timeout is answered `408`. Decoding and
//! storing: at most one request per CPU at a time, on a blocking thread.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::decode::{ZipkinSpans, decode_otlp, decode_zipkin};
use crate::store::{IngestOutcome, Store};

/// Default limit of a request body, compressed or not: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;
/// Default budget of request bodies held at once by all HTTP receivers together: 64 MiB.
pub const DEFAULT_MAX_BODY_MEMORY: usize = 64 * 1024 * 1024;
/// Default time a client has to send a request's headers (also how long an idle keep-alive
/// connection stays open).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time a client has to send a request's body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request waits for room in the body budget before it is answered `503`.
pub const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// What bounds the receivers (shared by all of them).
#[derive(Debug)]
pub(crate) struct Bounds {
    pub(crate) max_body: usize,
    /// Bytes of request bodies that may be held at once.
    budget: Arc<Semaphore>,
    /// Requests decoded and stored at once.
    decoding: Arc<Semaphore>,
    pub(crate) body_timeout: Duration,
    pub(crate) budget_wait: Duration,
}

impl Bounds {
    pub(crate) fn new(
        max_body: usize,
        max_body_memory: usize,
        body_timeout: Duration,
        budget_wait: Duration,
    ) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Bounds {
            max_body,
            // a body of the largest allowed size always fits on its own
            budget: Arc::new(Semaphore::new(
                max_body_memory.max(max_body).min(Semaphore::MAX_PERMITS),
            )),
            decoding: Arc::new(Semaphore::new(cpus.clamp(1, 8))),
            body_timeout,
            budget_wait,
        }
    }

    /// Runs `work` (decoding and storing a request) on a blocking thread, at most one request
    /// per CPU at a time.
    pub(crate) async fn decode<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let _slot = self
            .decoding
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "shutting down".to_owned())?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| e.to_string())
    }

    /// Requests that may be received at once when each could be of the largest size (the
    /// gRPC receiver's concurrency limit).
    pub(crate) fn max_bodies(&self) -> usize {
        (self.budget.available_permits() / self.max_body.max(1)).max(1)
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) store: Arc<Store>,
    pub(crate) bounds: Arc<Bounds>,
    /// Becomes `true` at shutdown (ends live streams).
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
}

/// An error answered to a client: status + plain message.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.0.as_u16(), "message": self.1 });
        let mut r = (
            self.0,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// A received request body (still compressed, if it was), holding its share of the budget
/// until it is dropped.
pub(crate) struct Received {
    raw: Vec<u8>,
    gzip: bool,
    max_body: usize,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Received {
    /// The body, gunzipped if it was compressed (limit checked again after decompression).
    pub(crate) fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, ApiError> {
        if !self.gzip {
            return Ok(std::borrow::Cow::Borrowed(&self.raw));
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(self.raw.as_slice())
            .take(self.max_body as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
        if out.len() > self.max_body {
            return Err(too_large(self.max_body));
        }
        Ok(std::borrow::Cow::Owned(out))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than the {limit}-byte limit"),
    )
}

fn busy() -> ApiError {
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        "the viewer is receiving as much as its memory budget allows; retry shortly".to_owned(),
    )
}

impl Ctx {
    /// Takes `n` bytes of the budget, waiting at most the budget wait (and not past `deadline`).
    async fn reserve(
        &self,
        n: usize,
        deadline: tokio::time::Instant,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(n).map_err(|_| too_large(self.bounds.max_body))?;
        if let Ok(p) = self.bounds.budget.clone().try_acquire_many_owned(n) {
            return Ok(p);
        }
        let wait = (tokio::time::Instant::now() + self.bounds.budget_wait).min(deadline);
        match tokio::time::timeout_at(wait, self.bounds.budget.clone().acquire_many_owned(n)).await
        {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy()),
        }
    }

    /// Receives a whole body within the body timeout, enforcing the size limit and taking its
    /// bytes from the budget (all at once when the length is declared, else as they arrive).
    pub(crate) async fn receive_body(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Received, ApiError> {
        let limit = self.bounds.max_body;
        let gzip = match headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "identity" => false,
            "gzip" | "x-gzip" => true,
            other => {
                return Err(ApiError(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("unsupported Content-Encoding {other:?} (gzip or identity)"),
                ));
            }
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large(limit));
        }
        let deadline = tokio::time::Instant::now() + self.bounds.body_timeout;
        let mut permit = match declared {
            Some(len) if len > 0 => Some(self.reserve(len as usize, deadline).await?),
            _ => None,
        };
        let reserved_all = permit.is_some();
        let mut raw = Vec::with_capacity(declared.map_or(0, |l| l as usize));
        let mut body = body;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Err(ApiError(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "request body not received within {} s",
                            self.bounds.body_timeout.as_secs_f64()
                        ),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("reading the body failed: {e}"),
                    ));
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if raw.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            if !reserved_all && !data.is_empty() {
                let p = self.reserve(data.len(), deadline).await?;
                match &mut permit {
                    Some(all) => all.merge(p),
                    None => permit = Some(p),
                }
            } else if reserved_all && raw.len() + data.len() > declared.unwrap_or(0) as usize {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    "body longer than its Content-Length".to_owned(),
                ));
            }
            raw.extend_from_slice(&data);
        }
        Ok(Received {
            raw,
            gzip,
            max_body: limit,
            _budget: permit,
        })
    }

    /// Decompresses and decodes a received body with `decode`, then stores the request — on a
    /// blocking thread, at most one request per CPU at a time.
    pub(crate) async fn decode_and_ingest<T, F>(
        &self,
        body: Received,
        decode: F,
    ) -> Result<(IngestOutcome, T), ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&[u8]) -> Result<(ExportTraceServiceRequest, T), ApiError> + Send + 'static,
    {
        let store = self.store.clone();
        self.bounds
            .decode(move || {
                let (req, extra) = {
                    let bytes = body.bytes()?;
                    decode(&bytes)?
                };
                drop(body);
                Ok((store.ingest(req), extra))
            })
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?
    }
}

/// Body formats of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    Json,
}

/// The format named by `Content-Type` (parameters ignored); `None` for anything else.
fn content_format(headers: &HeaderMap) -> Option<Format> {
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

const REJECTED: &str = "spans with an invalid trace id or span id were dropped";

/// The OTLP answer to an ingest: a partial success when spans were rejected.
fn export_response(outcome: IngestOutcome) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: outcome.rejected as i64,
            error_message: REJECTED.to_owned(),
        }),
    }
}

fn response(outcome: IngestOutcome, format: Format) -> Response {
    let resp = export_response(outcome);
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

/// The format of an OTLP body; `415` for any other `Content-Type`, a missing one included.
///
/// Demanding it keeps cross-site pages out: a browser sends a "simple" POST (no content type,
/// `text/plain`, a form type) to any origin without asking, but a JSON or protobuf one only
/// after a preflight, which [`cors`] refuses to other origins.
pub(crate) fn otlp_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    content_format(headers).ok_or_else(|| {
        ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/x-protobuf or application/json".to_owned(),
        )
    })
}

pub(crate) async fn otlp_http_handler(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = otlp_format(&headers)?;
    let body = ctx.receive_body(&headers, body).await?;
    let (outcome, ()) = ctx
        .decode_and_ingest(body, move |bytes| {
            decode_otlp(bytes, format == Format::Json)
                .map(|r| (r, ()))
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))
        })
        .await?;
    Ok(response(outcome, format))
}

/// `POST /api/v2/spans`: `202`; when spans were rejected, a body saying how many and why (in
/// the words of OTLP's partial success); `400` when no span was valid.
pub(crate) async fn zipkin_http(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // No Content-Type is not JSON: a browser may send a cross-site POST without one (or as
    // text/plain) without asking first; with application/json it has to ask (and CORS says no).
    if content_format(&headers) != Some(Format::Json) {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json (Zipkin v2 JSON)".to_owned(),
        ));
    }
    let body = ctx.receive_body(&headers, body).await?;
    let (outcome, (rejected, error)) = ctx
        .decode_and_ingest(body, |bytes| {
            let ZipkinSpans {
                request,
                rejected,
                error,
            } = decode_zipkin(bytes).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
            Ok((request, (rejected, error)))
        })
        .await?;
    ctx.store.count_rejected(rejected);
    let rejected = rejected + outcome.rejected;
    if rejected == 0 {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let message = error.unwrap_or_else(|| REJECTED.to_owned());
    log::warn!("tracewire-viewer: Zipkin: {rejected} spans rejected ({message})");
    if outcome.accepted == 0 {
        return Err(ApiError(StatusCode::BAD_REQUEST, message));
    }
    let body = serde_json::json!({
        "acceptedSpans": outcome.accepted,
        "rejectedSpans": rejected,
        "errorMessage": message,
    });
    Ok((
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// CORS for loopback origins only: answers preflights and tags responses.
pub(crate) async fn cors(req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| crate::host::is_local_origin(o))
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

/// The OTLP/gRPC `TraceService`.
#[derive(Clone, Debug)]
pub(crate) struct GrpcReceiver {
    pub(crate) store: Arc<Store>,
    pub(crate) bounds: Arc<Bounds>,
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let store = self.store.clone();
        let req = request.into_inner();
        let outcome = self
            .bounds
            .decode(move || store.ingest(req))
            .await
            .map_err(tonic::Status::internal)?;
        Ok(tonic::Response::new(export_response(outcome)))
    }
}

pub(crate) fn grpc_service(
    store: Arc<Store>,
    bounds: Arc<Bounds>,
) -> TraceServiceServer<GrpcReceiver> {
    let max_body = bounds.max_body;
    TraceServiceServer::new(GrpcReceiver { store, bounds })
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(max_body)
}
