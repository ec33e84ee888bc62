#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod active;
mod attributes;
mod body;
mod carrier;
mod client;
mod config;
mod format;
mod head;
mod headers;
mod intern;
mod method;
mod naming;
mod proxy;
mod redact;
mod server;

pub use body::TracedBody;
pub use carrier::{HeaderExtractor, HeaderInjector, walk_headers};
pub use client::{ClientConfig, ClientSpan, client_span_name};
pub use config::ServerConfig;
pub use format::{ip_string, u16_string};
pub use head::{RequestHead, ServerAuthority};
pub use headers::{HeaderCapture, protocol_version};
pub use method::{KnownMethods, Normalized, OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS, OTHER};
pub use naming::server_span_name;
pub use proxy::{InvalidProxy, TrustedProxies};
pub use redact::{REDACTED, redact_query, redact_url};
pub use server::{ABORTED, InServerSpan, ServerSpan};
