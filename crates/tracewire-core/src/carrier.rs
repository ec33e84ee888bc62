//! Carrier traits: where propagators read and write header-like fields.
//!
//! Keys passed by propagators are lowercase ASCII; carriers compare case-insensitively.
//! Adapters for `http::HeaderMap` live in `tracewire-http`, for tonic metadata in
//! `tracewire-tonic`, for broker headers in each broker crate.

use std::collections::HashMap;

pub use crate::propagation::fields::{Slot, Walk};

/// Read access to a carrier.
pub trait Extractor {
    /// Iterator over the values of one key.
    type Values<'a>: Iterator<Item = &'a str>
    where
        Self: 'a;
    /// Iterator over the keys.
    type Keys<'a>: Iterator<Item = &'a str>
    where
        Self: 'a;

    /// Every value of `key` (case-insensitive), in order. Values that are not visible ASCII
    /// text are skipped by the adapters.
    fn get_all(&self, key: &str) -> Self::Values<'_>;

    /// The first value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.get_all(key).next()
    }

    /// Every key (used for prefixed keys such as Jaeger's `uberctx-*`).
    fn keys(&self) -> Self::Keys<'_>;

    /// Every key that starts with `prefix` (ASCII case-insensitive), in [`keys`](Self::keys)
    /// order, paired with its first value as [`get`](Self::get) returns it (keys whose first
    /// value is skipped by `get` are skipped). The key is yielded whole, prefix included.
    ///
    /// The default calls `keys()` and then `get(key)` for each match: linear when `get` is a
    /// hash lookup, quadratic when it is a scan. A carrier that can walk its `(key, value)`
    /// entries directly should override it with one pass, as [`Pairs`] does (Jaeger's
    /// `uberctx-*` baggage extraction goes through this method).
    ///
    /// ```
    /// use tracewire_core::{Extractor, Pairs};
    ///
    /// let p = Pairs::from_pairs([("Uberctx-User", "alice"), ("host", "x"), ("uberctx-t", "1")]);
    /// let found: Vec<_> = p.get_prefixed("uberctx-").collect();
    /// assert_eq!(found, [("Uberctx-User", "alice"), ("uberctx-t", "1")]);
    /// ```
    fn get_prefixed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.keys().filter_map(move |k| {
            let head = k.get(..prefix.len())?;
            if !head.eq_ignore_ascii_case(prefix) {
                return None;
            }
            Some((k, self.get(k)?))
        })
    }

    /// Optional, for speed: one pass over every `(key, value)` entry, handed to `walk` (see
    /// [`Walk`]), so that [`Propagators::extract`](crate::Propagators::extract) makes no
    /// lookup per header (for an `http::HeaderMap`, each lookup hashes the name). Returns
    /// `true` when the pass was made; the default makes none and returns `false`, and the
    /// propagators use [`get`](Self::get) / [`get_all`](Self::get_all) /
    /// [`get_prefixed`](Self::get_prefixed) instead. Both ways must give the same result: a
    /// carrier that walks hands over every entry, in order, skipping the values `get_all`
    /// skips.
    fn walk<'a>(&'a self, walk: &mut Walk<'a>) -> bool {
        let _ = walk;
        false
    }
}

/// Implements [`Extractor`] for carrier types that read one inner collection through three
/// functions of the integration: `get_all(entries, key)`, `keys(entries)` and
/// `walk(entries, walk)`. `|c| entries` says how a carrier `c` reaches the collection;
/// the `values` and `keys` iterator types may name the lifetime `'b` of the borrow. One
/// invocation may list several carriers over the same collection (an extractor and an injector
/// of one header map).
///
/// ```
/// use tracewire_core::Extractor;
/// use tracewire_core::carrier::Walk;
///
/// struct Props<'a>(&'a [(String, String)]);
///
/// type Values<'a> = Box<dyn Iterator<Item = &'a str> + 'a>;
/// type Keys<'a> = Box<dyn Iterator<Item = &'a str> + 'a>;
///
/// fn get_all<'a>(e: &'a [(String, String)], key: &str) -> Values<'a> {
///     let key = key.to_owned();
///     Box::new(e.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(&key)).map(|(_, v)| v.as_str()))
/// }
/// fn keys(e: &[(String, String)]) -> Keys<'_> {
///     Box::new(e.iter().map(|(k, _)| k.as_str()))
/// }
/// fn walk<'a>(e: &'a [(String, String)], walk: &mut Walk<'a>) -> bool {
///     walk.entries(e.iter().map(|(k, v)| (k.as_str(), v.as_str())))
/// }
///
/// tracewire_core::impl_extractor! {
///     Props<'_>: |p| p.0;
///     values: Values<'b>, keys: Keys<'b>;
///     get_all: get_all, keys: keys, walk: walk
/// }
///
/// let entries = [("TraceParent".to_owned(), "00-…".to_owned())];
/// assert_eq!(Props(&entries).get("traceparent"), Some("00-…"));
/// ```
#[macro_export]
macro_rules! impl_extractor {
    (
        $($carrier:ty),+ : |$this:ident| $entries:expr;
        values: $values:ty, keys: $keys:ty;
        get_all: $get_all:expr, keys: $keys_fn:expr, walk: $walk:expr $(,)?
    ) => {
        $(
            impl $crate::Extractor for $carrier {
                type Values<'b>
                    = $values
                where
                    Self: 'b;
                type Keys<'b>
                    = $keys
                where
                    Self: 'b;

                fn get_all(&self, key: &str) -> Self::Values<'_> {
                    let $this = self;
                    ($get_all)($entries, key)
                }

                fn keys(&self) -> Self::Keys<'_> {
                    let $this = self;
                    ($keys_fn)($entries)
                }

                /// One pass over the entries (no lookup per header).
                fn walk<'b>(&'b self, walk: &mut $crate::carrier::Walk<'b>) -> bool {
                    let $this = self;
                    ($walk)($entries, walk)
                }
            }
        )+
    };
}

