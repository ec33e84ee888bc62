//! [`Link`]: a span's reference to another span that is not its parent — the creation
//! context of a consumed message, each message of a batch, the inbound request of a new trace
//! started at an untrusted edge.

use std::borrow::Cow;

use fastrace::Span;
use fastrace::collector::SpanContext;

use crate::context::TraceContext;
use crate::reserved;
use crate::span::Attribute;

/// A link to another span, with attributes of its own (OpenTelemetry span links).
///
/// fastrace records a link as a bare [`SpanContext`]; the attributes and the remote flag
/// travel as [reserved properties](crate::reserved) that the exporters turn back into the link's
/// own fields. Links are given to the span when it starts ([`Tracer::start_root_with`],
/// [`Tracer::start_child_with`]), and only to a recorded span.
///
/// ```
/// use tracewire_core::{Link, SpanId, TraceContext, TraceId};
///
/// let message = TraceContext::new(TraceId(1), SpanId(2), true);
/// let link = Link::new(&message).with_attribute("messaging.message.id", "m-1");
/// assert_eq!(link.context().span_id, SpanId(2));
/// ```
///
/// [`Tracer::start_root_with`]: crate::Tracer::start_root_with
/// [`Tracer::start_child_with`]: crate::Tracer::start_child_with
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    context: SpanContext,
    remote: bool,
    attributes: Vec<Attribute>,
}

impl Link {
    /// A link to the span of `cx` (remote when `cx` was extracted from a carrier).
    pub fn new(cx: &TraceContext) -> Self {
        Link {
            context: SpanContext::from(cx),
            remote: cx.remote,
            attributes: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub fn with_attribute(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }

    /// Adds attributes.
    pub fn with_attributes(mut self, attributes: impl IntoIterator<Item = Attribute>) -> Self {
        self.attributes.extend(attributes);
        self
    }

    /// The linked span.
    pub fn context(&self) -> SpanContext {
        self.context
    }

    /// True when the linked span lives in another process.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The link's attributes.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// Adds the link to `span` (by value: no collector command).
    pub(crate) fn add_to(self, span: Span) -> Span {
        let Link {
            context,
            remote,
            attributes,
        } = self;
        let span = span.with_link(context);
        if attributes.is_empty() && !remote {
            return span;
        }
        span.with_properties(move || {
            let id = context.span_id;
            remote.then(|| reserved::link_remote(id)).into_iter().chain(
                attributes
                    .into_iter()
                    .map(move |(k, v)| (Cow::Owned(reserved::link_attribute_key(id, &k)), v)),
            )
        })
    }
}
