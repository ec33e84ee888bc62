//! FastStream's Redis envelope: the headers Redis messages do not have, carried in the payload.
//!
//! Redis pub/sub messages and list elements are bare byte strings. FastStream (Python) wraps
//! them in an envelope that carries `correlation_id`, `content-type` and the trace headers;
//! tracewire writes and reads the same envelope, so Rust and Python services continue each
//! other's traces.
//!
//! Three payload forms are read ([`Format`]):
//!
//! - **Binary** — FastStream's `BinaryMessageFormatV1`, its default since 0.6: the magic
//!   bytes [`MAGIC`], a big-endian `u16` version (1), two big-endian `u32` offsets (where the
//!   headers start, always 18; where the body starts), a `u16` header count, the headers as
//!   `u16`-length-prefixed UTF-8 key/value pairs, then the body, byte for byte.
//! - **Json** — FastStream's older envelope, `{"data": "<body as text>", "headers": {...}}`,
//!   exactly those two keys (a JSON payload with any other shape is a raw payload).
//! - **Raw** — anything else: no headers, and the payload is the body, byte for byte.
//!
//! Writing is binary only ([`encode`]): what FastStream 0.6+ writes and reads.
//!
//! A payload that starts with the binary magic but is not a well-formed frame — truncated,
//! offsets or lengths past the end, more headers than bytes, header text that is not UTF-8, an
//! unknown version, the magic's line-ending bytes mangled — is a [`DecodeError`]. The decoder
//! never panics, never reads past the frame, and never allocates from a count in the frame
//! before checking it against the bytes. Consumers then hand the handler the payload exactly as
//! it arrived (what it would have got without tracing), in a new trace, and count the failure.
//!
//! ```
//! use tracewire_redis::envelope::{self, Format};
//!
//! let mut frame = Vec::new();
//! envelope::encode([("correlation_id", "c-1"), ("traceparent", "00-…")], b"hello", &mut frame)
//!     .unwrap();
//! let decoded = envelope::decode(&frame).unwrap();
//! assert_eq!(decoded.format(), Format::Binary);
//! assert_eq!(decoded.body(), b"hello");
//! assert_eq!(decoded.header("correlation_id"), Some("c-1"));
//!
//! // Anything that is not an envelope is a raw payload, passed through as it is.
//! let raw = envelope::decode(b"plain text").unwrap();
//! assert_eq!((raw.format(), raw.body()), (Format::Raw, &b"plain text"[..]));
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::carrier::Headers;

/// The first eight bytes of a binary envelope (`\x89BIN\r\n\x1a\n`, PNG-style: the high byte
/// and the line endings reveal a frame mangled in transit).
pub const MAGIC: [u8; 8] = *b"\x89BIN\r\n\x1a\n";

/// The version of the binary format written and read.
pub const VERSION: u16 = 1;

/// Where the headers of a version-1 frame start: magic (8), version (2), two offsets (4 + 4).
const HEADERS_START: usize = 18;

/// What a payload turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// FastStream's `BinaryMessageFormatV1`.
    Binary,
    /// FastStream's older JSON envelope.
    Json,
    /// No envelope: the payload is the body.
    Raw,
}

impl Format {
    /// `binary`, `json`, `raw`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Binary => "binary",
            Format::Json => "json",
            Format::Raw => "raw",
        }
    }
}

/// A decoded payload: its headers (none for a raw payload) and its body, borrowed from the
/// payload where possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    format: Format,
    headers: Headers<'a>,
    body: Cow<'a, [u8]>,
}

impl<'a> Decoded<'a> {
    /// A raw payload: no headers, the payload is the body.
    pub fn raw(payload: &'a [u8]) -> Self {
        Decoded {
            format: Format::Raw,
            headers: Headers::new(),
            body: Cow::Borrowed(payload),
        }
    }

