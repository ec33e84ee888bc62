//! Jaeger propagation: `uber-trace-id`, `uberctx-*` baggage and `jaeger-debug-id`.

use std::borrow::Cow;

use fastrace::collector::{SpanId, TraceId};
use percent_encoding::percent_decode_str;

use crate::baggage::Baggage;
use crate::carrier::{Extractor, Injector};
use crate::context::{Sampling, TraceContext};
use crate::hex;
use crate::tracestate::TraceState;

/// `uber-trace-id`
pub const UBER_TRACE_ID: &str = "uber-trace-id";
/// Prefix of the baggage headers, `uberctx-{key}`.
pub const UBERCTX_PREFIX: &str = "uberctx-";
/// `jaeger-debug-id`
pub const JAEGER_DEBUG_ID: &str = "jaeger-debug-id";

const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;

/// Parses `{trace-id}:{span-id}:{parent-span-id}:{flags}` (percent-decoded first, so `%3A`
/// separators work). Ids are hex without padding requirements: trace ids of up to 32 digits
/// (64-bit ids are left-padded), span ids of up to 16; neither may be zero. Flags are one or
/// two hex digits: `0x01` sampled, `0x02` debug (implies sampled); other bits are ignored.
pub(crate) fn parse(value: &str) -> Option<TraceContext> {
    let value = trim(value);
    // `%` is neither a hex digit nor `:`, so a value that needs decoding fails the plain
    // reading, and one that does not is the same decoded: decode only after a failure.
    parse_fields(value.as_bytes()).or_else(|| {
        let decoded = decode(value).filter(|d| matches!(d, Cow::Owned(_)))?;
        parse_fields(decoded.as_bytes())
    })
}

/// [`str::trim`], skipped when both ends are visible ASCII (as header values are).
fn trim(value: &str) -> &str {
    match value.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => value,
        [only] if only.is_ascii_graphic() => value,
        _ => value.trim(),
    }
}

/// The four fields, already decoded.
fn parse_fields(b: &[u8]) -> Option<TraceContext> {
    // Full-width ids (what tracewire and most tracers write) are read in place, without
    // looking for the separators between them; any other form is split.
    match (b.get(..32), b.get(32), b.get(33..49), b.get(49)) {
        (Some(t), Some(b':'), Some(s), Some(b':')) => full_width(t, s, &b[50..]),
        _ => None,
    }
    .or_else(|| {
        // A byte split: the fields are short, so a plain loop beats `str::split`'s `memchr`.
        let mut parts = b.splitn(3, |&c| c == b':');
        ids_and_rest(parts.next()?, parts.next()?, parts.next()?)
    })
}

/// [`ids_and_rest`] for ids of exactly 32 and 16 digits, read as fixed-width words (`None`
/// when they are not hex: the general reading then decides).
fn full_width(t: &[u8], s: &[u8], rest: &[u8]) -> Option<TraceContext> {
    let t = <&[u8; 32]>::try_from(t).ok()?;
    let s = <&[u8; 16]>::try_from(s).ok()?;
    let (hi, lo) = t.split_at(16);
    let hi = hex::parse_16(hi.try_into().ok()?, true)?;
    let lo = hex::parse_16(lo.try_into().ok()?, true)?;
    let t = (u128::from(hi) << 64) | u128::from(lo);
    let s = hex::parse_16(s, true)?;
    if t == 0 || s == 0 {
        return None;
    }
    context(t, s, rest)
}

/// The trace id, the span id, and `{parent-span-id}:{flags}`.
fn ids_and_rest(t: &[u8], s: &[u8], rest: &[u8]) -> Option<TraceContext> {
    let t = hex::parse_u128(t, true).filter(|v| *v != 0)?;
    let s = hex::parse_u64(s, true).filter(|v| *v != 0)?;
    context(t, s, rest)
}

/// The context of two valid ids and `{parent-span-id}:{flags}`.
#[inline]
fn context(t: u128, s: u64, rest: &[u8]) -> Option<TraceContext> {
    // `{parent}:{flags}`: one `:` (a second one lands in `flags`, which then fails).
    let colon = rest.iter().position(|&c| c == b':')?;
    let (parent, flags) = (&rest[..colon], &rest[colon + 1..]);
    hex::parse_u64(parent, true)?;
    // Hex digits only: `u8::from_str_radix` alone would accept a leading `+`.
    let flags = match flags {
        [one] => hex::parse_u8(&[b'0', *one], true)?,
        two => hex::parse_u8(two, true)?,
    };
    let sampling = if flags & FLAG_DEBUG != 0 {
        Sampling::Debug
    } else {
        Sampling::from_bool(flags & FLAG_SAMPLED != 0)
    };
    Some(TraceContext {
        trace_id: TraceId(t),
        span_id: SpanId(s),
        sampling,
        random: false,
        remote: true,
        trace_state: TraceState::empty(),
        baggage: Baggage::empty(),
    })
}

