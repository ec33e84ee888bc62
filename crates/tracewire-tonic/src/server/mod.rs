//! The server layer: a SERVER span per call, from the request metadata to the end of the
//! response stream.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::{GrpcServerLayer, HEALTH_SERVICE};
pub use service::GrpcServerService;
