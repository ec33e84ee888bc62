//! The hand-written OpenTelemetry peer of the RabbitMQ benches (`benches/rabbitmq.rs`,
//! `examples/rabbitmq_load.rs`): what users write today to trace lapin — an OpenTelemetry SDK
//! 0.33 tracer (`ParentBased` sampler, `BatchSpanProcessor` with an exporter that converts,
//! encodes and drops, as `opentelemetry-otlp` would before sending), a W3C
//! `TraceContextPropagator` injecting into / extracting from the lapin `FieldTable` (long
//! strings, as the `amqp`/`lapin` OpenTelemetry examples do), one PRODUCER span per publish and
//! one CONSUMER span per delivery (the child of the extracted context) with the attributes
//! tracewire records (`messaging.system`, `messaging.operation.type`/`.name`,
//! `messaging.destination.name`, `messaging.rabbitmq.destination.routing_key`,
//! `messaging.message.body.size`, the delivery tag on process spans, `server.address`,
//! `server.port`).
//!
//! The SDK side (tracer provider, sampler, batch processor, the exporter that encodes and drops)
//! is `tracewire_benches::otel`, the same for every peer; this file holds what is particular to
//! the client: the carriers, the attributes, the span names.

use lapin::types::{AMQPValue, FieldTable, ShortString};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The injector users write for lapin headers.
struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let Ok(key) = ShortString::try_new(key) {
            self.0.insert(key, AMQPValue::LongString(value.into()));
        }
    }
}

/// The extractor users write for lapin headers (long strings only).
struct HeaderExtractor<'a>(&'a FieldTable);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|k| k.as_str()).collect()
    }
}

/// The peer.
pub(crate) struct Peer {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl Peer {
    /// The peer, its spans through `provider` (`tracewire_benches::otel::provider`).
    pub(crate) fn new(provider: &SdkTracerProvider) -> Self {
        Peer {
            tracer: provider.tracer("rabbitmq"),
            propagator: TraceContextPropagator::new(),
        }
    }

    fn attributes(op: &'static str, destination: &str, key: &str, size: usize) -> Vec<KeyValue> {
        vec![
            KeyValue::new("messaging.system", "rabbitmq"),
            KeyValue::new("messaging.operation.type", op),
            KeyValue::new(
                "messaging.operation.name",
                if op == "send" { "publish" } else { op },
            ),
            KeyValue::new("messaging.destination.name", destination.to_owned()),
            KeyValue::new("messaging.rabbitmq.destination.routing_key", key.to_owned()),
            KeyValue::new("messaging.message.body.size", size as i64),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 5672),
        ]
    }

    /// Starts the PRODUCER span of a publish through the default exchange to `queue` (a new
    /// trace, or the child of the current context) and injects its context into `headers`.
    pub(crate) fn publish_span(
        &self,
        queue: &str,
        size: usize,
        headers: &mut FieldTable,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(format!("publish {queue}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(Self::attributes("send", queue, queue, size))
            .start(&self.tracer);
        let cx = Context::current_with_span(span);
        self.propagator
            .inject_context(&cx, &mut HeaderInjector(headers));
        cx
    }

    /// Starts the CONSUMER span of a delivery from `queue`, the child of its context.
    pub(crate) fn process_span(&self, queue: &str, delivery: &lapin::message::Delivery) -> Context {
        let parent = match delivery.properties.headers() {
            Some(h) => self.propagator.extract(&HeaderExtractor(h)),
            None => Context::new(),
        };
        let mut attributes = Self::attributes(
            "process",
            queue,
            delivery.routing_key.as_str(),
            delivery.data.len(),
        );
        attributes.push(KeyValue::new(
            "messaging.rabbitmq.message.delivery_tag",
            delivery.delivery_tag as i64,
        ));
        let span = self
            .tracer
            .span_builder(format!("process {queue}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }
}
