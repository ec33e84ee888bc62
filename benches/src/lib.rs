//! Criterion benchmarks for tracewire live in `benches/`; results and commands are in
//! `BENCHMARKS.md` at the repository root. Run one with
//! `cargo bench -p tracewire-benches --bench <name>`.
