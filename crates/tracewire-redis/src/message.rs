//! What a pub/sub subscriber or a list consumer yields: a [`Delivery`] (the payload, opened)
//! with its process span ([`Message`]), or several in one span ([`Batch`]).

use std::fmt;
use std::ops::{Deref, Range};

use tracewire_messaging::{Destination, MessageInfo, ProcessSpan};

use crate::carrier::Headers;
use crate::client::{CONTENT_TYPE, CORRELATION_ID, Client, MESSAGE_ID};
use crate::envelope::{self, DecodeError, Format};
use crate::semconv::MESSAGING_REDIS_ENVELOPE;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Body {
    /// Where the body lies in the payload (binary envelopes, raw payloads).
    In(Range<usize>),
    /// Unescaped from a JSON envelope.
    Owned(Vec<u8>),
}

/// One payload from a channel or a list, opened: the body the handler wants, the envelope's
/// headers, and the payload as it arrived.
///
/// A payload that is not an envelope is its own body. One that began like a binary envelope
/// but could not be read is its own body too — exactly what a consumer without tracing would
/// have got — with [`decode_error`](Delivery::decode_error) saying why.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    destination: String,
    pattern: Option<String>,
    payload: Vec<u8>,
    body: Body,
    format: Format,
    headers: Headers<'static>,
    error: Option<DecodeError>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("destination", &self.destination)
            .field("pattern", &self.pattern)
            .field("format", &self.format)
            .field("headers", &self.headers)
            .field("body_len", &self.body().len())
            .field("error", &self.error)
            .finish()
    }
}

impl Delivery {
    /// Opens `payload` that arrived on `destination` (a channel or a list); a decode failure
    /// is counted on `client`.
    pub(crate) fn open(
        client: &Client,
        destination: String,
        pattern: Option<String>,
        payload: Vec<u8>,
    ) -> Delivery {
        let (format, headers, body, error) = match envelope::decode(&payload) {
            Ok(d) => {
                let format = d.format();
                let (headers, body) = d.into_parts();
                let body = match body {
                    std::borrow::Cow::Borrowed(b) => {
                        // A sub-slice of `payload`: its place in it.
                        let start = b.as_ptr() as usize - payload.as_ptr() as usize;
                        Body::In(start..start + b.len())
                    }
                    std::borrow::Cow::Owned(b) => Body::Owned(b),
                };
                (format, headers.into_owned(), body, None)
            }
            Err(e) => {
                client.count_failure(&destination, &e);
                (
                    Format::Raw,
                    Headers::new(),
                    Body::In(0..payload.len()),
                    Some(e),
                )
            }
        };
        Delivery {
            destination,
            pattern,
            payload,
            body,
            format,
            headers,
            error,
        }
    }

    /// The channel or list it came from.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The pattern of the subscription it matched (PSUBSCRIBE), if any.
    pub fn pattern(&self) -> Option<&str> {
        self.pattern.as_deref()
    }

    /// The body: the envelope's, or the whole payload when there was no (readable) envelope.
    pub fn body(&self) -> &[u8] {
        match &self.body {
            Body::In(r) => self.payload.get(r.clone()).unwrap_or_default(),
            Body::Owned(b) => b,
        }
    }

