#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod carrier;
mod config;
mod consumer;
mod producer;
mod record;

pub use carrier::{HeaderExtractor, HeaderInjector};
pub use config::messaging;
pub use consumer::{BaseConsumer, Batch, Message, MessageStream, StreamConsumer};
pub use producer::{DeliveryFuture, FutureProducer};
pub use record::CORRELATION_ID;
