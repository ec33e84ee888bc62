//! The `b3` single header on arbitrary input, through `Propagators::extract`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_core::{Format, Pairs, Propagators};

fuzz_target!(|data: &[u8]| {
    let v = String::from_utf8_lossy(data);
    let p = Propagators::new([Format::B3]);
    let e = p.extract(&Pairs::from_pairs([("b3", &*v)]));
    assert!(e.context.is_none() || e.sampling_only.is_none());
    tracewire_fuzz::check_extracted(&p, &e);
});
