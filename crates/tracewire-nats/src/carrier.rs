//! NATS message headers as propagation carriers.
//!
//! NATS header names are case-sensitive on the wire and in async-nats; propagation reads
//! them case-insensitively (a peer may write `Traceparent`) and writes the exact lowercase
//! names of the formats. Nothing here can panic on a hostile header: names and values are
//! checked with async-nats's fallible constructors, and what fails is not written.

use std::str::FromStr;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use tracewire_core::Injector;
use tracewire_core::carrier::Walk;

/// Reads propagation headers from an [`async_nats::HeaderMap`].
#[derive(Clone, Copy, Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

/// Writes (and reads) propagation headers into an [`async_nats::HeaderMap`]; other headers
/// are left as they are.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

/// The values of one name (rare: extraction asks only for headers that appear more than
/// once; a boxed scan keeps the type nameable).
type Values<'a> = Box<dyn Iterator<Item = &'a str> + 'a>;
type Entry<'a> = (&'a HeaderName, &'a Vec<HeaderValue>);
type Keys<'a> = std::iter::Map<
    std::collections::hash_map::Iter<'a, HeaderName, Vec<HeaderValue>>,
    fn(Entry<'a>) -> &'a str,
>;

/// A scan of the map (only for headers that appear more than once: extraction walks the map
/// once through [`walk`](tracewire_core::Extractor::walk)).
fn get_all<'a>(map: &'a HeaderMap, key: &str) -> Values<'a> {
    let key = key.to_owned();
    Box::new(
        map.iter()
            .filter(move |(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(&key))
            .flat_map(|(_, values)| values.iter().map(HeaderValue::as_str)),
    )
}

fn keys(map: &HeaderMap) -> Keys<'_> {
    fn name<'a>((name, _): Entry<'a>) -> &'a str {
        name.as_ref()
    }
    map.iter().map(name)
}

/// One walk of the map: each name looked at once (in any case), then its values taken in order.
fn walk<'a>(map: &'a HeaderMap, walk: &mut Walk<'a>) -> bool {
    for (name, values) in map.iter() {
        let name: &'a str = name.as_ref();
        if let Some(slot) = walk.wanted(name) {
            for value in values {
                walk.take(slot, name, value.as_str());
            }
        }
    }
    true
}

tracewire_core::impl_extractor! {
    HeaderExtractor<'_>, HeaderInjector<'_>: |h| h.0;
    values: Values<'b>, keys: Keys<'b>;
    get_all: get_all, keys: keys, walk: walk
}

/// The value moved into a header value (no copy), unless it holds a line break (which
/// async-nats would panic on).
fn value(value: String) -> Option<HeaderValue> {
    memchr::memchr2(b'\r', b'\n', value.as_bytes())
        .is_none()
        .then(|| HeaderValue::from(value))
}

impl Injector for HeaderInjector<'_> {
    /// The propagators' own names (`traceparent`, `b3`, ...) are valid header names: built
    /// without parsing or copying.
    fn set(&mut self, key: &'static str, value: String) {
        match self::value(value) {
            Some(v) => self.0.insert(HeaderName::from_static(key), v),
            None => log::debug!("not a valid NATS header value, not injected: {key}"),
        }
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        match (HeaderName::from_str(key), self::value(value)) {
            (Ok(name), Some(value)) if !key.is_empty() => self.0.insert(name, value),
            _ => log::debug!("not a valid NATS header, not injected: {key:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracewire_core::{Format, Propagators, SpanId, TraceContext, TraceId};

    #[test]
    fn reads_any_case_and_writes_lowercase() {
        let mut h = HeaderMap::new();
        h.insert(
            "Traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        h.insert("Uberctx-Tenant", "acme");
        let e = Propagators::all().extract(&HeaderExtractor(&h));
        assert_eq!(
            e.context.map(|c| c.trace_id),
            Some(TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736))
        );
        assert_eq!(
            e.baggage.get("Tenant"),
            Some("acme"),
            "the key as the carrier spells it"
        );

        let mut out = HeaderMap::new();
        let mut cx = TraceContext::new(TraceId(1), SpanId(2), true);
        cx.baggage = tracewire_core::Baggage::parse_lines(["bad key=v,user=x"]);
        Propagators::new([Format::TraceContext, Format::Jaeger])
            .inject(&cx, &mut HeaderInjector(&mut out));
        assert_eq!(
            out.get("traceparent").map(HeaderValue::as_str),
            Some("00-00000000000000000000000000000001-0000000000000002-01")
        );
        assert_eq!(out.get("uberctx-user").map(HeaderValue::as_str), Some("x"));
    }

    #[test]
    fn invalid_names_and_values_are_skipped_not_panicked_on() {
        let mut h = HeaderMap::new();
        let mut i = HeaderInjector(&mut h);
        i.set_dynamic("bad name", "v".into());
        i.set_dynamic("a:b", "v".into());
        i.set_dynamic("", "v".into());
        i.set_dynamic("ok", "line\r\nbreak".into());
        assert!(h.is_empty());
    }
}
