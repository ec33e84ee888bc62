//! Pub/sub: a traced subscription (SUBSCRIBE or PSUBSCRIBE) as a stream of [`Message`]s.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use redis::RedisResult;
use redis::aio::PubSubStream;

use crate::client::Client;
use crate::message::{Delivery, Message};

/// A traced subscription to one channel, or to the channels matching one pattern: a
/// [`Stream`] of [`Message`]s, each with its process span started when it is yielded
/// (`process {channel}`, or `process {pattern}` with `messaging.destination.template` for a
/// pattern subscription). Made by [`Client::subscribe`] and [`Client::psubscribe`]; the
/// subscription is in place on the server when they return.
pub struct Subscriber {
    inner: PubSubStream,
    name: String,
    pattern: bool,
    client: Client,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.name)
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl Subscriber {
    pub(crate) async fn new(client: &Client, name: &str, pattern: bool) -> RedisResult<Self> {
        let mut pubsub = client.client.get_async_pubsub().await?;
        if pattern {
            pubsub.psubscribe(name).await?;
        } else {
            pubsub.subscribe(name).await?;
        }
        Ok(Subscriber {
            inner: pubsub.into_on_message(),
            name: name.to_owned(),
            pattern,
            client: client.clone(),
        })
    }

    /// The channel, or the pattern.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Stream for Subscriber {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(msg)) => {
                let template = this.pattern.then(|| this.name.clone());
                let delivery = Delivery::open(
                    &this.client,
                    msg.get_channel_name().to_owned(),
                    template.clone(),
                    msg.get_payload_bytes().to_vec(),
                );
                Poll::Ready(Some(delivery.process(&this.client, template.as_deref())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Client {
    /// Subscribes to `channel` (SUBSCRIBE) on a connection of its own; each message comes with
    /// its process span (`process {channel}`).
    pub async fn subscribe(&self, channel: &str) -> RedisResult<Subscriber> {
        Subscriber::new(self, channel, false).await
    }

    /// Subscribes to the channels matching `pattern` (PSUBSCRIBE): the pattern names the spans
    /// (`process {pattern}`, `messaging.destination.template`), the concrete channel is
    /// `messaging.destination.name`.
    pub async fn psubscribe(&self, pattern: &str) -> RedisResult<Subscriber> {
        Subscriber::new(self, pattern, true).await
    }
}
