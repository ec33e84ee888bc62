//! Carriers for tonic's [`MetadataMap`]: propagate a trace context through gRPC metadata by
//! hand (in an interceptor, a custom transport, a message-queue bridge).
//!
//! Binary metadata (keys ending in `-bin`) is never read or written: every propagation format
//! is ASCII text.
//!
//! ```
//! use tonic::metadata::MetadataMap;
//! use tracewire_core::{Propagators, TraceContext, TraceId, SpanId};
//! use tracewire_tonic::{MetadataExtractor, MetadataInjector};
//!
//! let propagators = Propagators::default();
//! let cx = TraceContext::new(TraceId(1), SpanId(2), true);
//! let mut metadata = MetadataMap::new();
//! propagators.inject(&cx, &mut MetadataInjector(&mut metadata));
//! assert_eq!(
//!     metadata.get("traceparent").unwrap(),
//!     "00-00000000000000000000000000000001-0000000000000002-01"
//! );
//!
//! let back = propagators.extract(&MetadataExtractor(&metadata)).context.unwrap();
//! assert_eq!((back.trace_id, back.span_id), (TraceId(1), SpanId(2)));
//! ```

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tonic::metadata::MetadataMap;
use tracewire_core::carrier::Walk;
use tracewire_core::{Extractor, Injector};
use tracewire_http::HeaderInjector;

/// Suffix of binary metadata keys (never read or written by the carriers).
pub const BINARY_SUFFIX: &str = "-bin";

fn is_binary(key: &str) -> bool {
    key.len() >= BINARY_SUFFIX.len()
        && key.as_bytes()[key.len() - BINARY_SUFFIX.len()..]
            .eq_ignore_ascii_case(BINARY_SUFFIX.as_bytes())
}

/// Reads propagation fields from a tonic [`MetadataMap`]. Binary (`-bin`) keys and values that
/// are not visible ASCII are skipped.
#[derive(Clone, Copy, Debug)]
pub struct MetadataExtractor<'a>(pub &'a MetadataMap);

/// Writes propagation fields into a tonic [`MetadataMap`], replacing earlier values. Keys that
/// are not valid ASCII metadata keys (including `-bin` keys) and values that are not valid
/// metadata values are skipped (logged at debug level), never a panic.
#[derive(Debug)]
pub struct MetadataInjector<'a>(pub &'a mut MetadataMap);

/// The same rules over the raw `http::HeaderMap` of a gRPC request (what the tower layers see).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GrpcHeaders<'a>(pub(crate) &'a HeaderMap);

/// Values of one key in a metadata carrier.
pub type MetadataValues<'a> = std::iter::FilterMap<
    std::iter::Take<header::ValueIter<'a, HeaderValue>>,
    fn(&'a HeaderValue) -> Option<&'a str>,
>;

/// Keys of a metadata carrier (binary keys skipped).
pub type MetadataKeys<'a> =
    std::iter::FilterMap<header::Keys<'a, HeaderValue>, fn(&'a HeaderName) -> Option<&'a str>>;

impl<'m> GrpcHeaders<'m> {
    fn values<'a>(self, key: &str) -> MetadataValues<'a>
    where
        'm: 'a,
    {
        let to_str: fn(&'a HeaderValue) -> Option<&'a str> = |v| v.to_str().ok();
        // `take(0)` rather than an empty iterator of another type: one concrete type either way.
        let limit = if is_binary(key) { 0 } else { usize::MAX };
        self.0.get_all(key).iter().take(limit).filter_map(to_str)
    }

    fn key_strs<'a>(self) -> MetadataKeys<'a>
    where
        'm: 'a,
    {
        let ascii: fn(&'a HeaderName) -> Option<&'a str> =
            |k| Some(k.as_str()).filter(|k| !is_binary(k));
        self.0.keys().filter_map(ascii)
    }
}

/// One walk of the map ([`tracewire_http::walk_headers`]), binary keys skipped.
fn walk_text<'a>(map: &'a HeaderMap, walk: &mut Walk<'a>) -> bool {
    tracewire_http::walk_headers(map, walk, |key| !is_binary(key))
}

impl Extractor for GrpcHeaders<'_> {
    type Values<'b>
        = MetadataValues<'b>
    where
        Self: 'b;
    type Keys<'b>
        = MetadataKeys<'b>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> MetadataValues<'_> {
        self.values(key)
    }

