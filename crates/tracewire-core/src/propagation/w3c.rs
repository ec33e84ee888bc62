//! W3C Trace Context Level 2 (`traceparent`, `tracestate`) and W3C Baggage headers.

use std::fmt;

use fastrace::collector::{SpanId, TraceId};

use crate::baggage::Baggage;
use crate::carrier::{Extractor, Injector};
use crate::context::{FLAG_RANDOM, FLAG_SAMPLED, Sampling, TraceContext};
use crate::hex;
use crate::tracestate::TraceState;

/// `traceparent`
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`
pub const TRACESTATE: &str = "tracestate";
/// `baggage`
pub const BAGGAGE: &str = "baggage";

/// A parsed `traceparent` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The version byte (`00` today; higher versions are parsed as the spec says).
    pub version: u8,
    /// The trace id (non-zero).
    pub trace_id: TraceId,
    /// The parent span id (non-zero).
    pub parent_id: SpanId,
    /// The trace flags as received (for version `00` only `sampled` and `random` mean anything).
    pub flags: u8,
}

/// Why a `traceparent` was rejected (the request then starts a new trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidTraceParent(&'static str);

impl InvalidTraceParent {
    /// A short, fixed description of the rule that failed.
    pub fn reason(&self) -> &'static str {
        self.0
    }
    /// The version was `ff` or not two lowercase hex digits.
    pub fn is_bad_version(&self) -> bool {
        self.0.starts_with("version")
    }
    /// An id was all zeros.
    pub fn is_zero_id(&self) -> bool {
        self.0.ends_with("all zeros")
    }
}

impl fmt::Display for InvalidTraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid traceparent: {}", self.0)
    }
}

impl std::error::Error for InvalidTraceParent {}

impl TraceParent {
    /// Parses a `traceparent` value strictly: optional white space around it is trimmed;
    /// lowercase hex only; exact field lengths; version `ff` and all-zero ids are invalid;
    /// version `00` must be exactly 55 characters; a higher version may carry more fields after
    /// a `-`, which are ignored.
    pub fn parse(value: &str) -> Result<TraceParent, InvalidTraceParent> {
        let b = value.trim_matches(|c| c == ' ' || c == '\t').as_bytes();
        if b.len() < 55 {
            return Err(InvalidTraceParent("too short"));
        }
        let version = hex::parse_u8(&b[0..2], false)
            .ok_or(InvalidTraceParent("version is not lowercase hex"))?;
        if version == 0xff {
            return Err(InvalidTraceParent("version ff is forbidden"));
        }
        if version == 0 && b.len() != 55 {
            return Err(InvalidTraceParent("version 00 must be 55 characters"));
        }
        if b.len() > 55 && b[55] != b'-' {
            return Err(InvalidTraceParent("unknown fields must follow a '-'"));
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(InvalidTraceParent("fields must be separated by '-'"));
        }
        let trace_id = hex::parse_u128(&b[3..35], false)
            .ok_or(InvalidTraceParent("trace-id is not 32 lowercase hex"))?;
        if trace_id == 0 {
            return Err(InvalidTraceParent("trace-id is all zeros"));
        }
        let parent_id = hex::parse_u64(&b[36..52], false)
            .ok_or(InvalidTraceParent("parent-id is not 16 lowercase hex"))?;
        if parent_id == 0 {
            return Err(InvalidTraceParent("parent-id is all zeros"));
        }
        let flags = hex::parse_u8(&b[53..55], false)
            .ok_or(InvalidTraceParent("trace-flags is not 2 lowercase hex"))?;
        Ok(TraceParent {
            version,
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            flags,
        })
    }
}

/// Extracts a remote context from `traceparent` (+ `tracestate`). Several `traceparent` values
/// make the header invalid (there must be exactly one). An invalid `tracestate` is dropped whole
/// and the context kept.
pub(crate) fn extract<E: Extractor + ?Sized>(carrier: &E) -> Option<TraceContext> {
    let mut values = carrier.get_all(TRACEPARENT);
    let first = values.next()?;
    if values.next().is_some() {
        log::debug!("traceparent: more than one header, starting a new trace");
        return None;
    }
    let tp = match TraceParent::parse(first) {
        Ok(tp) => tp,
        Err(e) => {
            log::debug!("{e}");
            return None;
        }
    };
    let trace_state = TraceState::parse_lines(carrier.get_all(TRACESTATE)).unwrap_or_else(|e| {
        log::debug!("tracestate dropped: {e}");
        TraceState::empty()
    });
    Some(TraceContext {
        trace_id: tp.trace_id,
        span_id: tp.parent_id,
        sampling: Sampling::from_bool(tp.flags & FLAG_SAMPLED != 0),
        random: tp.flags & FLAG_RANDOM != 0,
        remote: true,
        trace_state,
        baggage: Baggage::empty(),
    })
}

/// The `traceparent` value for `cx` (version `00`).
pub fn traceparent(cx: &TraceContext) -> String {
    traceparent_with(cx, &hex::IdDigits::new(cx.trace_id.0, cx.span_id.0))
}

/// [`traceparent`] with the ids' digits made already.
fn traceparent_with(cx: &TraceContext, ids: &hex::IdDigits) -> String {
    hex::Ascii::<55>::new()
        .text("00-")
        .trace_id(ids)
        .text("-")
        .span_id(ids)
        .text("-")
        .u8(cx.flags())
        .finish()
}

/// Writes `traceparent`, and `tracestate` when it is not empty.
pub(crate) fn inject<I: Injector + ?Sized>(
    cx: &TraceContext,
    ids: &hex::IdDigits,
    carrier: &mut I,
) {
    carrier.set(TRACEPARENT, traceparent_with(cx, ids));
    if !cx.trace_state.is_empty() {
        carrier.set(TRACESTATE, cx.trace_state.header_value().to_owned());
    }
}

/// Reads every `baggage` header line.
pub(crate) fn extract_baggage<E: Extractor + ?Sized>(carrier: &E) -> Baggage {
    Baggage::parse_lines(carrier.get_all(BAGGAGE))
}

/// Writes `baggage` when there is any.
pub(crate) fn inject_baggage<I: Injector + ?Sized>(baggage: &Baggage, carrier: &mut I) {
    if let Some(v) = baggage.header_value() {
        carrier.set(BAGGAGE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cx: &TraceContext) -> hex::IdDigits {
        hex::IdDigits::new(cx.trace_id.0, cx.span_id.0)
    }
    use crate::carrier::Pairs;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(s: &str) -> Result<TraceParent, InvalidTraceParent> {
        TraceParent::parse(s)
    }

    #[test]
    fn spec_example() {
        let tp = parse(VALID).unwrap();
        assert_eq!(tp.trace_id, TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736));
        assert_eq!(tp.parent_id, SpanId(0x00f067aa0ba902b7));
        assert_eq!(tp.flags, 1);
    }

    #[test]
    fn ows_is_trimmed() {
        assert!(parse(&format!(" \t{VALID}\t ")).is_ok());
    }

    #[test]
    fn invalid_cases() {
        let cases = [
            (
                "uppercase trace id",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            ),
            (
                "uppercase span id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            ),
            (
                "uppercase version",
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "version ff",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "zero trace id",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (
                "zero span id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ),
            (
                "short trace id",
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            ),
            (
                "long span id",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b70-01",
            ),
            (
                "v00 with extra",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            ),
            (
                "v00 trailing dash",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            ),
            (
                "bad flags",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            ),
            (
                "wrong delimiter",
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "future version, no dash",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            ),
            ("empty", ""),
            (
                "inner tab",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\t1",
            ),
            (
                "non-hex in id",
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            ),
        ];
        for (what, s) in cases {
            assert!(parse(s).is_err(), "{what}: {s:?} should be invalid");
        }
        assert!(
            parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap_err()
                .is_bad_version()
        );
        assert!(
            parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
                .unwrap_err()
                .is_zero_id()
        );
    }

    #[test]
    fn future_versions_parse_known_fields() {
        let tp =
            parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds")
                .unwrap();
        assert_eq!(tp.version, 0xcc);
        assert_eq!(tp.flags, 0x09);
        assert!(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_ok());
    }

    #[test]
    fn unknown_flag_bits_are_not_propagated() {
        let c = Pairs::from_pairs([(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
        )]);
        let cx = extract(&c).unwrap();
        assert!(cx.is_sampled() && cx.random);
        assert!(traceparent(&cx).ends_with("-03"));
    }

    #[test]
    fn duplicated_traceparent_is_invalid() {
        let c = Pairs::from_pairs([(TRACEPARENT, VALID), (TRACEPARENT, VALID)]);
        assert_eq!(extract(&c), None);
    }

    #[test]
    fn tracestate_lines_join_and_invalid_is_dropped_whole() {
        let c = Pairs::from_pairs([
            (TRACEPARENT, VALID),
            (TRACESTATE, "a=1"),
            (TRACESTATE, "b=2"),
        ]);
        assert_eq!(extract(&c).unwrap().trace_state.header_value(), "a=1,b=2");
        let c = Pairs::from_pairs([(TRACEPARENT, VALID), (TRACESTATE, "a=1,B=2")]);
        let cx = extract(&c).unwrap();
        assert!(cx.trace_state.is_empty());
        let mut out = Pairs::new();
        inject(&cx, &ids(&cx), &mut out);
        assert_eq!(
            out.get(TRACESTATE),
            None,
            "never inject an empty tracestate"
        );
    }

    #[test]
    fn inject_exact() {
        let c = Pairs::from_pairs([
            (
                TRACEPARENT,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            ),
            (TRACESTATE, "x=y"),
        ]);
        let cx = extract(&c).unwrap();
        let mut out = Pairs::new();
        inject(&cx, &ids(&cx), &mut out);
        assert_eq!(
            out.get(TRACEPARENT),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")
        );
        assert_eq!(out.get(TRACESTATE), Some("x=y"));
    }
}
