//! Jaeger `uberctx-*` extraction over a carrier that cannot be hashed into (message headers,
//! `Pairs`): the one pass `Pairs` makes now against the trait's default (`keys()` + a `get`
//! scan per key, what `Pairs` did before), on the same carriers, in one run.
//!
//! ```sh
//! cargo run --release -p tracewire-benches --example prefixed_extraction
//! ```
//!
//! Prints the median time of one `Propagators::extract` per carrier size.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use tracewire_core::{Extractor, Format, Pairs, Propagators};

/// The same pairs, read only through `get_all`/`keys`: the trait's default `get_prefixed`
/// (a scan per key) and no one-pass walk.
struct KeyLookups<'a>(&'a Pairs);

impl Extractor for KeyLookups<'_> {
    type Values<'b>
        = <Pairs as Extractor>::Values<'b>
    where
        Self: 'b;
    type Keys<'b>
        = <Pairs as Extractor>::Keys<'b>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Self::Values<'_> {
        self.0.get_all(key)
    }

    fn keys(&self) -> Self::Keys<'_> {
        self.0.keys()
    }
}

fn carrier(n: usize) -> Pairs {
    let mut p = Pairs::new();
    p.0.push((
        "uber-trace-id".into(),
        "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1".into(),
    ));
    for i in 0..n {
        p.0.push((format!("uberctx-key{i}"), format!("v{i}")));
    }
    p
}

fn median_ns(mut f: impl FnMut(), rounds: usize) -> f64 {
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let p = Propagators::new([Format::Jaeger]);
    println!(
        "| uberctx-* headers | one pass (Pairs) | default get_prefixed (scan per key) | ratio |"
    );
    println!("|---|---|---|---|");
    for n in [10, 100, 1_000, 10_000] {
        let c = carrier(n);
        let walked = p.extract(&c);
        assert_eq!(walked, p.extract(&KeyLookups(&c)), "both paths agree");
        let rounds = if n >= 10_000 { 5 } else { 51 };
        let fast = median_ns(|| drop(black_box(p.extract(black_box(&c)))), rounds);
        let slow = median_ns(
            || drop(black_box(p.extract(&KeyLookups(black_box(&c))))),
            rounds,
        );
        println!(
            "| {n} | {:.1} µs | {:.1} µs | {:.0}x |",
            fast / 1e3,
            slow / 1e3,
            slow / fast
        );
    }
}
