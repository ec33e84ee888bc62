#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod facts;
mod process;
mod send;

pub use config::{Conventions, Messaging, Relation};
pub use facts::{Destination, MessageInfo};
pub use process::{Entered, Instrumented, ProcessSpan, SettleSpan};
pub use send::SendSpan;
/// The context a process span gives its handler (from `tracewire-core`).
pub use tracewire_core::TraceContext;
