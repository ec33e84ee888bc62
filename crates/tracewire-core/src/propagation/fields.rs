//! The propagation header names, in one table, and the one pass over a carrier that finds
//! them.
//!
//! [`Propagators::extract`](super::Propagators::extract) reads the carrier through
//! [`Fields`]: a carrier that implements [`Extractor::walk`] (an `http::HeaderMap`, tonic
//! metadata, message headers) is walked once and every header the configured formats read is
//! kept; any other carrier is asked key by key. The format modules see an [`Extractor`]
//! either way, so each format's rules exist once.

use crate::carrier::Extractor;

use super::{Format, b3, jaeger, w3c};

/// Declares the table of header names: one row per name (lowercase) with the formats that read
/// it. A header's slot is its row; the list of names, the lookup by name and the slots each
/// format reads are all derived from the rows.
macro_rules! headers {
    ($($name:path => $($format:ident)|+;)+) => {
        /// Every header name the formats read or write (`uberctx-*` aside), lowercase.
        const HEADERS: [&str; [$($name),+].len()] = [$($name),+];

        /// The formats that read each header of [`HEADERS`].
        const READERS: [&[Format]; HEADERS.len()] = [$(&[$(Format::$format),+]),+];

        /// The slot of a header name (lowercase, as the propagators and walkable carriers spell
        /// it). A `match` on strings compiles to a switch on the length and one comparison.
        /// (Comparing the names as two 8-byte words instead was measured slower: 100 → 127 ns
        /// per b3 extract.) Always inlined: a call per carrier key was measured at ~20
        /// instructions each.
        #[inline(always)]
        fn slot(key: &str) -> Option<u8> {
            if key.len() >= 32 || LENGTHS >> key.len() & 1 == 0 {
                return None;
            }
            Some(match key {
                $($name => const { row($name) },)+
                _ => return None,
            })
        }
    };
}

headers! {
    w3c::TRACEPARENT => TraceContext;
    w3c::TRACESTATE => TraceContext;
    w3c::BAGGAGE => Baggage;
    b3::B3 => B3 | B3Multi;
    b3::X_B3_TRACE_ID => B3 | B3Multi;
    b3::X_B3_SPAN_ID => B3 | B3Multi;
    b3::X_B3_SAMPLED => B3 | B3Multi;
    b3::X_B3_FLAGS => B3 | B3Multi;
    jaeger::UBER_TRACE_ID => Jaeger;
    jaeger::JAEGER_DEBUG_ID => Jaeger;
}

/// The row of `name` in [`HEADERS`] (at compile time: a name that is not there fails the build).
const fn row(name: &str) -> u8 {
    let mut i = 0;
    while i < HEADERS.len() {
        let h = HEADERS[i].as_bytes();
        let n = name.as_bytes();
        if h.len() == n.len() {
            let mut j = 0;
            while j < h.len() && h[j] == n[j] {
                j += 1;
            }
            if j == h.len() {
                return i as u8;
            }
        }
        i += 1;
    }
    panic!("not a header of the table")
}

/// The slot of Jaeger's `uberctx-*` headers.
const PREFIXED: u8 = HEADERS.len() as u8;

/// The lengths of the names in [`HEADERS`], as a bit set: most keys of a carrier are rejected
/// by their length alone.
const LENGTHS: u32 = {
    let mut bits = 0u32;
    let mut i = 0;
    while i < HEADERS.len() {
        bits |= 1 << HEADERS[i].len();
        i += 1;
    }
    bits
};

/// The slots the formats read, as a bit set (bit [`PREFIXED`] for `uberctx-*`).
pub(super) fn wanted(formats: &[Format]) -> u16 {
    let mut bits = 0;
    for (slot, readers) in READERS.iter().enumerate() {
        if readers.iter().any(|r| formats.contains(r)) {
            bits |= 1 << slot;
        }
    }
    if formats.contains(&Format::Jaeger) {
        bits |= 1 << PREFIXED;
    }
    bits
}

/// One value per propagation header name (every name a format reads or writes, Jaeger's
/// `uberctx-*` aside), found by its exact lowercase name: for a carrier that keeps a ready-made
/// name of its own type per header, so that writing `traceparent` parses and allocates nothing.
///
/// ```
/// use tracewire_core::propagation::HeaderTable;
///
/// let upper = HeaderTable::new(str::to_ascii_uppercase);
/// assert_eq!(upper.get("traceparent").map(String::as_str), Some("TRACEPARENT"));
/// assert_eq!(upper.get("Traceparent"), None);
/// assert_eq!(upper.get("x-request-id"), None);
/// assert!(upper.iter().any(|(name, _)| name == "uber-trace-id"));
/// ```
#[derive(Clone, Debug)]
pub struct HeaderTable<T>([T; HEADERS.len()]);

