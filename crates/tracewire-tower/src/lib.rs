#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod server;

pub use client::{ClientLayer, TraceClient, UrlTemplate};
pub use server::{Trace, TraceLayer};
pub use tracewire_http::{ClientConfig, ServerConfig, TracedBody};
