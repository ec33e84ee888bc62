//! The order pipeline: after a checkout the gateway sends an order event, and one worker per
//! broker (each its own process and `service.name`) handles it and passes it on.
//!
//! ```text
//! gateway ─NATS─▶ payments ─Redis stream─▶ warehouse ─RabbitMQ─▶ shipping ─MQTT─▶ notifications ─Kafka─▶ ledger
//!                 calls pricing (HTTP)     acks (XACK)           fails once, is    forwards            one batch span,
//!                                                                 redelivered                           a link per record
//! ```
//!
//! A hop whose broker is missing is left out: each sender sends to the next hop that runs
//! (the route is in [`ROUTE_ENV`]). Only the public APIs of the tracewire broker crates trace
//! the messages; this file adds no span of its own but `post_to_ledger`.

// Built without any broker (`--no-default-features`), the outbox and the workers are shells.
#![cfg_attr(
    not(any(
        feature = "nats",
        feature = "redis",
        feature = "rabbitmq",
        feature = "mqtt",
        feature = "kafka"
    )),
    allow(unused_variables, unreachable_code, dead_code)
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "rabbitmq")]
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
#[cfg(feature = "rabbitmq")]
use lapin::types::FieldTable;
#[cfg(feature = "rabbitmq")]
use lapin::{BasicProperties, ConnectionProperties};
#[cfg(feature = "kafka")]
use rdkafka::ClientConfig;
#[cfg(feature = "kafka")]
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
#[cfg(feature = "kafka")]
use rdkafka::consumer::{CommitMode, Consumer as _};
#[cfg(feature = "kafka")]
use rdkafka::error::RDKafkaErrorCode;
#[cfg(feature = "kafka")]
use rdkafka::message::Message as _;
#[cfg(feature = "kafka")]
use rdkafka::producer::FutureRecord;
#[cfg(feature = "kafka")]
use rdkafka::{Offset, TopicPartitionList};
#[cfg(feature = "mqtt")]
use rumqttc::v5::MqttOptions;
#[cfg(feature = "mqtt")]
use rumqttc::v5::mqttbytes::QoS;
#[cfg(feature = "mqtt")]
use rumqttc::v5::mqttbytes::v5::Packet;
#[cfg(any(feature = "nats", feature = "rabbitmq"))]
use tokio_stream::StreamExt as _;

use crate::BoxError;

/// The environment variable that gives every service the hops that run, in chain order:
/// `name=url` pairs separated by `;` (`nats=nats://127.0.0.1:4222;redis=redis://...`).
pub(crate) const ROUTE_ENV: &str = "TRACEWIRE_DEMO_PIPELINE";

/// A broker of the pipeline, in chain order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hop {
    Nats,
    Redis,
    Rabbitmq,
    Mqtt,
    Kafka,
}

impl Hop {
    /// Every hop, in chain order.
    pub(crate) const ALL: [Hop; 5] = [Hop::Nats, Hop::Redis, Hop::Rabbitmq, Hop::Mqtt, Hop::Kafka];

