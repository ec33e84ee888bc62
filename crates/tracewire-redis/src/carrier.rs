//! Where the trace context travels over Redis: the headers of an envelope ([`Headers`]), and
//! the fields of a stream entry ([`Fields`], [`FieldsMut`]), as propagation carriers.
//!
//! Propagators read names case-insensitively (a peer may write `Traceparent`) and write the
//! exact lowercase names of the formats (`traceparent`, `tracestate`, `baggage`: what
//! FastStream's case-sensitive `dict.get` reads). Values that are not UTF-8 (possible in stream
//! fields) are skipped, never an error.

use std::borrow::Cow;

use tracewire_core::carrier::Walk;
use tracewire_core::{Extractor, Injector};

/// A text value of a carrier entry, if it is text.
pub trait Text {
    /// The value as UTF-8, or `None`.
    fn text(&self) -> Option<&str>;
}

impl Text for Cow<'_, str> {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Text for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Text for Vec<u8> {
    fn text(&self) -> Option<&str> {
        std::str::from_utf8(self).ok()
    }
}

/// The values of one name in a carrier, in order.
#[derive(Debug)]
pub struct Values<'a, K, V> {
    // The first matching name, borrowed from the carrier itself (`None`: no match).
    key: Option<&'a str>,
    inner: std::slice::Iter<'a, (K, V)>,
}

impl<'a, K: AsRef<str>, V: Text> Iterator for Values<'a, K, V> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let key = self.key?;
        self.inner.by_ref().find_map(|(k, v)| {
            if k.as_ref().eq_ignore_ascii_case(key) {
                v.text()
            } else {
                None
            }
        })
    }
}

/// The names of a carrier, in order.
pub type Keys<'a, K, V> = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> &'a str>;

fn name<K: AsRef<str>, V>(entry: &(K, V)) -> &str {
    entry.0.as_ref()
}

fn values<'a, K: AsRef<str>, V: Text>(entries: &'a [(K, V)], key: &str) -> Values<'a, K, V> {
    Values {
        key: entries
            .iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(key))
            .map(|(k, _)| k.as_ref()),
        inner: entries.iter(),
    }
}

fn keys<K: AsRef<str>, V>(entries: &[(K, V)]) -> Keys<'_, K, V> {
    entries.iter().map(name::<K, V> as fn(&(K, V)) -> &str)
}

fn walk<'a, K: AsRef<str>, V: Text>(entries: &'a [(K, V)], walk: &mut Walk<'a>) -> bool {
    walk.entries(
        entries
            .iter()
            .filter_map(|(k, v)| Some((k.as_ref(), v.text()?))),
    )
}

/// Replaces every entry named `key` (any case) with one `key: value` at the end.
fn set<K, V>(entries: &mut Vec<(K, V)>, key: &str, make: impl FnOnce() -> (K, V))
where
    K: AsRef<str>,
{
    entries.retain(|(k, _)| !k.as_ref().eq_ignore_ascii_case(key));
    entries.push(make());
}

/// The headers of an envelope: ordered name/value text pairs, borrowed from a decoded payload
/// or owned. An [`Extractor`] and an [`Injector`].
///
/// ```
/// use tracewire_core::{Extractor, Injector};
/// use tracewire_redis::Headers;
///
/// let mut h = Headers::new();
/// h.insert("correlation_id", "c-1");
/// h.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
/// assert_eq!(Extractor::get(&h, "TraceParent").map(str::len), Some(55));
/// assert_eq!(h.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["correlation_id", "traceparent"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Headers<'a> {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    pub(crate) fn from_vec(v: Vec<(Cow<'a, str>, Cow<'a, str>)>) -> Self {
        Headers(v)
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every header, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The first value of `name`, compared exactly (as FastStream does).
    pub fn get_exact(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| &**v)
    }

    /// Sets `name` to `value`: replaces an entry of exactly that name in place, or appends.
    pub fn insert(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        let (name, value) = (name.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Removes every entry of exactly `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    /// The same headers, borrowed.
    pub fn view(&self) -> Headers<'_> {
        Headers(
            self.0
                .iter()
                .map(|(k, v)| (Cow::Borrowed(&**k), Cow::Borrowed(&**v)))
                .collect(),
        )
    }

    /// The same headers, owned.
    pub fn into_owned(self) -> Headers<'static> {
        Headers(
            self.0
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
        )
    }
}

impl Extractor for Headers<'_> {
    type Values<'b>
        = Values<'b, Cow<'b, str>, Cow<'b, str>>
    where
        Self: 'b;
    type Keys<'b>
        = Keys<'b, Cow<'b, str>, Cow<'b, str>>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Self::Values<'_> {
        values(shorten(&self.0), key)
    }

    fn keys(&self) -> Self::Keys<'_> {
        keys(shorten(&self.0))
    }

    fn walk<'b>(&'b self, walk: &mut Walk<'b>) -> bool {
        self::walk(&self.0, walk)
    }
}

/// `Cow<'a, str>` is covariant: a borrow of the entries for `'b` may read them as `'b`.
fn shorten<'b, 'a: 'b>(
    v: &'b [(Cow<'a, str>, Cow<'a, str>)],
) -> &'b [(Cow<'b, str>, Cow<'b, str>)] {
    v
}

