//! The viewer's Zipkin v2 JSON decoder (`tracewire_viewer::decode_zipkin`) on arbitrary bytes:
//! never panics; every span it accepts has ids the store accepts too (a 16-byte trace id and
//! an 8-byte span id, neither all zero; no parent or an 8-byte one), a rejection always comes
//! with a reason, and storing the accepted spans keeps every bound of the store.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(z) = tracewire_viewer::decode_zipkin(data) else {
        return;
    };
    assert_eq!(z.rejected > 0, z.error.is_some());
    let mut n = 0;
    for rs in &z.request.resource_spans {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                n += 1;
                assert_eq!(s.trace_id.len(), 16);
                assert!(s.trace_id.iter().any(|b| *b != 0));
                assert_eq!(s.span_id.len(), 8);
                assert!(s.span_id.iter().any(|b| *b != 0));
                assert!(s.parent_span_id.is_empty() || s.parent_span_id.len() == 8);
            }
        }
    }
    let store = tracewire_fuzz::viewer::store();
    let out = store.ingest(z.request);
    assert_eq!(
        (out.accepted, out.rejected),
        (n, 0),
        "the decoder and the store agree"
    );
    tracewire_fuzz::viewer::check_store(&store);
});