    /// Its name in `scripts/services.sh`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hop::Nats => "nats",
            Hop::Redis => "redis",
            Hop::Rabbitmq => "rabbitmq",
            Hop::Mqtt => "mosquitto",
            Hop::Kafka => "kafka",
        }
    }

    /// A name or alias (`mqtt`, `amqp`) of `scripts/services.sh`.
    pub(crate) fn from_name(name: &str) -> Option<Hop> {
        match name {
            "nats" => Some(Hop::Nats),
            "redis" => Some(Hop::Redis),
            "rabbitmq" | "amqp" => Some(Hop::Rabbitmq),
            "mosquitto" | "mqtt" => Some(Hop::Mqtt),
            "kafka" => Some(Hop::Kafka),
            _ => None,
        }
    }

    /// The cargo feature of the demo that builds this hop in (all are on by default).
    pub(crate) fn feature(self) -> &'static str {
        match self {
            Hop::Mqtt => "mqtt",
            hop => hop.name(),
        }
    }

    /// Whether this build of the demo has this hop.
    pub(crate) fn built(self) -> bool {
        match self {
            Hop::Nats => cfg!(feature = "nats"),
            Hop::Redis => cfg!(feature = "redis"),
            Hop::Rabbitmq => cfg!(feature = "rabbitmq"),
            Hop::Mqtt => cfg!(feature = "mqtt"),
            Hop::Kafka => cfg!(feature = "kafka"),
        }
    }

    /// The error of a hop this build does not have.
    fn not_built(self) -> BoxError {
        format!(
            "this demo was built without the `{}` feature",
            self.feature()
        )
        .into()
    }

    /// How the demo shows it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Hop::Nats => "NATS",
            Hop::Redis => "Redis stream",
            Hop::Rabbitmq => "RabbitMQ",
            Hop::Mqtt => "MQTT",
            Hop::Kafka => "Kafka",
        }
    }

    /// The worker that consumes this hop: its `--role` and `service.name`.
    pub(crate) fn worker(self) -> &'static str {
        match self {
            Hop::Nats => "payments",
            Hop::Redis => "warehouse",
            Hop::Rabbitmq => "shipping",
            Hop::Mqtt => "notifications",
            Hop::Kafka => "ledger",
        }
    }

    pub(crate) fn from_worker(role: &str) -> Option<Hop> {
        Hop::ALL.into_iter().find(|h| h.worker() == role)
    }

    /// Where the order events of this hop are sent: a subject, a stream, a queue, a topic.
    fn destination(self) -> &'static str {
        match self {
            Hop::Nats => "orders.placed",
            Hop::Redis => "orders.paid",
            Hop::Rabbitmq => "orders.packed",
            Hop::Mqtt => "shop/orders/shipped",
            Hop::Kafka => "orders.completed",
        }
    }

    /// The broker's standard port on 127.0.0.1.
    pub(crate) fn port(self) -> u16 {
        match self {
            Hop::Nats => 4222,
            Hop::Redis => 6379,
            Hop::Rabbitmq => 5672,
            Hop::Mqtt => 1883,
            Hop::Kafka => 9092,
        }
    }

    /// The variable that names the broker to use instead of probing (the tests' variables:
    /// `tracewire_test::skip`).
    pub(crate) fn url_env(self) -> &'static str {
        match self {
            Hop::Nats => "TRACEWIRE_NATS_URL",
            Hop::Redis => "TRACEWIRE_REDIS_URL",
            Hop::Rabbitmq => "TRACEWIRE_RABBITMQ_URL",
            Hop::Mqtt => "TRACEWIRE_MQTT_URL",
            Hop::Kafka => "TRACEWIRE_KAFKA_URL",
        }
    }

    /// The URL of this broker on 127.0.0.1:`port`, as its client takes it.
    pub(crate) fn url(self, port: u16) -> String {
        match self {
            Hop::Nats => format!("nats://127.0.0.1:{port}"),
            Hop::Redis => format!("redis://127.0.0.1:{port}"),
            Hop::Rabbitmq => format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            Hop::Mqtt => format!("mqtt://127.0.0.1:{port}"),
            Hop::Kafka => format!("127.0.0.1:{port}"),
        }
    }
}

/// The hops that run, with their URLs, in chain order.
pub(crate) type Route = Vec<(Hop, String)>;

/// `route` as [`ROUTE_ENV`] carries it.
pub(crate) fn route_to_env(route: &[(Hop, String)]) -> String {
    route
        .iter()
        .map(|(hop, url)| format!("{}={url}", hop.name()))
        .collect::<Vec<_>>()
        .join(";")
}

/// The route this process was given ([`ROUTE_ENV`]; empty: no pipeline).
pub(crate) fn route_from_env() -> Route {
    std::env::var(ROUTE_ENV)
        .unwrap_or_default()
        .split(';')
        .filter_map(|pair| {
            let (name, url) = pair.split_once('=')?;
            Some((Hop::from_name(name)?, url.to_owned()))
        })
        .collect()
}

