//! Helpers shared by the fuzz targets: building carriers from fuzz bytes and checking the
//! invariants every extraction must keep; the viewer's store and its invariants ([`viewer`]).

use tracewire_core::{Extracted, Pairs, Propagators};

pub mod viewer;

/// Splits fuzz input into lines (on `\n`), decoding each lossily: carriers hold `&str`.
pub fn lines(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// A carrier built from fuzz bytes: each line is one header; its first byte picks the name
/// from `names` (the rest of the line is the value) — or, when the byte is past the table, the
/// line is taken as `name:value` so arbitrary names are reached too.
pub fn carrier(data: &[u8], names: &[&str]) -> Pairs {
    let mut out = Pairs::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&first, rest)) = line.split_first() else {
            continue;
        };
        let rest = String::from_utf8_lossy(rest).into_owned();
        match names.get(usize::from(first)) {
            Some(name) => out.0.push(((*name).to_owned(), rest)),
            None => match rest.split_once(':') {
                Some((k, v)) => out.0.push((k.to_owned(), v.to_owned())),
                None => out.0.push((rest, String::new())),
            },
        }
    }
    out
}

/// Checks what any extraction must guarantee, then that injecting the result and extracting it
/// again gives the same trace, span and baggage.
pub fn check_extracted(p: &Propagators, e: &Extracted) {
    if let Some(cx) = &e.context {
        assert!(cx.is_valid(), "extracted an invalid context: {cx:?}");
        assert!(cx.remote);
        if let Some(h) = e.baggage.header_value() {
            assert!(h.len() <= tracewire_core::baggage::MAX_BYTES);
        }
        let mut cx = cx.clone();
        cx.baggage = e.baggage.clone();
        let mut out = Pairs::new();
        p.inject(&cx, &mut out);
        let again = p.extract(&out);
        let c2 = again.context.expect("re-extract what was injected");
        assert_eq!((c2.trace_id, c2.span_id), (cx.trace_id, cx.span_id));
        assert_eq!(c2.is_sampled(), cx.is_sampled());
        if p.formats().contains(&tracewire_core::Format::TraceContext) {
            assert_eq!(c2.trace_state, cx.trace_state);
        }
        // Jaeger's `uberctx-*` headers cannot carry properties or keys that differ only in
        // case (header names are case-insensitive), so the exact check is W3C-only.
        if p.formats().contains(&tracewire_core::Format::Baggage)
            && !p.formats().contains(&tracewire_core::Format::Jaeger)
        {
            assert_eq!(again.baggage, e.baggage);
        }
    }
}
