//! The hand-written OpenTelemetry peer of the Kafka benches (`benches/kafka.rs`,
//! `examples/kafka_load.rs`): what users write today to trace rdkafka — an OpenTelemetry SDK
//! 0.33 tracer (`ParentBased` sampler, `BatchSpanProcessor` with an exporter that converts,
//! encodes and drops, as `opentelemetry-otlp` would before sending), a W3C
//! `TraceContextPropagator` injecting into the record's `OwnedHeaders` and extracting from a
//! consumed record's `BorrowedHeaders` (the carriers of the OpenTelemetry rdkafka examples), one
//! PRODUCER span per send (ended with the delivery report) and one CONSUMER span per record
//! (the child of the extracted context) with the attributes tracewire records
//! (`messaging.system`, `messaging.operation.type`/`.name`, `messaging.destination.name`,
//! `messaging.destination.partition.id`, `messaging.kafka.offset`, `messaging.message.body.size`,
//! `messaging.consumer.group.name`, `messaging.client.id`, `server.address`, `server.port`).
//!
//! The SDK side (tracer provider, sampler, batch processor, the exporter that encodes and drops)
//! is `tracewire_benches::otel`, the same for every peer; this file holds what is particular to
//! the client: the carriers, the attributes, the span names.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use rdkafka::message::{BorrowedHeaders, Header, Headers as _, OwnedHeaders};

/// The injector users write for rdkafka: headers added to the record's list.
pub(crate) struct HeaderInjector(pub(crate) Option<OwnedHeaders>);

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        let headers = self.0.take().unwrap_or_default();
        self.0 = Some(headers.insert(Header {
            key,
            value: Some(&value),
        }));
    }
}

/// The extractor users write for rdkafka: a scan of the headers, text values only.
struct HeaderExtractor<'a>(&'a BorrowedHeaders);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (0..self.0.count()).find_map(|i| {
            let h = self.0.get_as::<str>(i).ok()?;
            if h.key == key { h.value } else { None }
        })
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
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
            tracer: provider.tracer("kafka"),
            propagator: TraceContextPropagator::new(),
        }
    }

    fn attributes(op: &'static str, topic: &str, size: usize) -> Vec<KeyValue> {
        vec![
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", op),
            KeyValue::new("messaging.operation.name", op),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("messaging.message.body.size", size as i64),
            KeyValue::new("messaging.client.id", "rdkafka"),
            KeyValue::new("server.address", "127.0.0.1"),
            KeyValue::new("server.port", 9092),
        ]
    }

    /// Starts the PRODUCER span of a send to `topic` (a new trace, or the child of the current
    /// context) and injects its context into `headers`.
    pub(crate) fn send_span(
        &self,
        topic: &str,
        size: usize,
        headers: &mut HeaderInjector,
    ) -> Context {
        let span = self
            .tracer
            .span_builder(format!("send {topic}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(Self::attributes("send", topic, size))
            .start(&self.tracer);
        let cx = Context::current_with_span(span);
        self.propagator.inject_context(&cx, headers);
        cx
    }

    /// Records the delivery report on a send span and ends it.
    pub(crate) fn delivered(cx: &Context, partition: i32, offset: i64) {
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "messaging.destination.partition.id",
            partition.to_string(),
        ));
        span.set_attribute(KeyValue::new("messaging.kafka.offset", offset));
        span.end();
    }

    /// Starts the CONSUMER span of a consumed record, the child of its context.
    pub(crate) fn process_span<M: rdkafka::Message<Headers = BorrowedHeaders>>(
        &self,
        group: &str,
        record: &M,
    ) -> Context {
        let parent = match record.headers() {
            Some(h) => self.propagator.extract(&HeaderExtractor(h)),
            None => Context::new(),
        };
        let mut attributes = Self::attributes(
            "process",
            record.topic(),
            record.payload().map_or(0, <[u8]>::len),
        );
        attributes.push(KeyValue::new(
            "messaging.destination.partition.id",
            record.partition().to_string(),
        ));
        attributes.push(KeyValue::new("messaging.kafka.offset", record.offset()));
        attributes.push(KeyValue::new(
            "messaging.consumer.group.name",
            group.to_owned(),
        ));
        let span = self
            .tracer
            .span_builder(format!("process {}", record.topic()))
            .with_kind(SpanKind::Consumer)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }
}
