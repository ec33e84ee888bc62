//! MQTT 5 user properties as propagation carriers.
//!
//! The trace context travels as user properties of the PUBLISH packet (`traceparent`,
//! `tracestate`, `baggage`: the propagators' own lowercase names, which FastStream's
//! case-sensitive lookup reads). User properties are an ordered list of UTF-8 name/value
//! pairs in which a name may appear more than once; they are read case-insensitively (a peer
//! may write `Traceparent`) and written by replacing every entry of the name, in any case,
//! with one entry at the end. Other properties are left as they are.
//!
//! MQTT 3.1.1 has no properties at all: nothing can be propagated over it (see the crate's
//! README).

use tracewire_core::Injector;
use tracewire_core::carrier::Walk;

/// Reads propagation headers from the user properties of a PUBLISH.
///
/// ```
/// use tracewire_core::Extractor;
/// use tracewire_mqtt::UserProperties;
///
/// let props = vec![("Traceparent".to_owned(), "00-…".to_owned())];
/// assert_eq!(UserProperties(&props).get("traceparent"), Some("00-…"));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct UserProperties<'a>(pub &'a [(String, String)]);

/// Writes (and reads) propagation headers into the user properties of a PUBLISH about to be
/// sent.
#[derive(Debug)]
pub struct UserPropertiesMut<'a>(pub &'a mut Vec<(String, String)>);

/// The values of one name, in order (any case).
#[derive(Clone, Debug)]
pub struct Values<'a> {
    key: Option<&'a str>,
    inner: std::slice::Iter<'a, (String, String)>,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let key = self.key?;
        self.inner
            .by_ref()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// The names, in order.
pub type Keys<'a> =
    std::iter::Map<std::slice::Iter<'a, (String, String)>, fn(&'a (String, String)) -> &'a str>;

fn values<'a>(entries: &'a [(String, String)], key: &str) -> Values<'a> {
    Values {
        key: entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(k, _)| k.as_str()),
        inner: entries.iter(),
    }
}

fn name(entry: &(String, String)) -> &str {
    &entry.0
}

fn keys(entries: &[(String, String)]) -> Keys<'_> {
    entries.iter().map(name as fn(&(String, String)) -> &str)
}

fn walk<'a>(entries: &'a [(String, String)], walk: &mut Walk<'a>) -> bool {
    walk.entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

tracewire_core::impl_extractor! {
    UserProperties<'_>: |p| p.0;
    values: Values<'b>, keys: Keys<'b>;
    get_all: values, keys: keys, walk: walk
}
tracewire_core::impl_extractor! {
    UserPropertiesMut<'_>: |p| p.0.as_slice();
    values: Values<'b>, keys: Keys<'b>;
    get_all: values, keys: keys, walk: walk
}

impl Injector for UserPropertiesMut<'_> {
    fn set(&mut self, key: &'static str, value: String) {
        self.set_dynamic(key, value);
    }

    /// Every entry of `key` (any case) is replaced by one `key: value` at the end. MQTT user
    /// properties are UTF-8 strings of any content: nothing to refuse.
    fn set_dynamic(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracewire_core::{Extractor as _, Format, Propagators, SpanId, TraceContext, TraceId};

    fn props(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_any_case_and_repeated_names_in_order() {
        let p = props(&[
            (
                "TraceParent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "a=1"),
            ("x-app", "kept"),
            ("TRACESTATE", "b=2"),
            ("uberctx-Tenant", "acme"),
        ]);
        let c = UserProperties(&p);
        assert_eq!(c.get_all("tracestate").collect::<Vec<_>>(), ["a=1", "b=2"]);
        assert_eq!(c.keys().count(), 5);
        let e = Propagators::all().extract(&c);
        assert_eq!(
            e.context.map(|c| c.trace_id),
            Some(TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736))
        );
        assert_eq!(e.baggage.get("Tenant"), Some("acme"));
    }

    #[test]
    fn writes_lowercase_names_replacing_every_spelling() {
        let mut p = props(&[
            ("x-app", "kept"),
            ("Traceparent", "stale"),
            ("traceparent", "x"),
        ]);
        let cx = TraceContext::new(TraceId(1), SpanId(2), true);
        Propagators::new([Format::TraceContext]).inject(&cx, &mut UserPropertiesMut(&mut p));
        assert_eq!(
            p,
            props(&[
                ("x-app", "kept"),
                (
                    "traceparent",
                    "00-00000000000000000000000000000001-0000000000000002-01"
                )
            ])
        );
    }
}
