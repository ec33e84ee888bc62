//! The viewer's OTLP/JSON decoder (`tracewire_viewer::decode_otlp` with `json`) on arbitrary
//! bytes: never panics; what it accepts is stored keeping every bound and limit of the store.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = tracewire_viewer::decode_otlp(data, true) {
        let store = tracewire_fuzz::viewer::store();
        store.ingest(req);
        tracewire_fuzz::viewer::check_store(&store);
    }
});
