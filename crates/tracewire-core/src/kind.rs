use crate::semconv;

/// The OpenTelemetry span kind, recorded on a fastrace span as the [`semconv::SPAN_KIND`]
/// property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// Work inside one process (the default when no kind is recorded).
    #[default]
    Internal,
    /// The server side of a synchronous call (HTTP server, gRPC server).
    Server,
    /// The client side of a synchronous call (HTTP client, gRPC client).
    Client,
    /// Sending a message to a broker.
    Producer,
    /// Receiving or processing a message from a broker.
    Consumer,
}

impl SpanKind {
    /// The property value written for this kind (`"server"`, `"client"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// Parses a property value written by [`SpanKind::as_str`] (case-insensitive).
    pub fn parse(value: &str) -> Option<SpanKind> {
        const ALL: [SpanKind; 5] = [
            SpanKind::Internal,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Producer,
            SpanKind::Consumer,
        ];
        ALL.into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(value))
    }

    /// The `(key, value)` property that records this kind on a fastrace span.
    pub const fn property(self) -> (&'static str, &'static str) {
        (semconv::SPAN_KIND, self.as_str())
    }
}

impl std::fmt::Display for SpanKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
