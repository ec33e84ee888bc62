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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

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

/// What `opentelemetry-otlp` does with a batch before sending it; counts the spans, drops it.
#[derive(Debug)]
struct Counting {
    exported: Arc<AtomicU64>,
    resource: ResourceAttributesWithSchema,
}

impl SpanExporter for Counting {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        use prost::Message as _;
        let n = batch.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        std::hint::black_box(request.encode_to_vec());
        self.exported.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.resource = resource.into();
    }
}

/// One instrumented MQTT client, as a user writes it: the tracer, the propagator, the
/// connection's facts for the attributes.
pub(crate) struct Peer {
    pub(crate) provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    client_id: String,
}

impl Peer {
    pub(crate) fn new(sampled: bool, exported: Arc<AtomicU64>, client_id: &str) -> Self {
        let root = if sampled {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        };
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(root)))
            .with_span_processor(
                BatchSpanProcessor::builder(Counting {
                    exported,
                    resource: (&opentelemetry_sdk::Resource::builder_empty().build()).into(),
                })
                .build(),
            )
            .build();
        let tracer = provider.tracer("mqtt");
        Peer {
            provider,
            tracer,
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

/// Ends the span of `cx`.
pub(crate) fn end(cx: &Context) {
    cx.span().end();
}
