//! The messaging rules over an in-memory carrier: span trees, links, relations, the creation
//! context on the wire, unsampled and garbage input. The broker crates test the same rules
//! over real brokers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, SystemTime};

use fastrace::collector::SpanRecord;
use tracewire_core::reserved::{self, Reserved};
use tracewire_core::{Baggage, Format, Pairs, Propagators, Sampler, SpanId, TraceContext, Tracer};
use tracewire_messaging::{Conventions, Destination, MessageInfo, Messaging, Relation};
use tracewire_test::{Spans, capture, property};

fn nats(sampler: Sampler) -> Messaging {
    Messaging::new("nats")
        .tracer(Tracer::new().with_sampler(sampler))
        .server("127.0.0.1", Some(4222))
        .conventions(Conventions::Current)
}

fn info(subject: &str) -> MessageInfo<'_> {
    MessageInfo::new(Destination::new(subject))
}

/// The links of a record as `(span id, attributes sorted)`, decoded from its properties.
fn links(r: &SpanRecord) -> Vec<(SpanId, Vec<String>)> {
    r.links
        .iter()
        .map(|l| {
            let mut attrs: Vec<String> = r
                .properties
                .iter()
                .filter_map(|(k, v)| match reserved::decode(k, v)? {
                    Reserved::LinkAttribute { link, key, value } if link == l.span_id => {
                        Some(format!("{key}={value}"))
                    }
                    _ => None,
                })
                .collect();
            attrs.sort();
            (l.span_id, attrs)
        })
        .collect()
}

/// A handler: processes `headers` from `from`, then publishes to `to` from inside the span.
fn hop(m: &Messaging, from: &str, headers: &Pairs, to: Option<&str>) -> Pairs {
    let span = m.process(&info(from), Some(headers));
    let _in = span.enter();
    let mut out = Pairs::new();
    if let Some(to) = to {
        m.send(&info(to), &mut out).end();
    }
    out
}

#[test]
fn a_chain_of_handlers_is_one_trace_hop_by_hop() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let mut first = Pairs::new();
    m.send(&info("first"), &mut first).end();
    let second = hop(&m, "first", &first, Some("second"));
    let third = hop(&m, "second", &second, Some("third"));
    hop(&m, "third", &third, None);
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 1, "{}", spans.tree(&[]));
    assert_eq!(
        spans.tree(&["messaging.operation.type"]),
        "publish first [producer] messaging.operation.type=send
  process first [consumer] messaging.operation.type=process
    publish second [producer] messaging.operation.type=send
      process second [consumer] messaging.operation.type=process
        publish third [producer] messaging.operation.type=send
          process third [consumer] messaging.operation.type=process
"
    );
    // Each hop carries the context of its own send span, not the first producer's.
    for (sent, headers) in [("publish second", &second), ("publish third", &third)] {
        let span_id = spans.expect(sent).span_id;
        assert!(
            headers
                .get("traceparent")
                .unwrap()
                .contains(&format!("{:016x}", span_id.0)),
            "{sent}: {headers:?}"
        );
    }
    // And each process span links the creation context it is the child of.
    for name in ["process first", "process second", "process third"] {
        let r = spans.expect(name);
        assert_eq!(links(r), [(r.parent_id, vec![])], "{name}");
    }
}

