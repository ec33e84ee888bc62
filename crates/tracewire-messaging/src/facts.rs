//! What a broker crate knows about a message ([`MessageInfo`], [`Destination`]), and **the
//! one place those facts become span names and attributes**.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::SystemTime;

use tracewire_core::intern::{self, Interner};
use tracewire_core::semconv;
use tracewire_core::span::Attribute;

use crate::config::Inner;

/// Destination names and templates: a service sends to and consumes from a few subjects,
/// queues or topics, over and over. Temporary destinations (reply inboxes) are never
/// interned.
static DESTINATIONS: Interner = Interner::new(4096);

/// The most span names interned (`{verb} {destination}`).
const MAX_SPAN_NAMES: usize = 4096;

/// Span names by (verb, interned label), both `&'static`: keyed by their addresses.
static SPAN_NAMES: RwLock<Option<HashMap<(usize, usize), &'static str>>> = RwLock::new(None);

thread_local! {
    /// The last span name this thread made: a handler loop names the same span every time.
    static LAST_NAME: Cell<Option<(&'static str, &'static str, &'static str)>> =
        const { Cell::new(None) };
}

/// Where a message goes, or where it was consumed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Destination<'a> {
    /// The concrete name: a subject, topic, queue, stream key, `{exchange}:{routing key}`.
    pub name: &'a str,
    /// The low-cardinality name spans are named by, when the concrete one is not: the filter
    /// of a wildcard subscription (`orders.*`), a pattern subscription.
    pub template: Option<&'a str>,
    /// A destination that lives only as long as its client: a reply inbox, a server-named
    /// queue. Never names a span.
    pub temporary: bool,
    /// A destination without a name the application chose. Never names a span.
    pub anonymous: bool,
}

impl<'a> Destination<'a> {
    /// A plain named destination.
    pub fn new(name: &'a str) -> Self {
        Destination {
            name,
            ..Destination::default()
        }
    }

    /// This destination, named by `template` in span names.
    pub fn with_template(mut self, template: &'a str) -> Self {
        self.template = Some(template);
        self
    }

    /// This destination, marked temporary.
    pub fn temporary(mut self, yes: bool) -> Self {
        self.temporary = yes;
        self
    }

    /// What names a span: the template, else the name unless temporary or anonymous, else
    /// nothing (the span is named by its operation alone).
    pub fn label(&self) -> Option<&'a str> {
        self.template.or_else(|| {
            (!self.temporary && !self.anonymous && !self.name.is_empty()).then_some(self.name)
        })
    }
}

/// The facts of one message, as its broker crate knows them. Every field is optional but the
/// destination; what is `None` is not recorded.
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageInfo<'a> {
    /// Where it goes or came from.
    pub destination: Destination<'a>,
    /// `messaging.message.id`: the broker's or the producer's id (NATS `Nats-Msg-Id`, a stream
    /// entry id, an AMQP `message_id`).
    pub id: Option<&'a str>,
    /// `messaging.message.conversation_id` (a correlation id).
    pub conversation_id: Option<&'a str>,
    /// `messaging.message.body.size`: the payload's size in bytes.
    pub body_size: Option<usize>,
    /// `messaging.consumer.group.name`: a queue group, a consumer group.
    pub consumer_group: Option<&'a str>,
    /// The delivery attempt, 1 for the first (`messaging.message.delivery_count`).
    pub delivery_count: Option<u64>,
    /// When the broker accepted the message; the process span records the time since as
    /// `messaging.message.queue_time_ms`.
    pub published_at: Option<SystemTime>,
    /// `messaging.destination.partition.id`.
    pub partition_id: Option<&'a str>,
    /// Attributes of the broker's own conventions (`messaging.kafka.offset`,
    /// `messaging.rabbitmq.destination.routing_key`, ...): keys from `semconv` or the broker
    /// crate, values as text (typed on export by `semconv::typed_key`).
    pub system_attributes: &'a [(&'static str, &'a str)],
}

impl<'a> MessageInfo<'a> {
    /// The facts of a message that has only a destination so far.
    pub fn new(destination: Destination<'a>) -> Self {
        MessageInfo {
            destination,
            ..MessageInfo::default()
        }
    }
}

/// Facts computed on first use, at most once.
pub(crate) struct Lazy<'i, F> {
    make: std::cell::Cell<Option<F>>,
    made: std::cell::OnceCell<MessageInfo<'i>>,
}

impl<'i, F: FnOnce() -> MessageInfo<'i>> Lazy<'i, F> {
    pub(crate) fn new(make: F) -> Self {
        Lazy {
            make: std::cell::Cell::new(Some(make)),
            made: std::cell::OnceCell::new(),
        }
    }

    pub(crate) fn get(&self) -> MessageInfo<'i> {
        *self
            .made
            .get_or_init(|| self.make.take().map(|f| f()).unwrap_or_default())
    }
}

