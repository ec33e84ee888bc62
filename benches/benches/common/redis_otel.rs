//! The hand-written OpenTelemetry peer of the Redis benches (`benches/redis.rs`,
//! `examples/redis_load.rs`): what users write today to trace over Redis — "put the span
//! context in the payload yourself". An OpenTelemetry SDK 0.33 tracer (`ParentBased` sampler,
//! `BatchSpanProcessor` with an exporter that converts, encodes and drops, as
//! `opentelemetry-otlp` would before sending), a W3C `TraceContextPropagator` injecting into a
//! `HashMap<String, String>`, and a JSON envelope `{"data": "<body as text>", "headers": {...}}`
//! written and read with serde_json (FastStream's older format). Bodies are ASCII in the
//! benches: the peer's cheapest path (no base64).
//!
//! The SDK side (tracer provider, sampler, batch processor, the exporter that encodes and drops)
//! is `tracewire_benches::otel`, the same for every peer; this file holds what is particular to
//! the client: the carriers, the attributes, the span names.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

#[derive(serde::Serialize)]
struct Out<'a> {
    data: &'a str,
    headers: &'a HashMap<String, String>,
}

#[derive(serde::Deserialize)]
struct In {
    data: String,
    headers: HashMap<String, String>,
}

/// The peer.
pub(crate) struct JsonPeer {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl JsonPeer {
    /// The peer, its spans through `provider` (`tracewire_benches::otel::provider`).
    pub(crate) fn new(provider: &SdkTracerProvider) -> Self {
        JsonPeer {
            tracer: provider.tracer("redis"),
            propagator: TraceContextPropagator::new(),
        }
    }

    /// The envelope of `body` carrying `cx`, `correlation_id` and `content-type`.
    pub(crate) fn encode(&self, cx: &Context, correlation: &str, body: &[u8]) -> Vec<u8> {
        let mut headers = HashMap::with_capacity(4);
        headers.insert("correlation_id".to_owned(), correlation.to_owned());
        headers.insert("content-type".to_owned(), "text/plain".to_owned());
        self.propagator.inject_context(cx, &mut headers);
        let data = std::str::from_utf8(body).unwrap_or_default();
        serde_json::to_vec(&Out {
            data,
            headers: &headers,
        })
        .unwrap_or_default()
    }

    /// The context and the body of an envelope (a payload that is not one: no context, the
    /// payload as the body).
    pub(crate) fn decode(&self, payload: &[u8]) -> (Context, Vec<u8>) {
        match serde_json::from_slice::<In>(payload) {
            Ok(e) => (self.propagator.extract(&e.headers), e.data.into_bytes()),
            Err(_) => (Context::new(), payload.to_vec()),
        }
    }

    fn attributes(op: &'static str, destination: &str, size: usize) -> [KeyValue; 7] {
        [
            KeyValue::new("messaging.system", "redis"),
            KeyValue::new("messaging.operation.type", op),
            KeyValue::new(
                "messaging.operation.name",
                if op == "send" { "publish" } else { op },
            ),
            KeyValue::new("messaging.destination.name", destination.to_owned()),
            KeyValue::new("messaging.message.body.size", size as i64),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 6379),
        ]
    }

    /// Starts the PRODUCER span of a publish (a new trace, or the child of the current
    /// context).
    pub(crate) fn publish_span(&self, destination: &str, size: usize) -> Context {
        let span = self
            .tracer
            .span_builder(format!("publish {destination}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(Self::attributes("send", destination, size))
            .start(&self.tracer);
        Context::current_with_span(span)
    }

    /// Starts the CONSUMER span of a message, the child of its context.
    pub(crate) fn process_span(&self, parent: &Context, destination: &str, size: usize) -> Context {
        let span = self
            .tracer
            .span_builder(format!("process {destination}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(Self::attributes("process", destination, size))
            .start_with_context(&self.tracer, parent);
        parent.with_span(span)
    }
}