#[test]
fn attributes_follow_the_current_conventions() {
    let m = nats(Sampler::AlwaysOn).client_id("svc-1");
    let cap = capture();
    let mut headers = Pairs::new();
    let sent = MessageInfo {
        id: Some("m-1"),
        conversation_id: Some("c-1"),
        body_size: Some(11),
        ..info("orders.eu")
    };
    m.send(&sent, &mut headers).end();
    let got = MessageInfo {
        destination: Destination::new("orders.eu").with_template("orders.*"),
        consumer_group: Some("workers"),
        delivery_count: Some(2),
        published_at: Some(SystemTime::now() - Duration::from_millis(1500)),
        ..sent
    };
    m.process(&got, Some(&headers)).end();
    let spans = cap.finish();
    let keys = [
        "messaging.system",
        "messaging.operation.type",
        "messaging.operation.name",
        "messaging.destination.name",
        "messaging.destination.template",
        "messaging.message.id",
        "messaging.message.conversation_id",
        "messaging.message.body.size",
        "messaging.consumer.group.name",
        "messaging.client.id",
        "messaging.message.delivery_count",
        "server.address",
        "server.port",
    ];
    assert_eq!(
        spans.tree(&keys),
        "publish orders.eu [producer] messaging.system=nats messaging.operation.type=send \
messaging.operation.name=publish messaging.destination.name=orders.eu messaging.message.id=m-1 \
messaging.message.conversation_id=c-1 messaging.message.body.size=11 messaging.client.id=svc-1 \
server.address=127.0.0.1 server.port=4222
  process orders.* [consumer] messaging.system=nats messaging.operation.type=process \
messaging.operation.name=process messaging.destination.name=orders.eu \
messaging.destination.template=orders.* messaging.message.id=m-1 \
messaging.message.conversation_id=c-1 messaging.message.body.size=11 \
messaging.consumer.group.name=workers messaging.client.id=svc-1 \
messaging.message.delivery_count=2 server.address=127.0.0.1 server.port=4222
"
    );
    let queued: u64 = property(
        spans.expect("process orders.*"),
        "messaging.message.queue_time_ms",
    )
    .unwrap()
    .parse()
    .unwrap();
    assert!((1500..60_000).contains(&queued), "{queued}");
    for r in &spans.records {
        for old in ["messaging.operation", "messaging.destination_publish.name"] {
            assert_eq!(property(r, old), None, "{old} only with messaging/dup");
        }
    }
}

#[test]
fn messaging_dup_adds_the_older_names() {
    let m = nats(Sampler::AlwaysOn)
        .client_id("svc-1")
        .conventions(Conventions::WithLegacy);
    let cap = capture();
    let mut headers = Pairs::new();
    let sent = MessageInfo {
        body_size: Some(5),
        ..info("orders")
    };
    m.send(&sent, &mut headers).end();
    m.process(&sent, Some(&headers)).end();
    let spans = cap.finish();
    let keys = [
        "messaging.operation",
        "messaging.operation.type",
        "messaging.destination_publish.name",
        "messaging.message.payload_size_bytes",
        "messaging.message.body.size",
        "messaging.client_id",
    ];
    assert_eq!(
        spans.tree(&keys),
        "publish orders [producer] messaging.operation=publish messaging.operation.type=send \
messaging.message.payload_size_bytes=5 messaging.message.body.size=5 messaging.client_id=svc-1
  process orders [consumer] messaging.operation=process messaging.operation.type=process \
messaging.destination_publish.name=orders messaging.message.payload_size_bytes=5 \
messaging.message.body.size=5 messaging.client_id=svc-1
"
    );
}

#[test]
fn temporary_destinations_never_name_spans() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let mut headers = Pairs::new();
    let inbox = MessageInfo::new(Destination::new("_INBOX.x7.y9").temporary(true));
    m.request(&info("svc.echo"), &mut headers).end();
    m.send(&inbox, &mut headers.clone()).end();
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[
            "messaging.destination.name",
            "messaging.destination.temporary"
        ]),
        "request svc.echo [client] messaging.destination.name=svc.echo
publish [producer] messaging.destination.name=_INBOX.x7.y9 messaging.destination.temporary=true
"
    );
}

#[test]
fn links_only_starts_a_trace_per_delivery() {
    let m = nats(Sampler::AlwaysOn).relation(Relation::LinksOnly);
    let cap = capture();
    let mut headers = Pairs::new();
    m.send(&info("orders"), &mut headers).end();
    m.process(&info("orders"), Some(&headers)).end();
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 2);
    let sent = spans.expect("publish orders");
    let processed = spans.expect("process orders");
    assert_eq!(processed.parent_id, SpanId(0));
    assert_eq!(processed.links[0].trace_id, sent.trace_id);
    assert_eq!(processed.links[0].span_id, sent.span_id);
}

