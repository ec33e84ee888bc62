//! The hand-written OpenTelemetry peer of the NATS benches (`benches/messaging.rs`,
//! `examples/nats_load.rs`): what users write today to trace async-nats — an OpenTelemetry
//! SDK 0.33 tracer, a W3C `TraceContextPropagator` injecting into / extracting from an
//! `async_nats::HeaderMap` with the injector and extractor of the `opentelemetry-nats` crate
//! (ported to async-nats 0.51), one SDK span per publish (PRODUCER) and per process (CONSUMER,
//! child of the extracted context) with the attributes tracewire records (`messaging.system`,
//! `messaging.operation.type`/`.name`, `messaging.destination.name`,
//! `messaging.message.body.size`, `messaging.client.id`, `server.address`, `server.port`) and
//! the names `publish {subject}` / `process {subject}`.
//!
//! The SDK side (tracer provider, sampler, batch processor, the exporter that encodes and drops)
//! is `tracewire_benches::otel`, the same for every peer; this file holds what is particular to
//! the client: the carriers, the attributes, the span names.

use async_nats::HeaderMap;
use async_nats::header::HeaderValue;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// `opentelemetry-nats`'s `NatsHeaderInjector` (it panics on an invalid key, as there).
pub(crate) struct NatsHeaderInjector<'a>(pub(crate) &'a mut HeaderMap);

impl Injector for NatsHeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// `opentelemetry-nats`'s `NatsHeaderExtractor`.
pub(crate) struct NatsHeaderExtractor<'a>(pub(crate) &'a HeaderMap);

impl Extractor for NatsHeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(HeaderValue::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// One instrumented NATS client, as a user writes it: the tracer, the propagator, the
/// connection's facts for the attributes.
pub(crate) struct Peer {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    server_address: String,
    server_port: i64,
    client_id: i64,
}

impl Peer {
    /// The peer of a connection to the server of `info`, its spans through `provider`
    /// (`tracewire_benches::otel::provider`).
    pub(crate) fn new(provider: &SdkTracerProvider, info: &async_nats::ServerInfo) -> Self {
        Peer {
            tracer: provider.tracer("nats"),
            propagator: TraceContextPropagator::new(),
            server_address: info.host.clone(),
            server_port: i64::from(info.port),
            client_id: info.client_id as i64,
        }
    }

    fn attributes(
        &self,
        op: &'static str,
        verb: &'static str,
        subject: &str,
        size: usize,
    ) -> [KeyValue; 8] {
        [
            KeyValue::new("messaging.system", "nats"),
            KeyValue::new("messaging.operation.type", op),
            KeyValue::new("messaging.operation.name", verb),
            KeyValue::new("messaging.destination.name", subject.to_owned()),
            KeyValue::new("messaging.message.body.size", size as i64),
            KeyValue::new("messaging.client.id", self.client_id),
            KeyValue::new("server.address", self.server_address.clone()),
            KeyValue::new("server.port", self.server_port),
        ]
    }

    /// Starts the PRODUCER span of a publish and injects its context into `headers`.
    pub(crate) fn publish_span(
        &self,
        subject: &str,
        size: usize,
        headers: &mut HeaderMap,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(format!("publish {subject}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(self.attributes("send", "publish", subject, size))
            .start(&self.tracer);
        let cx = Context::current_with_span(span);
        self.propagator
            .inject_context(&cx, &mut NatsHeaderInjector(headers));
        cx
    }

    /// Starts the CONSUMER span of a received message, the child of its context.
    pub(crate) fn process_span(&self, message: &async_nats::Message) -> Context {
        let parent = match &message.headers {
            Some(h) => self.propagator.extract(&NatsHeaderExtractor(h)),
            None => Context::new(),
        };
        let span = self
            .tracer
            .span_builder(format!("process {}", message.subject))
            .with_kind(SpanKind::Consumer)
            .with_attributes(self.attributes(
                "process",
                "process",
                &message.subject,
                message.payload.len(),
            ))
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }
}
