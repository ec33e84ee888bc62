#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
pub mod client;
mod conventions;
pub mod metadata;
mod record;
pub mod server;
pub mod status;

pub use body::ResponseBody;
pub use client::GrpcClientLayer;
pub use conventions::{OTEL_SEMCONV_STABILITY_OPT_IN, RpcConventions};
pub use metadata::{MetadataExtractor, MetadataInjector};
pub use server::GrpcServerLayer;
pub use server::HEALTH_SERVICE;
