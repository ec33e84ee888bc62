//! Helpers of the viewer's fuzz targets: a small store with small limits (so every bound and
//! limit is reached quickly), and the invariants it must keep after any ingest.

use tracewire_viewer::{Query, SpanLimits, Store, StoreConfig};

/// The limits of the fuzzed store: small, so inputs of a few KiB exceed them.
pub const LIMITS: SpanLimits = SpanLimits {
    max_attributes: 4,
    max_events: 3,
    max_links: 3,
    max_attributes_per_event: 2,
    max_attributes_per_link: 2,
    max_value_len: 16,
    max_value_elements: 5,
    max_name_len: 12,
};

/// A store bounded to 8 traces and 64 KiB.
pub fn store() -> Store {
    Store::with_limits(
        StoreConfig {
            max_traces: 8,
            max_bytes: 64 * 1024,
        },
        LIMITS,
    )
}

/// What must hold after every ingest: the bounds, the limits on every stored span, the counts,
/// names only of stored spans, and reads that answer.
pub fn check_store(store: &Store) {
    let stats = store.stats();
    let config = store.config();
    assert!(stats.traces <= config.max_traces, "{stats:?}");
    assert!(stats.bytes <= config.max_bytes, "{stats:?}");
    let all = store.search_traces(&Query {
        limit: 0,
        ..Default::default()
    });
    assert_eq!(all.len(), stats.traces, "{stats:?}");
    let spans: usize = all.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(spans, stats.spans, "{stats:?}");
    let mut services = std::collections::BTreeSet::new();
    for (id, trace) in &all {
        assert!(!trace.is_empty());
        let summary = store.summary(id).expect("a listed trace has a summary");
        assert_eq!(summary.span_count, trace.len());
        assert_eq!(
            summary.services.iter().map(|s| s.spans).sum::<usize>(),
            trace.len()
        );
        for s in trace {
            let sp = &s.span;
            assert_eq!(sp.trace_id.as_slice(), id.as_slice());
            assert_eq!(sp.span_id.len(), 8);
            assert!(sp.name.len() <= LIMITS.max_name_len);
            assert!(sp.attributes.len() <= LIMITS.max_attributes);
            assert!(sp.events.len() <= LIMITS.max_events);
            assert!(sp.links.len() <= LIMITS.max_links);
            assert!(s.origin.service.len() <= LIMITS.max_name_len);
            services.insert(s.origin.service.to_string());
        }
    }
    // the services listed are exactly those of stored spans
    let listed: std::collections::BTreeSet<String> = store.services().into_iter().collect();
    assert_eq!(listed, services);
    assert_eq!(stats.services, services.len());
    // reads answer
    for text in ["a", "\u{0}", "é"] {
        let q = Query {
            text: Some(text.to_owned()),
            limit: 0,
            ..Default::default()
        };
        assert!(store.search_ids(&q).len() <= stats.traces);
    }
    let ops: usize = services.iter().map(|s| store.operations(s).len()).sum();
    assert_eq!(ops, stats.operations);
}
