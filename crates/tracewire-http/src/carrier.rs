//! Carriers over an [`http::HeaderMap`]: where the propagators read and write their headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::sync::LazyLock;
use tracewire_core::carrier::{Slot, Walk};
use tracewire_core::propagation::HeaderTable;
use tracewire_core::{Extractor, Injector};

/// Reads propagation headers from an [`http::HeaderMap`]. Values that are not visible ASCII
/// are skipped.
#[derive(Clone, Copy, Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

type ValueStrs<'a> = std::iter::FilterMap<
    header::ValueIter<'a, HeaderValue>,
    fn(&'a HeaderValue) -> Option<&'a str>,
>;
type KeyStrs<'a> = std::iter::Map<header::Keys<'a, HeaderValue>, fn(&'a HeaderName) -> &'a str>;

impl Extractor for HeaderExtractor<'_> {
    type Values<'b>
        = ValueStrs<'b>
    where
        Self: 'b;
    type Keys<'b>
        = KeyStrs<'b>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> ValueStrs<'_> {
        let to_str: fn(&HeaderValue) -> Option<&str> = value_str;
        let values = match known_name(key) {
            Some(name) => self.0.get_all(name),
            None => self.0.get_all(key),
        };
        values.iter().filter_map(to_str)
    }

    fn get(&self, key: &str) -> Option<&str> {
        // The first *readable* value, as the trait's default: a `HeaderMap::get` would stop
        // at an opaque first value.
        self.get_all(key).next()
    }

    fn keys(&self) -> KeyStrs<'_> {
        self.0.keys().map(HeaderName::as_str)
    }

    /// One pass over the map (the default looks each key up again): `HeaderMap::iter` yields
    /// every value of a name consecutively, so a name is done once one of its values was
    /// yielded (its first readable one, as [`get`](Extractor::get) returns).
    fn get_prefixed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut done: Option<&HeaderName> = None;
        self.0.iter().filter_map(move |(name, value)| {
            if done.is_some_and(|d| d == name) {
                return None;
            }
            let key = name.as_str();
            let head = key.get(..prefix.len())?;
            if !head.eq_ignore_ascii_case(prefix) {
                return None;
            }
            let value = value_str(value)?;
            done = Some(name);
            Some((key, value))
        })
    }

    /// One pass over the map, no hashing: see [`walk_headers`].
    fn walk<'a>(&'a self, walk: &mut Walk<'a>) -> bool {
        walk_headers(self.0, walk, |_| true)
    }
}

/// [`Extractor::walk`] over an [`http::HeaderMap`], for carriers built on one (tonic's
/// metadata, broker headers in HTTP form): one walk of the entries, no hashing, names for
/// which `keep` is false left out. Header names are lowercase, and `HeaderMap::iter` yields
/// each value of a name right after the previous one; values that are not visible ASCII are
/// skipped, as [`HeaderExtractor::get_all`] skips them. Always returns `true`.
pub fn walk_headers<'a>(
    map: &'a HeaderMap,
    walk: &mut Walk<'a>,
    mut keep: impl FnMut(&str) -> bool,
) -> bool {
    let mut previous: Option<(&HeaderName, Option<Slot>)> = None;
    for (name, value) in map.iter() {
        // A name's extra values come next to it, behind the same `&HeaderName`.
        let slot = match previous {
            Some((p, slot)) if std::ptr::eq(p, name) => slot,
            _ => {
                let key = name.as_str();
                walk.wanted_lowercase(key).filter(|_| keep(key))
            }
        };
        previous = Some((name, slot));
        if let Some(slot) = slot {
            if let Some(v) = value_str(value) {
                walk.take(slot, name.as_str(), v);
            }
        }
    }
    true
}

/// The value as text if it is visible ASCII (and tab), as `HeaderValue::to_str` decides, but
/// checked 8 bytes at a time (`to_str` tests byte by byte, and `str::from_utf8` would validate
/// the same bytes a second time).
fn value_str(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    if !is_visible_ascii(bytes) {
        return None;
    }
    // SAFETY: every byte is below 0x7f (`is_visible_ascii`), and ASCII is valid UTF-8.
    #[allow(unsafe_code)]
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// Every byte is `0x20..=0x7e` or a tab. Words of 8 bytes (the last one overlapping) take the
/// common case — no tab — without a branch per byte; a word with anything else goes to the
/// byte check, which also admits tabs.
fn is_visible_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytewise = |b: &[u8]| b.iter().all(|&c| (b' '..=b'~').contains(&c) || c == b'\t');
    if bytes.len() < 8 {
        return bytewise(bytes);
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    // Per byte: below 0x20 (`w - 0x20` borrows into a clear high bit), or above 0x7e
    // (`w + 0x01` reaches 0x80, or the high bit is already set). Exact for every byte value.
    let outside = |w: u64| (w.wrapping_sub(ONES * 0x20) & !w | w.wrapping_add(ONES) | w) & HIGH;
    let last = bytes.len() - 8;
    let mut at = 0;
    let mut bad = 0;
    while at < last {
        bad |= outside(word(at));
        at += 8;
    }
    bad |= outside(word(last));
    bad == 0 || bytewise(bytes)
}
/// Writes propagation headers into an [`http::HeaderMap`], replacing earlier values.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

/// The header names of the propagation formats, built once: no parse or allocation per use.
/// Matches the exact (lowercase) names only; other spellings go through `HeaderName` parsing.
fn known_name(key: &str) -> Option<&'static HeaderName> {
    static NAMES: LazyLock<HeaderTable<HeaderName>> =
        LazyLock::new(|| HeaderTable::new(HeaderName::from_static));
    NAMES.get(key)
}