/// The hop after `from` in `route` (`None`: the first one).
fn next_hop(route: &[(Hop, String)], from: Option<Hop>) -> Option<&(Hop, String)> {
    match from {
        None => route.first(),
        Some(from) => route.iter().skip_while(|(h, _)| *h != from).nth(1),
    }
}

/// `host` and port of `mqtt://HOST:PORT` (or `HOST:PORT`).
#[cfg(feature = "mqtt")]
fn host_port(url: &str) -> Result<(String, u16), BoxError> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or_else(|| format!("no port in {url}"))?;
    Ok((host.to_owned(), port.parse()?))
}

/// A connected client of one hop's broker, that sends order events to that hop.
pub(crate) enum Outbox {
    #[cfg(feature = "nats")]
    Nats(tracewire_nats::Client),
    #[cfg(feature = "redis")]
    Redis(tracewire_redis::Client),
    #[cfg(feature = "rabbitmq")]
    Rabbitmq {
        channel: tracewire_lapin::Channel,
        _connection: tracewire_lapin::Connection,
    },
    #[cfg(feature = "mqtt")]
    Mqtt(tracewire_mqtt::Client),
    #[cfg(feature = "kafka")]
    Kafka(tracewire_kafka::FutureProducer),
}

impl Outbox {
    /// The outbox of the hop after `from` (`None`: the gateway, the first hop), or `None` when
    /// `from` is the last hop that runs.
    #[cfg_attr(
        not(any(feature = "mqtt", feature = "kafka")),
        allow(unused_variables) // `role` names MQTT and Kafka clients
    )]
    pub(crate) async fn next(
        route: &[(Hop, String)],
        from: Option<Hop>,
        role: &str,
    ) -> Result<Option<(Hop, Outbox)>, BoxError> {
        let Some((hop, url)) = next_hop(route, from) else {
            return Ok(None);
        };
        let outbox = match hop {
            #[cfg(feature = "nats")]
            Hop::Nats => Outbox::Nats(tracewire_nats::Client::new(
                async_nats::connect(url.as_str()).await?,
            )),
            #[cfg(feature = "redis")]
            Hop::Redis => Outbox::Redis(
                tracewire_redis::Client::connect(redis::Client::open(url.as_str())?).await?,
            ),
            #[cfg(feature = "rabbitmq")]
            Hop::Rabbitmq => {
                let connection =
                    tracewire_lapin::Connection::connect(url, ConnectionProperties::default())
                        .await?;
                let channel = connection.create_channel().await?;
                // The publish span lasts until RabbitMQ confirms.
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                Outbox::Rabbitmq {
                    channel,
                    _connection: connection,
                }
            }
            #[cfg(feature = "mqtt")]
            Hop::Mqtt => {
                let (host, port) = host_port(url)?;
                let id = format!("tracewire-demo-{role}-{}", std::process::id());
                let (client, mut eventloop) =
                    tracewire_mqtt::Client::new(MqttOptions::new(id, host, port), 64);
                // rumqttc's event loop moves the publishes: it runs as long as this process.
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = eventloop.poll().await {
                            eprintln!("MQTT: {e}");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                });
                Outbox::Mqtt(client)
            }
            #[cfg(feature = "kafka")]
            Hop::Kafka => Outbox::Kafka(
                ClientConfig::new()
                    .set("bootstrap.servers", url)
                    .set("client.id", role)
                    .set("message.timeout.ms", "10000")
                    .create()?,
            ),
            #[allow(unreachable_patterns)] // with every feature on
            hop => return Err(hop.not_built()),
        };
        Ok(Some((*hop, outbox)))
    }

    /// Sends the order event `item` to `hop` (its send span is the child of the current
    /// span: the gateway's request, or the handler's process span).
    pub(crate) async fn send(&self, hop: Hop, item: &str) -> Result<(), BoxError> {
        let to = hop.destination();
        match self {
            #[cfg(feature = "nats")]
            Outbox::Nats(client) => {
                client.publish(to, item.to_owned().into()).await?;
                client.flush().await?;
            }
            #[cfg(feature = "redis")]
            Outbox::Redis(client) => {
                client.xadd(to, [("order", item)]).await?;
            }
            #[cfg(feature = "rabbitmq")]
            Outbox::Rabbitmq { channel, .. } => {
                channel
                    .basic_publish(
                        "".into(),
                        to.into(),
                        BasicPublishOptions::default(),
                        item.as_bytes(),
                        BasicProperties::default(),
                    )
                    .await?
                    .await?;
            }
            #[cfg(feature = "mqtt")]
            Outbox::Mqtt(client) => {
                client
                    .publish(to, QoS::AtLeastOnce, false, item.to_owned())
                    .await?;
            }
            #[cfg(feature = "kafka")]
            Outbox::Kafka(producer) => {
                // Partition 0: the one the ledger reads.
                let record = FutureRecord::<(), _>::to(to).payload(item).partition(0);
                producer
                    .send(record, Duration::from_secs(10))
                    .await
                    .map_err(|(e, _)| e)?;
            }
            #[allow(unreachable_patterns)] // with any feature on
            _ => return Err(hop.not_built()),
        }
        Ok(())
    }
}

