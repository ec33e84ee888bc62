//! `Store::ingest` over a sequence of requests: the input is split on the byte sequence
//! `\xff\xfe` into pieces, each decoded as OTLP/protobuf (undecodable pieces are skipped) and
//! stored one after the other into one small store — so traces merge, spans are replaced,
//! traces are evicted and names go with them. After every request the store keeps its bounds,
//! its limits, its counts, and lists only the names of stored spans.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = tracewire_fuzz::viewer::store();
    let mut live = store.subscribe();
    let mut rest = data;
    loop {
        let (piece, tail) = match rest.windows(2).position(|w| w == b"\xff\xfe") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        if let Ok(req) = tracewire_viewer::decode_otlp(piece, false) {
            store.ingest(req);
            tracewire_fuzz::viewer::check_store(&store);
            // every live event describes a trace with at least one span
            while let Ok(ev) = live.try_recv() {
                assert!(ev.trace.span_count > 0);
            }
        }
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
});
