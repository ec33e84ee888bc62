//! Zipkin B3 propagation, single header (`b3`) and multi header (`X-B3-*`).
//!
//! Extraction reads both forms whatever the inject form (single first, then multi).
//! Tolerances beyond the B3 spec, all harmless: uppercase hex, `true`/`false` for
//! `X-B3-Sampled`. A missing sampling state is [`Sampling::Deferred`] (the local sampler
//! decides), never "unsampled".

use fastrace::collector::{SpanId, TraceId};

use crate::baggage::Baggage;
use crate::carrier::{Extractor, Injector};
use crate::context::{Sampling, TraceContext};
use crate::hex;
use crate::tracestate::TraceState;

/// `b3` (single header)
pub const B3: &str = "b3";
/// `x-b3-traceid`
pub const X_B3_TRACE_ID: &str = "x-b3-traceid";
/// `x-b3-spanid`
pub const X_B3_SPAN_ID: &str = "x-b3-spanid";
/// `x-b3-parentspanid`
pub const X_B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
/// `x-b3-sampled`
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// `x-b3-flags`
pub const X_B3_FLAGS: &str = "x-b3-flags";

/// What a B3 carrier held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum B3Extract {
    /// A full context.
    Context(TraceContext),
    /// Only a sampling decision (`b3: 0`, `X-B3-Sampled: 1` without ids).
    SamplingOnly(Sampling),
}

fn trace_id(s: &str) -> Option<TraceId> {
    // 64-bit ids are left-padded with zeros to 128 bits.
    let v = match s.len() {
        16 | 32 => hex::parse_u128(s.as_bytes(), true)?,
        _ => return None,
    };
    (v != 0).then_some(TraceId(v))
}

fn span_id(s: &str) -> Option<SpanId> {
    if s.len() != 16 {
        return None;
    }
    let v = hex::parse_u64(s.as_bytes(), true)?;
    (v != 0).then_some(SpanId(v))
}

fn single_sampling(s: &str) -> Option<Sampling> {
    match s {
        "0" => Some(Sampling::NotSampled),
        "1" => Some(Sampling::Sampled),
        "d" => Some(Sampling::Debug),
        _ => None,
    }
}

fn remote(trace_id: TraceId, span_id: SpanId, sampling: Sampling) -> TraceContext {
    TraceContext {
        trace_id,
        span_id,
        sampling,
        random: false,
        remote: true,
        trace_state: TraceState::empty(),
        baggage: Baggage::empty(),
    }
}

