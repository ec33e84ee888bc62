//! Property tests for the propagators, through the public API only.
//!
//! - every format: inject → extract round-trips random valid contexts, including `tracestate`
//!   and baggage with arbitrary Unicode values;
//! - extraction never panics on arbitrary strings or bytes in any header, and the parsers
//!   (`TraceParent::parse`, `TraceState::parse`, `Baggage::parse_lines`) never panic;
//! - a baggage header tracewire writes is at most 8192 bytes and re-parses to the same members;
//! - a `tracestate` canonical form re-parses to itself.
//!
//! The case count is proptest's default (256) so CI stays fast; set `PROPTEST_CASES` for a
//! longer run, e.g. `PROPTEST_CASES=20000 cargo test -p tracewire-core --test properties`.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

use proptest::prelude::*;
use tracewire_core::baggage::MAX_BYTES;
use tracewire_core::propagation::w3c::TraceParent;
use tracewire_core::{
    Baggage, Format, Pairs, Propagators, Sampling, SpanId, TraceContext, TraceId, TraceState,
};

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn sampling() -> impl Strategy<Value = Sampling> {
    prop_oneof![
        Just(Sampling::Deferred),
        Just(Sampling::NotSampled),
        Just(Sampling::Sampled),
        Just(Sampling::Debug),
    ]
}

/// Valid Level 2 `tracestate` members, unique keys, at most 32.
fn trace_state() -> impl Strategy<Value = TraceState> {
    proptest::collection::btree_map(
        "[a-z0-9][a-z0-9_*/@-]{0,24}",
        "[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,30}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]",
        0..=32,
    )
    .prop_map(|m| {
        let header: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        TraceState::parse(&header.join(",")).unwrap()
    })
}

/// Baggage keys: RFC 7230 tokens.
const TOKEN: &str = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}";

/// Baggage built through the API, with arbitrary Unicode values (control characters included).
fn baggage() -> impl Strategy<Value = Baggage> {
    proptest::collection::vec((TOKEN, any::<String>()), 0..12).prop_map(|pairs| {
        pairs.iter().fold(Baggage::empty(), |b, (k, v)| {
            b.insert(k, v).unwrap_or(b) // over the limits: keep what fits
        })
    })
}

/// Baggage parsed from a header with properties (`k=v;p;q=r`).
fn baggage_with_properties() -> impl Strategy<Value = Baggage> {
    let prop = (
        TOKEN,
        proptest::option::of("[\\x21\\x23-\\x2b\\x2d-\\x3a\\x3c-\\x5b\\x5d-\\x7e]{0,8}"),
    )
        .prop_map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k,
        });
    let member = (
        TOKEN,
        any::<String>(),
        proptest::collection::vec(prop, 0..3),
    )
        .prop_map(|(k, v, props)| {
            let v: String =
                percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            let mut m = format!("{k}={v}");
            for p in props {
                m.push(';');
                m.push_str(&p);
            }
            m
        });
    proptest::collection::vec(member, 0..10)
        .prop_map(|ms| Baggage::parse_lines([ms.join(",").as_str()]))
}

fn context(with_baggage: bool) -> impl Strategy<Value = TraceContext> {
    (
        1..=u128::MAX,
        1..=u64::MAX,
        sampling(),
        any::<bool>(),
        trace_state(),
        if with_baggage {
            baggage().boxed()
        } else {
            Just(Baggage::empty()).boxed()
        },
    )
        .prop_map(|(t, s, sampling, random, trace_state, baggage)| {
            let mut cx = TraceContext::new(TraceId(t), SpanId(s), false);
            cx.sampling = sampling;
            cx.random = random;
            cx.trace_state = trace_state;
            cx.baggage = baggage;
            cx
        })
}

const HEADER_NAMES: &[&str] = &[
    "traceparent",
    "TraceParent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "X-B3-SpanId",
    "x-b3-sampled",
    "x-b3-flags",
    "x-b3-parentspanid",
    "uber-trace-id",
    "uberctx-",
    "uberctx-key",
    "UBERCTX-é",
    "jaeger-debug-id",
];

/// A carrier of known and random header names with arbitrary values.
fn carrier(value: BoxedStrategy<String>) -> impl Strategy<Value = Pairs> {
    let name = prop_oneof![
        3 => proptest::sample::select(HEADER_NAMES).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    proptest::collection::vec((name, value), 0..8).prop_map(Pairs)
}

/// Strings that look like the formats, to reach deep into the parsers.
fn header_like() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F:%3A-]{0,60}",
        "0[0-9a-f]-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.{0,8})?",
        "[ \\t]*[0-9a-f]{16,32}-[0-9a-f]{16}(-[01d])?(-[0-9a-f]{16})?[ \\t]*",
        "[a-z0-9@*/_ ,=-]{0,40}",
        "([A-Za-z0-9%+;= ,]{0,12},){0,6}",
    ]
    .boxed()
}

fn all_formats() -> Propagators {
    Propagators::new([
        Format::TraceContext,
        Format::Baggage,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
    ])
}

