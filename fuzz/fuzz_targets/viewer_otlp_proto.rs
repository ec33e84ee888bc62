//! The viewer's OTLP/protobuf decoder (`tracewire_viewer::decode_otlp`) on arbitrary bytes:
//! never panics; what it accepts is stored (into a small store with small limits) keeping
//! every bound and limit of the store.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = tracewire_viewer::decode_otlp(data, false) {
        let store = tracewire_fuzz::viewer::store();
        let out = store.ingest(req);
        assert_eq!(
            store.stats().received_spans,
            (out.accepted + out.rejected) as u64
        );
        tracewire_fuzz::viewer::check_store(&store);
    }
});
