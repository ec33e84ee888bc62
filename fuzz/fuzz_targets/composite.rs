//! The composite propagator with every format, on a carrier built from fuzz bytes; the first
//! byte also picks the format order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_core::{Format, Propagators};

const NAMES: &[&str] = &[
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
    "uberctx-k",
    "jaeger-debug-id",
    "TraceParent",
    "TRACESTATE",
];

const ORDERS: [[Format; 5]; 3] = [
    [
        Format::TraceContext,
        Format::Baggage,
        Format::B3,
        Format::B3Multi,
        Format::Jaeger,
    ],
    [
        Format::Jaeger,
        Format::B3,
        Format::TraceContext,
        Format::Baggage,
        Format::B3Multi,
    ],
    [
        Format::B3Multi,
        Format::Jaeger,
        Format::Baggage,
        Format::TraceContext,
        Format::B3,
    ],
];

fuzz_target!(|data: &[u8]| {
    let Some((&order, rest)) = data.split_first() else {
        return;
    };
    let p = Propagators::new(ORDERS[usize::from(order) % ORDERS.len()]);
    let c = tracewire_fuzz::carrier(rest, NAMES);
    let e = p.extract(&c);
    if e.context.is_some() {
        assert!(e.sampling_only.is_none() && e.debug_id.is_none());
    }
    tracewire_fuzz::check_extracted(&p, &e);
});
