//! [`Messaging`]: one broker client's tracing configuration — the tracer, the broker's name and
//! address, and the choices the conventions leave open.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use tracewire_core::Tracer;
use tracewire_core::env::{self, OptIn};
use tracewire_core::intern::Interner;

/// Server addresses, ports and client ids: fixed per client, a handful per process.
static CONFIG: Interner = Interner::new(256);

/// How a process span relates to the message's creation context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The process span is the **child** of the creation context and also **links** it: a chain
    /// `first → second → third` is one trace (what FastStream's users see in Tempo), and views
    /// that follow links find the producer too. The conventions allow the parent for single
    /// messages; the link is what they recommend.
    #[default]
    ChildAndLink,
    /// The process span **links** the creation context and starts a new trace (or is the child
    /// of the ambient span, when one is current): one trace per delivery.
    LinksOnly,
}

/// Which messaging semantic conventions the spans carry: `OTEL_SEMCONV_STABILITY_OPT_IN`.
///
/// tracewire has always emitted the current conventions (semconv 1.27 and later: span names
/// `{operation} {destination}`, `messaging.operation.type`, `messaging.message.body.size`).
/// `messaging/dup` adds the older names that FastStream and pre-1.27 instrumentations still
/// emit, for dashboards built on them; span names and kinds stay current, as the conventions'
/// transition rules say.
///
/// | older key (`messaging/dup` only) | value | current key |
/// |---|---|---|
/// | `messaging.operation` | `publish`, `create`, `receive`, `process`, `settle` | `messaging.operation.type` |
/// | `messaging.destination_publish.name` | the concrete destination (process spans) | `messaging.destination.name` |
/// | `messaging.message.payload_size_bytes` | body size in bytes | `messaging.message.body.size` |
/// | `messaging.client_id` | the client id | `messaging.client.id` |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Conventions {
    /// The current conventions only (the default, and `messaging`).
    #[default]
    Current,
    /// The current conventions plus the older names (`messaging/dup`).
    WithLegacy,
}

impl Conventions {
    /// Reads `OTEL_SEMCONV_STABILITY_OPT_IN` for the `messaging` domain.
    pub fn from_env() -> Self {
        Self::from_opt_in(env::stability_opt_in_from_env("messaging"))
    }

    /// `messaging/dup` → [`WithLegacy`](Conventions::WithLegacy), anything else →
    /// [`Current`](Conventions::Current).
    pub fn from_opt_in(opt_in: OptIn) -> Self {
        match opt_in {
            OptIn::Duplicate => Conventions::WithLegacy,
            OptIn::Absent | OptIn::New => Conventions::Current,
        }
    }

    /// True when the older names are written too.
    pub fn legacy(self) -> bool {
        self == Conventions::WithLegacy
    }
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) tracer: Tracer,
    pub(crate) system: &'static str,
    pub(crate) server_address: Option<Cow<'static, str>>,
    /// The port, as recorded (fixed per client: formatted once).
    pub(crate) server_port: Option<Cow<'static, str>>,
    pub(crate) client_id: Option<Cow<'static, str>>,
    pub(crate) settle_spans: bool,
    pub(crate) relation: Relation,
    pub(crate) conventions: Conventions,
    pub(crate) send_verb: &'static str,
}

/// The tracing configuration of one broker client: which [`Tracer`] decides and propagates,
/// the broker (`messaging.system`, `server.address`, `server.port`, `messaging.client.id`), and
/// how process spans relate to messages. Broker crates build one and call
/// [`send`](Messaging::send), [`process`](Messaging::process) and friends with the facts of each
/// message; the rules live here. Cheap to clone (one `Arc`).
///
/// ```
/// use tracewire_core::{Sampler, Tracer};
/// use tracewire_messaging::{Messaging, Relation};
///
/// let nats = Messaging::new("nats")
///     .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn))
///     .server("127.0.0.1", Some(4222))
///     .relation(Relation::ChildAndLink);
/// assert_eq!(nats.system(), "nats");
/// ```
#[derive(Clone)]
pub struct Messaging {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Messaging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("Messaging")
            .field("system", &i.system)
            .field("server_address", &i.server_address)
            .field("server_port", &i.server_port)
            .field("client_id", &i.client_id)
            .field("settle_spans", &i.settle_spans)
            .field("relation", &i.relation)
            .field("conventions", &i.conventions)
            .field("send_verb", &i.send_verb)
            .field("tracer", &i.tracer)
            .finish()
    }
}

