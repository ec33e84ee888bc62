#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod carrier;
mod client;
pub mod envelope;
mod list;
mod message;
mod pubsub;
pub mod semconv;
mod stream;

pub use carrier::{Fields, FieldsMut, Headers};
pub use client::{CONTENT_TYPE, CORRELATION_ID, Client, DATA_FIELD, MESSAGE_ID, Outgoing};
pub use list::{ListConsumer, Moved};
pub use message::{Batch, Delivery, Message};
pub use pubsub::Subscriber;
pub use stream::{StreamBatch, StreamConsumer, StreamEntry, StreamMessage};
