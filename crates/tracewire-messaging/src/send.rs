//! The producer side: a send span per message (or a `create` span per message and one send
//! span for a batch), and the creation context each message carries.

use std::borrow::Cow;

use tracewire_core::{Extractor, Injector, Link, PendingSpan, SpanKind, TraceContext};

use crate::config::Messaging;
use crate::facts::{self, Destination, Lazy, MessageInfo, Operation};

/// The span of a message (or a batch) on its way to the broker. Made by
/// [`Messaging::send`], [`Messaging::request`] and [`Messaging::send_batch`]; end it when the
/// broker has accepted the message (a JetStream ack, a publisher confirm, a delivery report) or
/// when the client has handed it over, and record a failure first.
///
/// Dropped without [`end`](SendSpan::end), it ends as it is.
#[derive(Debug)]
pub struct SendSpan {
    span: PendingSpan,
    context: Option<TraceContext>,
}

impl SendSpan {
    /// The context the message carries (`None` for a batch span, whose messages each carry
    /// their own `create` span's).
    pub fn context(&self) -> Option<&TraceContext> {
        self.context.as_ref()
    }

    /// True when the span is recorded.
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// Adds an attribute learnt later (the stream and sequence of a JetStream ack).
    pub fn set(&mut self, key: &'static str, value: impl Into<Cow<'static, str>>) {
        self.span.set(key, value);
    }

    /// Records that the broker refused the message or the client could not send it.
    pub fn record_error(
        &mut self,
        error_type: impl Into<Cow<'static, str>>,
        description: impl Into<Cow<'static, str>>,
    ) {
        self.span.record_error(error_type, description);
    }

    /// Ends the span.
    pub fn end(mut self) {
        self.span.end();
    }
}

/// The creation context already in `headers`, if any: never overwritten, linked instead.
fn existing_context<C: Extractor + ?Sized>(
    config: &Messaging,
    headers: &C,
) -> Option<TraceContext> {
    // An empty carrier (the common case) has nothing to extract.
    headers.keys().next()?;
    config.inner.tracer.extract(headers).context
}

impl Messaging {
    /// Starts the PRODUCER span of one message (`{verb} {destination}`,
    /// `messaging.operation.type` = `send`), as the child of the current context or as a new
    /// trace, and writes its context into `headers` with the configured propagators, other
    /// headers untouched. A message published inside a handler is thereby the child of that
    /// handler's process span and carries *this* span's context (hop by hop, never the
    /// upstream origin's).
    ///
    /// When `headers` already hold a creation context (the caller made one), it is kept as is
    /// and the send span links it.
    ///
    /// ```
    /// use tracewire_core::{Pairs, Sampler, Tracer};
    /// use tracewire_messaging::{Destination, MessageInfo, Messaging};
    ///
    /// let nats = Messaging::new("nats").tracer(Tracer::new().with_sampler(Sampler::AlwaysOn));
    /// let mut headers = Pairs::new();
    /// let span = nats.send(&MessageInfo::new(Destination::new("orders")), &mut headers);
    /// let cx = span.context().unwrap().clone();
    /// assert_eq!(
    ///     headers.get("traceparent").unwrap(),
    ///     format!("00-{:032x}-{:016x}-03", cx.trace_id.0, cx.span_id.0)
    /// );
    /// span.end();
    /// ```
    pub fn send<C>(&self, info: &MessageInfo<'_>, headers: &mut C) -> SendSpan
    where
        C: Extractor + Injector + ?Sized,
    {
        self.send_lazy(|| *info, headers)
    }

    /// [`send`](Messaging::send) with the message's facts gathered only when they are needed
    /// (a recorded span, or a custom sampler reading the name): an unsampled send costs the
    /// context written into the headers and nothing else. `info` is called at most once.
    pub fn send_lazy<'i, C>(
        &self,
        info: impl FnOnce() -> MessageInfo<'i>,
        headers: &mut C,
    ) -> SendSpan
    where
        C: Extractor + Injector + ?Sized,
    {
        self.start_send(
            Operation::send(self.inner.send_verb),
            SpanKind::Producer,
            &Lazy::new(info),
            headers,
        )
    }

