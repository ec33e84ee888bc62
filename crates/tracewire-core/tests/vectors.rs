//! Table-driven spec vectors through the composite [`Propagators`] on [`Pairs`] carriers.
//!
//! The parser modules' unit tests cover each format on its own; these cover what only shows
//! through the composite (format order, fallbacks, sampling-only decisions, header-name case)
//! and the cases of the list the unit tests leave out: the W3C random flag kept end to
//! end, B3 multi-header 64-bit ids and tolerances, sampling decisions without ids, Jaeger flag
//! forms, baggage limits across header lines, exact injected headers for every sampling state,
//! and "never inject trace headers without a valid context".
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

use tracewire_core::{
    Baggage, Format, Origin, Pairs, Propagators, Sampler, Sampling, SpanId, SpanKind, TraceContext,
    TraceId, TraceState, Tracer,
};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: u128 = 0x4bf92f3577b34da6a3ce929d0e0e4736;
const SPAN: u64 = 0x00f067aa0ba902b7;
const B3T: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const B3S: &str = "e457b5a2e4d86bd1";

#[derive(Debug, PartialEq)]
enum Expect {
    /// A remote context: trace id, span id, sampling, W3C random flag, canonical tracestate.
    Context(u128, u64, Sampling, bool, &'static str),
    /// No context, only a sampling decision for a new trace.
    SamplingOnly(Sampling),
    /// Nothing: a new trace, the local sampler decides.
    Nothing,
}

use Expect::*;

struct Vector {
    name: &'static str,
    formats: &'static [Format],
    headers: Vec<(String, String)>,
    expect: Expect,
}

fn v(
    name: &'static str,
    formats: &'static [Format],
    headers: &[(&str, &str)],
    expect: Expect,
) -> Vector {
    Vector {
        name,
        formats,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        expect,
    }
}

const ALL: &[Format] = &[
    Format::TraceContext,
    Format::Baggage,
    Format::B3,
    Format::Jaeger,
];
const W3C: &[Format] = &[Format::TraceContext, Format::Baggage];
const B3: &[Format] = &[Format::B3];
const B3M: &[Format] = &[Format::B3Multi];
const JAEGER: &[Format] = &[Format::Jaeger];

fn members(prefix: &str, range: std::ops::Range<usize>) -> String {
    range
        .map(|i| format!("{prefix}{i}=v"))
        .collect::<Vec<_>>()
        .join(",")
}

fn extraction_vectors() -> Vec<Vector> {
    let ts32a = members("k", 0..16);
    let ts32b = members("k", 16..32);
    let ts33b = members("k", 16..33);
    let b3 = format!("{B3T}-{B3S}-1");
    vec![
        // --- W3C trace context through the composite ---
        v(
            "random flag alone",
            ALL,
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
            )],
            Context(TRACE, SPAN, Sampling::NotSampled, true, ""),
        ),
        v(
            "random and sampled",
            ALL,
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            )],
            Context(TRACE, SPAN, Sampling::Sampled, true, ""),
        ),
        v(
            "header names are case-insensitive",
            ALL,
            &[("TRACEPARENT", TP), ("TraceState", "a=1")],
            Context(TRACE, SPAN, Sampling::Sampled, false, "a=1"),
        ),
        v(
            "duplicated traceparent is invalid: new trace",
            ALL,
            &[("traceparent", TP), ("traceparent", TP)],
            Nothing,
        ),
        v(
            "duplicated traceparent falls through to b3",
            ALL,
            &[("traceparent", TP), ("traceparent", TP), ("b3", &b3)],
            Context(
                0x80f198ee56343ba864fe8b2a57d3eff7,
                0xe457b5a2e4d86bd1,
                Sampling::Sampled,
                false,
                "",
            ),
        ),
        v(
            "invalid traceparent falls through to jaeger",
            ALL,
            &[
                (
                    "traceparent",
                    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                ),
                ("uber-trace-id", "1:2:0:1"),
            ],
            Context(1, 2, Sampling::Sampled, false, ""),
        ),
        v(
            "tracestate without traceparent is ignored",
            ALL,
            &[("tracestate", "a=1")],
            Nothing,
        ),
        v(
            "tracestate: 32 members over two lines",
            W3C,
            &[
                ("traceparent", TP),
                ("tracestate", &ts32a),
                ("tracestate", &ts32b),
            ],
            Context(
                TRACE,
                SPAN,
                Sampling::Sampled,
                false,
                Box::leak(format!("{ts32a},{ts32b}").into_boxed_str()),
            ),
        ),
        v(
            "tracestate: 33 members over two lines drop it whole, context kept",
            W3C,
            &[
                ("traceparent", TP),
                ("tracestate", &ts32a),
                ("tracestate", &ts33b),
            ],
            Context(TRACE, SPAN, Sampling::Sampled, false, ""),
        ),
        v(
            "tracestate: a blank line among lines",
            W3C,
            &[
                ("traceparent", TP),
                ("tracestate", " \t"),
                ("tracestate", "a=1"),
            ],
            Context(TRACE, SPAN, Sampling::Sampled, false, "a=1"),
        ),
        v(
            "tracestate: Level 2 keys through the composite",
            W3C,
            &[
                ("traceparent", TP),
                ("tracestate", "1vendor=x,0@1=y,a@b@c=z"),
            ],
            Context(
                TRACE,
                SPAN,
                Sampling::Sampled,
                false,
                "1vendor=x,0@1=y,a@b@c=z",
            ),
        ),
        v(
            "tracestate: an invalid member in a later line drops all",
            W3C,
            &[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("tracestate", "b=2,c"),
            ],
            Context(TRACE, SPAN, Sampling::Sampled, false, ""),
        ),
        v(
            "future version with a field and OWS",
            W3C,
            &[(
                "traceparent",
                " 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-x\t",
            )],
            Context(TRACE, SPAN, Sampling::Sampled, true, ""),
        ),
        v(
            "not configured: traceparent ignored",
            B3,
            &[("traceparent", TP)],
            Nothing,
        ),
        // --- B3 ---
        v(
            "b3 multi: 64-bit trace id is left-padded",
            B3M,
            &[
                ("X-B3-TraceId", "64fe8b2a57d3eff7"),
                ("X-B3-SpanId", B3S),
                ("X-B3-Sampled", "1"),
            ],
            Context(
                0x64fe8b2a57d3eff7,
                0xe457b5a2e4d86bd1,
                Sampling::Sampled,
                false,
                "",
            ),
        ),
        v(
            "b3 multi: uppercase hex tolerated",
            B3M,
            &[
                ("X-B3-TraceId", "80F198EE56343BA864FE8B2A57D3EFF7"),
                ("X-B3-SpanId", "E457B5A2E4D86BD1"),
                ("X-B3-Sampled", "0"),
            ],
            Context(
                0x80f198ee56343ba864fe8b2a57d3eff7,
                0xe457b5a2e4d86bd1,
                Sampling::NotSampled,
                false,
                "",
            ),
        ),
        v(
            "b3 multi: 'true' is sampled",
            B3M,
            &[
                ("x-b3-traceid", B3T),
                ("x-b3-spanid", B3S),
                ("x-b3-sampled", "true"),
            ],
            Context(
                0x80f198ee56343ba864fe8b2a57d3eff7,
                0xe457b5a2e4d86bd1,
                Sampling::Sampled,
                false,
                "",
            ),
        ),
        v(
            "b3 multi: an unknown sampled value defers",
            B3M,
            &[
                ("x-b3-traceid", B3T),
                ("x-b3-spanid", B3S),
                ("x-b3-sampled", "maybe"),
            ],
            Context(
                0x80f198ee56343ba864fe8b2a57d3eff7,
                0xe457b5a2e4d86bd1,
                Sampling::Deferred,
                false,
                "",
            ),
        ),
        v(
            "b3 multi: flags 1 is debug whatever sampled says",
            B3M,
            &[
                ("x-b3-traceid", B3T),
                ("x-b3-spanid", B3S),
                ("x-b3-sampled", "0"),
                ("x-b3-flags", "1"),
            ],
            Context(
                0x80f198ee56343ba864fe8b2a57d3eff7,
                0xe457b5a2e4d86bd1,
                Sampling::Debug,
                false,
                "",
            ),
        ),
        v(
            "b3 multi: 48-bit trace id is invalid",
            B3M,
            &[("x-b3-traceid", "56343ba864fe"), ("x-b3-spanid", B3S)],
            Nothing,
        ),
        v(
            "b3 multi: zero span id is invalid",
            B3M,
            &[("x-b3-traceid", B3T), ("x-b3-spanid", "0000000000000000")],
            Nothing,
        ),
        v(
            "b3: single '1' is a bare decision",
            B3,
            &[("b3", "1")],
            SamplingOnly(Sampling::Sampled),
        ),
        v(
            "b3: X-B3-Sampled alone is a bare decision",
            B3,
            &[("x-b3-sampled", "1")],
            SamplingOnly(Sampling::Sampled),
        ),
        v(
            "b3: X-B3-Flags alone is a bare debug decision",
            B3,
            &[("x-b3-flags", "1")],
            SamplingOnly(Sampling::Debug),
        ),
        v(
            "a context wins over a bare b3 decision",
            ALL,
            &[("b3", "0"), ("traceparent", TP)],
            Context(TRACE, SPAN, Sampling::Sampled, false, ""),
        ),
        v(
            "b3: a bare decision with an invalid traceparent",
            ALL,
            &[("b3", "d"), ("traceparent", "garbage")],
            SamplingOnly(Sampling::Debug),
        ),
        v(
            "b3: single with OWS",
            B3,
            &[("b3", &format!("\t{B3T}-{B3S}-d "))],
            Context(
                0x80f198ee56343ba864fe8b2a57d3eff7,
                0xe457b5a2e4d86bd1,
                Sampling::Debug,
                false,
                "",
            ),
        ),
        v(
            "b3: not configured, sampling ignored",
            W3C,
            &[("b3", "0")],
            Nothing,
        ),
        // --- Jaeger ---
        v(
            "jaeger: debug without the sampled bit is debug",
            JAEGER,
            &[("uber-trace-id", "1:2:0:2")],
            Context(1, 2, Sampling::Debug, false, ""),
        ),
        v(
            "jaeger: flags are hex only ('+1' is not)",
            JAEGER,
            &[("uber-trace-id", "1:2:0:+1")],
            Nothing,
        ),
        v(
            "jaeger: flags of three digits are invalid",
            JAEGER,
            &[("uber-trace-id", "1:2:0:001")],
            Nothing,
        ),
        v(
            "jaeger: lowercase %3a separators",
            JAEGER,
            &[("uber-trace-id", "abc%3a123%3a0%3a1")],
            Context(0xabc, 0x123, Sampling::Sampled, false, ""),
        ),
        v(
            "jaeger: 32-digit trace id",
            JAEGER,
            &[(
                "uber-trace-id",
                "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
            )],
            Context(TRACE, SPAN, Sampling::Sampled, false, ""),
        ),
        v(
            "jaeger: outer white space trimmed",
            JAEGER,
            &[("Uber-Trace-Id", " 1:2:0:0 ")],
            Context(1, 2, Sampling::NotSampled, false, ""),
        ),
        v(
            "jaeger: parent id must be hex",
            JAEGER,
            &[("uber-trace-id", "1:2:zz:1")],
            Nothing,
        ),
        v(
            "jaeger: debug id alone is a bare debug decision",
            JAEGER,
            &[("jaeger-debug-id", "x1")],
            SamplingOnly(Sampling::Debug),
        ),
        v(
            "jaeger: blank debug id is nothing",
            JAEGER,
            &[("jaeger-debug-id", "  ")],
            Nothing,
        ),
    ]
}