    /// The payload as it arrived (the envelope included).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// What the payload was.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The envelope's headers (none for a raw payload).
    pub fn headers(&self) -> &Headers<'static> {
        &self.headers
    }

    /// The first value of envelope header `name` (exact name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_exact(name)
    }

    /// FastStream's `correlation_id`.
    pub fn correlation_id(&self) -> Option<&str> {
        self.header(CORRELATION_ID)
    }

    /// The body's content type.
    pub fn content_type(&self) -> Option<&str> {
        self.header(CONTENT_TYPE)
    }

    /// Why the payload, which began like a binary envelope, could not be read (it is then its
    /// own body, and the process span starts a new trace).
    pub fn decode_error(&self) -> Option<&DecodeError> {
        self.error.as_ref()
    }

    /// The value of `messaging.redis.envelope`.
    fn envelope_label(&self) -> &'static str {
        match self.error {
            Some(_) => "invalid",
            None => self.format.as_str(),
        }
    }

    /// The message's facts; `system` holds the envelope attribute.
    pub(crate) fn facts<'a>(
        &'a self,
        template: Option<&'a str>,
        system: &'a [(&'static str, &'a str); 1],
    ) -> MessageInfo<'a> {
        let mut destination = Destination::new(&self.destination);
        destination.template = template;
        MessageInfo {
            // FastStream's message id: `message_id`, else the correlation id.
            id: self.header(MESSAGE_ID).or(self.correlation_id()),
            conversation_id: self.correlation_id(),
            body_size: Some(self.body().len()),
            system_attributes: system,
            ..MessageInfo::new(destination)
        }
    }

    /// The carrier, when there is anything to read.
    pub(crate) fn carrier(&self) -> Option<&Headers<'static>> {
        (!self.headers.is_empty()).then_some(&self.headers)
    }

    /// Starts the process span of this delivery.
    pub(crate) fn process(self, client: &Client, template: Option<&str>) -> Message {
        let label = [(MESSAGING_REDIS_ENVELOPE, self.envelope_label())];
        // The facts (header lookups) only for a recorded span.
        let span = client
            .messaging
            .process_lazy(|| self.facts(template, &label), self.carrier());
        Message {
            delivery: self,
            span,
        }
    }
}

/// One batch of deliveries in one process span, with a link per message.
pub(crate) fn process_batch(
    client: &Client,
    destination: &str,
    deliveries: Vec<Delivery>,
) -> Batch {
    let labels: Vec<[(&'static str, &str); 1]> = deliveries
        .iter()
        .map(|d| [(MESSAGING_REDIS_ENVELOPE, d.envelope_label())])
        .collect();
    let infos: Vec<(MessageInfo<'_>, Option<&Headers<'static>>)> = deliveries
        .iter()
        .zip(&labels)
        .map(|(d, label)| (d.facts(None, label), d.carrier()))
        .collect();
    let span = client
        .messaging
        .process_batch(Destination::new(destination), &infos);
    drop(infos);
    Batch { deliveries, span }
}

/// A delivery with its process span: reads as the [`Delivery`].
///
/// Run the handler in the span with [`instrument`](Message::instrument); the span ends when
/// the message is dropped.
///
/// ```no_run
/// # async fn run(client: tracewire_redis::Client) -> redis::RedisResult<()> {
/// use tokio_stream::StreamExt as _;
///
/// # async fn handle(_: &[u8]) -> Result<(), std::io::Error> { Ok(()) }
/// let mut orders = client.subscribe("orders").await?;
/// while let Some(mut message) = orders.next().await {
///     let result = message.instrument(handle(message.body())).await;
///     message.record_result(&result);
/// }
/// # Ok(()) }
/// ```
pub struct Message {
    delivery: Delivery,
    span: ProcessSpan,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("delivery", &self.delivery)
            .field("span", &self.span)
            .finish()
    }
}

impl Deref for Message {
    type Target = Delivery;

    fn deref(&self) -> &Delivery {
        &self.delivery
    }
}

impl Message {
    tracewire_messaging::process_span_methods!(span);

    /// The delivery and its span, apart.
    pub fn into_parts(self) -> (Delivery, ProcessSpan) {
        (self.delivery, self.span)
    }

    /// The delivery; the span ends.
    pub fn into_inner(self) -> Delivery {
        self.delivery
    }
}

/// Deliveries popped together (BLMPOP ... COUNT n), in one process span
/// (`process {list}`, `messaging.batch.message_count`) with a link per message that carries a
/// creation context.
pub struct Batch {
    deliveries: Vec<Delivery>,
    span: ProcessSpan,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("deliveries", &self.deliveries.len())
            .field("span", &self.span)
            .finish()
    }
}

impl Batch {
    /// The deliveries, in pop order.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    tracewire_messaging::process_span_methods!(span);

    /// The deliveries and the span, apart.
    pub fn into_parts(self) -> (Vec<Delivery>, ProcessSpan) {
        (self.deliveries, self.span)
    }
}

impl Client {
    /// Opens a payload received another way (LPOP, LRANGE, a Lua script, ...) from the channel
    /// or list `destination`, and starts its process span, as the consumers do.
    pub fn process(&self, destination: &str, payload: Vec<u8>) -> Message {
        Delivery::open(self, destination.to_owned(), None, payload).process(self, None)
    }
}