    /// Starts the CLIENT span of a request that expects a reply (NATS request/reply: named
    /// `request {destination}`, `messaging.operation.type` = `send`); its context goes into the
    /// request's headers like [`send`](Messaging::send)'s. End it when the reply arrives.
    pub fn request<C>(&self, info: &MessageInfo<'_>, headers: &mut C) -> SendSpan
    where
        C: Extractor + Injector + ?Sized,
    {
        self.start_send(
            Operation::send("request"),
            SpanKind::Client,
            &Lazy::new(|| *info),
            headers,
        )
    }

    fn start_send<'i, C, F>(
        &self,
        op: Operation,
        kind: SpanKind,
        info: &Lazy<'i, F>,
        headers: &mut C,
    ) -> SendSpan
    where
        C: Extractor + Injector + ?Sized,
        F: FnOnce() -> MessageInfo<'i>,
    {
        let inner = &*self.inner;
        let existing = existing_context(self, headers);
        let child = inner.tracer.start_child_or_root(
            || facts::span_name(op, &info.get().destination),
            kind,
            || existing.iter().map(Link::new).collect(),
        );
        let mut span = PendingSpan::new(child.span);
        span.append(|| facts::span_attributes(inner, op, &info.get(), None));
        if existing.is_none() {
            if let Some(cx) = &child.context {
                inner.tracer.inject(cx, headers);
            }
        }
        SendSpan {
            span,
            context: child.context,
        }
    }

    /// Sends a batch: a PRODUCER `create` span per message (ended at once; its context goes
    /// into that message's headers, unless they hold one already), then one CLIENT `send` span
    /// that links every message's creation context, with `messaging.batch.message_count`
    /// and the facts of each message on its link. Returns the send span.
    pub fn send_batch<'m, C>(
        &self,
        messages: impl IntoIterator<Item = (MessageInfo<'m>, &'m mut C)>,
    ) -> SendSpan
    where
        C: Extractor + Injector + ?Sized + 'm,
    {
        let inner = &*self.inner;
        let mut links = Vec::new();
        let mut count = 0;
        let mut destination: Option<Destination<'m>> = None;
        let mut mixed = false;
        for (info, headers) in messages {
            count += 1;
            match destination {
                None => destination = Some(info.destination),
                Some(d) => mixed |= d.name != info.destination.name,
            }
            let created = match existing_context(self, headers) {
                Some(cx) => Some(cx),
                None => {
                    let child = inner.tracer.start_child_or_root(
                        || facts::span_name(Operation::CREATE, &info.destination),
                        SpanKind::Producer,
                        Vec::new,
                    );
                    let mut span = PendingSpan::new(child.span);
                    span.append(|| facts::span_attributes(inner, Operation::CREATE, &info, None));
                    span.end();
                    if let Some(cx) = &child.context {
                        inner.tracer.inject(cx, headers);
                    }
                    child.context
                }
            };
            if let Some(cx) = created.filter(TraceContext::is_sampled) {
                let batch = destination.unwrap_or_default();
                links.push(
                    Link::new(&cx).with_attributes(facts::link_attributes(&info, &batch, false)),
                );
            }
        }
        let destination = match destination {
            Some(d) if !mixed => d,
            _ => Destination::default(),
        };
        let op = Operation::send(inner.send_verb);
        let child = inner.tracer.start_child_or_root(
            || facts::span_name(op, &destination),
            SpanKind::Client,
            || links,
        );
        let mut span = PendingSpan::new(child.span);
        span.append(|| {
            facts::span_attributes(inner, op, &MessageInfo::new(destination), Some(count))
        });
        SendSpan {
            span,
            context: None,
        }
    }
}