impl<T> HeaderTable<T> {
    /// `make(name)` for every header name.
    pub fn new(make: impl FnMut(&'static str) -> T) -> Self {
        HeaderTable(HEADERS.map(make))
    }

    /// The value of a header name (exact, lowercase spelling).
    #[inline]
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.get(usize::from(slot(name)?))
    }

    /// Every header name with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &T)> {
        HEADERS.into_iter().zip(&self.0)
    }
}

/// What one pass found.
#[derive(Debug, Default)]
struct Found<'a> {
    /// The first value of each slot.
    first: [Option<&'a str>; HEADERS.len()],
    /// Slots that had more than one value (read again through the carrier, in order).
    more: u16,
    /// Each `uberctx-*` key once (after [`Fields::read`]), with its first value.
    prefixed: Vec<(&'a str, &'a str)>,
}

/// One pass over a carrier's entries, keeping the headers the propagators read: what
/// [`Extractor::walk`] is given. A carrier hands it each `(key, value)` entry, in carrier
/// order — with [`entries`](Walk::entries) or [`entry`](Walk::entry), or, for a carrier that
/// groups the values of a key, [`wanted`](Walk::wanted) once per key and then
/// [`take`](Walk::take) per value.
///
/// ```
/// use tracewire_core::carrier::Walk;
/// use tracewire_core::{Extractor, Format, Propagators};
///
/// /// Message properties (any case, a key may repeat).
/// struct Props(Vec<(String, String)>);
///
/// impl Extractor for Props {
///     type Values<'a> = Box<dyn Iterator<Item = &'a str> + 'a>;
///     type Keys<'a> = Box<dyn Iterator<Item = &'a str> + 'a>;
///
///     fn get_all(&self, key: &str) -> Self::Values<'_> {
///         let key = key.to_owned();
///         Box::new(self.0.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(&key)).map(|(_, v)| v.as_str()))
///     }
///     fn keys(&self) -> Self::Keys<'_> {
///         Box::new(self.0.iter().map(|(k, _)| k.as_str()))
///     }
///     fn walk<'a>(&'a self, walk: &mut Walk<'a>) -> bool {
///         walk.entries(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
///     }
/// }
///
/// let props = Props(vec![(
///     "TraceParent".into(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
/// )]);
/// let e = Propagators::new([Format::TraceContext]).extract(&props);
/// assert!(e.context.is_some());
/// ```
#[derive(Debug)]
pub struct Walk<'a> {
    wanted: u16,
    found: Found<'a>,
}

/// A key a [`Walk`] wants, from [`Walk::wanted`]: hand it to [`Walk::take`] with each value of
/// that key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(u8);

impl<'a> Walk<'a> {
    /// A pass for the slots in `wanted`.
    #[inline(always)]
    pub(crate) fn new(wanted: u16) -> Self {
        Walk {
            wanted,
            found: Found::default(),
        }
    }

    /// Whether the propagators read `key`, which must be **lowercase** (a key with capitals is
    /// never wanted): for carriers whose keys are lowercase by construction, such as an
    /// `http::HeaderMap`.
    #[inline(always)]
    pub fn wanted_lowercase(&self, key: &str) -> Option<Slot> {
        match slot(key) {
            Some(s) => (self.wanted & 1 << s != 0).then_some(Slot(s)),
            None if self.wanted & 1 << PREFIXED != 0 && key.starts_with(jaeger::UBERCTX_PREFIX) => {
                Some(Slot(PREFIXED))
            }
            None => None,
        }
    }

