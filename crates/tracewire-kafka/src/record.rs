//! The facts of a Kafka record, as `tracewire-messaging` takes them.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::time::{Duration, SystemTime};

use rdkafka::Message;
use tracewire_core::{intern, semconv};
use tracewire_messaging::{Destination, MessageInfo};

use crate::carrier::Incoming;

/// The header FastStream (and other frameworks) put a record's correlation id in: recorded as
/// `messaging.message.conversation_id`.
pub const CORRELATION_ID: &str = "correlation_id";

/// A record key as recorded (`messaging.kafka.message.key`): only a key that is text.
pub(crate) fn key_text(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key).ok()
}

/// A partition number as recorded (`messaging.destination.partition.id`); negative numbers
/// (librdkafka's "unassigned") are not.
pub(crate) fn partition_id(partition: i32) -> Option<Cow<'static, str>> {
    u64::try_from(partition).ok().map(intern::number)
}

/// The record's timestamp (create time or log-append time) as a time: queue time is measured
/// from it.
fn timestamp<M: Message>(message: &M) -> Option<SystemTime> {
    let ms = u64::try_from(message.timestamp().to_millis()?).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// What the facts of one consumed record are made from, filled on first use (only for a
/// recorded span): the formatted offset and partition, and the system attributes.
#[derive(Default)]
pub(crate) struct Scratch<'a> {
    offset: OnceCell<String>,
    partition: OnceCell<Option<Cow<'static, str>>>,
    system: OnceCell<([(&'static str, &'a str); 3], usize)>,
}

/// The facts of a consumed record: topic, partition, offset, key, tombstone, body size, the
/// correlation id, the consumer group, and the record timestamp for the queue time.
pub(crate) fn consumed<'a, M: Message>(
    message: &'a M,
    headers: &Incoming<'a>,
    group: Option<&'a str>,
    scratch: &'a Scratch<'a>,
) -> MessageInfo<'a> {
    let (system, n) = scratch.system.get_or_init(|| {
        let offset: &'a str = scratch.offset.get_or_init(|| message.offset().to_string());
        let mut a = [("", ""); 3];
        a[0] = (semconv::MESSAGING_KAFKA_OFFSET, offset);
        let mut n = 1;
        if let Some(key) = message.key().and_then(key_text) {
            a[n] = (semconv::MESSAGING_KAFKA_MESSAGE_KEY, key);
            n += 1;
        }
        if message.payload().is_none() {
            a[n] = (semconv::MESSAGING_KAFKA_MESSAGE_TOMBSTONE, "true");
            n += 1;
        }
        (a, n)
    });
    let partition = scratch
        .partition
        .get_or_init(|| partition_id(message.partition()));
    MessageInfo {
        conversation_id: headers.first(CORRELATION_ID),
        body_size: message.payload().map(<[u8]>::len),
        consumer_group: group,
        published_at: timestamp(message),
        partition_id: partition.as_deref(),
        system_attributes: system.get(..*n).unwrap_or_default(),
        ..MessageInfo::new(Destination::new(message.topic()))
    }
}
