//! Carrier traits: where propagators read and write header-like fields.
//!
//! Keys passed by propagators are lowercase ASCII; carriers compare case-insensitively.
//! Adapters for `http::HeaderMap` live in `tracewire-http`, for tonic metadata in
//! `tracewire-tonic`, for broker headers in each broker crate.

use std::collections::HashMap;

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

    /// One pass over every entry, for carriers that can walk their `(key, value)` entries
    /// directly: [`Propagators::extract`](crate::Propagators::extract) then makes no lookup
    /// per header (for an `http::HeaderMap`, each lookup hashes the name).
    ///
    /// For each entry, in carrier order, `pick` gets the key — which must be **lowercase**;
    /// carriers whose keys are not lowercase by construction keep the default — and when it
    /// returns `Some(slot)`, `take(slot, key, value)` gets the value, unless it is one that
    /// [`get_all`](Self::get_all) skips. Values of one key keep their order. Returns `true`
    /// when the pass was made; the default makes none and returns `false`, and the
    /// propagators use [`get`](Self::get) / [`get_all`](Self::get_all) /
    /// [`get_prefixed`](Self::get_prefixed) instead. Both ways must give the same result.
    fn visit<'a>(
        &'a self,
        pick: impl FnMut(&str) -> Option<u8>,
        take: impl FnMut(u8, &'a str, &'a str),
    ) -> bool {
        let _ = (pick, take);
        false
    }
}

/// [`Extractor::visit`] for a carrier that can walk its `(key, value)` entries but whose keys
/// may be in any case (message headers, [`Pairs`]): each key is lowercased for `pick` (on the
/// stack for keys up to 64 bytes; longer keys with capitals, which no propagation header has,
/// allocate). `take` gets the key as the carrier spells it. Always returns `true`.
///
/// ```
/// use tracewire_core::carrier::visit_entries;
///
/// let entries = [("TraceParent", "00-…"), ("x-other", "y")];
/// let mut seen = Vec::new();
/// visit_entries(
///     entries.iter().map(|&(k, v)| (k, v)),
///     |key| (key == "traceparent").then_some(0),
///     |_, key, value| seen.push((key, value)),
/// );
/// assert_eq!(seen, [("TraceParent", "00-…")]);
/// ```
pub fn visit_entries<'a>(
    entries: impl Iterator<Item = (&'a str, &'a str)>,
    mut pick: impl FnMut(&str) -> Option<u8>,
    mut take: impl FnMut(u8, &'a str, &'a str),
) -> bool {
    for (key, value) in entries {
        if let Some(slot) = pick_any_case(key, &mut pick) {
            take(slot, key, value);
        }
    }
    true
}

/// Implements [`Extractor`] for carrier types that read one inner collection through three
/// functions of the integration: `get_all(entries, key)`, `keys(entries)` and
/// `visit(entries, pick, take)`. `|c| entries` says how a carrier `c` reaches the collection;
/// the `values` and `keys` iterator types may name the lifetime `'b` of the borrow. One
/// invocation may list several carriers over the same collection (an extractor and an injector
/// of one header map).
///
/// ```
/// use tracewire_core::Extractor;
/// use tracewire_core::carrier::visit_entries;
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
/// fn visit<'a>(
///     e: &'a [(String, String)],
///     pick: impl FnMut(&str) -> Option<u8>,
///     take: impl FnMut(u8, &'a str, &'a str),
/// ) -> bool {
///     visit_entries(e.iter().map(|(k, v)| (k.as_str(), v.as_str())), pick, take)
/// }
///
/// tracewire_core::impl_extractor! {
///     Props<'_>: |p| p.0;
///     values: Values<'b>, keys: Keys<'b>;
///     get_all: get_all, keys: keys, visit: visit
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
        get_all: $get_all:expr, keys: $keys_fn:expr, visit: $visit:expr $(,)?
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
                fn visit<'b>(
                    &'b self,
                    pick: impl FnMut(&str) -> Option<u8>,
                    take: impl FnMut(u8, &'b str, &'b str),
                ) -> bool {
                    let $this = self;
                    ($visit)($entries, pick, take)
                }
            }
        )+
    };
}

/// `pick(key)` for a key in any case: `pick` sees it lowercased (on the stack for keys up to
/// 64 bytes). The building block of [`visit_entries`], for carriers that group the values of a
/// key (pick once per key, then take each value).
pub fn pick_any_case(key: &str, pick: &mut impl FnMut(&str) -> Option<u8>) -> Option<u8> {
    // Most keys are lowercase: ask with the key as it is first. (`pick` answers only
    // lowercase names, so a key with capitals cannot be picked by this first call.)
    if let Some(slot) = pick(key) {
        return Some(slot);
    }
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut buf = [0u8; 64];
    match buf.get_mut(..key.len()) {
        Some(lower) => {
            lower.copy_from_slice(key.as_bytes());
            lower.make_ascii_lowercase();
            // ASCII lowercasing keeps UTF-8 valid.
            std::str::from_utf8(lower).ok().and_then(pick)
        }
        None => pick(&key.to_ascii_lowercase()),
    }
}

/// Keeps the first entry of each key (ASCII case-insensitive), in order: O(n log n), no
/// allocation for fewer than two entries.
pub(crate) fn first_of_each_key(entries: &mut Vec<(&str, &str)>) {
    if entries.len() < 2 {
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

/// Write access to a carrier.
pub trait Injector {
    /// Sets `key` (a lowercase `'static` header name from the propagators) to `value`,
    /// replacing any previous value.
    fn set(&mut self, key: &'static str, value: String);

    /// Sets a key built at run time (Jaeger's `uberctx-{key}`).
    fn set_dynamic(&mut self, key: &str, value: String);
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

    fn visit<'a>(
        &'a self,
        pick: impl FnMut(&str) -> Option<u8>,
        take: impl FnMut(u8, &'a str, &'a str),
    ) -> bool {
        visit_entries(
            self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            pick,
            take,
        )
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
        let mut walked = Vec::new();
        p.visit(
            |k| k.starts_with("uberctx-").then_some(0),
            |_, k, v| walked.push((k, v)),
        );
        assert_eq!(
            walked.len(),
            4,
            "the walk yields every entry; callers keep the first"
        );
    }

    #[test]
    fn first_of_each_key_keeps_order() {
        let mut v = vec![("b", "1"), ("A", "2"), ("a", "3"), ("B", "4"), ("c", "5")];
        first_of_each_key(&mut v);
        assert_eq!(v, [("b", "1"), ("A", "2"), ("c", "5")]);
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