    fn keys(&self) -> MetadataKeys<'_> {
        self.key_strs()
    }

    fn walk<'a>(&'a self, walk: &mut Walk<'a>) -> bool {
        walk_text(self.0, walk)
    }
}

impl Extractor for MetadataExtractor<'_> {
    type Values<'b>
        = MetadataValues<'b>
    where
        Self: 'b;
    type Keys<'b>
        = MetadataKeys<'b>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> MetadataValues<'_> {
        GrpcHeaders(self.0.as_ref()).values(key)
    }

    fn keys(&self) -> MetadataKeys<'_> {
        GrpcHeaders(self.0.as_ref()).key_strs()
    }

    fn walk<'a>(&'a self, walk: &mut Walk<'a>) -> bool {
        walk_text(self.0.as_ref(), walk)
    }
}

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &'static str, value: String) {
        self.set_dynamic(key, value);
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        if is_binary(key) {
            log::debug!("binary metadata key, not injected: {key:?}");
            return;
        }
        HeaderInjector(self.0.as_mut()).set_dynamic(key, value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tonic::metadata::{BinaryMetadataValue, MetadataValue};
    use tracewire_core::{Baggage, Format, Propagators, SpanId, TraceContext, TraceId};

    #[test]
    fn extractor_skips_binary_keys_and_is_multi_valued() {
        let mut m = MetadataMap::new();
        m.append("tracestate", MetadataValue::from_static("a=1"));
        m.append("tracestate", MetadataValue::from_static("b=2"));
        m.append_bin("trace-bin", BinaryMetadataValue::from_bytes(b"\x00\x01"));
        let e = MetadataExtractor(&m);
        assert_eq!(e.get_all("tracestate").collect::<Vec<_>>(), ["a=1", "b=2"]);
        assert_eq!(e.get("TraceState"), Some("a=1"));
        assert_eq!(e.get("trace-bin"), None);
        assert_eq!(e.keys().collect::<Vec<_>>(), ["tracestate"]);
    }

    #[test]
    fn one_walk_skips_binary_keys_like_the_lookups() {
        let mut m = MetadataMap::new();
        m.append("uberctx-user", MetadataValue::from_static("alice"));
        m.append_bin("uberctx-key-bin", BinaryMetadataValue::from_bytes(b"\x00"));
        m.append(
            "uber-trace-id",
            MetadataValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"),
        );
        let walked = Propagators::all().extract(&MetadataExtractor(&m));
        assert!(walked.context.is_some());
        assert_eq!(
            walked.baggage.len(),
            1,
            "the binary uberctx key is not baggage"
        );
        assert_eq!(walked.baggage.get("user"), Some("alice"));
        // The raw request headers (what the server layer reads) walk the same way.
        assert_eq!(Propagators::all().extract(&GrpcHeaders(m.as_ref())), walked);
    }

    #[test]
    fn injector_round_trips_every_format() {
        let mut cx = TraceContext::new(TraceId(0xabc), SpanId(0xdef), true);
        cx.baggage = Baggage::parse_lines(["user=alice"]);
        for format in [
            Format::TraceContext,
            Format::B3,
            Format::B3Multi,
            Format::Jaeger,
        ] {
            let p = Propagators::new([format, Format::Baggage]);
            let mut m = MetadataMap::new();
            p.inject(&cx, &mut MetadataInjector(&mut m));
            let back = p.extract(&MetadataExtractor(&m));
            let got = back.context.unwrap();
            assert_eq!(
                (got.trace_id, got.span_id),
                (cx.trace_id, cx.span_id),
                "{format:?}"
            );
            assert_eq!(back.baggage.get("user"), Some("alice"), "{format:?}");
        }
    }

    #[test]
    fn injector_never_writes_binary_or_invalid_keys() {
        let mut m = MetadataMap::new();
        MetadataInjector(&mut m).set_dynamic("x-bin", "v".into());
        MetadataInjector(&mut m).set_dynamic("bad key", "v".into());
        MetadataInjector(&mut m).set_dynamic("ok", "bad\nvalue".into());
        assert!(m.is_empty());
        MetadataInjector(&mut m).set("traceparent", "one".into());
        MetadataInjector(&mut m).set("traceparent", "two".into());
        assert_eq!(m.get_all("traceparent").iter().count(), 1);
        assert_eq!(m.get("traceparent").unwrap(), "two");
    }
}