fn round_trip(format: Format, cx: &TraceContext) -> tracewire_core::Extracted {
    let p = Propagators::new([format]);
    let mut carrier = Pairs::new();
    p.inject(cx, &mut carrier);
    p.extract(&carrier)
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn tracecontext_round_trips(cx in context(false)) {
        let got = round_trip(Format::TraceContext, &cx).context.unwrap();
        prop_assert_eq!(got.trace_id, cx.trace_id);
        prop_assert_eq!(got.span_id, cx.span_id);
        prop_assert_eq!(got.is_sampled(), cx.is_sampled());
        prop_assert_eq!(got.random, cx.random);
        prop_assert_eq!(&got.trace_state, &cx.trace_state);
        prop_assert!(got.remote);
    }

    #[test]
    fn baggage_round_trips(b in baggage()) {
        let mut cx = TraceContext::new(TraceId(1), SpanId(1), true);
        cx.baggage = b;
        let got = round_trip(Format::Baggage, &cx);
        prop_assert_eq!(got.baggage, cx.baggage);
    }

    #[test]
    fn baggage_with_properties_round_trips(b in baggage_with_properties()) {
        let mut cx = TraceContext::new(TraceId(1), SpanId(1), true);
        cx.baggage = b;
        let got = round_trip(Format::Baggage, &cx);
        prop_assert_eq!(got.baggage, cx.baggage);
    }

    #[test]
    fn b3_round_trips(cx in context(false)) {
        for format in [Format::B3, Format::B3Multi] {
            let got = round_trip(format, &cx).context.unwrap();
            prop_assert_eq!(got.trace_id, cx.trace_id);
            prop_assert_eq!(got.span_id, cx.span_id);
            // Every state survives, including "deferred" (no decision sent) and debug.
            prop_assert_eq!(got.sampling, cx.sampling);
        }
    }

    #[test]
    fn jaeger_round_trips(cx in context(true)) {
        // `uberctx-{key}` is a header name, and header names are case-insensitive: baggage keys
        // that differ only in case collide in Jaeger's format (documented in
        // docs/propagation-formats.md). Such inputs are outside what the format can carry.
        let keys: Vec<String> = cx.baggage.iter().map(|m| m.key().to_ascii_lowercase()).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        prop_assume!(unique.len() == keys.len());
        let got = round_trip(Format::Jaeger, &cx);
        let c = got.context.unwrap();
        prop_assert_eq!(c.trace_id, cx.trace_id);
        prop_assert_eq!(c.span_id, cx.span_id);
        // Jaeger has no "deferred": it travels as not sampled.
        let want = match cx.sampling {
            Sampling::Deferred => Sampling::NotSampled,
            s => s,
        };
        prop_assert_eq!(c.sampling, want);
        prop_assert_eq!(got.baggage, cx.baggage);
    }

    #[test]
    fn every_format_at_once_round_trips(cx in context(true)) {
        let p = all_formats();
        let mut carrier = Pairs::new();
        p.inject(&cx, &mut carrier);
        let got = p.extract(&carrier);
        let c = got.context.unwrap();
        prop_assert_eq!(c.trace_id, cx.trace_id);
        prop_assert_eq!(c.span_id, cx.span_id);
        prop_assert_eq!(&c.trace_state, &cx.trace_state);
        prop_assert_eq!(got.baggage, cx.baggage);
    }
}

