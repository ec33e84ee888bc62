//! The server layer: one SERVER span per request, from the request head to the last byte of
//! the response body.
//!
//! [`TraceLayer`] → [`Trace`] → [`ResponseFuture`], in tower-http's shape (no boxing).

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::TraceLayer;
pub use service::Trace;