fn check(v: &Vector) {
    let p = Propagators::new(v.formats.iter().copied());
    let e = p.extract(&Pairs(v.headers.clone()));
    let got = match (&e.context, e.sampling_only) {
        (Some(c), None) => Context(
            c.trace_id.0,
            c.span_id.0,
            c.sampling,
            c.random,
            Box::leak(c.trace_state.header_value().to_owned().into_boxed_str()),
        ),
        (None, Some(s)) => SamplingOnly(s),
        (None, None) => Nothing,
        (Some(_), Some(_)) => panic!("{}: a context and a bare decision", v.name),
    };
    assert_eq!(got, v.expect, "{}: {:?}", v.name, v.headers);
    if let Some(c) = &e.context {
        assert!(c.remote, "{}", v.name);
        assert!(
            c.baggage.is_empty(),
            "{}: baggage lives in Extracted",
            v.name
        );
    }
}

#[test]
fn extraction_through_the_composite() {
    let vectors = extraction_vectors();
    for v in &vectors {
        check(v);
    }
}

#[test]
fn duplicated_traceparent_starts_a_new_trace() {
    let t = Tracer::new().with_sampler(Sampler::AlwaysOn);
    let root = t.start_root(
        "GET /x",
        SpanKind::Server,
        &Pairs::from_pairs([("traceparent", TP), ("traceparent", TP)]),
    );
    assert_eq!(root.origin, Origin::NewRoot);
    assert_ne!(root.context.trace_id, TraceId(TRACE));
}