/// What a worker needs to handle an order event.
#[cfg_attr(
    not(any(feature = "nats", feature = "redis", feature = "rabbitmq", feature = "mqtt")),
    allow(dead_code) // the ledger alone handles no single message
)]
struct Worker {
    hop: Hop,
    /// The pricing service (the payments worker calls it).
    pricing: Option<(reqwest_middleware::ClientWithMiddleware, SocketAddr)>,
    next: Option<(Hop, Outbox)>,
}

impl Worker {
    /// The handler, run inside the message's process span: what it calls and sends
    /// continues the trace.
    #[cfg_attr(
        not(any(feature = "nats", feature = "redis", feature = "rabbitmq", feature = "mqtt")),
        allow(dead_code) // the ledger alone handles no single message
    )]
    async fn handle(&self, item: &str) -> Result<String, BoxError> {
        let mut done = Vec::new();
        if let Some((client, pricing)) = &self.pricing {
            let res = client
                .get(format!("http://{pricing}/price/{item}"))
                .with_extension(tracewire_reqwest::UrlTemplate("/price/:item".into()))
                .send()
                .await?;
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!("pricing: {status} {body}").into());
            }
            done.push(format!("charged {body}"));
        }
        if let Some((hop, outbox)) = &self.next {
            outbox.send(*hop, item).await?;
            done.push(format!("sent to {} {}", hop.label(), hop.destination()));
        }
        Ok(done.join(", "))
    }

    /// Prints what became of `item` (the parent counts the `done` lines of the last hop).
    fn report(&self, item: &str, result: &Result<String, BoxError>) {
        match result {
            Ok(what) if what.is_empty() => println!("{item}: handled"),
            Ok(what) => println!("{item}: {what}"),
            Err(e) => println!("{item}: FAILED: {e}"),
        }
        if self.next.is_none() {
            println!("done {item}");
        }
    }
}

/// How the ledger takes its batches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchSize {
    /// At most this many records per batch.
    pub(crate) max: usize,
    /// How long after a batch's first record the others may come.
    pub(crate) linger: Duration,
}