/// Keeps the first entry of each key (ASCII case-insensitive), in order: no allocation up to
/// [`FEW`] entries (each compared with those before it), O(n log n) beyond.
pub(crate) fn first_of_each_key(entries: &mut Vec<(&str, &str)>) {
    if entries.len() < 2 {
        return;
    }
    if entries.len() <= FEW {
        let mut i = 1;
        while let Some(&(key, _)) = entries.get(i) {
            if entries[..i]
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(key))
            {
                entries.remove(i);
            } else {
                i += 1;
            }
        }
        return;
    }
    let mut order: Vec<usize> = (0..entries.len()).collect();
    fn lower(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().map(|b| b.to_ascii_lowercase())
    }
    // Stable: among equal keys, the first entry comes first.
    order.sort_by(|&a, &b| lower(entries[a].0).cmp(lower(entries[b].0)));
    let mut keep = vec![true; entries.len()];
    for pair in order.windows(2) {
        if entries[pair[0]].0.eq_ignore_ascii_case(entries[pair[1]].0) {
            keep[pair[1]] = false;
        }
    }
    let mut i = 0;
    entries.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Up to this many entries, [`first_of_each_key`] compares each key with the ones before it
/// (at most 28 comparisons, no allocation) instead of sorting an index.
const FEW: usize = 8;

/// Write access to a carrier.
pub trait Injector {
    /// Sets `key` (a lowercase `'static` header name from the propagators) to `value`,
    /// replacing any previous value.
    fn set(&mut self, key: &'static str, value: String);

    /// Sets a key built at run time (Jaeger's `uberctx-{key}`).
    fn set_dynamic(&mut self, key: &str, value: String);

    /// [`set`](Injector::set) with a value fixed at compile time (`X-B3-Sampled: 1`). The
    /// default copies it into a `String`; a carrier that can hold a `'static` value as it is
    /// (an `http::HeaderValue`) overrides this to skip the copy.
    fn set_static(&mut self, key: &'static str, value: &'static str) {
        self.set(key, value.to_owned());
    }
}

/// A simple ordered carrier of `(key, value)` pairs, e.g. for message headers or tests.
/// Lookups are case-insensitive; a key may appear more than once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    /// An empty carrier.
    pub fn new() -> Self {
        Pairs(Vec::new())
    }

    /// The first value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        Extractor::get(self, key)
    }

    /// Builds a carrier from borrowed pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Pairs(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

/// Values of one key in a [`Pairs`] carrier.
#[derive(Debug)]
pub struct PairValues<'a> {
    // The first matching key, borrowed from the carrier itself (`None`: no match at all).
    key: Option<&'a str>,
    inner: std::slice::Iter<'a, (String, String)>,
}

impl<'a> Iterator for PairValues<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let key = self.key?;
        self.inner
            .by_ref()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

type PairKeys<'a> =
    std::iter::Map<std::slice::Iter<'a, (String, String)>, fn(&'a (String, String)) -> &'a str>;

impl Extractor for Pairs {
    type Values<'a> = PairValues<'a>;
    type Keys<'a> = PairKeys<'a>;

