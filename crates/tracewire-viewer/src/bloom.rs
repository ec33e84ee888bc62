//! A per-trace Bloom filter of attribute keys and `key=value` pairs, so attribute searches skip
//! almost every non-matching trace without touching its spans.
//!
//! 1024 bits, 2 probes. Strings, ints and bools are hashed by their text; doubles, bytes,
//! arrays and maps by a per-key marker (the query then falls back to scanning that trace).
//! Event names are added as keys (Zipkin's `annotationQuery` term without `=`).

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};

/// The filter.
pub(crate) type Bloom = [u64; 16];

const OTHER: &[u8] = b"\x00other";

fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // final mix so both probes get good bits
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

fn add(b: &mut Bloom, h: u64) {
    for bit in [h & 1023, (h >> 20) & 1023] {
        b[(bit / 64) as usize] |= 1 << (bit % 64);
    }
}

fn has(b: &Bloom, h: u64) -> bool {
    [h & 1023, (h >> 20) & 1023]
        .iter()
        .all(|bit| b[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
}

/// Decimal text of an i64 without allocating.
fn int_text(i: i64, buf: &mut [u8; 24]) -> &[u8] {
    let mut n = i.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

/// Adds a key (for existence terms).
pub(crate) fn add_key(b: &mut Bloom, key: &str) {
    add(b, fnv(&[key.as_bytes()]));
}

/// Adds an attribute: its key and its `key=value`.
pub(crate) fn add_kv(b: &mut Bloom, kv: &KeyValue) {
    add_key(b, &kv.key);
    let key = kv.key.as_bytes();
    let mut buf = [0u8; 24];
    let h = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => fnv(&[key, s.as_bytes()]),
        Some(Value::IntValue(i)) => fnv(&[key, int_text(*i, &mut buf)]),
        Some(Value::BoolValue(v)) => fnv(&[key, if *v { b"true" } else { b"false" }]),
        None => fnv(&[key, b""]),
        Some(_) => fnv(&[key, OTHER]),
    };
    add(b, h);
}

/// Whether a trace with filter `b` may hold attribute `key` (with `value`, if given).
pub(crate) fn may_match(b: &Bloom, key: &str, value: Option<&str>) -> bool {
    match value {
        None => has(b, fnv(&[key.as_bytes()])),
        Some(v) => {
            has(b, fnv(&[key.as_bytes(), v.as_bytes()])) || has(b, fnv(&[key.as_bytes(), OTHER]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn no_false_negatives() {
        let mut b = Bloom::default();
        add_kv(
            &mut b,
            &kv("http.route", Value::StringValue("/users".into())),
        );
        add_kv(&mut b, &kv("code", Value::IntValue(-500)));
        add_kv(&mut b, &kv("ok", Value::BoolValue(true)));
        add_kv(&mut b, &kv("amount", Value::DoubleValue(42.5)));
        add_key(&mut b, "retry");
        assert!(may_match(&b, "http.route", Some("/users")));
        assert!(may_match(&b, "http.route", None));
        assert!(may_match(&b, "code", Some("-500")));
        assert!(may_match(&b, "ok", Some("true")));
        assert!(may_match(&b, "amount", Some("42.5")));
        assert!(may_match(&b, "retry", None));
        assert!(!may_match(&b, "http.route", Some("/orders")));
        assert!(!may_match(&b, "nope", None));
    }

    #[test]
    fn int_text_matches_display() {
        let mut buf = [0u8; 24];
        for i in [0, 7, -7, 500, i64::MAX, i64::MIN] {
            assert_eq!(int_text(i, &mut buf), i.to_string().as_bytes());
        }
    }
}