#[test]
fn redeliveries_link_the_same_creation_context() {
    let m = nats(Sampler::AlwaysOn).settle_spans(true);
    let cap = capture();
    let mut headers = Pairs::new();
    m.send(&info("jobs"), &mut headers).end();
    for attempt in [1, 2] {
        let delivered = MessageInfo {
            delivery_count: Some(attempt),
            ..info("jobs")
        };
        let mut span = m.process(&delivered, Some(&headers));
        let verb = if attempt == 1 { "nak" } else { "ack" };
        if attempt == 1 {
            span.record_result(&Err::<(), _>(std::io::Error::other("db down")));
        }
        span.settle(verb).end();
        span.end();
    }
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&[
            "messaging.message.delivery_count",
            "messaging.settlement",
            "messaging.operation.name",
            "error.type",
        ]),
        "publish jobs [producer] messaging.operation.name=publish
  process jobs [consumer] messaging.message.delivery_count=1 messaging.settlement=nak messaging.operation.name=process error.type=std::io::error::Error
    nak jobs [client] messaging.operation.name=nak
  process jobs [consumer] messaging.message.delivery_count=2 messaging.settlement=ack messaging.operation.name=process
    ack jobs [client] messaging.operation.name=ack
"
    );
    let sent = spans.expect("publish jobs").span_id;
    let attempts: Vec<_> = spans
        .records
        .iter()
        .filter(|r| r.name == "process jobs")
        .collect();
    assert_eq!(attempts.len(), 2);
    for r in attempts {
        assert_eq!(r.links.len(), 1);
        assert_eq!(r.links[0].span_id, sent);
    }
    assert_eq!(
        spans
            .records
            .iter()
            .find(|r| r.name == "process jobs" && !r.events.is_empty())
            .map(|r| r.events[0].name.to_string()),
        Some("exception".into())
    );
}

#[test]
fn settle_spans_are_opt_in_and_the_outcome_is_always_recorded() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let mut headers = Pairs::new();
    m.send(&info("jobs"), &mut headers).end();
    let mut span = m.process(&info("jobs"), Some(&headers));
    span.settle("term").end();
    span.end();
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.settlement"]),
        "publish jobs [producer]\n  process jobs [consumer] messaging.settlement=term\n"
    );
}

#[test]
fn a_creation_context_in_the_headers_is_kept_and_linked() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut headers = Pairs::from_pairs([("traceparent", tp), ("x-app", "1")]);
    m.send(&info("orders"), &mut headers).end();
    assert_eq!(headers.get("traceparent"), Some(tp), "never overwritten");
    assert_eq!(headers.get("x-app"), Some("1"), "other headers kept");
    let spans = cap.finish();
    let r = spans.expect("publish orders");
    assert_eq!(r.links.len(), 1);
    assert_eq!(r.links[0].span_id, SpanId(0x00f067aa0ba902b7));
}

#[test]
fn the_configured_propagators_write_and_read() {
    let tracer = Tracer::new()
        .with_sampler(Sampler::AlwaysOn)
        .with_propagators(Propagators::new([Format::B3, Format::Jaeger]));
    let m = Messaging::new("nats").tracer(tracer);
    let cap = capture();
    let mut headers = Pairs::new();
    m.send(&info("orders"), &mut headers).end();
    assert!(headers.get("traceparent").is_none());
    assert!(headers.get("b3").is_some() && headers.get("uber-trace-id").is_some());
    m.process(&info("orders"), Some(&headers)).end();
    let spans = cap.finish();
    assert_eq!(spans.trace_ids().len(), 1);
    assert_eq!(
        spans.tree(&[]),
        "publish orders [producer]\n  process orders [consumer]\n"
    );
}