impl HeaderInjector<'_> {
    fn insert(
        &mut self,
        name: Option<HeaderName>,
        key: &str,
        value: Result<HeaderValue, header::InvalidHeaderValue>,
    ) {
        let Some(name) = name.or_else(|| HeaderName::from_bytes(key.as_bytes()).ok()) else {
            log::debug!("not a valid header name, not injected: {key:?}");
            return;
        };
        match value {
            Ok(v) => {
                self.0.insert(name, v);
            }
            Err(_) => log::debug!("not a valid header value, not injected: {key}"),
        }
    }
}

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &'static str, value: String) {
        self.insert(known_name(key).cloned(), key, HeaderValue::try_from(value));
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        self.insert(None, key, HeaderValue::try_from(value));
    }

    /// The value is checked and kept where it is: no allocation, no copy.
    fn set_static(&mut self, key: &'static str, value: &'static str) {
        let value = HeaderValue::from_maybe_shared(bytes::Bytes::from_static(value.as_bytes()));
        self.insert(known_name(key).cloned(), key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracewire_core::{Format, Propagators, TraceContext};

    #[test]
    fn get_prefixed_yields_the_first_value_of_each_matching_name() {
        let mut h = HeaderMap::new();
        h.append("uberctx-user", HeaderValue::from_static("alice"));
        h.append("uberctx-user", HeaderValue::from_static("bob"));
        h.append("x-other", HeaderValue::from_static("x"));
        h.append("uberctx-tier", HeaderValue::from_static("gold"));
        let e = HeaderExtractor(&h);
        let mut got: Vec<_> = e.get_prefixed("uberctx-").collect();
        got.sort_unstable();
        assert_eq!(got, [("uberctx-tier", "gold"), ("uberctx-user", "alice")]);
        // Same answer as the trait's default (keys + get).
        let mut default: Vec<_> = e
            .keys()
            .filter(|k| k.starts_with("uberctx-"))
            .filter_map(|k| Some((k, e.get(k)?)))
            .collect();
        default.sort_unstable();
        assert_eq!(got, default);
    }

    #[test]
    fn extractor_is_case_insensitive_and_multi_valued() {
        let mut h = HeaderMap::new();
        h.append("tracestate", HeaderValue::from_static("a=1"));
        h.append("TraceState", HeaderValue::from_static("b=2"));
        h.append("x-bin", HeaderValue::from_bytes(b"\xff").unwrap());
        let e = HeaderExtractor(&h);
        assert_eq!(e.get_all("tracestate").collect::<Vec<_>>(), ["a=1", "b=2"]);
        assert_eq!(e.get("TRACESTATE"), Some("a=1"));
        assert_eq!(e.get("x-bin"), None, "opaque bytes are skipped");
        assert_eq!(e.keys().collect::<Vec<_>>(), ["tracestate", "x-bin"]);
    }

    proptest::proptest! {
        #[test]
        fn visible_ascii_check_is_exact(bytes in proptest::collection::vec(
            proptest::prop_oneof![0x20u8..0x7f, proptest::num::u8::ANY, proptest::strategy::Just(b'\t')],
            0..40,
        )) {
            let reference = bytes.iter().all(|&c| (b' '..=b'~').contains(&c) || c == b'\t');
            proptest::prop_assert_eq!(is_visible_ascii(&bytes), reference);
            // And as `HeaderValue::to_str` decides, for every value a header can hold.
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                proptest::prop_assert_eq!(value_str(&v), v.to_str().ok());
            }
        }
    }

    #[test]
    fn known_names_match_their_keys() {
        for (key, _) in HeaderTable::new(|_| ()).iter() {
            assert_eq!(known_name(key).map(HeaderName::as_str), Some(key));
        }
        // Every name injection writes is among them.
        for format in [
            Format::TraceContext,
            Format::Baggage,
            Format::B3,
            Format::B3Multi,
            Format::Jaeger,
        ] {
            for key in format.fields() {
                assert_eq!(known_name(key).map(HeaderName::as_str), Some(*key));
            }
        }
        assert!(known_name("Traceparent").is_none());
        assert!(known_name("x-other").is_none());
    }

    #[test]
    fn injector_replaces_and_handles_dynamic_names() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("stale"));
        let p = Propagators::new([Format::TraceContext, Format::Jaeger]);
        let mut cx = TraceContext::new(tracewire_core::TraceId(1), tracewire_core::SpanId(2), true);
        cx.baggage = tracewire_core::Baggage::parse_lines(["User=x"]);
        p.inject(&cx, &mut HeaderInjector(&mut h));
        assert_eq!(h.get_all("traceparent").iter().count(), 1);
        assert_eq!(
            h["traceparent"],
            "00-00000000000000000000000000000001-0000000000000002-01"
        );
        assert_eq!(h["uberctx-user"], "x");
    }

    #[test]
    fn static_values_replace_and_invalid_ones_are_skipped() {
        let mut h = HeaderMap::new();
        h.insert("x-b3-sampled", HeaderValue::from_static("0"));
        let mut inj = HeaderInjector(&mut h);
        inj.set_static("x-b3-sampled", "1");
        inj.set_static("x-b3-flags", "bad\nvalue");
        inj.set_static("Not A Name", "1");
        assert_eq!(h.get_all("x-b3-sampled").iter().collect::<Vec<_>>(), ["1"]);
        assert_eq!(h.len(), 1);
    }
}
