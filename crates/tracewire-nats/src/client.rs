//! Core NATS: a traced [`Client`] (publish, request/reply, subscribe) and the messages its
//! subscribers yield, each with its process span.

use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::client::{PublishError, RequestError};
use async_nats::{HeaderMap, Subject, SubscribeError, ToSubject};
use bytes::Bytes;
use futures_core::Stream;
use tracewire_messaging::{Destination, MessageInfo, Messaging, ProcessSpan, SendSpan};

use crate::carrier::{HeaderExtractor, HeaderInjector};

/// The header FastStream (and other NATS frameworks) put a message's correlation id in:
/// recorded as `messaging.message.conversation_id`.
pub const CORRELATION_ID: &str = "correlation_id";

/// An [`async_nats::Client`] whose publishes, requests and subscriptions are traced.
///
/// Every publish gets a PRODUCER span (`publish {subject}`) whose context travels in the
/// message headers; a request gets a CLIENT span (`request {subject}`) that lasts until the
/// reply; a subscription yields [`Message`]s, each with its process span. Functions that
/// publish take this type (a `&async_nats::Client` would not be traced); the untraced client
/// is [`inner`](Client::inner).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = tracewire_nats::Client::new(async_nats::connect("nats://127.0.0.1:4222").await?);
/// client.publish("orders.created", "42".into()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: async_nats::Client,
    messaging: Messaging,
    inbox_prefix: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("messaging", &self.messaging)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

/// The `messaging.operation.name`-level error type of a client error: its kind (`TimedOut`,
/// `NoResponders`, `MaxPayloadExceeded`, ...), low cardinality.
pub(crate) fn error_type(kind: &dyn fmt::Debug) -> String {
    format!("{kind:?}")
}

impl Client {
    /// Traces `client` with [`Tracer::global`](tracewire_core::Tracer::global):
    /// `messaging.system` = `nats`, the server's address and the client id from the
    /// connection's INFO, the default inbox prefix `_INBOX`.
    pub fn new(client: async_nats::Client) -> Self {
        let info = client.server_info();
        let messaging = Messaging::new("nats")
            .server(info.host.clone(), Some(info.port))
            .client_id(info.client_id.to_string());
        Client::with_messaging(client, messaging)
    }

    /// Traces `client` with this configuration (tracer, relation, conventions, ...).
    pub fn with_messaging(client: async_nats::Client, messaging: Messaging) -> Self {
        Client {
            inner: client,
            messaging,
            inbox_prefix: "_INBOX".to_owned(),
        }
    }