    /// Whether the propagators read `key`, in any case (lowercased on the stack for keys up
    /// to 64 bytes; longer keys with capitals, which no propagation header has, allocate).
    #[inline]
    pub fn wanted(&self, key: &str) -> Option<Slot> {
        // Most keys are lowercase: ask with the key as it is first.
        if let Some(slot) = self.wanted_lowercase(key) {
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
                std::str::from_utf8(lower)
                    .ok()
                    .and_then(|k| self.wanted_lowercase(k))
            }
            None => self.wanted_lowercase(&key.to_ascii_lowercase()),
        }
    }

    /// One value of a wanted key; `key` as the carrier spells it. Values of one key must come
    /// in carrier order, and values that [`Extractor::get_all`] skips (not text) must be
    /// skipped here too.
    #[inline]
    pub fn take(&mut self, slot: Slot, key: &'a str, value: &'a str) {
        let found = &mut self.found;
        if slot.0 == PREFIXED {
            found.prefixed.push((key, value));
        } else if let Some(first) = found.first.get_mut(usize::from(slot.0)) {
            if first.is_none() {
                *first = Some(value);
            } else {
                found.more |= 1 << slot.0;
            }
        }
    }

    /// One entry, its key in any case: [`wanted`](Walk::wanted), then [`take`](Walk::take).
    #[inline]
    pub fn entry(&mut self, key: &'a str, value: &'a str) {
        if let Some(slot) = self.wanted(key) {
            self.take(slot, key, value);
        }
    }

    /// Every entry, keys in any case, in carrier order (see [`entry`](Walk::entry)). Returns
    /// `true`, for [`Extractor::walk`] to return.
    #[inline]
    pub fn entries(&mut self, entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        for (key, value) in entries {
            self.entry(key, value);
        }
        true
    }
}

/// A carrier as the propagators read it: from one pass when the carrier supports
/// [`Extractor::walk`], else straight from the carrier.
pub(super) struct Fields<'a, E: ?Sized> {
    carrier: &'a E,
    /// The pass, made in place (what it found is read only when `walked`).
    walk: Walk<'a>,
    walked: bool,
}

impl<'a, E: Extractor + ?Sized> Fields<'a, E> {
    /// A carrier not read yet: [`read`](Fields::read) it once, before any lookup.
    #[inline(always)]
    pub(super) fn new(carrier: &'a E, wanted: u16) -> Self {
        Fields {
            carrier,
            walk: Walk::new(wanted),
            walked: false,
        }
    }

    /// Walks the carrier once (if it can be walked) for the wanted slots. (In place: what the
    /// pass found, ten values and a list, is not moved again.)
    #[inline(always)]
    pub(super) fn read(&mut self) {
        self.walked = self.carrier.walk(&mut self.walk);
        // Each key once, with its first value (a carrier may repeat a key, in any case).
        let prefixed = &mut self.walk.found.prefixed;
        if prefixed.len() > 1 {
            crate::carrier::first_of_each_key(prefixed);
        }
    }

    /// True when the carrier was walked and holds none of the headers the formats read:
    /// then no format finds anything in it (every read is answered by the pass).
    pub(super) fn holds_none(&self) -> bool {
        let found = &self.walk.found;
        self.walked && found.first.iter().all(Option::is_none) && found.prefixed.is_empty()
    }

    /// What the pass found, if the carrier was walked.
    fn found(&self) -> Option<&Found<'a>> {
        self.walked.then_some(&self.walk.found)
    }

    /// What the pass found for `key`, if the pass covered it.
    fn found_slot(&self, key: &str) -> Option<(&Found<'a>, u8)> {
        let found = self.found()?;
        let s = slot(key)?;
        (self.walk.wanted & 1 << s != 0).then_some((found, s))
    }
}

/// The values of one key: from the pass, or from the carrier.
pub(super) enum FieldValues<'a, I> {
    Found(Option<&'a str>),
    Carrier(I),
}

impl<'a, I: Iterator<Item = &'a str>> Iterator for FieldValues<'a, I> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            FieldValues::Found(v) => v.take(),
            FieldValues::Carrier(it) => it.next(),
        }
    }
}

impl<'a, E: Extractor + ?Sized> Extractor for Fields<'a, E> {
    type Values<'b>
        = FieldValues<'b, E::Values<'b>>
    where
        Self: 'b;
    type Keys<'b>
        = E::Keys<'b>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Self::Values<'_> {
        match self.found_slot(key) {
            Some((found, s)) if found.more & 1 << s == 0 => {
                FieldValues::Found(found.first[usize::from(s)])
            }
            _ => FieldValues::Carrier(self.carrier.get_all(key)),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        match self.found_slot(key) {
            Some((found, s)) => found.first[usize::from(s)],
            None => self.carrier.get(key),
        }
    }

    fn keys(&self) -> Self::Keys<'_> {
        self.carrier.keys()
    }

