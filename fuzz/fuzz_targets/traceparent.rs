//! `TraceParent::parse` on arbitrary input: never panics; what it accepts is valid and
//! re-serialises (version 00) to a value that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_core::propagation::w3c::{self, TraceParent};
use tracewire_core::{Pairs, Propagators};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let Ok(tp) = TraceParent::parse(&s) else {
        return;
    };
    assert!(tp.version != 0xff && tp.trace_id.0 != 0 && tp.parent_id.0 != 0);
    let cx = Propagators::default()
        .extract(&Pairs::from_pairs([("traceparent", &*s)]))
        .context
        .expect("a valid traceparent gives a context");
    let again = TraceParent::parse(&w3c::traceparent(&cx)).expect("our own output parses");
    assert_eq!(
        (again.trace_id, again.parent_id),
        (tp.trace_id, tp.parent_id)
    );
    assert_eq!(again.flags, tp.flags & 0x03);
});
