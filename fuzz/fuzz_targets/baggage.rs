//! `Baggage::parse_lines` on arbitrary lines: never panics; the header tracewire writes is at
//! most 8192 bytes of visible ASCII and re-parses to the same members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_core::Baggage;
use tracewire_core::baggage::{MAX_BYTES, MAX_MEMBERS};

fuzz_target!(|data: &[u8]| {
    let lines = tracewire_fuzz::lines(data);
    let b = Baggage::parse_lines(lines.iter().map(String::as_str));
    assert!(b.len() <= MAX_MEMBERS);
    match b.header_value() {
        None => assert!(b.is_empty()),
        Some(h) => {
            assert!(h.len() <= MAX_BYTES);
            assert!(h.bytes().all(|c| (0x21..=0x7e).contains(&c)));
            assert_eq!(Baggage::parse_lines([h.as_str()]), b);
        }
    }
});