// ---------------------------------------------------------------------------------------------
// Never panic
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn extract_never_panics_on_strings(c in carrier(header_like())) {
        let e = all_formats().extract(&c);
        if let Some(cx) = e.context {
            prop_assert!(cx.is_valid());
            prop_assert!(cx.remote);
        }
    }

    #[test]
    fn extract_never_panics_on_bytes(c in carrier(
        proptest::collection::vec(any::<u8>(), 0..120)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
            .boxed()
    )) {
        let _ = all_formats().extract(&c);
    }

    #[test]
    fn parsers_never_panic(s in header_like(), lines in proptest::collection::vec(header_like(), 0..4)) {
        if let Ok(tp) = TraceParent::parse(&s) {
            prop_assert!(tp.trace_id.0 != 0 && tp.parent_id.0 != 0 && tp.version != 0xff);
        }
        let _ = TraceState::parse(&s);
        let _ = TraceState::parse_lines(lines.iter().map(String::as_str));
        let _ = Baggage::parse_lines(lines.iter().map(String::as_str));
        let _ = Baggage::parse_lines_counted([s.as_str()]);
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical forms and limits
// ---------------------------------------------------------------------------------------------

fn big_baggage() -> impl Strategy<Value = Baggage> {
    // Few but large members, to push against the 8192-byte limit from both sides.
    proptest::collection::vec((TOKEN, ".{0,40}", 0usize..3000), 0..40).prop_map(|pairs| {
        pairs.iter().fold(Baggage::empty(), |b, (k, v, pad)| {
            let v = format!("{v}{}", "é".repeat(*pad / 6));
            b.insert(k, &v).unwrap_or(b)
        })
    })
}

proptest! {
    #[test]
    fn baggage_header_is_bounded_and_reparses(b in prop_oneof![baggage(), big_baggage(), baggage_with_properties()]) {
        match b.header_value() {
            None => prop_assert!(b.is_empty()),
            Some(h) => {
                prop_assert!(h.len() <= MAX_BYTES, "{} bytes", h.len());
                prop_assert!(h.bytes().all(|c| (0x21..=0x7e).contains(&c)), "{h:?}");
                let again = Baggage::parse_lines([h.as_str()]);
                prop_assert_eq!(again, b);
            }
        }
    }

    #[test]
    fn parsed_baggage_is_bounded_and_reparses(
        lines in proptest::collection::vec(header_like(), 0..4),
        big in proptest::collection::vec((TOKEN, 0usize..5000), 0..6),
    ) {
        let mut lines = lines;
        lines.extend(big.iter().map(|(k, n)| format!("{k}={}", "v".repeat(*n))));
        let b = Baggage::parse_lines(lines.iter().map(String::as_str));
        prop_assert!(b.len() <= tracewire_core::baggage::MAX_MEMBERS);
        if let Some(h) = b.header_value() {
            prop_assert!(h.len() <= MAX_BYTES);
            prop_assert_eq!(Baggage::parse_lines([h.as_str()]), b);
        }
    }

    #[test]
    fn tracestate_canonical_form_reparses(
        ts in trace_state(),
        noise in "[ \\t,]{0,3}",
    ) {
        let h = ts.header_value();
        prop_assert_eq!(&TraceState::parse(h).unwrap(), &ts);
        prop_assert!(!h.starts_with([' ', ',']) && !h.ends_with([' ', ',']) && !h.contains(",,"));
        // Optional white space and empty members do not change the canonical form.
        let noisy = h.replace(',', &format!("{noise},{noise}"));
        prop_assert_eq!(&TraceState::parse(&noisy).unwrap(), &ts);
        // Any split into several header lines gives the same state.
        let members: Vec<&str> = if h.is_empty() { vec![] } else { h.split(',').collect() };
        let mid = members.len() / 2;
        let lines = [members[..mid].join(","), members[mid..].join(",")];
        prop_assert_eq!(&TraceState::parse_lines(lines.iter().map(String::as_str)).unwrap(), &ts);
    }

    #[test]
    fn tracestate_parse_is_canonical_or_rejects(s in "([a-zA-Z0-9@*/_ \\t=-]{0,12},){0,8}") {
        if let Ok(ts) = TraceState::parse(&s) {
            let again = TraceState::parse(ts.header_value()).unwrap();
            prop_assert_eq!(again.header_value(), ts.header_value());
            prop_assert!(ts.iter().count() <= tracewire_core::tracestate::MAX_MEMBERS);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One pass over a `Pairs` carrier (message headers) extracts what lookups extract
// ---------------------------------------------------------------------------------------------

/// The same pairs without `walk`: the propagators fall back to a lookup per header.
struct Lookups<'a>(&'a Pairs);

impl tracewire_core::Extractor for Lookups<'_> {
    type Values<'b>
        = <Pairs as tracewire_core::Extractor>::Values<'b>
    where
        Self: 'b;
    type Keys<'b>
        = <Pairs as tracewire_core::Extractor>::Keys<'b>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Self::Values<'_> {
        self.0.get_all(key)
    }
    fn keys(&self) -> Self::Keys<'_> {
        self.0.keys()
    }
    fn get_prefixed<'b>(
        &'b self,
        prefix: &'b str,
    ) -> impl Iterator<Item = (&'b str, &'b str)> + 'b {
        tracewire_core::Extractor::get_prefixed(self.0, prefix)
    }
}

const MIXED_CASE_NAMES: &[&str] = &[
    "traceparent",
    "TraceParent",
    "tracestate",
    "Tracestate",
    "baggage",
    "b3",
    "X-B3-TraceId",
    "x-b3-spanid",
    "X-B3-Sampled",
    "uber-trace-id",
    "Uber-Trace-Id",
    "jaeger-debug-id",
    "uberctx-user",
    "Uberctx-User",
    "UBERCTX-tier",
    "uberctx-",
    "nats-msg-id",
];

const HEADER_VALUES: &[&str] = &[
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",
    "rojo=00f067aa0ba902b7",
    "a=1",
    "k=v;p, other=%C3%BCml",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
    "80f198ee56343ba864fe8b2a57d3eff7",
    "e457b5a2e4d86bd1",
    "1",
    "d",
    "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
    "gold",
    "caf%C3%A9",
    "",
    "garbage",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn pairs_walked_once_extract_what_lookups_extract(
        entries in proptest::collection::vec(
            (proptest::sample::select(MIXED_CASE_NAMES), proptest::sample::select(HEADER_VALUES)),
            0..12,
        )
    ) {
        let pairs = Pairs::from_pairs(entries.iter().copied());
        for p in [
            Propagators::default(),
            Propagators::all(),
            Propagators::new([Format::B3Multi]),
            Propagators::new([Format::Jaeger, Format::B3]),
            Propagators::new([Format::Baggage, Format::Jaeger]),
        ] {
            prop_assert_eq!(p.extract(&pairs), p.extract(&Lookups(&pairs)), "{:?} over {:?}", p.formats(), entries);
        }
    }
}