    /// Which form the payload had.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The headers, in frame order.
    pub fn headers(&self) -> &Headers<'a> {
        &self.headers
    }

    /// The first value of header `name` (exact name, as FastStream reads them).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_exact(name)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The headers and the body, apart.
    pub fn into_parts(self) -> (Headers<'a>, Cow<'a, [u8]>) {
        (self.headers, self.body)
    }
}

/// Why a payload that starts like a binary envelope could not be read. Opaque; ask with the
/// `is_*` predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DecodeKind {
    BadMagic,
    UnsupportedVersion(u16),
    Truncated,
    OutOfBounds,
    Misaligned,
    TooManyHeaders(u16),
    InvalidUtf8,
}

impl DecodeError {
    fn new(kind: DecodeKind) -> Self {
        DecodeError { kind }
    }

    /// `\x89BIN` followed by something other than the rest of [`MAGIC`] (a frame whose line
    /// endings were rewritten in transit).
    pub fn is_bad_magic(&self) -> bool {
        self.kind == DecodeKind::BadMagic
    }

    /// A version other than [`VERSION`].
    pub fn is_unsupported_version(&self) -> bool {
        matches!(self.kind, DecodeKind::UnsupportedVersion(_))
    }

    /// The frame ends inside its fixed preamble.
    pub fn is_truncated(&self) -> bool {
        self.kind == DecodeKind::Truncated
    }

    /// An offset or a header length points past the end of the frame, or a header runs into
    /// the body.
    pub fn is_out_of_bounds(&self) -> bool {
        self.kind == DecodeKind::OutOfBounds
    }

    /// The offsets disagree with the frame's layout: headers that do not start at byte 18, or
    /// that end before the body's offset.
    pub fn is_misaligned(&self) -> bool {
        self.kind == DecodeKind::Misaligned
    }

    /// A header count larger than the bytes could hold (each header takes at least 4).
    pub fn is_too_many_headers(&self) -> bool {
        matches!(self.kind, DecodeKind::TooManyHeaders(_))
    }

    /// A header name or value that is not UTF-8.
    pub fn is_invalid_utf8(&self) -> bool {
        self.kind == DecodeKind::InvalidUtf8
    }

    /// A short, low-cardinality name of the failure (`bad_magic`, `truncated`, ...), for logs
    /// and metrics.
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            DecodeKind::BadMagic => "bad_magic",
            DecodeKind::UnsupportedVersion(_) => "unsupported_version",
            DecodeKind::Truncated => "truncated",
            DecodeKind::OutOfBounds => "out_of_bounds",
            DecodeKind::Misaligned => "misaligned",
            DecodeKind::TooManyHeaders(_) => "too_many_headers",
            DecodeKind::InvalidUtf8 => "invalid_utf8",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DecodeKind::BadMagic => f.write_str("binary envelope: mangled magic bytes"),
            DecodeKind::UnsupportedVersion(v) => {
                write!(f, "binary envelope: unsupported version {v}")
            }
            DecodeKind::Truncated => f.write_str("binary envelope: truncated preamble"),
            DecodeKind::OutOfBounds => {
                f.write_str("binary envelope: an offset or a length points past the end")
            }
            DecodeKind::Misaligned => {
                f.write_str("binary envelope: the offsets disagree with the headers")
            }
            DecodeKind::TooManyHeaders(n) => {
                write!(f, "binary envelope: {n} headers do not fit in the frame")
            }
            DecodeKind::InvalidUtf8 => f.write_str("binary envelope: a header is not UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be put in an envelope. Opaque; ask with the `is_*` predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError {
    kind: EncodeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EncodeKind {
    HeaderTooLong,
    TooManyHeaders,
    TooLarge,
}

impl EncodeError {
    /// A header name or value longer than 65 535 bytes (the format's `u16` length).
    pub fn is_header_too_long(&self) -> bool {
        self.kind == EncodeKind::HeaderTooLong
    }

    /// More than 65 535 headers (the format's `u16` count).
    pub fn is_too_many_headers(&self) -> bool {
        self.kind == EncodeKind::TooManyHeaders
    }

    /// Headers longer than 4 GiB (the format's `u32` body offset).
    pub fn is_too_large(&self) -> bool {
        self.kind == EncodeKind::TooLarge
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            EncodeKind::HeaderTooLong => "binary envelope: a header is longer than 65535 bytes",
            EncodeKind::TooManyHeaders => "binary envelope: more than 65535 headers",
            EncodeKind::TooLarge => "binary envelope: headers longer than 4 GiB",
        })
    }
}

