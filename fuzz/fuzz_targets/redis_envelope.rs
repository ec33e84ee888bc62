//! `tracewire_redis::envelope::decode` on arbitrary payloads: never panics; a raw payload is
//! its own body; an error only for what begins like a binary envelope; a binary frame it
//! accepts re-encodes to exactly the same bytes (the decoder accepts only canonical frames);
//! a body always lies inside the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracewire_redis::envelope::{self, Format};

fuzz_target!(|data: &[u8]| {
    match envelope::decode(data) {
        Err(_) => assert!(data.starts_with(b"\x89BIN")),
        Ok(d) => match d.format() {
            Format::Raw => assert_eq!(d.body(), data),
            Format::Json => assert!(d.body().len() <= data.len()),
            Format::Binary => {
                let mut again = Vec::new();
                envelope::encode(d.headers().iter(), d.body(), &mut again)
                    .expect("what was decoded fits the format");
                assert_eq!(again, data);
            }
        },
    }
});
