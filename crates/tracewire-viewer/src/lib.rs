#![doc = include_str!("../README.md")]

mod api;
mod bloom;
mod exporter;
mod persist;
pub mod query;
mod receive;
mod server;
pub mod store;
mod text;
mod util;

pub use exporter::StoreExporter;
pub use query::{Query, SpanFilter, StatusFilter};
pub use receive::{DEFAULT_MAX_BODY, decode_otlp};
pub use server::{
    Addrs, OTLP_GRPC_PORT, OTLP_HTTP_PORT, RunningViewer, SHUTDOWN_GRACE, StartError, UI_PORT,
    ViewerBuilder, ZIPKIN_PORT,
};
pub use store::{Store, StoreConfig, TraceSummary};

/// The router of the UI port: the web UI, the own API, the Jaeger and Zipkin read APIs.
fn ui_router(ctx: receive::Ctx) -> axum::Router {
    api::native::routes()
        .merge(api::jaeger::routes())
        .merge(api::zipkin::read_routes())
        .route("/v1/traces", axum::routing::post(receive_otlp_on_ui))
        .layer(axum::middleware::from_fn(receive::cors))
        .with_state(ctx)
}

async fn receive_otlp_on_ui(
    state: axum::extract::State<receive::Ctx>,
    headers: http::HeaderMap,
    body: axum::body::Body,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match receive::otlp_http_handler(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
