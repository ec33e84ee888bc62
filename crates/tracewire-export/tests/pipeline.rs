//! Pipeline behaviour with a programmable in-process exporter: batching, size limits,
//! retries, timeouts, drops, flush and shutdown.
#![allow(clippy::unwrap_used, missing_docs)]

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastrace::collector::{Reporter as _, SpanId, SpanRecord, TraceId};
use tracewire_export::proto::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{
    BatchConfig, BoxFuture, EncodedRequest, ExportError, Input, Pipeline, RetryPolicy,
    SpanExporter, exporter::span_count,
};

#[derive(Clone, Default)]
struct Fake {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    script: Arc<Mutex<VecDeque<Result<(), ExportError>>>>,
    attempts: Arc<Mutex<u32>>,
    delay: Option<Duration>,
    /// Takes the requests encoded (`Input::Protobuf`); the bytes are kept here too.
    protobuf: Option<Arc<Mutex<Vec<Vec<u8>>>>>,
}

impl Fake {
    fn spans(&self) -> usize {
        self.received.lock().unwrap().iter().map(span_count).sum()
    }
}

impl SpanExporter for Fake {
    fn name(&self) -> &str {
        "fake"
    }
    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            *self.attempts.lock().unwrap() += 1;
            if let Some(d) = self.delay {
                tokio::time::sleep(d).await;
            }
            let next = self.script.lock().unwrap().pop_front().unwrap_or(Ok(()));
            if next.is_ok() {
                self.received.lock().unwrap().push(batch.clone());
            }
            next
        })
    }

    fn input(&self) -> Input {
        if self.protobuf.is_some() {
            Input::Protobuf
        } else {
            Input::Request
        }
    }

    fn export_protobuf<'a>(
        &'a self,
        batch: &'a EncodedRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        use prost::Message as _;
        Box::pin(async move {
            let request = ExportTraceServiceRequest::decode(batch.bytes.as_ref()).unwrap();
            assert_eq!(span_count(&request), batch.spans);
            let result = self.export(&request).await;
            if result.is_ok()
                && let Some(raw) = &self.protobuf
            {
                raw.lock().unwrap().push(batch.bytes.to_vec());
            }
            result
        })
    }
}

fn records(n: usize, attr_len: usize) -> Vec<SpanRecord> {
    (0..n)
        .map(|i| SpanRecord {
            trace_id: TraceId(42),
            span_id: SpanId(i as u64 + 1),
            parent_id: SpanId(0),
            begin_time_unix_ns: 1,
            duration_ns: 1,
            name: Cow::Borrowed("span"),
            properties: vec![(Cow::Borrowed("blob"), Cow::Owned("x".repeat(attr_len)))],
            events: vec![],
            links: vec![],
        })
        .collect()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        multiplier: 2.0,
        ..RetryPolicy::default()
    }
}