    fn get_prefixed<'b>(
        &'b self,
        prefix: &'b str,
    ) -> impl Iterator<Item = (&'b str, &'b str)> + 'b {
        let found = self
            .found()
            .filter(|_| prefix == jaeger::UBERCTX_PREFIX && self.walk.wanted & 1 << PREFIXED != 0);
        match found {
            Some(f) => Prefixed::Found(f.prefixed.iter()),
            None => Prefixed::Carrier(self.carrier.get_prefixed(prefix)),
        }
    }
}

/// The `uberctx-*` entries: from the pass, or from the carrier. (An enum, not a chain of two
/// optional iterators: each step is one `match`.)
enum Prefixed<'a, I> {
    Found(std::slice::Iter<'a, (&'a str, &'a str)>),
    Carrier(I),
}

impl<'a, I: Iterator<Item = (&'a str, &'a str)>> Iterator for Prefixed<'a, I> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match self {
            Prefixed::Found(it) => it.next().copied(),
            Prefixed::Carrier(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_its_slot_and_any_changed_byte_loses_it() {
        for (i, name) in HEADERS.iter().enumerate() {
            let i = Some(i as u8);
            assert_eq!(slot(name), i, "{name}");
            for at in 0..name.len() {
                let mut other = name.as_bytes().to_vec();
                other[at] ^= 0x01;
                let other = String::from_utf8(other).unwrap_or_default();
                assert_ne!(slot(&other), i, "{other:?} is not {name}");
            }
            assert_eq!(slot(&format!("{name}x")), None);
            assert_eq!(slot(&name[..name.len() - 1]), None);
        }
        for other in [
            "",
            "host",
            "user-agent",
            "x-request-id",
            "uberctx-user",
            "B3",
        ] {
            assert_eq!(slot(other), None, "{other}");
        }
    }

    #[test]
    fn a_format_reads_what_it_writes_and_nothing_of_the_others() {
        use Format::*;
        let all = [TraceContext, Baggage, B3, B3Multi, Jaeger];
        for f in all {
            let mine = wanted(&[f]);
            for name in f.fields() {
                let s = slot(name).unwrap_or_else(|| panic!("{name} is not in the table"));
                assert_ne!(mine & 1 << s, 0, "{f:?} does not read {name}");
            }
            // The formats that share no header: w3c's two, b3's two, jaeger.
            for g in all {
                let shared = matches!((f, g), (B3, B3Multi) | (B3Multi, B3)) || f == g;
                if !shared {
                    assert_eq!(mine & wanted(&[g]), 0, "{f:?} and {g:?}");
                }
            }
        }
        assert_eq!(wanted(&all).count_ones() as usize, HEADERS.len() + 1);
        assert_eq!(wanted(&[Jaeger]) & 1 << PREFIXED, 1 << PREFIXED);
    }

    #[test]
    fn a_walk_takes_wanted_keys_in_any_case() {
        let jaeger = Walk::new(wanted(&[Format::Jaeger]));
        assert_eq!(
            jaeger.wanted("Uber-Trace-Id"),
            jaeger.wanted("uber-trace-id")
        );
        assert!(jaeger.wanted("uber-trace-id").is_some());
        assert_eq!(jaeger.wanted_lowercase("Uber-Trace-Id"), None);
        assert_eq!(jaeger.wanted("UBERCTX-User"), Some(Slot(PREFIXED)));
        assert_eq!(jaeger.wanted("traceparent"), None, "not a jaeger header");
        let long = format!("X{}", "y".repeat(80));
        assert_eq!(jaeger.wanted(&long), None);

        let mut w3c = Walk::new(wanted(&[Format::TraceContext]));
        assert!(w3c.entries([
            ("TraceState", "a=1"),
            ("uberctx-user", "alice"),
            ("tracestate", "b=2"),
            ("traceparent", "tp"),
        ]));
        let ts = slot(w3c::TRACESTATE).map(usize::from).unwrap_or(0);
        let tp = slot(w3c::TRACEPARENT).map(usize::from).unwrap_or(0);
        assert_eq!(w3c.found.first[ts], Some("a=1"));
        assert_eq!(w3c.found.first[tp], Some("tp"));
        assert_eq!(w3c.found.more, 1 << ts, "tracestate came twice");
        assert!(w3c.found.prefixed.is_empty(), "jaeger is not configured");
    }
}
