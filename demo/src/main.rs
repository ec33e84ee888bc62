//! The tracewire demo.
//!
//! Run: `cargo run --release -p tracewire-demo`
//!
//! Today it shows the propagation core end to end in one process: an inbound request arrives
//! with W3C `traceparent`, `tracestate` and `baggage`; the root rule continues the trace; a
//! `#[fastrace::trace]` handler makes an outgoing call; the call's headers are printed in every
//! format (W3C, B3 single, B3 multi, Jaeger), then the recorded spans.
#![allow(clippy::print_stdout)]

use std::sync::mpsc;

use fastrace::collector::{Config, Reporter, SpanRecord};
use http::HeaderMap;
use tracewire_core::{Format, Propagators, Sampler, SpanKind, Tracer};
use tracewire_http::{HeaderExtractor, HeaderInjector};

struct ChannelReporter(mpsc::Sender<SpanRecord>);

impl Reporter for ChannelReporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        for s in spans {
            let _ = self.0.send(s);
        }
    }
}

#[fastrace::trace]
fn handle_order(tracer: &Tracer) -> HeaderMap {
    // An outgoing call: a CLIENT span under the handler span, its context injected.
    let call = tracer.start_child("GET", SpanKind::Client);
    let _guard = call.span.set_local_parent();
    let mut outbound = HeaderMap::new();
    if let Some(cx) = &call.context {
        tracer.inject(cx, &mut HeaderInjector(&mut outbound));
    }
    outbound
}

fn main() {
    let (tx, rx) = mpsc::channel();
    fastrace::set_reporter(ChannelReporter(tx), Config::default());

    let tracer = Tracer::new()
        .with_propagators(Propagators::new([
            Format::TraceContext,
            Format::Baggage,
            Format::B3,
            Format::B3Multi,
            Format::Jaeger,
        ]))
        .with_sampler(Sampler::default());

    let mut inbound = HeaderMap::new();
    inbound.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"),
    );
    inbound.insert(
        "tracestate",
        http::HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    );
    inbound.insert(
        "baggage",
        http::HeaderValue::from_static("tenant=acme,user.id=alice%20b"),
    );

    println!("inbound request headers:");
    for (k, v) in &inbound {
        println!("  {k}: {}", v.to_str().unwrap_or("<binary>"));
    }

    let outbound = {
        let root = tracer.start_root(
            "GET /orders/{id}",
            SpanKind::Server,
            &HeaderExtractor(&inbound),
        );
        println!(
            "\nroot rule: {:?}, sampled: {}",
            root.origin,
            root.context.is_sampled()
        );
        let _in = root.enter();
        handle_order(&tracer)
    };

    println!("\noutgoing call headers (every format):");
    for (k, v) in &outbound {
        println!("  {k}: {}", v.to_str().unwrap_or("<binary>"));
    }

    fastrace::flush();
    println!("\nrecorded spans:");
    let mut spans: Vec<SpanRecord> = rx.try_iter().collect();
    spans.sort_by_key(|s| s.begin_time_unix_ns);
    for s in spans {
        println!(
            "  {:<18} trace={:032x} span={:016x} parent={:016x} {:>7.1}µs",
            s.name,
            s.trace_id.0,
            s.span_id.0,
            s.parent_id.0,
            s.duration_ns as f64 / 1000.0
        );
        for (k, v) in &s.properties {
            println!("      {k} = {v}");
        }
    }
}