/// Percent-decodes `value`; `None` if the result is not UTF-8. Most values hold no `%`: those
/// are returned as they are, without the byte-by-byte decoder.
fn decode(value: &str) -> Option<Cow<'_, str>> {
    if value.as_bytes().contains(&b'%') {
        percent_decode_str(value).decode_utf8().ok()
    } else {
        Some(Cow::Borrowed(value))
    }
}

/// Reads `uber-trace-id`.
pub(crate) fn extract<E: Extractor + ?Sized>(carrier: &E) -> Option<TraceContext> {
    carrier.get(UBER_TRACE_ID).and_then(parse)
}

/// Reads `jaeger-debug-id`, if present and not blank.
pub(crate) fn extract_debug_id<E: Extractor + ?Sized>(carrier: &E) -> Option<String> {
    carrier
        .get(JAEGER_DEBUG_ID)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Reads every `uberctx-{key}` header as baggage (values percent-decoded; undecodable values
/// and keys that are not tokens are dropped).
pub(crate) fn extract_baggage<E: Extractor + ?Sized>(carrier: &E) -> Baggage {
    let pairs = carrier
        .get_prefixed(UBERCTX_PREFIX)
        .filter_map(|(k, value)| {
            // `get_prefixed` matched the ASCII prefix, so this is a char boundary.
            Some((k.get(UBERCTX_PREFIX.len()..)?, trim(value)))
        });
    Baggage::from_encoded_pairs(pairs)
}

/// The `uber-trace-id` value: `{32 hex}:{16 hex}:0:{2 hex flags}`.
pub fn header_value(cx: &TraceContext) -> String {
    header_value_with(cx, &hex::IdDigits::new(cx.trace_id.0, cx.span_id.0))
}

/// [`header_value`] with the ids' digits made already.
fn header_value_with(cx: &TraceContext, ids: &hex::IdDigits) -> String {
    let flags = match cx.sampling {
        Sampling::Debug => FLAG_SAMPLED | FLAG_DEBUG,
        Sampling::Sampled => FLAG_SAMPLED,
        Sampling::NotSampled | Sampling::Deferred => 0,
    };
    hex::Ascii::<54>::new()
        .trace_id(ids)
        .text(":")
        .span_id(ids)
        .text(":0:")
        .u8(flags)
        .finish()
}

/// Writes `uber-trace-id`.
// Not inlined: `Propagators::inject` is instantiated in every caller, and inlining a
// format that is not configured made its (common) path ~190 instructions longer.
#[inline(never)]
pub(crate) fn inject<I: Injector + ?Sized>(
    cx: &TraceContext,
    ids: &hex::IdDigits,
    carrier: &mut I,
) {
    carrier.set(UBER_TRACE_ID, header_value_with(cx, ids));
}

/// Writes one `uberctx-{key}` header per baggage member (values percent-encoded).
pub(crate) fn inject_baggage<I: Injector + ?Sized>(baggage: &Baggage, carrier: &mut I) {
    // The name is built on the stack (keys are short; a longer one takes a `String`).
    let mut name = hex::Ascii::<64>::new();
    name.text(UBERCTX_PREFIX);
    for m in baggage.iter() {
        let value = m.encoded_value();
        if name.fits(m.key().len()) {
            carrier.set_dynamic(name.text(m.key()).as_str(), value);
            name.truncate(UBERCTX_PREFIX.len());
        } else {
            carrier.set_dynamic(&format!("{UBERCTX_PREFIX}{}", m.key()), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::Pairs;

    #[test]
    fn parses_common_forms() {
        let c = parse("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1").unwrap();
        assert_eq!(c.trace_id, TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(c.sampling, Sampling::Sampled);
        let c = parse("a3ce929d0e0e4736:f067aa0ba902b7:0:3").unwrap();
        assert_eq!(c.trace_id, TraceId(0xa3ce929d0e0e4736));
        assert_eq!(c.span_id, SpanId(0xf067aa0ba902b7));
        assert_eq!(c.sampling, Sampling::Debug);
        let c = parse("abc%3A123%3A0%3A00").unwrap();
        assert_eq!(
            (c.trace_id, c.span_id, c.sampling),
            (TraceId(0xabc), SpanId(0x123), Sampling::NotSampled)
        );
        assert_eq!(
            parse("1:2:3:05").unwrap().sampling,
            Sampling::Sampled,
            "firehose bit ignored"
        );
    }

    #[test]
    fn white_space_and_escapes_around_the_plain_reading() {
        for v in [
            " 1:2:0:1\t",
            "\u{3000}1:2:0:1",
            "1%3A2%3a0%3A1",
            "1:2%3A0:1",
        ] {
            let c = parse(v).unwrap_or_else(|| panic!("{v:?}"));
            assert_eq!((c.trace_id, c.span_id), (TraceId(1), SpanId(2)), "{v:?}");
        }
        for v in ["1:2:0:1%", "%31:2:0:1%zz", "1:2:0:%FF", "1:2:0:1 x"] {
            assert_eq!(parse(v), None, "{v:?}");
        }
        assert_eq!(
            parse("%31:2:0:1").map(|c| c.trace_id),
            Some(TraceId(1)),
            "a digit may be escaped too"
        );
    }

    /// The plain reading the fast paths must agree with: trim, decode, split at every `:`.
    fn reference(value: &str) -> Option<(u128, u64, Sampling)> {
        let decoded = decode(value.trim())?;
        let parts: Vec<&str> = decoded.split(':').collect();
        let [t, s, p, f] = parts[..] else {
            return None;
        };
        let hex = |x: &str, max: usize| {
            (!x.is_empty() && x.len() <= max && x.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u128::from_str_radix(x, 16).ok())
                .flatten()
        };
        let t = hex(t, 32).filter(|v| *v != 0)?;
        let s = hex(s, 16).filter(|v| *v != 0)? as u64;
        hex(p, 16)?;
        let flags = hex(f, 2)?;
        let sampling = match flags {
            f if f & 2 != 0 => Sampling::Debug,
            f => Sampling::from_bool(f & 1 != 0),
        };
        Some((t, s, sampling))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        #[test]
        fn parse_agrees_with_the_reference(
            v in "[ ]?([0-9a-fA-F]{32}|[0-9a-f]{0,33}|[0-9a-f:]{0,40})(:|%3A)([0-9a-f]{16}|[0-9a-f:]{0,17})(:|%3a)[0-9a-f]{0,2}(:|%3A)[0-9a-fx%]{0,3}(:[0-9]?)?[ \t]?",
        ) {
            let got = parse(&v).map(|c| (c.trace_id.0, c.span_id.0, c.sampling));
            proptest::prop_assert_eq!(got, reference(&v), "{:?}", v);
        }
    }

    #[test]
    fn invalid_forms() {
        for v in [
            "",
            "1:2:0",
            "1:2:0:1:5",
            "0:2:0:1",
            "1:0:0:1",
            "x:2:0:1",
            "1:2:0:100",
            "1:2:0:",
            &format!("{}:1:0:1", "f".repeat(33)),
            "1:11111111111111111:0:1",
        ] {
            assert_eq!(parse(v), None, "{v:?}");
        }
    }

    #[test]
    fn inject_format() {
        let c = parse("a3ce929d0e0e4736:f067aa0ba902b7:0:1").unwrap();
        assert_eq!(
            header_value(&c),
            "0000000000000000a3ce929d0e0e4736:00f067aa0ba902b7:0:01"
        );
    }

    #[test]
    fn uberctx_both_ways() {
        let c = Pairs::from_pairs([
            ("uberctx-user", "alice%20b"),
            ("UberCtx-Tier", "gold"),
            ("other", "x"),
        ]);
        let b = extract_baggage(&c);
        assert_eq!(b.get("user"), Some("alice b"));
        assert_eq!(b.get("Tier"), Some("gold"));
        let mut out = Pairs::new();
        inject_baggage(&b, &mut out);
        assert_eq!(out.get("uberctx-user"), Some("alice%20b"));
        assert_eq!(out.get("uberctx-Tier"), Some("gold"));
        assert_eq!(out.0.len(), 2);
    }

    #[test]
    fn uberctx_names_of_any_length() {
        // 56 bytes fill the 64-byte name buffer after the prefix; 57 take a `String`.
        let keys = ["k".repeat(56), "l".repeat(57), "m".to_owned()];
        let b = Baggage::parse_lines([keys
            .iter()
            .map(|k| format!("{k}=v"))
            .collect::<Vec<_>>()
            .join(",")
            .as_str()]);
        let mut out = Pairs::new();
        inject_baggage(&b, &mut out);
        let names: Vec<String> = keys.iter().map(|k| format!("uberctx-{k}")).collect();
        assert_eq!(
            out.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            names.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}
