//! Lists as work queues: blocking pops (BLPOP, BRPOP), batch pops (BLMPOP ... COUNT n) and
//! the reliable-queue move (BLMOVE) with its acknowledgement (LREM).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

use crate::client::{Client, error_type};
use crate::message::{Batch, Delivery, Message, process_batch};

/// A consumer of one list, on a connection of its own: made by [`Client::list`].
///
/// Each pop waits up to its timeout (`Duration::ZERO`: for ever) and yields `None` when it
/// ran out; what it yields comes with its process span (`process {list}`), the child of the
/// producer's send span when the element carried one.
///
/// ```no_run
/// # async fn run(client: tracewire_redis::Client) -> redis::RedisResult<()> {
/// use std::time::Duration;
///
/// let mut jobs = client.list("jobs").await?;
/// while let Some(mut job) = jobs.pop(Duration::from_secs(5)).await? {
///     let result: Result<(), std::io::Error> = job.instrument(async { Ok(()) }).await;
///     job.record_result(&result);
/// }
/// # Ok(()) }
/// ```
pub struct ListConsumer {
    conn: MultiplexedConnection,
    list: String,
    client: Client,
}

impl fmt::Debug for ListConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListConsumer")
            .field("list", &self.list)
            .finish()
    }
}

/// Seconds as Redis's blocking commands take them (decimals since Redis 6).
fn seconds(timeout: Duration) -> f64 {
    timeout.as_secs_f64()
}

/// A bulk string's bytes.
fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// `[key, x]` (RESP2 array, or a one-entry RESP3 map) → `x`.
fn second(v: Value) -> Option<Value> {
    match v {
        Value::Array(items) => items.into_iter().nth(1),
        Value::Map(mut entries) if entries.len() == 1 => entries.pop().map(|(_, v)| v),
        _ => None,
    }
}

impl ListConsumer {
    pub(crate) async fn new(client: &Client, list: &str) -> RedisResult<Self> {
        Ok(ListConsumer {
            conn: client.consumer_connection().await?,
            list: list.to_owned(),
            client: client.clone(),
        })
    }

    /// The list.
    pub fn list(&self) -> &str {
        &self.list
    }

    fn delivery(&self, payload: Vec<u8>) -> Delivery {
        Delivery::open(&self.client, self.list.clone(), None, payload)
    }

    async fn pop_with(&mut self, command: &str, timeout: Duration) -> RedisResult<Option<Message>> {
        let reply: Value = redis::cmd(command)
            .arg(&self.list)
            .arg(seconds(timeout))
            .query_async(&mut self.conn)
            .await?;
        Ok(second(reply)
            .and_then(bytes)
            .map(|payload| self.delivery(payload).process(&self.client, None)))
    }

    /// BLPOP: the element at the head (what RPUSH added first).
    pub async fn pop(&mut self, timeout: Duration) -> RedisResult<Option<Message>> {
        self.pop_with("BLPOP", timeout).await
    }

    /// BRPOP: the element at the tail.
    pub async fn pop_back(&mut self, timeout: Duration) -> RedisResult<Option<Message>> {
        self.pop_with("BRPOP", timeout).await
    }

    /// BLMPOP ... LEFT COUNT `count` (Redis 7): up to `count` elements from the head in one
    /// process span, with a link per element to its creation context.
    pub async fn pop_batch(
        &mut self,
        count: usize,
        timeout: Duration,
    ) -> RedisResult<Option<Batch>> {
        let reply: Value = redis::cmd("BLMPOP")
            .arg(seconds(timeout))
            .arg(1)
            .arg(&self.list)
            .arg("LEFT")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.conn)
            .await?;
        let Some(Value::Array(items)) = second(reply) else {
            return Ok(None);
        };
        let deliveries: Vec<Delivery> = items
            .into_iter()
            .filter_map(bytes)
            .map(|p| self.delivery(p))
            .collect();
        if deliveries.is_empty() {
            return Ok(None);
        }
        Ok(Some(process_batch(&self.client, &self.list, deliveries)))
    }

    /// BLMOVE from the head of this list to the tail of `processing` (the reliable-queue
    /// pattern): the element stays in `processing` until [`Moved::ack`] removes it, so a
    /// consumer that dies leaves it there to be recovered.
    pub async fn pop_into(
        &mut self,
        processing: &str,
        timeout: Duration,
    ) -> RedisResult<Option<Moved>> {
        let reply: Value = redis::cmd("BLMOVE")
            .arg(&self.list)
            .arg(processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(seconds(timeout))
            .query_async(&mut self.conn)
            .await?;
        Ok(bytes(reply).map(|payload| Moved {
            message: self.delivery(payload).process(&self.client, None),
            conn: self.conn.clone(),
            processing: processing.to_owned(),
        }))
    }
}

/// A message moved into a processing list by [`ListConsumer::pop_into`]: reads as the
/// [`Message`]; [`ack`](Moved::ack) removes it from the processing list.
pub struct Moved {
    message: Message,
    conn: MultiplexedConnection,
    processing: String,
}

impl fmt::Debug for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Moved")
            .field("message", &self.message)
            .field("processing", &self.processing)
            .finish()
    }
}

impl Deref for Moved {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl DerefMut for Moved {
    fn deref_mut(&mut self) -> &mut Message {
        &mut self.message
    }
}

impl Moved {
    /// LREM processing 1 payload, recorded: `messaging.settlement=ack` on the process span and
    /// a CLIENT `ack {list}` span for the round trip.
    pub async fn ack(&mut self) -> RedisResult<()> {
        let mut settle = self.message.span_mut().settle("ack");
        let result: RedisResult<i64> = redis::cmd("LREM")
            .arg(&self.processing)
            .arg(1)
            .arg(self.message.payload())
            .query_async(&mut self.conn)
            .await;
        if let Err(e) = &result {
            settle.record_error(error_type(e), e.to_string());
        }
        settle.end();
        result.map(drop)
    }

    /// The message; its acknowledgement is yours.
    pub fn into_message(self) -> Message {
        self.message
    }
}

impl Client {
    /// A consumer of the list `list` (a work queue) on a connection of its own.
    pub async fn list(&self, list: &str) -> RedisResult<ListConsumer> {
        ListConsumer::new(self, list).await
    }
}
