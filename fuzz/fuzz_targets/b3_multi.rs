//! B3 extraction from a carrier built from fuzz bytes (`X-B3-*` headers, `b3`, anything).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_core::{Format, Propagators};

const NAMES: &[&str] = &[
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "X-B3-TraceId",
    "X-B3-SpanId",
    "X-B3-Sampled",
    "X-B3-Flags",
    "b3",
];

fuzz_target!(|data: &[u8]| {
    let c = tracewire_fuzz::carrier(data, NAMES);
    let p = Propagators::new([Format::B3Multi]);
    let e = p.extract(&c);
    tracewire_fuzz::check_extracted(&p, &e);
});