/// Runs the worker of `hop`: connects its outbox (to the next hop that runs), subscribes,
/// prints `ready` (the parent waits for it before sending anything), then handles messages
/// until the process is stopped.
pub(crate) async fn run_worker(
    hop: Hop,
    pricing: Option<SocketAddr>,
    batch: BatchSize,
) -> Result<(), BoxError> {
    let route = route_from_env();
    let url = route
        .iter()
        .find(|(h, _)| *h == hop)
        .map(|(_, url)| url.clone())
        .ok_or_else(|| format!("{} is not on the route ({ROUTE_ENV})", hop.name()))?;
    let role = hop.worker();
    let pricing = match (hop, pricing) {
        (Hop::Nats, Some(addr)) => {
            // pricing speaks Jaeger's `uber-trace-id`, like the inventory's hop to it.
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(tracewire_reqwest::Tracing::with_config(
                    tracewire_reqwest::Config::new().tracer(crate::jaeger()),
                ))
                .build();
            Some((client, addr))
        }
        (Hop::Nats, None) => return Err("--role payments needs --next <pricing addr>".into()),
        _ => None,
    };
    let worker = Arc::new(Worker {
        hop,
        pricing,
        next: Outbox::next(&route, Some(hop), role).await?,
    });
    match hop {
        #[cfg(feature = "nats")]
        Hop::Nats => nats(worker, &url).await,
        #[cfg(feature = "redis")]
        Hop::Redis => redis_stream(worker, &url).await,
        #[cfg(feature = "rabbitmq")]
        Hop::Rabbitmq => rabbitmq(worker, &url).await,
        #[cfg(feature = "mqtt")]
        Hop::Mqtt => mqtt(worker, &url).await,
        #[cfg(feature = "kafka")]
        Hop::Kafka => kafka(worker, &url, batch).await,
        #[allow(unreachable_patterns)] // with every feature on
        hop => {
            let _ = (worker, batch);
            Err(hop.not_built())
        }
    }
}