    fn get_all<'a>(&'a self, key: &str) -> PairValues<'a> {
        let key = self
            .0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(k, _)| k.as_str());
        PairValues {
            key,
            inner: self.0.iter(),
        }
    }

    fn keys(&self) -> PairKeys<'_> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// One pass (linear, where the default's `get` per key would scan the list again): each
    /// key once, case-insensitively, with its first value.
    fn get_prefixed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut found: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, _)| {
                k.get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        first_of_each_key(&mut found);
        found.into_iter()
    }

    fn walk<'a>(&'a self, walk: &mut Walk<'a>) -> bool {
        walk.entries(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl Injector for Pairs {
    fn set(&mut self, key: &'static str, value: String) {
        self.set_dynamic(key, value);
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value));
    }
}

/// A `HashMap` carrier holds one value per key. Lookups try the exact key first, then a
/// case-insensitive scan.
impl<S: std::hash::BuildHasher> Extractor for HashMap<String, String, S> {
    type Values<'a>
        = std::option::IntoIter<&'a str>
    where
        S: 'a;
    type Keys<'a>
        = std::iter::Map<
        std::collections::hash_map::Keys<'a, String, String>,
        fn(&'a String) -> &'a str,
    >
    where
        S: 'a;

    fn get_all(&self, key: &str) -> Self::Values<'_> {
        let v = match HashMap::get(self, key) {
            Some(v) => Some(v.as_str()),
            None => self
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str()),
        };
        v.into_iter()
    }

    fn keys(&self) -> Self::Keys<'_> {
        HashMap::keys(self).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Injector for HashMap<String, String, S> {
    fn set(&mut self, key: &'static str, value: String) {
        self.insert(key.to_owned(), value);
    }
    fn set_dynamic(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_case_insensitive_and_multi_valued() {
        let p = Pairs::from_pairs([("TraceState", "a=1"), ("x", "y"), ("tracestate", "b=2")]);
        assert_eq!(p.get_all("tracestate").collect::<Vec<_>>(), ["a=1", "b=2"]);
        assert_eq!(p.get("TRACESTATE"), Some("a=1"));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.keys().count(), 3);
    }

    #[test]
    fn pairs_prefixed_keys_once_each_with_their_first_value() {
        let p = Pairs::from_pairs([
            ("Uberctx-A", "1"),
            ("x", "y"),
            ("uberctx-b", "2"),
            ("uberctx-a", "3"),
            ("UBERCTX-B", "4"),
        ]);
        let got: Vec<_> = p.get_prefixed("uberctx-").collect();
        assert_eq!(got, [("Uberctx-A", "1"), ("uberctx-b", "2")]);
        // The walk hands over every entry; `Fields::read` keeps the first of each key.
        let e = crate::Propagators::new([crate::Format::Jaeger]).extract(&p);
        assert_eq!(
            e.baggage
                .iter()
                .map(|m| (m.key(), m.value()))
                .collect::<Vec<_>>(),
            [("A", "1"), ("b", "2")]
        );
    }

    #[test]
    fn first_of_each_key_keeps_order() {
        let mut v = vec![("b", "1"), ("A", "2"), ("a", "3"), ("B", "4"), ("c", "5")];
        first_of_each_key(&mut v);
        assert_eq!(v, [("b", "1"), ("A", "2"), ("c", "5")]);
    }

    proptest::proptest! {
        /// Both ways (compare with the earlier entries up to `FEW`, sort beyond) keep what the
        /// plain reading keeps: each entry whose key (ignoring ASCII case) no earlier one has.
        #[test]
        fn first_of_each_key_agrees_with_the_reference(
            keys in proptest::collection::vec("[aAbBcCdDeE]{1,2}", 0..3 * FEW),
        ) {
            let values: Vec<String> = (0..keys.len()).map(|i| i.to_string()).collect();
            let mut got: Vec<(&str, &str)> =
                keys.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
            let mut seen = std::collections::HashSet::new();
            let want: Vec<(&str, &str)> = got
                .iter()
                .copied()
                .filter(|(k, _)| seen.insert(k.to_ascii_lowercase()))
                .collect();
            first_of_each_key(&mut got);
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn pairs_set_replaces() {
        let mut p = Pairs::from_pairs([("Traceparent", "old")]);
        p.set("traceparent", "new".into());
        assert_eq!(p.0, vec![("traceparent".to_owned(), "new".to_owned())]);
    }

    #[test]
    fn hashmap_carrier() {
        let mut m = HashMap::new();
        m.insert("B3".to_owned(), "1".to_owned());
        assert_eq!(Extractor::get(&m, "b3"), Some("1"));
        Injector::set(&mut m, "traceparent", "v".into());
        assert_eq!(Extractor::get(&m, "traceparent"), Some("v"));
    }
}