    /// The inbox prefix the client was connected with, if not `_INBOX`
    /// (`ConnectOptions::custom_inbox_prefix`): subjects under it are temporary
    /// destinations, which never name spans.
    pub fn inbox_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.inbox_prefix = prefix.into();
        self
    }

    /// The untraced client.
    pub fn inner(&self) -> &async_nats::Client {
        &self.inner
    }

    /// The tracing configuration.
    pub fn messaging(&self) -> &Messaging {
        &self.messaging
    }

    /// The destination of `subject`: temporary under the inbox prefix.
    pub(crate) fn destination<'a>(&self, subject: &'a str) -> Destination<'a> {
        Destination::new(subject).temporary(is_inbox(subject, &self.inbox_prefix))
    }

    /// Starts the send span of a message and puts its context in `headers`.
    pub(crate) fn send_span(
        &self,
        subject: &str,
        headers: &mut HeaderMap,
        payload: &Bytes,
    ) -> SendSpan {
        // Copied out (rarely present) so the headers can take the context.
        let (id, conversation) = owned_ids(headers);
        let info = MessageInfo {
            id: id.as_deref(),
            conversation_id: conversation.as_deref(),
            body_size: Some(payload.len()),
            ..MessageInfo::new(self.destination(subject))
        };
        self.messaging.send(&info, &mut HeaderInjector(headers))
    }

    /// Publishes `payload` to `subject` in a PRODUCER span; the span's context goes in the
    /// message headers (the message carries headers only when there is a context to carry).
    pub async fn publish<S: ToSubject>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        self.publish_with_headers(subject, HeaderMap::new(), payload)
            .await
    }

    /// [`publish`](Client::publish) with headers of your own (kept; a creation context you
    /// put there is kept too, and linked).
    pub async fn publish_with_headers<S: ToSubject>(
        &self,
        subject: S,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let subject = subject.to_subject();
        let span = self.send_span(&subject, &mut headers, &payload);
        let result = if headers.is_empty() {
            self.inner.publish(subject, payload).await
        } else {
            self.inner
                .publish_with_headers(subject, headers, payload)
                .await
        };
        finish(span, &result, |e| error_type(&e.kind()));
        result
    }

    /// [`publish`](Client::publish) with a reply subject.
    pub async fn publish_with_reply<S: ToSubject, R: ToSubject>(
        &self,
        subject: S,
        reply: R,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        self.publish_with_reply_and_headers(subject, reply, HeaderMap::new(), payload)
            .await
    }

    /// [`publish_with_headers`](Client::publish_with_headers) with a reply subject.
    pub async fn publish_with_reply_and_headers<S: ToSubject, R: ToSubject>(
        &self,
        subject: S,
        reply: R,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let subject = subject.to_subject();
        let span = self.send_span(&subject, &mut headers, &payload);
        let result = self
            .inner
            .publish_with_reply_and_headers(subject, reply, headers, payload)
            .await;
        finish(span, &result, |e| error_type(&e.kind()));
        result
    }

    /// Sends a request and waits for the reply, in a CLIENT span (`request {subject}`) that
    /// ends with the reply (or the error: `NoResponders`, `TimedOut`, ...). The responder's
    /// process span is the child of this span.
    pub async fn request<S: ToSubject>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> Result<async_nats::Message, RequestError> {
        self.request_with_headers(subject, HeaderMap::new(), payload)
            .await
    }

    /// [`request`](Client::request) with headers of your own.
    pub async fn request_with_headers<S: ToSubject>(
        &self,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<async_nats::Message, RequestError> {
        let request = async_nats::Request::new().headers(headers).payload(payload);
        self.send_request(subject, request).await
    }

    /// [`request`](Client::request) with every option of [`async_nats::Request`].
    pub async fn send_request<S: ToSubject>(
        &self,
        subject: S,
        mut request: async_nats::Request,
    ) -> Result<async_nats::Message, RequestError> {
        let subject = subject.to_subject();
        let mut headers = request.headers.take().unwrap_or_default();
        let span = {
            let (id, conversation) = owned_ids(&headers);
            let info = MessageInfo {
                id: id.as_deref(),
                conversation_id: conversation.as_deref(),
                body_size: request.payload.as_ref().map(Bytes::len),
                ..MessageInfo::new(self.destination(&subject))
            };
            self.messaging
                .request(&info, &mut HeaderInjector(&mut headers))
        };
        if !headers.is_empty() {
            request = request.headers(headers);
        }
        let result = self.inner.send_request(subject, request).await;
        finish(span, &result, |e| error_type(&e.kind()));
        result
    }

    /// Subscribes to `subject`; each message comes with its process span. A wildcard subject
    /// (`orders.*`, `orders.>`) names the spans (`messaging.destination.template`); the
    /// concrete subject is `messaging.destination.name`.
    pub async fn subscribe<S: ToSubject>(&self, subject: S) -> Result<Subscriber, SubscribeError> {
        let subject = subject.to_subject();
        let inner = self.inner.subscribe(subject.clone()).await?;
        Ok(self.subscriber(inner, subject, None))
    }

    /// [`subscribe`](Client::subscribe) in a queue group (`messaging.consumer.group.name`).
    pub async fn queue_subscribe<S: ToSubject>(
        &self,
        subject: S,
        queue_group: String,
    ) -> Result<Subscriber, SubscribeError> {
        let subject = subject.to_subject();
        let inner = self
            .inner
            .queue_subscribe(subject.clone(), queue_group.clone())
            .await?;
        Ok(self.subscriber(inner, subject, Some(queue_group)))
    }

    fn subscriber(
        &self,
        inner: async_nats::Subscriber,
        subject: Subject,
        queue_group: Option<String>,
    ) -> Subscriber {
        Subscriber {
            inner,
            wildcard: is_wildcard(&subject),
            subject,
            queue_group,
            client: self.clone(),
        }
    }

    /// Flushes the connection (untraced).
    pub async fn flush(&self) -> Result<(), async_nats::client::FlushError> {
        self.inner.flush().await
    }

    /// A new inbox subject (untraced).
    pub fn new_inbox(&self) -> String {
        self.inner.new_inbox()
    }

    /// Starts the process span of a message received outside a [`Subscriber`].
    pub fn process(&self, message: async_nats::Message) -> Message {
        self.process_in(message, None, None)
    }

    pub(crate) fn process_in(
        &self,
        message: async_nats::Message,
        template: Option<&str>,
        queue_group: Option<&str>,
    ) -> Message {
        let span = {
            let headers = message.headers.as_ref();
            // The facts are gathered only for a recorded span.
            let info = || {
                let (id, conversation_id) = headers.map_or((None, None), ids);
                let mut destination = self.destination(&message.subject);
                destination.template = template;
                MessageInfo {
                    id,
                    conversation_id,
                    body_size: Some(message.payload.len()),
                    consumer_group: queue_group,
                    ..MessageInfo::new(destination)
                }
            };
            self.messaging
                .process_lazy(info, headers.map(HeaderExtractor).as_ref())
        };
        Message { message, span }
    }
}