#[test]
fn baggage_flows_through_unchanged() {
    let m = nats(Sampler::AlwaysOn);
    let _cap = capture();
    let mut cx = TraceContext::new(tracewire_core::TraceId(7), SpanId(9), true);
    cx.baggage = Baggage::parse_lines(["tenant=acme,user=alice"]);
    let mut first = Pairs::new();
    {
        let _in = cx.attach();
        m.send(&info("first"), &mut first).end();
    }
    assert_eq!(first.get("baggage"), Some("tenant=acme,user=alice"));
    let second = hop(&m, "first", &first, Some("second"));
    assert_eq!(second.get("baggage"), Some("tenant=acme,user=alice"));
    assert_eq!(
        second.0.len(),
        2,
        "traceparent and baggage, nothing else: {second:?}"
    );
}

#[test]
fn unsampled_records_nothing_and_propagates_minus_00() {
    let m = nats(Sampler::AlwaysOff);
    let cap = capture();
    let mut first = Pairs::new();
    let send = m.send(&info("first"), &mut first);
    assert!(!send.is_recording());
    send.end();
    let tp = first.get("traceparent").unwrap().to_owned();
    assert!(tp.ends_with("-02") || tp.ends_with("-00"), "{tp}");
    let second = hop(&m, "first", &first, Some("second"));
    let tp2 = second.get("traceparent").unwrap();
    assert_eq!(tp2[..35], tp[..35], "same trace");
    assert_ne!(tp2, tp, "a new span id per hop");
    assert!(cap.finish().is_empty());
}

#[test]
fn garbage_headers_start_a_new_trace_and_leave_the_message_alone() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let huge = "a".repeat(1 << 20);
    let headers = Pairs::from_pairs([
        ("traceparent", "00-zzzz-yyyy-01"),
        ("tracestate", huge.as_str()),
        ("baggage", "=;,==,,%%%"),
        ("traceparent", huge.as_str()),
    ]);
    let before = headers.clone();
    let span = m.process(&info("orders"), Some(&headers));
    assert!(span.context().is_valid());
    span.end();
    assert_eq!(headers, before);
    let spans = cap.finish();
    assert_eq!(spans.tree(&[]), "process orders [consumer]\n");
    assert_eq!(spans.records[0].parent_id, SpanId(0));
    assert!(spans.records[0].links.is_empty());
}

#[test]
fn an_ambient_span_is_linked_when_the_message_context_is_the_parent() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let mut headers = Pairs::new();
    m.send(&info("orders"), &mut headers).end();
    let ambient = TraceContext::new(tracewire_core::TraceId(0xa), SpanId(0xb), true);
    {
        let _in = ambient.clone().attach();
        m.process(&info("orders"), Some(&headers)).end();
        // A message without context joins the ambient trace instead.
        m.process(&info("orders"), Some(&Pairs::new())).end();
    }
    let spans = cap.finish();
    let processed: Vec<&SpanRecord> = spans
        .records
        .iter()
        .filter(|r| r.name == "process orders")
        .collect();
    let with_context = processed.iter().find(|r| r.links.len() == 2).unwrap();
    assert_eq!(with_context.links[1].span_id, SpanId(0xb));
    let without = processed.iter().find(|r| r.links.is_empty()).unwrap();
    assert_eq!(
        (without.trace_id, without.parent_id),
        (ambient.trace_id, ambient.span_id)
    );
}