impl Messaging {
    /// A configuration for the broker `system` (`messaging.system`: `nats`, `redis`,
    /// `rabbitmq`, `kafka`, `mqtt`, ...), with [`Tracer::global`], the
    /// [`ChildAndLink`](Relation::ChildAndLink) relation, conventions from
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`, and `publish` as the send verb.
    pub fn new(system: &'static str) -> Self {
        Messaging {
            inner: Arc::new(Inner {
                tracer: Tracer::global(),
                system,
                server_address: None,
                server_port: None,
                client_id: None,
                settle_spans: false,
                relation: Relation::default(),
                conventions: Conventions::from_env(),
                send_verb: "publish",
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Uses this tracer (sampler, propagators, root options).
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.inner_mut().tracer = tracer;
        self
    }

    /// The broker's address (`server.address`, `server.port`).
    pub fn server(mut self, address: impl Into<Cow<'static, str>>, port: Option<u16>) -> Self {
        let inner = self.inner_mut();
        // Fixed per client: interned once here, so no span copies them.
        inner.server_address = Some(CONFIG.cow_owned(address.into()));
        inner.server_port = port.map(|p| CONFIG.cow_owned(Cow::Owned(p.to_string())));
        self
    }

    /// The client's id (`messaging.client.id`).
    pub fn client_id(mut self, id: impl Into<Cow<'static, str>>) -> Self {
        self.inner_mut().client_id = Some(CONFIG.cow_owned(id.into()));
        self
    }

    /// Also records each settlement (ack, nak, ...) as a CLIENT span of its own, the child of
    /// the process span, that lasts the settlement's round trip (`{verb} {destination}`,
    /// `messaging.operation.type` = `settle`). Off by default: the outcome is always on the
    /// process span (`messaging.settlement`), and a third span per message is a cost worth
    /// choosing (BENCHMARKS.md, "Messaging (NATS)").
    pub fn settle_spans(mut self, yes: bool) -> Self {
        self.inner_mut().settle_spans = yes;
        self
    }

    /// How process spans relate to the message ([`Relation`]).
    pub fn relation(mut self, relation: Relation) -> Self {
        self.inner_mut().relation = relation;
        self
    }

    /// [`Relation::LinksOnly`] when `yes`: a new trace per delivery, linked to the producer.
    pub fn links_only(self, yes: bool) -> Self {
        self.relation(if yes {
            Relation::LinksOnly
        } else {
            Relation::ChildAndLink
        })
    }

    /// Which conventions to write ([`Conventions`]).
    pub fn conventions(mut self, conventions: Conventions) -> Self {
        self.inner_mut().conventions = conventions;
        self
    }

    /// The broker's verb for sending (`messaging.operation.name` and the first word of send
    /// span names): `publish` by default, `send` for Kafka.
    pub fn send_verb(mut self, verb: &'static str) -> Self {
        self.inner_mut().send_verb = verb;
        self
    }

    /// The tracer.
    pub fn get_tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    /// `messaging.system`.
    pub fn system(&self) -> &'static str {
        self.inner.system
    }

    /// The relation of process spans to messages.
    pub fn get_relation(&self) -> Relation {
        self.inner.relation
    }

    /// True when settlements get spans of their own ([`settle_spans`](Messaging::settle_spans)).
    pub fn has_settle_spans(&self) -> bool {
        self.inner.settle_spans
    }
}