/// Parses a single `b3` header value.
pub(crate) fn parse_single(value: &str) -> Option<B3Extract> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if value.len() == 1 {
        return single_sampling(value).map(B3Extract::SamplingOnly);
    }
    // `{trace:16|32}-{span:16}[-{0|1|d}[-{parent:16}]]`, read by position: a `-` is never a
    // hex digit, so a misplaced one fails the id it lands in.
    let b = value.as_bytes();
    let split = match (b.get(16), b.get(32)) {
        (Some(b'-'), _) => 16,
        (_, Some(b'-')) => 32,
        _ => return None,
    };
    let t = trace_id(&value[..split])?;
    let rest = &value[split + 1..];
    let s = span_id(rest.get(..16)?)?;
    let sampling = match rest.as_bytes()[16..] {
        [] => Sampling::Deferred,
        [b'-', ..] => {
            let tail = &rest[17..];
            let (flag, parent) = match tail.as_bytes() {
                [flag] => (*flag, None),
                [flag, b'-', ..] => (*flag, Some(&tail[2..])),
                _ => return None,
            };
            if let Some(parent) = parent {
                span_id(parent)?;
            }
            match flag {
                b'0' => Sampling::NotSampled,
                b'1' => Sampling::Sampled,
                b'd' => Sampling::Debug,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(B3Extract::Context(remote(t, s, sampling)))
}

fn multi_sampling<E: Extractor + ?Sized>(carrier: &E) -> Option<Sampling> {
    if carrier.get(X_B3_FLAGS).map(str::trim) == Some("1") {
        return Some(Sampling::Debug);
    }
    match carrier.get(X_B3_SAMPLED).map(str::trim) {
        Some("1") | Some("true") => Some(Sampling::Sampled),
        Some("0") | Some("false") => Some(Sampling::NotSampled),
        _ => None,
    }
}

/// Reads the multi-header form.
pub(crate) fn parse_multi<E: Extractor + ?Sized>(carrier: &E) -> Option<B3Extract> {
    let t = carrier.get(X_B3_TRACE_ID);
    let s = carrier.get(X_B3_SPAN_ID);
    match (t, s) {
        (Some(t), Some(s)) => {
            let t = trace_id(t.trim())?;
            let s = span_id(s.trim())?;
            Some(B3Extract::Context(remote(
                t,
                s,
                multi_sampling(carrier).unwrap_or(Sampling::Deferred),
            )))
        }
        (None, None) => multi_sampling(carrier).map(B3Extract::SamplingOnly),
        _ => None,
    }
}

/// Single first; when it is absent or invalid, the multi-header form.
pub(crate) fn extract<E: Extractor + ?Sized>(carrier: &E) -> Option<B3Extract> {
    carrier
        .get(B3)
        .and_then(parse_single)
        .or_else(|| parse_multi(carrier))
}

/// The single-header value for `cx`: `{trace}-{span}[-{1|0|d}]`.
pub fn single_value(cx: &TraceContext) -> String {
    single_value_with(cx, &hex::IdDigits::new(cx.trace_id.0, cx.span_id.0))
}

/// [`single_value`] with the ids' digits made already.
fn single_value_with(cx: &TraceContext, ids: &hex::IdDigits) -> String {
    let sampling = match cx.sampling {
        Sampling::Deferred => "",
        Sampling::NotSampled => "-0",
        Sampling::Sampled => "-1",
        Sampling::Debug => "-d",
    };
    hex::Ascii::<51>::new()
        .trace_id(ids)
        .text("-")
        .span_id(ids)
        .text(sampling)
        .finish()
}

/// Writes the single `b3` header.
// Not inlined: `Propagators::inject` is instantiated in every caller, and inlining a
// format that is not configured made its (common) path ~190 instructions longer.
#[inline(never)]
pub(crate) fn inject_single<I: Injector + ?Sized>(
    cx: &TraceContext,
    ids: &hex::IdDigits,
    carrier: &mut I,
) {
    carrier.set(B3, single_value_with(cx, ids));
}

/// Writes `X-B3-TraceId`, `X-B3-SpanId` and `X-B3-Sampled` (or `X-B3-Flags: 1` for debug,
/// which implies sampled, so `X-B3-Sampled` is not sent with it).
// Not inlined: `Propagators::inject` is instantiated in every caller, and inlining a
// format that is not configured made its (common) path ~190 instructions longer.
#[inline(never)]
pub(crate) fn inject_multi<I: Injector + ?Sized>(
    cx: &TraceContext,
    ids: &hex::IdDigits,
    carrier: &mut I,
) {
    carrier.set(
        X_B3_TRACE_ID,
        hex::Ascii::<32>::new().trace_id(ids).finish(),
    );
    carrier.set(X_B3_SPAN_ID, hex::Ascii::<16>::new().span_id(ids).finish());
    match cx.sampling {
        Sampling::Deferred => {}
        Sampling::NotSampled => carrier.set_static(X_B3_SAMPLED, "0"),
        Sampling::Sampled => carrier.set_static(X_B3_SAMPLED, "1"),
        Sampling::Debug => carrier.set_static(X_B3_FLAGS, "1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cx: &TraceContext) -> hex::IdDigits {
        hex::IdDigits::new(cx.trace_id.0, cx.span_id.0)
    }
    use crate::carrier::Pairs;

    const T: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const S: &str = "e457b5a2e4d86bd1";

    fn ctx(e: Option<B3Extract>) -> TraceContext {
        match e {
            Some(B3Extract::Context(c)) => c,
            other => panic!("expected a context, got {other:?}"),
        }
    }

    #[test]
    fn single_spec_examples() {
        let c = ctx(parse_single(&format!("{T}-{S}-1-05e3ac9a4f6e3b90")));
        assert_eq!(c.trace_id, TraceId(0x80f198ee56343ba864fe8b2a57d3eff7));
        assert_eq!(c.span_id, SpanId(0xe457b5a2e4d86bd1));
        assert_eq!(c.sampling, Sampling::Sampled);
        assert!(c.remote);
        assert_eq!(
            ctx(parse_single(&format!("{T}-{S}-d"))).sampling,
            Sampling::Debug
        );
        assert!(
            ctx(parse_single(&format!("{T}-{S}-d"))).is_sampled(),
            "debug implies sampled"
        );
        assert_eq!(
            ctx(parse_single(&format!("{T}-{S}-0"))).sampling,
            Sampling::NotSampled
        );
        assert_eq!(
            ctx(parse_single(&format!("{T}-{S}"))).sampling,
            Sampling::Deferred
        );
        assert_eq!(
            parse_single("0"),
            Some(B3Extract::SamplingOnly(Sampling::NotSampled))
        );
        assert_eq!(
            parse_single("d"),
            Some(B3Extract::SamplingOnly(Sampling::Debug))
        );
    }

    #[test]
    fn single_64bit_trace_id_is_left_padded() {
        let c = ctx(parse_single(&format!("64fe8b2a57d3eff7-{S}-1")));
        assert_eq!(c.trace_id, TraceId(0x64fe8b2a57d3eff7));
        assert_eq!(&single_value(&c)[..32], "000000000000000064fe8b2a57d3eff7");
    }

    #[test]
    fn single_invalid() {
        for v in [
            "",
            "2",
            "true",
            T,
            &format!("{T}-{S}-x"),
            &format!("{T}-{S}-1-short"),
            &format!("{T}-{S}-1-05e3ac9a4f6e3b90-extra"),
            &format!("{}-{S}-1", "0".repeat(32)),
            &format!("{T}-0000000000000000-1"),
            &format!("{}-{S}", &T[..20]),
            &format!("{T}-{}", &S[..15]),
            &format!("{T}-{S}-"),
        ] {
            assert_eq!(parse_single(v), None, "{v:?}");
        }
    }

    /// The straightforward `split('-')` reading the positional parser must agree with.
    fn reference_single(value: &str) -> Option<B3Extract> {
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if value.len() == 1 {
            return single_sampling(value).map(B3Extract::SamplingOnly);
        }
        let mut parts = value.split('-');
        let t = trace_id(parts.next()?)?;
        let s = span_id(parts.next()?)?;
        let sampling = match parts.next() {
            None => Sampling::Deferred,
            Some(x) => single_sampling(x)?,
        };
        if let Some(parent) = parts.next() {
            span_id(parent)?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(B3Extract::Context(remote(t, s, sampling)))
    }

    proptest::proptest! {
        #[test]
        fn single_agrees_with_split_reference(
            v in "([0-9a-fA-F]{16}|[0-9a-f]{32}|[0-9a-f]{0,33})(-([0-9a-f]{16}|[0-9A-F]{0,17})\
                  (-[01dx]{0,2}(-([0-9a-f]{16}|[0-9a-f]{0,17})(-[0-9]{0,2})?)?)?)?",
        ) {
            proptest::prop_assert_eq!(parse_single(&v), reference_single(&v), "{:?}", v);
        }

        #[test]
        fn single_agrees_on_noise(v in "[0-9a-f\\- é]{0,60}") {
            proptest::prop_assert_eq!(parse_single(&v), reference_single(&v), "{:?}", v);
        }
    }

    #[test]
    fn multi_forms() {
        let c = Pairs::from_pairs([(X_B3_TRACE_ID, T), (X_B3_SPAN_ID, S), (X_B3_SAMPLED, "1")]);
        assert_eq!(ctx(extract(&c)).sampling, Sampling::Sampled);
        let c = Pairs::from_pairs([("X-B3-TraceId", T), ("X-B3-SpanId", S), ("X-B3-Flags", "1")]);
        assert_eq!(ctx(extract(&c)).sampling, Sampling::Debug);
        let c = Pairs::from_pairs([(X_B3_TRACE_ID, T), (X_B3_SPAN_ID, S)]);
        assert_eq!(
            ctx(extract(&c)).sampling,
            Sampling::Deferred,
            "no decision defers"
        );
        let c = Pairs::from_pairs([
            (X_B3_TRACE_ID, T),
            (X_B3_SPAN_ID, S),
            (X_B3_SAMPLED, "false"),
        ]);
        assert_eq!(ctx(extract(&c)).sampling, Sampling::NotSampled);
        let c = Pairs::from_pairs([(X_B3_SAMPLED, "0")]);
        assert_eq!(
            extract(&c),
            Some(B3Extract::SamplingOnly(Sampling::NotSampled))
        );
        let c = Pairs::from_pairs([(X_B3_TRACE_ID, T)]);
        assert_eq!(extract(&c), None, "trace id without span id");
    }

    #[test]
    fn single_wins_over_multi_and_invalid_single_falls_back() {
        let other = "0123456789abcdef0123456789abcdef";
        let c = Pairs::from_pairs([
            (B3, &*format!("{T}-{S}-1")),
            (X_B3_TRACE_ID, other),
            (X_B3_SPAN_ID, S),
        ]);
        assert_eq!(
            ctx(extract(&c)).trace_id,
            TraceId(0x80f198ee56343ba864fe8b2a57d3eff7)
        );
        let c = Pairs::from_pairs([(B3, "garbage"), (X_B3_TRACE_ID, other), (X_B3_SPAN_ID, S)]);
        assert_eq!(
            ctx(extract(&c)).trace_id,
            TraceId(0x0123456789abcdef0123456789abcdef)
        );
    }

    #[test]
    fn inject_forms() {
        let mut cx = ctx(parse_single(&format!("{T}-{S}-1")));
        let mut out = Pairs::new();
        inject_single(&cx, &ids(&cx), &mut out);
        assert_eq!(out.get(B3), Some(&*format!("{T}-{S}-1")));
        cx.sampling = Sampling::Debug;
        let mut out = Pairs::new();
        inject_multi(&cx, &ids(&cx), &mut out);
        assert_eq!(out.get(X_B3_FLAGS), Some("1"));
        assert_eq!(out.get(X_B3_SAMPLED), None, "debug is sent as flags only");
        cx.sampling = Sampling::Deferred;
        assert_eq!(single_value(&cx), format!("{T}-{S}"));
    }
}
