//! `HeaderExtractor` walks the `HeaderMap` once (`Extractor::walk`); every other carrier is
//! asked key by key. Both must extract exactly the same thing, for every format and any mix
//! of headers: duplicated, invalid, non-ASCII, in any order.
#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use tracewire_core::{Extractor, Format, Propagators};
use tracewire_http::HeaderExtractor;

/// The same map without `walk`: the propagators fall back to lookups.
struct Lookups<'a>(HeaderExtractor<'a>);

impl Extractor for Lookups<'_> {
    type Values<'b>
        = <HeaderExtractor<'b> as Extractor>::Values<'b>
    where
        Self: 'b;
    type Keys<'b>
        = <HeaderExtractor<'b> as Extractor>::Keys<'b>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Self::Values<'_> {
        self.0.get_all(key)
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }
    fn keys(&self) -> Self::Keys<'_> {
        self.0.keys()
    }
    fn get_prefixed<'b>(
        &'b self,
        prefix: &'b str,
    ) -> impl Iterator<Item = (&'b str, &'b str)> + 'b {
        self.0.get_prefixed(prefix)
    }
}

const NAMES: &[&str] = &[
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
    "jaeger-debug-id",
    "uberctx-user",
    "uberctx-tier",
    "uberctx-",
    "host",
    "x-request-id",
];

const VALUES: &[&str] = &[
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03",
    "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "a=1",
    "k=v;p, other=%C3%BCml",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d",
    "80f198ee56343ba864fe8b2a57d3eff7",
    "e457b5a2e4d86bd1",
    "0",
    "1",
    "d",
    "true",
    "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
    "abc%3A123%3A0%3A03",
    "gold",
    "caf%C3%A9",
    "",
    " ",
    "garbage",
];

fn header_map() -> impl Strategy<Value = HeaderMap> {
    let value = prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(|v| v.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ];
    proptest::collection::vec((proptest::sample::select(NAMES), value), 0..10).prop_map(|entries| {
        let mut h = HeaderMap::new();
        for (name, value) in entries {
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                h.append(HeaderName::from_static(name), v);
            }
        }
        h
    })
}

fn configurations() -> Vec<Propagators> {
    vec![
        Propagators::default(),
        Propagators::all(),
        Propagators::new([Format::B3Multi]),
        Propagators::new([Format::Jaeger, Format::B3]),
        Propagators::new([Format::Baggage, Format::Jaeger]),
        Propagators::new([Format::B3, Format::TraceContext]),
        Propagators::none(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn one_pass_extracts_what_lookups_extract(h in header_map()) {
        for p in configurations() {
            let walked = p.extract(&HeaderExtractor(&h));
            let looked_up = p.extract(&Lookups(HeaderExtractor(&h)));
            prop_assert_eq!(walked, looked_up, "{:?} over {:?}", p.formats(), h);
        }
    }
}

#[test]
fn one_pass_reads_joined_and_repeated_headers() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "x"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "a=1"),
        ("baggage", "k=v"),
        ("tracestate", "b=2"),
        ("uberctx-user", "alice"),
        ("uberctx-user", "bob"),
        ("baggage", "l=w"),
    ] {
        h.append(k, HeaderValue::from_static(v));
    }
    let e = Propagators::all().extract(&HeaderExtractor(&h));
    let cx = e.context.unwrap();
    assert_eq!(cx.trace_state.header_value(), "a=1,b=2");
    assert_eq!(
        (
            e.baggage.get("k"),
            e.baggage.get("l"),
            e.baggage.get("user")
        ),
        (Some("v"), Some("w"), Some("alice"))
    );
}

#[test]
fn opaque_values_are_skipped_as_lookups_skip_them() {
    let mut h = HeaderMap::new();
    h.append("traceparent", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
    h.append(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    // `get_all` skips the opaque line, so one valid traceparent remains on both paths.
    let walked = Propagators::default().extract(&HeaderExtractor(&h));
    let looked_up = Propagators::default().extract(&Lookups(HeaderExtractor(&h)));
    assert_eq!(walked, looked_up);
    assert!(walked.context.is_some());
}
