//! Attribute keys of this crate that the OpenTelemetry conventions do not define (Redis has no
//! messaging conventions of its own).

/// How a Redis message carried its context: `binary` (FastStream's `BinaryMessageFormatV1`),
/// `json` (FastStream's older JSON envelope), `raw` (no envelope: nothing to continue),
/// `invalid` (began like a binary envelope but could not be read: handled as it arrived, in a
/// new trace, and counted by [`Client::decode_failures`](crate::Client::decode_failures)), or
/// `fields` (a stream entry whose trace headers are fields of their own). On process spans.
pub const MESSAGING_REDIS_ENVELOPE: &str = "messaging.redis.envelope";
