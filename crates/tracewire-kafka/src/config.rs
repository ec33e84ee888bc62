//! The tracing configuration of a Kafka client, read from its [`ClientConfig`].

use std::borrow::Cow;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use tracewire_messaging::Messaging;

/// librdkafka's `client.id` when the configuration sets none.
const DEFAULT_CLIENT_ID: &str = "rdkafka";

/// The Kafka tracing configuration of a client built from `config`, with
/// [`Tracer::global`](tracewire_core::Tracer::global): `messaging.system` = `kafka`, the send
/// verb `send`, `server.address`/`server.port` from the first of `bootstrap.servers`, and
/// `messaging.client.id` from `client.id` (librdkafka's default `rdkafka` when unset). Change
/// the tracer, relation or conventions on the result, then build the client with
/// `with_messaging`.
///
/// ```
/// let mut config = rdkafka::ClientConfig::new();
/// config
///     .set("bootstrap.servers", "127.0.0.1:9092,127.0.0.1:9093")
///     .set("client.id", "orders");
/// let kafka = tracewire_kafka::messaging(&config);
/// assert_eq!(kafka.system(), "kafka");
/// ```
pub fn messaging(config: &ClientConfig) -> Messaging {
    let mut m = Messaging::new("kafka").send_verb("send");
    if let Some((host, port)) = config
        .get("bootstrap.servers")
        .and_then(|s| s.split(',').map(str::trim).find(|s| !s.is_empty()))
        .map(server)
    {
        m = m.server(host.to_owned(), port);
    }
    let id = config
        .get("client.id")
        .filter(|id| !id.is_empty())
        .map_or(Cow::Borrowed(DEFAULT_CLIENT_ID), |id| {
            Cow::Owned(id.to_owned())
        });
    m.client_id(id)
}

/// `host` and port of one `bootstrap.servers` entry (`host:port`, `[v6]:port`, an optional
/// `PLAINTEXT://`-style prefix; no port: none recorded).
fn server(entry: &str) -> (&str, Option<u16>) {
    let entry = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    if let Some(v6) = entry.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (entry, None),
    }
}

/// The `error.type` of a client error: librdkafka's error code when there is one
/// (`MessageTimedOut`, `UnknownTopicOrPartition`, `QueueFull`, ...), else the error's kind.
pub(crate) fn error_type(e: &KafkaError) -> String {
    if let Some(code) = e.rdkafka_error_code() {
        return format!("{code:?}");
    }
    match e {
        KafkaError::Canceled => "Canceled",
        KafkaError::NoMessageReceived => "NoMessageReceived",
        KafkaError::PartitionEOF(_) => "PartitionEOF",
        KafkaError::ClientConfig(..) => "ClientConfig",
        KafkaError::ClientCreation(_) => "ClientCreation",
        KafkaError::Nul(_) => "Nul",
        KafkaError::Subscription(_) => "Subscription",
        _ => "KafkaError",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn bootstrap_servers_entries() {
        assert_eq!(server("127.0.0.1:9092"), ("127.0.0.1", Some(9092)));
        assert_eq!(server("PLAINTEXT://kafka:29092"), ("kafka", Some(29092)));
        assert_eq!(server("[::1]:9092"), ("::1", Some(9092)));
        assert_eq!(server("kafka"), ("kafka", None));
        assert_eq!(server("::1"), ("::1", None));
    }

    #[test]
    fn error_types_are_low_cardinality() {
        assert_eq!(
            error_type(&KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            )),
            "MessageTimedOut"
        );
        assert_eq!(error_type(&KafkaError::Canceled), "Canceled");
        assert_eq!(
            error_type(&KafkaError::NoMessageReceived),
            "NoMessageReceived"
        );
    }
}
