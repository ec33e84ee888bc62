//! The hand-written OpenTelemetry peer of the MQTT benches (`benches/mqtt.rs`,
//! `examples/mqtt_load.rs`): what users write today to trace rumqttc over MQTT 5 — an
//! OpenTelemetry SDK 0.33 tracer (`ParentBased` sampler, `BatchSpanProcessor` with an exporter
//! that converts, encodes and drops, as `opentelemetry-otlp` would before sending), a W3C
//! `TraceContextPropagator` injecting into / extracting from the PUBLISH's user properties
//! (`Vec<(String, String)>`) through a carrier written for it, one SDK span per publish
//! (PRODUCER) and per process (CONSUMER, child of the extracted context) with the attributes
//! tracewire records (`messaging.system`, `messaging.operation.type`/`.name`,
//! `messaging.destination.name`, `messaging.message.body.size`, `messaging.mqtt.qos`,
//! `messaging.client.id`, `server.address`, `server.port`) and the names `publish {topic}` /
//! `process {topic}`.
//!
//! The SDK side (tracer provider, sampler, batch processor, the exporter that encodes and drops)
//! is `tracewire_benches::otel`, the same for every peer; this file holds what is particular to
//! the client: the carriers, the attributes, the span names.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// Writes into user properties (replacing an entry of the same name, as a user would).
pub(crate) struct PropsInjector<'a>(pub(crate) &'a mut Vec<(String, String)>);

impl Injector for PropsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }
}

/// Reads user properties (exact names, the first of a name).
pub(crate) struct PropsExtractor<'a>(pub(crate) &'a [(String, String)]);

impl Extractor for PropsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// One instrumented MQTT client, as a user writes it: the tracer, the propagator, the
/// connection's facts for the attributes.
pub(crate) struct Peer {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    client_id: String,
}

impl Peer {
    /// The peer, its spans through `provider` (`tracewire_benches::otel::provider`).
    pub(crate) fn new(provider: &SdkTracerProvider, client_id: &str) -> Self {
        Peer {
            tracer: provider.tracer("mqtt"),
            propagator: TraceContextPropagator::new(),
            client_id: client_id.to_owned(),
        }
    }

    fn attributes(
        &self,
        op: &'static str,
        verb: &'static str,
        topic: &str,
        qos: i64,
        size: usize,
    ) -> [KeyValue; 9] {
        [
            KeyValue::new("messaging.system", "mqtt"),
            KeyValue::new("messaging.operation.type", op),
            KeyValue::new("messaging.operation.name", verb),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("messaging.message.body.size", size as i64),
            KeyValue::new("messaging.mqtt.qos", qos),
            KeyValue::new("messaging.client.id", self.client_id.clone()),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 1883),
        ]
    }

    /// Starts the PRODUCER span of a publish and injects its context into `properties`.
    pub(crate) fn publish_span(
        &self,
        topic: &str,
        qos: i64,
        size: usize,
        properties: &mut Vec<(String, String)>,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(format!("publish {topic}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(self.attributes("send", "publish", topic, qos, size))
            .start(&self.tracer);
        let cx = Context::current_with_span(span);
        self.propagator
            .inject_context(&cx, &mut PropsInjector(properties));
        cx
    }

    /// Starts the CONSUMER span of a received message, the child of its context.
    pub(crate) fn process_span(
        &self,
        topic: &str,
        qos: i64,
        size: usize,
        properties: &[(String, String)],
    ) -> Context {
        let parent = self.propagator.extract(&PropsExtractor(properties));
        let span = self
            .tracer
            .span_builder(format!("process {topic}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(self.attributes("process", "process", topic, qos, size))
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }
}