impl std::error::Error for EncodeError {}

/// Appends the binary envelope (`BinaryMessageFormatV1`) of `headers` and `body` to `out`,
/// byte for byte what FastStream writes for the same headers in the same order. On error,
/// `out` is left as it was.
pub fn encode<'h, I>(headers: I, body: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'h str, &'h str)>,
{
    let start = out.len();
    let result = encode_into(headers, body, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_into<'h, I>(
    headers: I,
    body: &[u8],
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), EncodeError>
where
    I: IntoIterator<Item = (&'h str, &'h str)>,
{
    let err = |kind| EncodeError { kind };
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(HEADERS_START as u32).to_be_bytes());
    // The body's offset and the header count are known once the headers are written.
    out.extend_from_slice(&[0; 4 + 2]);
    let mut count: u16 = 0;
    for (key, value) in headers {
        count = count
            .checked_add(1)
            .ok_or(err(EncodeKind::TooManyHeaders))?;
        for s in [key, value] {
            let len = u16::try_from(s.len()).map_err(|_| err(EncodeKind::HeaderTooLong))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    let data_start = u32::try_from(out.len() - start).map_err(|_| err(EncodeKind::TooLarge))?;
    out[start + 14..start + 18].copy_from_slice(&data_start.to_be_bytes());
    out[start + 18..start + 20].copy_from_slice(&count.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// The length of the binary envelope of `headers` around a body of `body_len` bytes (to size a
/// buffer).
pub fn encoded_len<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    body_len: usize,
) -> usize {
    HEADERS_START
        + 2
        + headers
            .into_iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
        + body_len
}

/// Reads a payload: a binary envelope, a JSON envelope, or a raw payload (never an error).
/// An error only for a payload that starts with `\x89BIN` and is not a well-formed frame.
pub fn decode(payload: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    if payload.starts_with(&MAGIC[..4]) {
        return decode_binary(payload);
    }
    if let Some(decoded) = decode_json(payload) {
        return Ok(decoded);
    }
    Ok(Decoded::raw(payload))
}

/// A big-endian integer at `at`, if the frame holds it.
fn be<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
    p.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn decode_binary(p: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    use DecodeKind::*;
    let fail = |kind| Err(DecodeError::new(kind));
    match p.get(..MAGIC.len()) {
        None => return fail(Truncated),
        Some(magic) if magic != MAGIC => return fail(BadMagic),
        Some(_) => {}
    }
    let (Some(version), Some(headers_start), Some(data_start), Some(count)) = (
        be::<2>(p, 8).map(u16::from_be_bytes),
        be::<4>(p, 10).map(u32::from_be_bytes),
        be::<4>(p, 14).map(u32::from_be_bytes),
        be::<2>(p, HEADERS_START).map(u16::from_be_bytes),
    ) else {
        return fail(Truncated);
    };
    if version != VERSION {
        return fail(UnsupportedVersion(version));
    }
    // `u32` into `usize`: lossless on every platform redis runs on; saturate otherwise.
    let data_start = usize::try_from(data_start).unwrap_or(usize::MAX);
    if usize::try_from(headers_start).ok() != Some(HEADERS_START) {
        return fail(Misaligned);
    }
    let first = HEADERS_START + 2;
    if data_start > p.len() || data_start < first {
        return fail(OutOfBounds);
    }
    // Each header takes at least its two length prefixes: check the count against the bytes
    // before allocating for it.
    if usize::from(count) * 4 > data_start - first {
        return fail(TooManyHeaders(count));
    }
    let mut headers = Vec::with_capacity(usize::from(count));
    let mut at = first;
    let text = |at: &mut usize| -> Result<&str, DecodeError> {
        let len = be::<2>(p, *at).map(u16::from_be_bytes).map(usize::from);
        let Some(len) = len.filter(|len| *at + 2 + len <= data_start) else {
            return Err(DecodeError::new(OutOfBounds));
        };
        let bytes = &p[*at + 2..*at + 2 + len];
        *at += 2 + len;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::new(InvalidUtf8))
    };
    for _ in 0..count {
        let key = text(&mut at)?;
        let value = text(&mut at)?;
        headers.push((Cow::Borrowed(key), Cow::Borrowed(value)));
    }
    if at != data_start {
        return fail(Misaligned);
    }
    Ok(Decoded {
        format: Format::Binary,
        headers: Headers::from_vec(headers),
        body: Cow::Borrowed(&p[data_start..]),
    })
}

/// FastStream's older envelope, exactly `{"data": string, "headers": object}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Json<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
    headers: serde_json::Map<String, serde_json::Value>,
}

fn decode_json(p: &[u8]) -> Option<Decoded<'_>> {
    // Cheap test first: only a JSON object can be the envelope.
    if p.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let json: Json<'_> = serde_json::from_slice(p).ok()?;
    let headers = json
        .headers
        .into_iter()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                // FastStream keeps any JSON value; numbers and booleans read as their text.
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((Cow::Owned(k), Cow::Owned(v)))
        })
        .collect();
    let body = match json.data {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    };
    Some(Decoded {
        format: Format::Json,
        headers: Headers::from_vec(headers),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(headers.iter().copied(), body, &mut out).unwrap();
        out
    }

    /// The layout, spelled out: FastStream's `BinaryMessageFormatV1.encode` for
    /// `headers={"correlation_id": "c"}` and body `b"hi"`.
    #[test]
    fn the_layout_is_faststreams() {
        let f = frame(&[("correlation_id", "c")], b"hi");
        let mut want = b"\x89BIN\r\n\x1a\n\x00\x01\x00\x00\x00\x12".to_vec();
        want.extend_from_slice(&(18u32 + 2 + 2 + 14 + 2 + 1).to_be_bytes());
        want.extend_from_slice(b"\x00\x01\x00\x0ecorrelation_id\x00\x01chi");
        assert_eq!(f, want);
        assert_eq!(encoded_len([("correlation_id", "c")], 2), f.len());
    }

    #[test]
    fn round_trips_and_borrows() {
        let f = frame(
            &[("a", "1"), ("traceparent", "00-x"), ("", "")],
            b"\x00\xffbody",
        );
        let d = decode(&f).unwrap();
        assert_eq!(d.format(), Format::Binary);
        assert_eq!(d.body(), b"\x00\xffbody");
        assert_eq!(
            d.headers().iter().collect::<Vec<_>>(),
            [("a", "1"), ("traceparent", "00-x"), ("", "")]
        );
        assert!(matches!(d.body, Cow::Borrowed(_)));
        // Empty body, no headers.
        let f = frame(&[], b"");
        let d = decode(&f).unwrap();
        assert_eq!(
            (d.format(), d.body(), d.headers().len()),
            (Format::Binary, &b""[..], 0)
        );
    }

    #[test]
    fn encode_errors_leave_the_buffer_as_it_was() {
        let long = "x".repeat(65_536);
        let mut out = b"keep".to_vec();
        let e = encode([("k", long.as_str())], b"b", &mut out).unwrap_err();
        assert!(e.is_header_too_long());
        assert_eq!(out, b"keep");
        let many = vec![("k", "v"); 65_536];
        let e = encode(many, b"", &mut out).unwrap_err();
        assert!(e.is_too_many_headers());
        assert_eq!(out, b"keep");
        // The limit itself is fine.
        let ok = "y".repeat(65_535);
        encode([(ok.as_str(), "")], b"", &mut out).unwrap();
    }

    #[test]
    fn json_envelopes_and_raw_json() {
        let d = decode(
            br#" {"data": "{\"id\": 1}", "headers": {"correlation_id": "c", "n": 3, "x": null}}"#,
        )
        .unwrap();
        assert_eq!(d.format(), Format::Json);
        assert_eq!(d.body(), br#"{"id": 1}"#);
        assert_eq!(d.header("correlation_id"), Some("c"));
        assert_eq!(d.header("n"), Some("3"));
        assert_eq!(d.header("x"), None);
        // Other shapes are raw payloads, untouched.
        for raw in [
            &br#"{"data": "x"}"#[..],
            br#"{"data": "x", "headers": {}, "more": 1}"#,
            br#"{"data": 1, "headers": {}}"#,
            br#"{"data": "x", "headers": []}"#,
            br#"{"data": "x", "headers": {}"#,
            b"[1, 2]",
            b"",
        ] {
            let d = decode(raw).unwrap();
            assert_eq!((d.format(), d.body()), (Format::Raw, raw));
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let good = frame(&[("correlation_id", "c"), ("traceparent", "t")], b"body");
        let check = |bytes: &[u8], pred: fn(&DecodeError) -> bool| {
            let e = decode(bytes).unwrap_err();
            assert!(pred(&e), "{e:?} for {bytes:?}");
            assert!(!e.to_string().is_empty());
        };
        // The magic with its line endings rewritten (CRLF → LF).
        let mut mangled = b"\x89BIN\n\x1a\n".to_vec();
        mangled.extend_from_slice(&good[8..]);
        check(&mangled, DecodeError::is_bad_magic);
        check(b"\x89BIN", DecodeError::is_truncated);
        check(&good[..17], DecodeError::is_truncated);
        let mut v2 = good.clone();
        v2[9] = 2;
        check(&v2, DecodeError::is_unsupported_version);
        // Every truncation of a good frame inside its headers.
        for cut in 20..good.len() - 4 {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        // The body's offset past the end.
        let mut past = good.clone();
        past[14..18].copy_from_slice(&u32::MAX.to_be_bytes());
        check(&past, DecodeError::is_out_of_bounds);
        // A header length past the end.
        let mut long = good.clone();
        long[20..22].copy_from_slice(&u16::MAX.to_be_bytes());
        check(&long, DecodeError::is_out_of_bounds);
        // 65 535 headers claimed by a 40-byte frame: refused before any allocation.
        let mut many = good.clone();
        many[18..20].copy_from_slice(&u16::MAX.to_be_bytes());
        check(&many, DecodeError::is_too_many_headers);
        // Headers that do not start at 18, or end before the body.
        let mut moved = good.clone();
        moved[10..14].copy_from_slice(&20u32.to_be_bytes());
        check(&moved, DecodeError::is_misaligned);
        let mut fewer = good.clone();
        fewer[18..20].copy_from_slice(&1u16.to_be_bytes());
        check(&fewer, DecodeError::is_misaligned);
        // Invalid UTF-8 in a value.
        let mut bad = frame(&[("k", "vv")], b"");
        let at = bad.len() - 2;
        bad[at] = 0xff;
        check(&bad, DecodeError::is_invalid_utf8);
    }

    /// A frame that really holds 10^6 headers: the `u16` count cannot say so (whatever it
    /// says, the headers it counts end before the body's offset), and decoding stays linear.
    #[test]
    fn a_million_headers_is_garbage_not_a_hang() {
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&1u16.to_be_bytes());
        f.extend_from_slice(&18u32.to_be_bytes());
        let n = 1_000_000usize;
        let data_start = 20 + n * 6;
        f.extend_from_slice(&(data_start as u32).to_be_bytes());
        f.extend_from_slice(&((n % 65_536) as u16).to_be_bytes());
        for _ in 0..n {
            f.extend_from_slice(b"\x00\x01k\x00\x01v");
        }
        f.extend_from_slice(b"body");
        let started = std::time::Instant::now();
        assert!(decode(&f).unwrap_err().is_misaligned());
        f[18..20].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(decode(&f).unwrap_err().is_misaligned());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
