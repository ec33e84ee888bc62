#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod carrier;
mod client;
mod eventloop;
mod message;
mod shared;
mod subscriptions;

pub use carrier::{UserProperties, UserPropertiesMut};
pub use client::Client;
pub use eventloop::{Event, EventLoop};
pub use message::Message;
