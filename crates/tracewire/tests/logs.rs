//! Log ↔ trace correlation: ids on `log` records and `tracing` lines inside a traced request
//! (and not outside), and `tracing` events recorded as span events.
#![cfg(feature = "tracing")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracewire::logs::{JsonWithTraceIds, LogWithTraceIds, SpanEvents, WithTraceIds};
use tracewire::{Pairs, Sampler, SpanKind, Tracer};
use tracing_subscriber::layer::SubscriberExt as _;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

type Kvs = Vec<(String, String)>;

struct Capture(Arc<Mutex<Vec<Kvs>>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        struct V(Vec<(String, String)>);
        impl<'kvs> log::kv::VisitSource<'kvs> for V {
            fn visit_pair(
                &mut self,
                k: log::kv::Key<'kvs>,
                v: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                self.0.push((k.to_string(), v.to_string()));
                Ok(())
            }
        }
        let mut v = V(Vec::new());
        record.key_values().visit(&mut v).unwrap();
        self.0.lock().unwrap().push(v.0);
    }
    fn flush(&self) {}
}

#[test]
fn ids_on_log_and_tracing_lines_and_events_on_spans() {
    let cap = tracewire_test::capture();
    let records = Arc::new(Mutex::new(Vec::new()));
    log::set_logger(Box::leak(Box::new(LogWithTraceIds(Capture(
        records.clone(),
    )))))
    .unwrap();
    log::set_max_level(log::LevelFilter::Info);

    let text = Buf::default();
    let json = Buf::default();
    let (t, j) = (text.clone(), json.clone());
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(WithTraceIds::new(
                    tracing_subscriber::fmt::format().compact().without_time(),
                ))
                .with_writer(move || t.clone())
                .with_ansi(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonWithTraceIds)
                .with_writer(move || j.clone()),
        )
        .with(SpanEvents);

    let tracer = Tracer::new().with_sampler(Sampler::AlwaysOn);
    tracing::subscriber::with_default(subscriber, || {
        log::info!(user = 7; "outside");
        tracing::info!("outside");
        let root = tracer.start_root(
            "GET /orders/{id}",
            SpanKind::Server,
            &Pairs::from_pairs([("traceparent", TRACEPARENT)]),
        );
        let span_id = format!("{:016x}", root.context.span_id.0);
        {
            let _g = root.enter();
            log::info!(user = 7; "inside");
            tracing::info!(order_id = 42, "loading order");
        }
        drop(root);

        let recs = records.lock().unwrap();
        assert_eq!(recs[0], [("user".to_owned(), "7".to_owned())]);
        assert_eq!(
            recs[1],
            [
                ("user".to_owned(), "7".to_owned()),
                ("trace_id".to_owned(), TRACE_ID.to_owned()),
                ("span_id".to_owned(), span_id.clone()),
            ]
        );

        let lines = text.lines();
        assert!(!lines[0].contains("trace_id"), "{lines:?}");
        assert!(
            lines[1].starts_with(&format!("trace_id={TRACE_ID} span_id={span_id} ")),
            "{lines:?}"
        );
        assert!(lines[1].contains("loading order"), "{lines:?}");

        let j: Vec<serde_json::Value> = json
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(j[0].get("trace_id").is_none());
        assert_eq!(j[1]["trace_id"], TRACE_ID);
        assert_eq!(j[1]["span_id"], span_id.as_str());
        assert_eq!(j[1]["fields"]["order_id"], 42);
        assert_eq!(j[1]["level"], "INFO");
    });

    let spans = cap.finish();
    let root = spans.expect("GET /orders/{id}");
    assert_eq!(root.events.len(), 1, "{:?}", root.events);
    let e = &root.events[0];
    assert_eq!(e.name, "loading order");
    assert!(
        e.properties
            .iter()
            .any(|(k, v)| k == "order_id" && v == "42")
    );
    assert!(
        e.properties
            .iter()
            .any(|(k, v)| k == "level" && v == "INFO")
    );
}
