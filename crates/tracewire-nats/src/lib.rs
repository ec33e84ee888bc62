#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod carrier;
mod client;
pub mod jetstream;

pub use carrier::{HeaderExtractor, HeaderInjector};
pub use client::{CORRELATION_ID, Client, Message, Subscriber};