#[test]
fn batches_send_create_spans_and_process_with_one_link_each() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let mut carriers = vec![Pairs::new(), Pairs::new(), Pairs::new()];
    let ids = ["m-0", "m-1", "m-2"];
    let root = TraceContext::new(tracewire_core::TraceId(0x5), SpanId(0x6), true);
    {
        let _in = root.attach();
        let infos = ids.iter().map(|id| MessageInfo {
            id: Some(id),
            ..info("jobs")
        });
        m.send_batch(infos.zip(carriers.iter_mut())).end();
    }
    let consumed: Vec<(MessageInfo<'_>, Option<&Pairs>)> = ids
        .iter()
        .zip(&carriers)
        .map(|(id, h)| {
            let i = MessageInfo {
                id: Some(id),
                body_size: Some(3),
                ..info("jobs")
            };
            (i, Some(h))
        })
        .collect();
    m.process_batch(Destination::new("jobs"), &consumed).end();
    let spans = cap.finish();
    assert_eq!(
        spans.tree(&["messaging.batch.message_count", "messaging.message.id"]),
        "create jobs [producer] (parent: 0000000000000006) messaging.message.id=m-0
create jobs [producer] (parent: 0000000000000006) messaging.message.id=m-1
create jobs [producer] (parent: 0000000000000006) messaging.message.id=m-2
publish jobs [client] (parent: 0000000000000006) messaging.batch.message_count=3
process jobs [consumer] messaging.batch.message_count=3
"
    );
    let creates: Vec<SpanId> = spans
        .records
        .iter()
        .filter(|r| r.name == "create jobs")
        .map(|r| r.span_id)
        .collect();
    let send = spans.expect("publish jobs");
    assert_eq!(
        links(send),
        creates
            .iter()
            .zip(ids)
            .map(|(s, id)| (*s, vec![format!("messaging.message.id={id}")]))
            .collect::<Vec<_>>()
    );
    let process = spans.expect("process jobs");
    assert_eq!(
        links(process),
        creates
            .iter()
            .zip(ids)
            .map(|(s, id)| {
                (
                    *s,
                    vec![
                        "messaging.message.body.size=3".to_owned(),
                        format!("messaging.message.id={id}"),
                    ],
                )
            })
            .collect::<Vec<_>>()
    );
    for (c, id) in carriers.iter().zip(creates) {
        assert!(
            c.get("traceparent")
                .unwrap()
                .contains(&format!("{:016x}", id.0))
        );
    }
}

#[tokio::test]
async fn the_handler_runs_inside_the_span_across_awaits() {
    let m = nats(Sampler::AlwaysOn);
    let cap = capture();
    let mut headers = Pairs::new();
    m.send(&info("orders"), &mut headers).end();
    let span = m.process(&info("orders"), Some(&headers));
    let expected = span.context().clone();

    #[fastrace::trace(name = "load")]
    async fn load() -> Option<TraceContext> {
        tokio::task::yield_now().await;
        TraceContext::current()
    }

    let seen = span.instrument(load()).await.unwrap();
    assert_eq!(seen.trace_id, expected.trace_id);
    assert_ne!(
        seen.span_id, expected.span_id,
        "the fastrace child's own id"
    );
    assert_eq!(TraceContext::current(), None);
    drop(span);
    let spans: Spans = cap.finish();
    assert_eq!(
        spans.tree(&[]),
        "publish orders [producer]\n  process orders [consumer]\n    load [internal]\n"
    );
}

#[test]
fn lazy_facts_are_gathered_only_for_recorded_spans() {
    let off = nats(Sampler::AlwaysOff);
    let mut headers = Pairs::new();
    let send = off.send_lazy(|| unreachable!("unsampled: no facts"), &mut headers);
    assert!(
        headers.get("traceparent").is_some(),
        "the context still travels"
    );
    send.end();
    off.process_lazy(|| unreachable!("unsampled: no facts"), Some(&headers))
        .end();
    let on = nats(Sampler::AlwaysOn);
    let cap = capture();
    let mut calls = 0;
    on.send_lazy(
        || {
            calls += 1;
            info("orders")
        },
        &mut Pairs::new(),
    )
    .end();
    assert_eq!(calls, 1, "once, for the name and the attributes");
    assert_eq!(cap.finish().tree(&[]), "publish orders [producer]\n");
}
