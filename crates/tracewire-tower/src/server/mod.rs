//! The server layer: one SERVER span per request, from the request head to the last byte of
//! the response body.
//!
//! [`TraceLayer`] → [`Trace`] → [`ResponseFuture`], in tower-http's shape (no boxing). The
//! response body is [`TracedBody`](tracewire_http::TracedBody) ([`Generic`], for hyper and any
//! tower service) or axum's own `Body` ([`Axum`], from [`TraceLayer::axum`]).

mod body;
mod future;
mod layer;
mod service;

#[cfg(feature = "axum")]
pub use body::Axum;
pub use body::{Generic, ResponseBody};
pub use future::ResponseFuture;
pub use layer::TraceLayer;
pub use service::Trace;
