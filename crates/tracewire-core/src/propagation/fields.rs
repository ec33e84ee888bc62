//! The propagation headers of a carrier, found in one pass when the carrier can be walked.
//!
//! [`Propagators::extract`](super::Propagators::extract) reads the carrier through
//! [`Fields`]: a carrier that implements [`Extractor::visit`] (an `http::HeaderMap`, tonic
//! metadata) is walked once and every header the configured formats read is kept; any other
//! carrier is asked key by key, exactly as before. The format modules see an [`Extractor`]
//! either way, so each format's rules exist once.

use crate::carrier::Extractor;

use super::{Format, b3, jaeger, w3c};

/// Every header name the formats read or write (`uberctx-*` aside), lowercase; a header's
/// slot is its index here. Carriers may pre-build their own name type per slot (see
/// [`header_slot`]).
pub const HEADERS: [&str; 10] = [
    w3c::TRACEPARENT,
    w3c::TRACESTATE,
    w3c::BAGGAGE,
    b3::B3,
    b3::X_B3_TRACE_ID,
    b3::X_B3_SPAN_ID,
    b3::X_B3_SAMPLED,
    b3::X_B3_FLAGS,
    jaeger::UBER_TRACE_ID,
    jaeger::JAEGER_DEBUG_ID,
];

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

/// The index in [`HEADERS`] of a propagation header name (exact, lowercase spelling).
///
/// ```
/// use tracewire_core::propagation::{HEADERS, header_slot};
///
/// assert_eq!(header_slot("traceparent").map(|i| HEADERS[i]), Some("traceparent"));
/// assert_eq!(header_slot("Traceparent"), None);
/// ```
#[inline]
pub fn header_slot(key: &str) -> Option<usize> {
    slot(key).map(usize::from)
}

/// The slot of a header name (lowercase, as the propagators and walkable carriers spell it).
/// A `match` on strings compiles to a switch on the length and one comparison. (Comparing
/// the names as two 8-byte words instead was measured slower: 100 → 127 ns per b3 extract.)
#[inline]
fn slot(key: &str) -> Option<u8> {
    if key.len() >= 32 || LENGTHS >> key.len() & 1 == 0 {
        return None;
    }
    Some(match key {
        w3c::TRACEPARENT => 0,
        w3c::TRACESTATE => 1,
        w3c::BAGGAGE => 2,
        b3::B3 => 3,
        b3::X_B3_TRACE_ID => 4,
        b3::X_B3_SPAN_ID => 5,
        b3::X_B3_SAMPLED => 6,
        b3::X_B3_FLAGS => 7,
        jaeger::UBER_TRACE_ID => 8,
        jaeger::JAEGER_DEBUG_ID => 9,
        _ => return None,
    })
}

/// The slots the formats read, as a bit set (bit [`PREFIXED`] for `uberctx-*`).
pub(super) fn wanted(formats: &[Format]) -> u16 {
    formats.iter().fold(0, |bits, f| {
        bits | match f {
            Format::TraceContext => 0b11,
            Format::Baggage => 0b100,
            Format::B3 | Format::B3Multi => 0b1111_1000,
            Format::Jaeger => 0b11 << 8 | 1 << PREFIXED,
        }
    })
}

/// What one pass found.
#[derive(Default)]
struct Found<'a> {
    /// The first value of each slot.
    first: [Option<&'a str>; HEADERS.len()],
    /// Slots that had more than one value (read again through the carrier, in order).
    more: u16,
    /// Each `uberctx-*` key once (after [`Fields::read`]), with its first value.
    prefixed: Vec<(&'a str, &'a str)>,
}

/// A carrier as the propagators read it: from one pass when the carrier supports
/// [`Extractor::visit`], else straight from the carrier.
pub(super) struct Fields<'a, E: ?Sized> {
    carrier: &'a E,
    wanted: u16,
    found: Option<Found<'a>>,
}

impl<'a, E: Extractor + ?Sized> Fields<'a, E> {
    /// Walks `carrier` once (if it can be walked) for the slots in `wanted`.
    pub(super) fn read(carrier: &'a E, wanted: u16) -> Self {
        let mut found = Found::default();
        let jaeger_baggage = wanted & 1 << PREFIXED != 0;
        let walked = carrier.visit(
            |key| match slot(key) {
                Some(s) => (wanted & 1 << s != 0).then_some(s),
                None if jaeger_baggage && key.starts_with(jaeger::UBERCTX_PREFIX) => Some(PREFIXED),
                None => None,
            },
            |s, key, value| {
                if s == PREFIXED {
                    found.prefixed.push((key, value));
                } else if let Some(first) = found.first.get_mut(usize::from(s)) {
                    if first.is_none() {
                        *first = Some(value);
                    } else {
                        found.more |= 1 << s;
                    }
                }
            },
        );
        // Each key once, with its first value (a carrier may repeat a key, in any case).
        crate::carrier::first_of_each_key(&mut found.prefixed);
        Fields {
            carrier,
            wanted,
            found: walked.then_some(found),
        }
    }

    /// What the pass found for `key`, if the pass covered it.
    fn found_slot(&self, key: &str) -> Option<(&Found<'a>, u8)> {
        let found = self.found.as_ref()?;
        let s = slot(key)?;
        (self.wanted & 1 << s != 0).then_some((found, s))
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
            .found
            .as_ref()
            .filter(|_| prefix == jaeger::UBERCTX_PREFIX && self.wanted & 1 << PREFIXED != 0);
        let (from_pass, from_carrier) = match found {
            Some(f) => (Some(f.prefixed.iter().copied()), None),
            None => (None, Some(self.carrier.get_prefixed(prefix))),
        };
        from_pass
            .into_iter()
            .flatten()
            .chain(from_carrier.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_its_slot_and_any_changed_byte_loses_it() {
        for (i, name) in HEADERS.iter().enumerate() {
            assert_eq!(header_slot(name), Some(i), "{name}");
            for at in 0..name.len() {
                let mut other = name.as_bytes().to_vec();
                other[at] ^= 0x01;
                let other = String::from_utf8(other).unwrap_or_default();
                assert_ne!(header_slot(&other), Some(i), "{other:?} is not {name}");
            }
            assert_eq!(header_slot(&format!("{name}x")), None);
            assert_eq!(header_slot(&name[..name.len() - 1]), None);
        }
        for other in [
            "",
            "host",
            "user-agent",
            "x-request-id",
            "uberctx-user",
            "B3",
        ] {
            assert_eq!(header_slot(other), None, "{other}");
        }
    }
}
