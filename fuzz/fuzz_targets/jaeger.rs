//! Jaeger extraction (`uber-trace-id`, `uberctx-*`, `jaeger-debug-id`) from a carrier built
//! from fuzz bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_core::{Format, Propagators};

const NAMES: &[&str] = &[
    "uber-trace-id",
    "jaeger-debug-id",
    "uberctx-a",
    "uberctx-b",
    "UberCtx-Key",
    "uberctx-",
    "Uber-Trace-Id",
];

fuzz_target!(|data: &[u8]| {
    let c = tracewire_fuzz::carrier(data, NAMES);
    let p = Propagators::new([Format::Jaeger]);
    let e = p.extract(&c);
    if let Some(h) = e.baggage.header_value() {
        assert!(h.len() <= tracewire_core::baggage::MAX_BYTES);
    }
    tracewire_fuzz::check_extracted(&p, &e);
});