#[test]
fn random_flag_is_kept_end_to_end() {
    let t = Tracer::new().with_sampler(Sampler::AlwaysOn);
    for (flags, random) in [("00", false), ("01", false), ("02", true), ("03", true)] {
        let inbound = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
        let root = t.start_root(
            "x",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", &*inbound)]),
        );
        assert_eq!(root.context.random, random, "{flags}");
        let mut out = Pairs::new();
        t.inject(&root.context, &mut out);
        let tp = out.get("traceparent").unwrap();
        // The random bit travels on unchanged; sampled is this hop's decision.
        assert_eq!(
            u8::from_str_radix(&tp[53..], 16).unwrap() & 0x02,
            if random { 0x02 } else { 0 },
            "{flags} -> {tp}"
        );
    }
    // A B3 or Jaeger parent says nothing about randomness: the flag stays clear.
    let t = t.with_propagators(Propagators::all());
    let root = t.start_root(
        "x",
        SpanKind::Server,
        &Pairs::from_pairs([("b3", &*format!("{B3T}-{B3S}-1"))]),
    );
    assert_eq!(root.origin, Origin::Continued);
    assert!(!root.context.random);
}

#[test]
fn baggage_limits_apply_across_lines_and_formats() {
    let p = Propagators::new([Format::Baggage, Format::Jaeger]);
    // 180 members over two lines, then more: the first 180 are kept in order.
    let a = members("a", 0..100);
    let b = members("b", 0..100);
    let mut c = Pairs::from_pairs([("baggage", a.as_str()), ("baggage", b.as_str())]);
    c.0.push(("uberctx-extra".into(), "1".into()));
    let e = p.extract(&c);
    assert_eq!(e.baggage.len(), 180);
    assert_eq!(e.baggage.iter().last().unwrap().key(), "b79");
    assert_eq!(
        e.baggage.get("extra"),
        None,
        "the merge respects the member limit"
    );
    // The byte limit counts the serialised form: a header at the limit is kept, one byte more
    // drops the last member whole (never cut).
    let big = "v".repeat(8192 - "k=".len() - ",z=1".len());
    let at_limit = format!("k={big},z=1");
    assert_eq!(at_limit.len(), 8192);
    let e = p.extract(&Pairs::from_pairs([("baggage", at_limit.as_str())]));
    assert_eq!((e.baggage.len(), e.baggage.get("z")), (2, Some("1")));
    let over = format!("k={big}x,z=1");
    let e = p.extract(&Pairs::from_pairs([("baggage", over.as_str())]));
    assert_eq!((e.baggage.len(), e.baggage.get("z")), (1, None));
    // W3C baggage comes first, so it wins a key over uberctx-*.
    let e = p.extract(&Pairs::from_pairs([
        ("uberctx-k", "jaeger"),
        ("baggage", "k=w3c"),
    ]));
    assert_eq!(e.baggage.get("k"), Some("w3c"));
}