fn ready() -> Result<(), BoxError> {
    use std::io::Write as _;
    println!("ready");
    std::io::stdout().flush()?;
    Ok(())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// payments: a core NATS subscription.
#[cfg(feature = "nats")]
async fn nats(worker: Arc<Worker>, url: &str) -> Result<(), BoxError> {
    let client = tracewire_nats::Client::new(async_nats::connect(url).await?);
    let mut orders = client.subscribe(worker.hop.destination()).await?;
    client.flush().await?;
    ready()?;
    while let Some(mut message) = orders.next().await {
        let item = text(&message.payload);
        let result = message.instrument(worker.handle(&item)).await;
        message.record_result(&result);
        worker.report(&item, &result);
    }
    Ok(())
}

/// warehouse: a Redis stream read by a consumer group, each entry acknowledged (XACK).
#[cfg(feature = "redis")]
async fn redis_stream(worker: Arc<Worker>, url: &str) -> Result<(), BoxError> {
    let client = tracewire_redis::Client::connect(redis::Client::open(url)?).await?;
    let stream = worker.hop.destination();
    let group = worker.hop.worker();
    let consumer = format!("{group}-{}", std::process::id());
    let mut orders = client.stream_group(stream, group, &consumer).await?;
    orders.create_group("$").await?;
    // Only what this run sends: an earlier run's entries are behind the group.
    let () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(stream)
        .arg(group)
        .arg("$")
        .query_async(&mut client.connection())
        .await?;
    ready()?;
    loop {
        for mut entry in orders.read(16, Duration::from_secs(1)).await? {
            let item = entry.field("order").map(text).unwrap_or_default();
            let result = entry.instrument(worker.handle(&item)).await;
            entry.record_result(&result);
            if result.is_ok() {
                entry.ack().await?;
            }
            worker.report(&item, &result);
        }
    }
}

/// shipping: a RabbitMQ consumer. The first delivery of each order fails (the courier's API
/// times out) and is requeued (`nack`); RabbitMQ delivers it again, `redelivered`, and that
/// attempt goes through: two process spans, children of the same publish.
#[cfg(feature = "rabbitmq")]
async fn rabbitmq(worker: Arc<Worker>, url: &str) -> Result<(), BoxError> {
    let connection =
        tracewire_lapin::Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let queue = worker.hop.destination();
    // This run's own queue: gone when the worker's connection closes.
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    let mut orders = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    ready()?;
    while let Some(delivery) = orders.next().await {
        let mut delivery = delivery?;
        let item = text(&delivery.data);
        if !delivery.redelivered {
            let result: Result<String, BoxError> = delivery.instrument(courier_times_out()).await;
            delivery.record_result(&result);
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            delivery.nack(requeue).await?;
            if let Err(e) = result {
                println!("{item}: {e}: requeued");
            }
            continue;
        }
        let result = delivery.instrument(worker.handle(&item)).await;
        delivery.record_result(&result);
        delivery.ack(BasicAckOptions::default()).await?;
        worker.report(&item, &result);
    }
    Ok(())
}

/// The first attempt of every shipment.
#[cfg(feature = "rabbitmq")]
async fn courier_times_out() -> Result<String, BoxError> {
    Err("the courier's API timed out".into())
}

/// notifications: an MQTT 5 subscription with a wildcard (`shop/orders/+` names the span).
#[cfg(feature = "mqtt")]
async fn mqtt(worker: Arc<Worker>, url: &str) -> Result<(), BoxError> {
    let (host, port) = host_port(url)?;
    let id = format!(
        "tracewire-demo-{}-{}",
        worker.hop.worker(),
        std::process::id()
    );
    let (client, mut eventloop) = tracewire_mqtt::Client::new(MqttOptions::new(id, host, port), 64);
    client.subscribe("shop/orders/+", QoS::AtLeastOnce).await?;
    loop {
        if let tracewire_mqtt::Event::Other(rumqttc::v5::Event::Incoming(Packet::SubAck(_))) =
            eventloop.poll().await?
        {
            break;
        }
    }
    ready()?;
    loop {
        if let tracewire_mqtt::Event::Message(mut message) = eventloop.poll().await? {
            // The event loop keeps moving packets while the handler runs.
            let worker = Arc::clone(&worker);
            tokio::spawn(async move {
                let item = text(&message.payload);
                let result = message.instrument(worker.handle(&item)).await;
                message.record_result(&result);
                worker.report(&item, &result);
            });
        }
    }
}

/// ledger: a Kafka consumer that takes the records in batches: one process span per batch,
/// with one link per record (each record's creation context, in its own order's trace).
#[cfg(feature = "kafka")]
async fn kafka(worker: Arc<Worker>, url: &str, batch: BatchSize) -> Result<(), BoxError> {
    let topic = worker.hop.destination();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", url)
        .set("group.id", worker.hop.worker())
        .set("client.id", worker.hop.worker())
        .set("enable.auto.commit", "false");
    let admin: AdminClient<_> = config.create()?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for result in admin.create_topics([&new], &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("creating {topic}: {code}").into()),
        }
    }
    let orders: tracewire_kafka::StreamConsumer = config.create()?;
    // Only what this run sends: start at partition 0's end (the topic may be new: retry until
    // its leader is known).
    let mut end = None;
    for _ in 0..50 {
        match orders.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
            Ok((_, high)) => {
                end = Some(high);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let end = end.ok_or_else(|| format!("Kafka: no leader for {topic} partition 0"))?;
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset(topic, 0, Offset::Offset(end))?;
    orders.assign(&partitions)?;
    ready()?;
    loop {
        let mut received = orders.recv_batch(batch.max, batch.linger).await?;
        let items: Vec<String> = received
            .messages()
            .iter()
            .map(|m| text(m.payload().unwrap_or_default()))
            .collect();
        let result = received.instrument(post_to_ledger(&items)).await;
        received.record_result(&result);
        received.commit(CommitMode::Async)?;
        println!("batch of {}: {}", items.len(), items.join(", "));
        for item in &items {
            worker.report(item, &result);
        }
    }
}

/// The ledger's handler: one entry per order of the batch.
#[cfg(feature = "kafka")]
#[fastrace::trace(short_name = true)]
async fn post_to_ledger(items: &[String]) -> Result<String, BoxError> {
    Ok(format!("{} posted to the ledger", items.len()))
}
