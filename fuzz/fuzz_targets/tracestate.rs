//! `TraceState::parse_lines` on arbitrary lines: never panics; an accepted state's canonical
//! form re-parses to the same state and stays within 32 members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_core::TraceState;
use tracewire_core::tracestate::MAX_MEMBERS;

fuzz_target!(|data: &[u8]| {
    let lines = tracewire_fuzz::lines(data);
    let Ok(ts) = TraceState::parse_lines(lines.iter().map(String::as_str)) else {
        return;
    };
    assert!(ts.iter().count() <= MAX_MEMBERS);
    assert_eq!(ts.is_empty(), ts.header_value().is_empty());
    assert_eq!(TraceState::parse(ts.header_value()).as_ref(), Ok(&ts));
});