/// Ends a send span with the operation's outcome.
pub(crate) fn finish<T, E: fmt::Display>(
    mut span: SendSpan,
    result: &Result<T, E>,
    kind: impl FnOnce(&E) -> String,
) {
    if let Err(e) = result {
        span.record_error(kind(e), e.to_string());
    }
    span.end();
}

/// The message id (`Nats-Msg-Id`) and correlation id of a message's headers, in one pass
/// (no hashing).
pub(crate) fn ids(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    let (mut id, mut correlation) = (None, None);
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        let slot = if name == NATS_MESSAGE_ID {
            &mut id
        } else if name == CORRELATION_ID {
            &mut correlation
        } else {
            continue;
        };
        *slot = values.first().map(|v| v.as_str());
    }
    (id, correlation)
}

/// [`ids`], copied out (so the headers can take the trace context).
fn owned_ids(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    if headers.is_empty() {
        return (None, None);
    }
    let (id, correlation) = ids(headers);
    (id.map(str::to_owned), correlation.map(str::to_owned))
}

/// The JetStream message id header, as async-nats spells it.
const NATS_MESSAGE_ID: &str = "Nats-Msg-Id";

/// True for a subject with a `*` or `>` token.
pub(crate) fn is_wildcard(subject: &str) -> bool {
    subject.split('.').any(|t| t == "*" || t == ">")
}

/// True for a subject under `prefix.` (a reply inbox).
fn is_inbox(subject: &str, prefix: &str) -> bool {
    subject
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// A traced subscription: a [`Stream`] of [`Message`]s, each with its process span started
/// when it is yielded.
pub struct Subscriber {
    inner: async_nats::Subscriber,
    subject: Subject,
    wildcard: bool,
    queue_group: Option<String>,
    client: Client,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("subject", &self.subject)
            .field("queue_group", &self.queue_group)
            .finish()
    }
}

impl Subscriber {
    /// The untraced subscription (to unsubscribe or drain).
    pub fn inner_mut(&mut self) -> &mut async_nats::Subscriber {
        &mut self.inner
    }
}

impl Stream for Subscriber {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(message)) => {
                let template = this.wildcard.then_some(&*this.subject);
                Poll::Ready(Some(this.client.process_in(
                    message,
                    template,
                    this.queue_group.as_deref(),
                )))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A received message with its process span (it reads as the [`async_nats::Message`]).
///
/// Run the handler in the span with [`instrument`](Message::instrument); the span ends when
/// the message is dropped (or [`into_inner`](Message::into_inner)).
///
/// ```no_run
/// # async fn run(client: tracewire_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use tokio_stream::StreamExt as _;
///
/// # async fn handle(_: &tracewire_nats::Client, _: &async_nats::Message) -> Result<(), std::io::Error> { Ok(()) }
/// let mut orders = client.subscribe("orders.*").await?;
/// while let Some(mut message) = orders.next().await {
///     let result = message.instrument(handle(&client, &message)).await;
///     message.record_result(&result);
/// }
/// # Ok(()) }
/// ```
pub struct Message {
    message: async_nats::Message,
    span: ProcessSpan,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("message", &self.message)
            .field("span", &self.span)
            .finish()
    }
}

impl Deref for Message {
    type Target = async_nats::Message;

    fn deref(&self) -> &async_nats::Message {
        &self.message
    }
}

impl Message {
    tracewire_messaging::process_span_methods!(span);

    /// The message and its span, apart.
    pub fn into_parts(self) -> (async_nats::Message, ProcessSpan) {
        (self.message, self.span)
    }

    /// The message; its span ends.
    pub fn into_inner(self) -> async_nats::Message {
        self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_inboxes() {
        assert!(is_wildcard("orders.*"));
        assert!(is_wildcard(">"));
        assert!(is_wildcard("a.*.c"));
        assert!(!is_wildcard("orders.x*"));
        assert!(!is_wildcard("orders"));
        assert!(is_inbox("_INBOX.abc.def", "_INBOX"));
        assert!(!is_inbox("_INBOXES.abc", "_INBOX"));
        assert!(!is_inbox("_INBOX", "_INBOX"));
    }
}