/// One messaging operation: its `messaging.operation.type` and the broker's verb for it
/// (`messaging.operation.name`, and the first word of the span name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Operation {
    pub(crate) kind: &'static str,
    pub(crate) verb: &'static str,
}

impl Operation {
    pub(crate) const CREATE: Operation = Operation {
        kind: semconv::MESSAGING_OPERATION_TYPE_CREATE,
        verb: "create",
    };
    pub(crate) const PROCESS: Operation = Operation {
        kind: semconv::MESSAGING_OPERATION_TYPE_PROCESS,
        verb: "process",
    };

    pub(crate) fn send(verb: &'static str) -> Self {
        Operation {
            kind: semconv::MESSAGING_OPERATION_TYPE_SEND,
            verb,
        }
    }

    pub(crate) fn settle(verb: &'static str) -> Self {
        Operation {
            kind: semconv::MESSAGING_OPERATION_TYPE_SETTLE,
            verb,
        }
    }

    /// The value of the older `messaging.operation` key.
    fn legacy(self) -> &'static str {
        match self.kind {
            semconv::MESSAGING_OPERATION_TYPE_SEND => "publish",
            other => other,
        }
    }
}

/// The span name: `{verb} {destination}`, or `{verb}` alone when the destination is
/// temporary or anonymous and has no template (semconv: high-cardinality names never name a
/// span). Interned while there is room: a recorded span usually formats nothing.
pub(crate) fn span_name(op: Operation, destination: &Destination<'_>) -> Cow<'static, str> {
    let Some(label) = destination.label() else {
        return Cow::Borrowed(op.verb);
    };
    let Some(label) = DESTINATIONS.get(label) else {
        return Cow::Owned(format!("{} {label}", op.verb));
    };
    if let Some((verb, last_label, name)) = LAST_NAME.try_with(Cell::get).ok().flatten() {
        if std::ptr::eq(verb, op.verb) && std::ptr::eq(last_label, label) {
            return Cow::Borrowed(name);
        }
    }
    match interned_name(op.verb, label) {
        Some(name) => {
            let _ = LAST_NAME.try_with(|c| c.set(Some((op.verb, label, name))));
            Cow::Borrowed(name)
        }
        None => Cow::Owned(format!("{} {label}", op.verb)),
    }
}

fn interned_name(verb: &'static str, label: &'static str) -> Option<&'static str> {
    let key = (verb.as_ptr() as usize, label.as_ptr() as usize);
    if let Ok(map) = SPAN_NAMES.read() {
        if let Some(name) = map.as_ref().and_then(|m| m.get(&key)) {
            return Some(name);
        }
    }
    let mut map = match SPAN_NAMES.write() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(name) = map.get(&key) {
        return Some(name);
    }
    if map.len() >= MAX_SPAN_NAMES {
        return None;
    }
    let name: &'static str = Box::leak(format!("{verb} {label}").into_boxed_str());
    map.insert(key, name);
    Some(name)
}

fn owned(s: &str) -> Cow<'static, str> {
    Cow::Owned(s.to_owned())
}

/// A destination name or template: interned unless temporary.
fn destination(s: &str, temporary: bool) -> Cow<'static, str> {
    if temporary {
        owned(s)
    } else {
        DESTINATIONS.cow(s)
    }
}

fn key(k: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(k)
}