#[test]
fn baggage_plus_is_percent_encoded_on_inject() {
    // `+` is a baggage-octet, but form-decoding peers (OpenTelemetry Python, Java's
    // URLDecoder) read it as a space, so tracewire writes %2B; it reads `+` literally.
    let b = Baggage::empty().insert("k", "a+b c").unwrap();
    assert_eq!(b.header_value().unwrap(), "k=a%2Bb%20c");
    let e = Propagators::default().extract(&Pairs::from_pairs([("baggage", "k=a+b")]));
    assert_eq!(e.baggage.get("k"), Some("a+b"));
}

fn cx(sampling: Sampling) -> TraceContext {
    let mut cx = TraceContext::new(TraceId(TRACE), SpanId(SPAN), false);
    cx.sampling = sampling;
    cx.random = true;
    cx.trace_state = TraceState::parse("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7").unwrap();
    cx.baggage = Baggage::parse_lines(["userId=alice,serverNode=DF%2028;p=1"]);
    cx
}

#[test]
fn injected_headers_for_every_sampling_state() {
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    let s = "00f067aa0ba902b7";
    /// Sampling, traceparent flags, b3 suffix, X-B3-Sampled, X-B3-Flags, jaeger flags.
    type Row = (
        Sampling,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    let table: [Row; 4] = [
        (Sampling::Deferred, "02", None, None, None, "00"),
        (
            Sampling::NotSampled,
            "02",
            Some("-0"),
            Some("0"),
            None,
            "00",
        ),
        (Sampling::Sampled, "03", Some("-1"), Some("1"), None, "01"),
        (Sampling::Debug, "03", Some("-d"), None, Some("1"), "03"),
    ];
    let p = Propagators::new([
        Format::TraceContext,
        Format::Baggage,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
    ]);
    for (sampling, tp_flags, b3_suffix, sampled, flags, jaeger_flags) in table {
        let mut out = Pairs::new();
        p.inject(&cx(sampling), &mut out);
        let want: Vec<(String, String)> = [
            Some(("traceparent", format!("00-{t}-{s}-{tp_flags}"))),
            Some((
                "tracestate",
                "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_owned(),
            )),
            Some(("baggage", "userId=alice,serverNode=DF%2028;p=1".to_owned())),
            Some(("b3", format!("{t}-{s}{}", b3_suffix.unwrap_or("")))),
            Some(("x-b3-traceid", t.to_owned())),
            Some(("x-b3-spanid", s.to_owned())),
            sampled.map(|v| ("x-b3-sampled", v.to_owned())),
            flags.map(|v| ("x-b3-flags", v.to_owned())),
            Some(("uber-trace-id", format!("{t}:{s}:0:{jaeger_flags}"))),
            Some(("uberctx-userId", "alice".to_owned())),
            Some(("uberctx-serverNode", "DF%2028".to_owned())),
        ]
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(out.0, want, "{sampling:?}");
        // Never a bare `b3: 0` (or `1`/`d`) when there is a context.
        assert!(out.get("b3").unwrap().len() > 1);
    }
}

#[test]
fn no_trace_headers_without_a_valid_context() {
    // Nothing attached: nothing injected — in particular no bare `b3: 0`.
    let t = Tracer::new().with_propagators(Propagators::all());
    let mut out = Pairs::new();
    t.inject_current(&mut out);
    assert!(out.0.is_empty(), "{out:?}");
    // An invalid context (zero ids) writes no trace headers in any format; baggage, which
    // does not depend on the trace, still goes out.
    let p = Propagators::new([
        Format::TraceContext,
        Format::Baggage,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
    ]);
    for (trace, span) in [(0, SPAN), (TRACE, 0), (0, 0)] {
        let mut c = cx(Sampling::NotSampled);
        c.trace_id = TraceId(trace);
        c.span_id = SpanId(span);
        let mut out = Pairs::new();
        p.inject(&c, &mut out);
        let keys: Vec<&str> = out.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["baggage", "uberctx-userId", "uberctx-serverNode"],
            "trace {trace:x} span {span:x}"
        );
    }
}

#[test]
fn trace_id_ratio_bound_rounds_ties_to_even() {
    // bound = round_ties_even(ratio · 2^64), as OpenTelemetry Python computes it, so services
    // in both agree on every trace id (the differential test compares thousands).
    let two64 = 18_446_744_073_709_551_616.0_f64;
    let high = 0xabcd_u128 << 64;
    let samples = |ratio: f64, low: u128| {
        Sampler::trace_id_ratio(ratio).should_sample(None, TraceId(high | low), "x")
    };
    // ratio · 2^64 = 0.5 → bound 0: nothing sampled.
    assert!(!samples(0.5 / two64, 0));
    // 2.5 → 2: low bits 0 and 1 sampled, 2 not.
    assert!(samples(2.5 / two64, 1));
    assert!(!samples(2.5 / two64, 2));
    // 3.5 → 4.
    assert!(samples(3.5 / two64, 3));
    assert!(!samples(3.5 / two64, 4));
}
