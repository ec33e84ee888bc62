//! AMQP message headers (a [`FieldTable`]) as propagation carriers.
//!
//! AMQP header names are case-sensitive on the wire; propagation reads them
//! case-insensitively (a peer may write `Traceparent`) and writes the exact lowercase names of
//! the formats. A value is read whatever AMQP type the peer wrote it as — a long string (`S`,
//! what aio-pika, FastStream, the Java and .NET clients write for text), a short string, or a
//! byte array (`x`, what pika and aio-pika write for `bytes`) — as long as it is UTF-8; other
//! types (numbers, tables, arrays) are not trace context and are skipped. Values are written as
//! long strings. Nothing here can panic on a hostile header: a key longer than AMQP's 255-byte
//! short string is not written, and bad values are the propagators' to reject.

use std::collections::btree_map;

use lapin::types::{AMQPValue, FieldTable, ShortString};
use tracewire_core::Injector;
use tracewire_core::carrier::Walk;

/// Reads propagation headers from an AMQP header table.
#[derive(Clone, Copy, Debug)]
pub struct HeaderExtractor<'a>(pub &'a FieldTable);

/// Writes (and reads) propagation headers into an AMQP header table; other headers are left
/// as they are.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut FieldTable);

/// The text of a header value, if it is text: a long string, a short string or a byte array
/// holding UTF-8.
pub fn text(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        AMQPValue::ByteArray(b) => std::str::from_utf8(b.as_slice()).ok(),
        _ => None,
    }
}

/// The values of one name in any case (rare: extraction walks the table once through
/// [`walk`](Extractor::walk); a boxed scan keeps the type nameable).
type Values<'a> = Box<dyn Iterator<Item = &'a str> + 'a>;
type Entry<'a> = (&'a ShortString, &'a AMQPValue);
type Keys<'a> =
    std::iter::Map<btree_map::Iter<'a, ShortString, AMQPValue>, fn(Entry<'a>) -> &'a str>;

fn get_all<'a>(table: &'a FieldTable, key: &str) -> Values<'a> {
    let key = key.to_owned();
    Box::new(
        table
            .inner()
            .iter()
            .filter(move |(name, _)| name.as_str().eq_ignore_ascii_case(&key))
            .filter_map(|(_, value)| text(value)),
    )
}

fn keys(table: &FieldTable) -> Keys<'_> {
    fn name<'a>((name, _): Entry<'a>) -> &'a str {
        name.as_str()
    }
    table.inner().iter().map(name)
}

/// One walk of the table: each name looked at in any case, its value taken when it is text.
fn walk<'a>(table: &'a FieldTable, walk: &mut Walk<'a>) -> bool {
    for (name, value) in table.inner() {
        let name = name.as_str();
        if let Some(slot) = walk.wanted(name)
            && let Some(value) = text(value)
        {
            walk.take(slot, name, value);
        }
    }
    true
}

tracewire_core::impl_extractor! {
    HeaderExtractor<'_>, HeaderInjector<'_>: |h| h.0;
    values: Values<'b>, keys: Keys<'b>;
    get_all: get_all, keys: keys, walk: walk
}

impl Injector for HeaderInjector<'_> {
    /// The propagators' own names (`traceparent`, `b3`, ...) are short: always valid.
    fn set(&mut self, key: &'static str, value: String) {
        self.set_dynamic(key, value);
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        match ShortString::try_new(key) {
            Ok(name) if !key.is_empty() => {
                self.0.insert(name, AMQPValue::LongString(value.into()));
            }
            _ => log::debug!("not a valid AMQP header name, not injected: {key:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{ByteArray, LongString};
    use tracewire_core::{Extractor as _, Format, Propagators, SpanId, TraceContext, TraceId};

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn extract(table: &FieldTable) -> Option<TraceId> {
        Propagators::all()
            .extract(&HeaderExtractor(table))
            .context
            .map(|c| c.trace_id)
    }

    #[test]
    fn reads_every_text_type_in_any_case() {
        let want = Some(TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736));
        for value in [
            AMQPValue::LongString(LongString::from(TP)),
            AMQPValue::ShortString(ShortString::from(TP)),
            AMQPValue::ByteArray(ByteArray::from(TP.as_bytes().to_vec())),
        ] {
            for key in ["traceparent", "Traceparent", "TRACEPARENT"] {
                let mut t = FieldTable::default();
                t.insert(key.into(), value.clone());
                assert_eq!(extract(&t), want, "{key} {value:?}");
                assert_eq!(HeaderExtractor(&t).get("traceparent"), Some(TP));
            }
        }
    }

    #[test]
    fn non_text_and_non_utf8_values_are_skipped() {
        for value in [
            AMQPValue::LongLongInt(7),
            AMQPValue::Boolean(true),
            AMQPValue::FieldTable(FieldTable::default()),
            AMQPValue::LongString(LongString::from(vec![0xff, 0xfe, b'0'])),
            AMQPValue::ByteArray(ByteArray::from(vec![0xc3])),
            AMQPValue::Void,
        ] {
            let mut t = FieldTable::default();
            t.insert("traceparent".into(), value.clone());
            assert_eq!(extract(&t), None, "{value:?}");
            assert_eq!(HeaderExtractor(&t).get("traceparent"), None);
            assert_eq!(
                HeaderExtractor(&t).keys().collect::<Vec<_>>(),
                ["traceparent"]
            );
        }
    }

    #[test]
    fn writes_lowercase_long_strings_and_skips_overlong_names() {
        let mut t = FieldTable::default();
        t.insert("x-app".into(), AMQPValue::LongLongInt(1));
        let mut cx = TraceContext::new(TraceId(1), SpanId(2), true);
        cx.baggage = tracewire_core::Baggage::parse_lines(["user=x"]);
        Propagators::new([Format::TraceContext, Format::Jaeger])
            .inject(&cx, &mut HeaderInjector(&mut t));
        assert_eq!(
            t.inner().get("traceparent"),
            Some(&AMQPValue::LongString(
                "00-00000000000000000000000000000001-0000000000000002-01".into()
            ))
        );
        assert_eq!(
            t.inner().get("uberctx-user"),
            Some(&AMQPValue::LongString("x".into()))
        );
        assert_eq!(t.inner().get("x-app"), Some(&AMQPValue::LongLongInt(1)));
        let mut i = HeaderInjector(&mut t);
        i.set_dynamic(&"k".repeat(256), "v".into());
        i.set_dynamic("", "v".into());
        assert_eq!(t.inner().len(), 4, "{t:?}");
    }
}