#[test]
fn batches_by_count_and_flush_exports_everything() {
    let fake = Fake::default();
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .batch(BatchConfig {
            max_export_batch_size: 10,
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    let mut r = p.reporter();
    r.report(records(25, 1));
    assert!(p.flush(Duration::from_secs(10)));
    let sizes: Vec<usize> = fake
        .received
        .lock()
        .unwrap()
        .iter()
        .map(span_count)
        .collect();
    assert_eq!(sizes, [10, 10, 5]);
    let c = p.counters();
    assert_eq!((c.queued, c.exported, c.dropped, c.failed), (25, 25, 0, 0));
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn splits_requests_by_encoded_size() {
    use prost::Message as _;
    let fake = Fake::default();
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .batch(BatchConfig {
            max_export_batch_size: 1000,
            max_request_bytes: 64 * 1024,
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    p.reporter().report(records(40, 10_000));
    assert!(p.flush(Duration::from_secs(10)));
    let got = fake.received.lock().unwrap();
    assert!(got.len() >= 7, "{} requests", got.len());
    for req in got.iter() {
        assert!(req.encoded_len() <= 64 * 1024, "{}", req.encoded_len());
    }
    assert_eq!(got.iter().map(span_count).sum::<usize>(), 40);
}

#[test]
fn retries_transient_failures_then_succeeds() {
    let fake = Fake::default();
    fake.script.lock().unwrap().extend([
        Err(ExportError::retryable("503")),
        Err(ExportError::retryable("429").with_retry_after(Duration::from_millis(30))),
    ]);
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .retry(fast_retry())
        .build()
        .unwrap();
    p.reporter().report(records(3, 1));
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(*fake.attempts.lock().unwrap(), 3);
    let c = p.counters();
    assert_eq!((c.exported, c.failed, c.retries), (3, 0, 2));
}

#[test]
fn permanent_failure_is_not_retried_and_is_counted() {
    let fake = Fake::default();
    fake.script
        .lock()
        .unwrap()
        .push_back(Err(ExportError::permanent("400 bad request")));
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .retry(fast_retry())
        .build()
        .unwrap();
    p.reporter().report(records(4, 1));
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(*fake.attempts.lock().unwrap(), 1);
    let c = p.counters();
    assert_eq!((c.exported, c.failed, c.retries), (0, 4, 0));
    // The pipeline keeps working afterwards.
    p.reporter().report(records(2, 1));
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(p.counters().exported, 2);
}

#[test]
fn slow_exporter_times_out_and_retries_are_bounded() {
    let fake = Fake {
        delay: Some(Duration::from_millis(200)),
        ..Fake::default()
    };
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .retry(fast_retry())
        .batch(BatchConfig {
            export_timeout: Duration::from_millis(20),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    p.reporter().report(records(2, 1));
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(*fake.attempts.lock().unwrap(), 4);
    let c = p.counters();
    assert_eq!((c.exported, c.failed, c.retries), (0, 2, 3));
}

#[test]
fn full_queue_drops_and_counts_without_blocking_the_reporter() {
    let fake = Fake {
        delay: Some(Duration::from_millis(300)),
        ..Fake::default()
    };
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .batch(BatchConfig {
            max_queue_size: 10,
            max_export_batch_size: 10,
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    let mut r = p.reporter();
    for _ in 0..10 {
        r.report(records(5, 1));
    }
    let c = p.counters();
    assert!(c.queue_len <= 10);
    assert_eq!(c.queued + c.dropped, 50);
    assert!(c.dropped >= 30, "{c:?}");
    assert!(p.flush(Duration::from_secs(10)));
    let c = p.counters();
    assert_eq!(c.exported, c.queued);
    assert_eq!(fake.spans() as u64, c.queued);
}

#[test]
fn exporters_of_protobuf_get_the_bytes_of_the_same_requests() {
    let structs = Fake::default();
    let bytes = Fake {
        protobuf: Some(Arc::default()),
        ..Fake::default()
    };
    let p = Pipeline::builder()
        .exporter(structs.clone())
        .exporter(bytes.clone())
        .batch(BatchConfig {
            max_export_batch_size: 1000,
            max_request_bytes: 64 * 1024,
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    let mut batch = records(40, 10_000);
    // One span alone over the limit: dropped by both, counted once per exporter.
    batch.extend(records(1, 70_000).into_iter().map(|mut r| {
        r.span_id = SpanId(99);
        r
    }));
    p.reporter().report(batch);
    assert!(p.flush(Duration::from_secs(10)));
    let got = structs.received.lock().unwrap().clone();
    assert!(got.len() >= 7, "{} requests", got.len());
    assert_eq!(*bytes.received.lock().unwrap(), got);
    let raw = bytes.protobuf.as_ref().unwrap().lock().unwrap().clone();
    let encoded: Vec<Vec<u8>> = got
        .iter()
        .map(tracewire_export::encode::encode_request)
        .collect();
    assert_eq!(raw, encoded);
    let c = p.counters();
    assert_eq!((c.exported, c.failed), (80, 2));
}

#[test]
fn an_exporter_of_protobuf_alone_gets_every_span() {
    let bytes = Fake {
        protobuf: Some(Arc::default()),
        ..Fake::default()
    };
    let p = Pipeline::builder().exporter(bytes.clone()).build().unwrap();
    p.reporter().report(records(25, 1));
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(bytes.spans(), 25);
    assert_eq!(p.counters().exported, 25);
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn fan_out_isolates_a_failing_exporter() {
    let good = Fake::default();
    let bad = Fake::default();
    bad.script
        .lock()
        .unwrap()
        .extend([Err(ExportError::permanent("nope"))]);
    let p = Pipeline::builder()
        .exporter(good.clone())
        .exporter(bad.clone())
        .build()
        .unwrap();
    p.reporter().report(records(5, 1));
    assert!(p.flush(Duration::from_secs(10)));
    assert_eq!(good.spans(), 5);
    assert_eq!(bad.spans(), 0);
    let c = p.counters();
    assert_eq!((c.exported, c.failed), (5, 5));
}

#[test]
fn shutdown_exports_queued_spans_then_drops_late_ones() {
    let fake = Fake::default();
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .batch(BatchConfig {
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    let mut r = p.reporter();
    r.report(records(100, 1));
    assert!(p.shutdown(Duration::from_secs(10)));
    assert_eq!(fake.spans(), 100);
    r.report(records(1, 1));
    assert_eq!(p.counters().dropped, 1);
}

#[test]
fn shutdown_deadline_abandons_retries() {
    let fake = Fake::default();
    fake.script
        .lock()
        .unwrap()
        .extend(std::iter::repeat_with(|| Err(ExportError::retryable("down"))).take(100));
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .retry(RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(200),
            multiplier: 1.0,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    p.reporter().report(records(1, 1));
    // The worker gives up retrying at the deadline instead of running all 100 attempts.
    assert!(p.shutdown(Duration::from_millis(800)));
    let c = p.counters();
    assert_eq!((c.exported, c.failed), (0, 1));
    assert!(*fake.attempts.lock().unwrap() >= 2);
}

#[test]
fn simple_mode_exports_each_report_without_waiting() {
    let fake = Fake::default();
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .simple(true)
        .batch(BatchConfig {
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    p.reporter().report(records(2, 1));
    // No flush: simple mode must export on its own.
    for _ in 0..500 {
        if fake.spans() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fake.spans(), 2);
    assert!(p.describe().contains("mode: simple"));
}

fn asks_for_an_hour() -> ExportError {
    ExportError::retryable("503").with_retry_after(Duration::from_secs(3600))
}

#[test]
fn a_server_delay_is_capped() {
    let fake = Fake::default();
    fake.script
        .lock()
        .unwrap()
        .push_back(Err(asks_for_an_hour()));
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .retry(RetryPolicy {
            max_retry_after: Duration::from_millis(50),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    p.reporter().report(records(3, 1));
    // `Retry-After: 3600` waits the cap (50 ms), then the retry succeeds.
    assert!(p.flush(Duration::from_secs(10)), "{:?}", p.counters());
    assert_eq!(p.counters().exported, 3);
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_flush_cuts_a_retry_wait_short() {
    let fake = Fake::default();
    fake.script
        .lock()
        .unwrap()
        .push_back(Err(asks_for_an_hour()));
    let p = Pipeline::builder().exporter(fake.clone()).build().unwrap();
    p.reporter().report(records(3, 1));
    // The first attempt fails and the retry waits (capped at 30 s); a flush wants the spans
    // now: the retry goes at once.
    while *fake.attempts.lock().unwrap() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(p.flush(Duration::from_secs(5)), "{:?}", p.counters());
    assert_eq!(p.counters().exported, 3);
    assert!(p.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_shutdown_past_its_deadline_counts_every_span_it_abandons() {
    // A collector that accepts and never answers.
    let fake = Fake {
        delay: Some(Duration::from_secs(3600)),
        ..Fake::default()
    };
    let p = Pipeline::builder()
        .exporter(fake.clone())
        .batch(BatchConfig {
            max_export_batch_size: 512,
            export_timeout: Duration::from_secs(600),
            ..BatchConfig::default()
        })
        .build()
        .unwrap();
    p.reporter().report(records(2048, 1));
    assert!(
        !p.shutdown(Duration::from_millis(300)),
        "gives up at the deadline"
    );
    let c = p.counters();
    // One batch was in flight (failed), the rest still queued (dropped): none unaccounted.
    assert_eq!(c.exported, 0);
    assert_eq!(c.failed + c.dropped, 2048, "{c:?}");
    assert!(c.failed >= 512, "{c:?}");
}