/// The attributes of a span for `op` on one message (`info`) or a batch (`batch`: the message
/// count; per-message facts then go on the links, see [`link_attributes`]).
pub(crate) fn span_attributes(
    config: &Inner,
    op: Operation,
    info: &MessageInfo<'_>,
    batch: Option<usize>,
) -> Vec<Attribute> {
    let legacy = config.conventions.legacy();
    let d = &info.destination;
    // Room for everything below, and for what the span may add later (an error, a
    // settlement): the list is moved into the span as it is.
    let mut a: Vec<Attribute> =
        Vec::with_capacity(17 + info.system_attributes.len() + if legacy { 4 } else { 0 });
    a.push((key(semconv::MESSAGING_SYSTEM), Cow::Borrowed(config.system)));
    a.push((
        key(semconv::MESSAGING_OPERATION_TYPE),
        Cow::Borrowed(op.kind),
    ));
    a.push((
        key(semconv::MESSAGING_OPERATION_NAME),
        Cow::Borrowed(op.verb),
    ));
    if legacy {
        a.push((
            key(semconv::MESSAGING_OPERATION_LEGACY),
            Cow::Borrowed(op.legacy()),
        ));
    }
    if !d.name.is_empty() {
        let name = destination(d.name, d.temporary || d.anonymous);
        if legacy && op == Operation::PROCESS {
            a.push((
                key(semconv::MESSAGING_DESTINATION_PUBLISH_NAME_LEGACY),
                name.clone(),
            ));
        }
        a.push((key(semconv::MESSAGING_DESTINATION_NAME), name));
    }
    if let Some(t) = d.template {
        a.push((
            key(semconv::MESSAGING_DESTINATION_TEMPLATE),
            destination(t, false),
        ));
    }
    if d.temporary {
        a.push((
            key(semconv::MESSAGING_DESTINATION_TEMPORARY),
            Cow::Borrowed("true"),
        ));
    }
    if d.anonymous {
        a.push((
            key(semconv::MESSAGING_DESTINATION_ANONYMOUS),
            Cow::Borrowed("true"),
        ));
    }
    match batch {
        Some(n) => a.push((
            key(semconv::MESSAGING_BATCH_MESSAGE_COUNT),
            intern::number(n as u64),
        )),
        None => message_attributes(&mut a, info, legacy, op == Operation::PROCESS),
    }
    if let Some(g) = info.consumer_group {
        a.push((
            key(semconv::MESSAGING_CONSUMER_GROUP_NAME),
            DESTINATIONS.cow(g),
        ));
    }
    if let Some(id) = &config.client_id {
        a.push((key(semconv::MESSAGING_CLIENT_ID), id.clone()));
        if legacy {
            a.push((key(semconv::MESSAGING_CLIENT_ID_LEGACY), id.clone()));
        }
    }
    if let Some(address) = &config.server_address {
        a.push((key(semconv::SERVER_ADDRESS), address.clone()));
        if let Some(port) = &config.server_port {
            a.push((key(semconv::SERVER_PORT), port.clone()));
        }
    }
    a
}

/// The facts of one message: on a single-message span, or on a batch span's link to it.
fn message_attributes(
    a: &mut Vec<Attribute>,
    info: &MessageInfo<'_>,
    legacy: bool,
    consumed: bool,
) {
    if let Some(id) = info.id {
        a.push((key(semconv::MESSAGING_MESSAGE_ID), owned(id)));
    }
    if let Some(id) = info.conversation_id {
        a.push((key(semconv::MESSAGING_MESSAGE_CONVERSATION_ID), owned(id)));
    }
    if let Some(size) = info.body_size {
        let size = intern::number(size as u64);
        if legacy {
            a.push((
                key(semconv::MESSAGING_MESSAGE_PAYLOAD_SIZE_BYTES_LEGACY),
                size.clone(),
            ));
        }
        a.push((key(semconv::MESSAGING_MESSAGE_BODY_SIZE), size));
    }
    if let Some(p) = info.partition_id {
        a.push((
            key(semconv::MESSAGING_DESTINATION_PARTITION_ID),
            DESTINATIONS.cow(p),
        ));
    }
    if consumed {
        if let Some(n) = info.delivery_count {
            a.push((
                key(semconv::MESSAGING_MESSAGE_DELIVERY_COUNT),
                intern::number(n),
            ));
        }
        if let Some(at) = info.published_at {
            let waited = SystemTime::now().duration_since(at).unwrap_or_default();
            let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
            a.push((
                key(semconv::MESSAGING_MESSAGE_QUEUE_TIME_MS),
                intern::number(ms),
            ));
        }
    }
    for (k, v) in info.system_attributes {
        a.push((key(k), owned(v)));
    }
}

/// The attributes of a batch span's link to one of its messages: the message's own facts,
/// and its destination when it is not the batch's.
pub(crate) fn link_attributes(
    info: &MessageInfo<'_>,
    batch: &Destination<'_>,
    consumed: bool,
) -> Vec<Attribute> {
    let mut a = Vec::with_capacity(6);
    if info.destination.name != batch.name && !info.destination.name.is_empty() {
        a.push((
            key(semconv::MESSAGING_DESTINATION_NAME),
            owned(info.destination.name),
        ));
    }
    message_attributes(&mut a, info, false, consumed);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_prefer_the_template_and_never_use_temporary_destinations() {
        let send = Operation::send("publish");
        assert_eq!(
            span_name(send, &Destination::new("orders")),
            "publish orders"
        );
        assert_eq!(
            span_name(
                Operation::PROCESS,
                &Destination::new("orders.eu.42").with_template("orders.*.>")
            ),
            "process orders.*.>"
        );
        assert_eq!(
            span_name(send, &Destination::new("_INBOX.abc.def").temporary(true)),
            "publish"
        );
        assert_eq!(
            span_name(Operation::settle("ack"), &Destination::new("")),
            "ack"
        );
    }
}
