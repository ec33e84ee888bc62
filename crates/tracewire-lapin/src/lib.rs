#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod carrier;
mod channel;
mod consume;
mod facts;

pub use carrier::{HeaderExtractor, HeaderInjector};
pub use channel::{Channel, Connection, PublishConfirm, SYSTEM, messaging};
pub use consume::{Consumer, Delivery};
pub use facts::{DEFAULT_EXCHANGE, DELIVERY_COUNT_HEADER};