impl Injector for Headers<'_> {
    fn set(&mut self, key: &'static str, value: String) {
        set(&mut self.0, key, || (Cow::Borrowed(key), Cow::Owned(value)));
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        set(&mut self.0, key, || {
            (Cow::Owned(key.to_owned()), Cow::Owned(value))
        });
    }
}

/// The fields of a stream entry, read as a carrier: the trace headers tracewire writes next to
/// the application's fields (`traceparent`, `tracestate`, `baggage`).
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a>(pub &'a [(String, Vec<u8>)]);

/// The fields of a stream entry about to be added: the context goes in as fields of its own,
/// next to the application's (a `traceparent` field already there is kept, and linked).
#[derive(Debug)]
pub struct FieldsMut<'a>(pub &'a mut Vec<(String, Vec<u8>)>);

tracewire_core::impl_extractor! {
    Fields<'_>: |f| f.0;
    values: Values<'b, String, Vec<u8>>, keys: Keys<'b, String, Vec<u8>>;
    get_all: values, keys: keys, walk: walk
}
tracewire_core::impl_extractor! {
    FieldsMut<'_>: |f| f.0.as_slice();
    values: Values<'b, String, Vec<u8>>, keys: Keys<'b, String, Vec<u8>>;
    get_all: values, keys: keys, walk: walk
}

impl Injector for FieldsMut<'_> {
    fn set(&mut self, key: &'static str, value: String) {
        self.set_dynamic(key, value);
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        set(self.0, key, || (key.to_owned(), value.into_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracewire_core::{Format, Propagators, SpanId, TraceContext, TraceId};

    #[test]
    fn headers_read_any_case_and_write_lowercase() {
        let mut h = Headers::new();
        h.insert(
            "Traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        h.insert("uberctx-Tenant", "acme");
        let e = Propagators::all().extract(&h);
        assert_eq!(
            e.context.map(|c| c.trace_id),
            Some(TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736))
        );
        assert_eq!(e.baggage.get("Tenant"), Some("acme"));

        let mut out = Headers::new();
        out.insert("correlation_id", "c");
        out.insert("TRACEPARENT", "stale");
        let cx = TraceContext::new(TraceId(1), SpanId(2), true);
        Propagators::new([Format::TraceContext]).inject(&cx, &mut out);
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            [
                ("correlation_id", "c"),
                (
                    "traceparent",
                    "00-00000000000000000000000000000001-0000000000000002-01"
                )
            ]
        );
    }

    #[test]
    fn fields_skip_values_that_are_not_text() {
        let mut fields = vec![
            ("order".to_owned(), b"42".to_vec()),
            ("traceparent".to_owned(), vec![0xff, 0xfe]),
            ("tracestate".to_owned(), b"a=1".to_vec()),
        ];
        let f = Fields(&fields);
        assert_eq!(Extractor::get(&f, "traceparent"), None);
        assert_eq!(Extractor::get(&f, "TraceState"), Some("a=1"));
        assert_eq!(f.keys().count(), 3);
        let cx = TraceContext::new(TraceId(1), SpanId(2), false);
        Propagators::new([Format::TraceContext]).inject(&cx, &mut FieldsMut(&mut fields));
        assert_eq!(
            fields.last().map(|(k, v)| (k.as_str(), v.as_slice())),
            Some((
                "traceparent",
                &b"00-00000000000000000000000000000001-0000000000000002-00"[..]
            ))
        );
        assert_eq!(fields.len(), 3);
    }
}
