//! The client layer: a CLIENT span per call, its context injected into the outgoing metadata,
//! ending with the response stream.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::GrpcClientLayer;
pub use service::GrpcClientService;
