//! W3C Baggage: user-defined key/value pairs that travel with a request.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use percent_encoding::percent_decode_str;

/// The most list members tracewire keeps. The W3C grammar allows 180
/// (`list-member 0*179( OWS "," OWS list-member )`); the spec requires at least 64.
pub const MAX_MEMBERS: usize = 180;
/// The most bytes of a serialized `baggage` header (W3C Baggage §3.3.1).
pub const MAX_BYTES: usize = 8192;

/// One baggage entry, borrowed from its [`Baggage`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member<'a> {
    key: &'a str,
    value: &'a str,
    properties: &'a str,
    /// The value's length percent-encoded.
    encoded_value: usize,
}

impl<'a> Member<'a> {
    fn new(key: &'a str, value: &'a str) -> Member<'a> {
        Member {
            key,
            value,
            properties: "",
            encoded_value: encoded_value_len(value),
        }
    }

    /// The key (an RFC 7230 token).
    pub fn key(self) -> &'a str {
        self.key
    }
    /// The decoded value.
    pub fn value(self) -> &'a str {
        self.value
    }
    /// The member's properties (metadata) in canonical form, `k=v;flag`, or `""`.
    pub fn properties(self) -> &'a str {
        self.properties
    }
    /// The value percent-encoded, into a `String` of exactly its length (so a header value
    /// takes it without reallocating).
    pub(crate) fn encoded_value(self) -> String {
        let mut out = String::with_capacity(self.encoded_value);
        if self.encoded_value == self.value.len() {
            out.push_str(self.value);
        } else {
            encode_into(&mut out, self.value);
        }
        out
    }
}

impl fmt::Debug for Member<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("key", &self.key)
            .field("value", &self.value)
            .field("properties", &self.properties)
            .finish()
    }
}

/// The length of `key=value[;properties]` in a header, from the lengths of the key, the
/// encoded value and the properties.
fn member_len(key: usize, encoded_value: usize, properties: usize) -> usize {
    key + 1 + encoded_value + if properties == 0 { 0 } else { 1 + properties }
}

/// W3C Baggage: an ordered set of members, cheap to clone (shared behind an `Arc`), empty
/// without allocation.
///
/// # Extraction is tolerant, injection is exact
/// - A list member that breaks the grammar (bad key, bad value octet, bad property, no `=`,
///   undecodable percent-encoding) is dropped on its own; the other members are kept.
/// - Values are percent-decoded; a value may contain `=` (only the first `=` separates key and
///   value).
/// - Limits: at most [`MAX_MEMBERS`] members and [`MAX_BYTES`] bytes as serialized. Members past
///   either limit are dropped whole, in order; a member is never cut. The same limits apply
///   when injecting, so a header tracewire writes is always within them.
/// - A key that appears twice keeps its first value.
///
/// # Jaeger's `uberctx-*` headers are decoded when first read
/// A few short `uberctx-*` pairs (up to 4 pairs and 128 bytes of keys and values, which is
/// most of them) are kept as they came and decoded on the first read of the baggage (any
/// method that looks at its members, comparison and hashing included), once for every clone:
/// a request whose baggage nobody reads or forwards never pays for decoding it. What a read
/// sees is exactly what decoding at extraction would have made, invalid pairs dropped.
#[derive(Clone, Default)]
pub struct Baggage(Option<Arc<Shared>>);

/// What a non-empty [`Baggage`] shares between its clones.
enum Shared {
    /// Members decoded when the baggage was made (never empty).
    Decoded(Members),
    /// `uberctx-*` pairs as they came, decoded into members on the first read (`None`: no
    /// pair was valid).
    Encoded {
        pairs: EncodedPairs,
        decoded: OnceLock<Option<Members>>,
    },
}

/// Up to [`INLINE`] `(key, value)` pairs, undecoded, back to back in place (at most
/// [`INLINE_TEXT`] bytes in all).
struct EncodedPairs {
    /// Each pair's key and value.
    text: Text,
    /// Where each pair's key and value end in `text`; a pair starts where the one before ended.
    ends: [(u8, u8); INLINE],
    len: u8,
}

impl EncodedPairs {
    fn new() -> EncodedPairs {
        EncodedPairs {
            text: Text::default(),
            ends: [(0, 0); INLINE],
            len: 0,
        }
    }

    /// Appends a pair as it is; `false` (nothing appended) when it does not fit.
    fn push(&mut self, key: &str, value: &str) -> bool {
        let Some(slot) = self.ends.get_mut(usize::from(self.len)) else {
            return false;
        };
        if self.text.len() + key.len() + value.len() > INLINE_TEXT {
            return false;
        }
        self.text.push_str(key);
        let key_end = self.text.len();
        self.text.push_str(value);
        // At most `INLINE_TEXT` (checked above), which fits a `u8`.
        *slot = (key_end as u8, self.text.len() as u8);
        self.len += 1;
        true
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let text = self.text.as_str();
        let mut start = 0;
        self.ends
            .get(..usize::from(self.len))
            .unwrap_or_default()
            .iter()
            .map(move |&(key, value)| {
                // Every end is where a whole `str` was appended: a boundary.
                let part = |from: u8, to: u8| {
                    text.get(usize::from(from)..usize::from(to))
                        .unwrap_or_default()
                };
                let pair = (part(start, key), part(key, value));
                start = value;
                pair
            })
    }
}

/// Every member in one buffer: the whole baggage is one allocation (the `Arc`) up to
/// [`INLINE`] members and [`INLINE_TEXT`] bytes of text, two or three beyond.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
struct Members {
    /// Each member's key, decoded value and canonical properties, back to back.
    text: Text,
    /// Where each member's parts end in `text`; a member starts where the one before ended.
    ends: EndList,
    /// The length of the `baggage` header these members make (at most [`MAX_BYTES`]).
    header_len: usize,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Ends {
    key: u32,
    value: u32,
    properties: u32,
    /// The value's length percent-encoded.
    encoded_value: u32,
}

/// Members kept in the `Members` allocation itself (most baggage has a few).
const INLINE: usize = 4;

/// Bytes of text kept in the `Members` allocation itself (most baggage is short).
const INLINE_TEXT: usize = 128;

/// The members' text: in place up to [`INLINE_TEXT`] bytes, then a `String`. Compared and
/// hashed as the `str` it holds, whichever way it is kept.
#[derive(Clone)]
enum Text {
    /// `bytes[..len]` is always UTF-8: only whole `str`s are appended, and it is only cut at
    /// a `str` boundary.
    Inline {
        len: u8,
        bytes: [u8; INLINE_TEXT],
    },
    Heap(String),
}

impl Default for Text {
    fn default() -> Self {
        Text::Inline {
            len: 0,
            bytes: [0; INLINE_TEXT],
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Text {
    fn with_capacity(capacity: usize) -> Text {
        if capacity <= INLINE_TEXT {
            Text::default()
        } else {
            Text::Heap(String::with_capacity(capacity))
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            Text::Inline { len, .. } => usize::from(*len),
            Text::Heap(s) => s.len(),
        }
    }

    #[inline]
    fn as_str(&self) -> &str {
        match self {
            Text::Inline { len, bytes } => {
                let bytes = bytes.get(..usize::from(*len)).unwrap_or_default();
                // SAFETY: `bytes[..len]` is UTF-8 (the invariant of `Inline`, kept by
                // `push_str` and `truncate`, the only writers). (`str::from_utf8` here would
                // check the text again on every read of the baggage.)
                #[allow(unsafe_code)]
                unsafe {
                    std::str::from_utf8_unchecked(bytes)
                }
            }
            Text::Heap(s) => s,
        }
    }

    #[inline]
    fn get(&self, range: impl std::slice::SliceIndex<str, Output = str>) -> Option<&str> {
        self.as_str().get(range)
    }

    /// Moves the text to the heap, with room for `additional` bytes more.
    #[cold]
    fn spill(&mut self, additional: usize) {
        let mut s = String::with_capacity((self.len() + additional).max(2 * INLINE_TEXT));
        s.push_str(self.as_str());
        *self = Text::Heap(s);
    }

    /// Room for `additional` bytes more.
    fn reserve(&mut self, additional: usize) {
        match self {
            Text::Inline { len, .. } if usize::from(*len) + additional <= INLINE_TEXT => {}
            Text::Inline { .. } => {
                self.spill(additional);
            }
            Text::Heap(s) => s.reserve(additional),
        }
    }

    #[inline]
    fn push_str(&mut self, s: &str) {
        match self {
            Text::Inline { len, bytes } => {
                let at = usize::from(*len);
                match bytes.get_mut(at..at + s.len()) {
                    Some(to) => {
                        to.copy_from_slice(s.as_bytes());
                        // At most `INLINE_TEXT` (the slice fit), which fits a `u8`.
                        *len = (at + s.len()) as u8;
                    }
                    None => {
                        self.spill(s.len());
                        if let Text::Heap(h) = self {
                            h.push_str(s);
                        }
                    }
                }
            }
            Text::Heap(h) => h.push_str(s),
        }
    }

    #[inline]
    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// Cuts the text to `new_len` bytes, a `str` boundary: a length the text had before.
    #[inline]
    fn truncate(&mut self, new_len: usize) {
        match self {
            Text::Inline { len, .. } => {
                // A cut inside a character would break the invariant: it is not made (callers
                // only cut back to a length they read before appending).
                let ok = new_len < usize::from(*len) && self.as_str().is_char_boundary(new_len);
                debug_assert!(ok || new_len >= self.len(), "not a boundary");
                if let (true, Text::Inline { len, .. }) = (ok, self) {
                    // Below the old length, so it fits a `u8`.
                    *len = new_len as u8;
                }
            }
            Text::Heap(s) => s.truncate(new_len),
        }
    }
}

/// The [`Ends`] of each member: the first [`INLINE`] in place, the rest in a `Vec`. Slots are
/// only ever appended, so unused ones stay default and the derived comparisons hold.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
struct EndList {
    len: usize,
    inline: [Ends; INLINE],
    more: Vec<Ends>,
}

impl EndList {
    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for `members` in all (allocates only past [`INLINE`]).
    fn reserve(&mut self, members: usize) {
        self.more
            .reserve(members.saturating_sub(INLINE + self.more.len()));
    }

    fn push(&mut self, ends: Ends) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = ends,
            None => self.more.push(ends),
        }
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = &Ends> {
        let (inline, more) = self.as_slices();
        inline.iter().chain(more)
    }

    /// The ends kept in place, then the rest.
    #[inline]
    fn as_slices(&self) -> (&[Ends], &[Ends]) {
        (
            self.inline.get(..self.len).unwrap_or(&self.inline),
            &self.more,
        )
    }
}

impl Members {
    fn with_capacity(text: usize, members: usize) -> Members {
        let mut ends = EndList::default();
        ends.reserve(members);
        Members {
            text: Text::with_capacity(text),
            ends,
            header_len: 0,
        }
    }

    /// True when a member has exactly this key.
    fn has_key(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// The decoded value of the member with exactly this key.
    fn get(&self, key: &str) -> Option<&str> {
        let e = self.find(key.as_bytes())?;
        self.text.get(e.key as usize..e.value as usize)
    }

    /// The ends of the member with exactly this key (compared as bytes, no `Member` views).
    fn find<'s>(&'s self, key: &[u8]) -> Option<&'s Ends> {
        let text = self.text.as_str().as_bytes();
        let mut start = 0;
        // Two plain slice loops (a `Chain` costs a state check per step); a key of another
        // length is passed over without slicing.
        let mut found = |ends: &'s [Ends]| {
            ends.iter().find(|e| {
                let end = e.key as usize;
                let same =
                    end.wrapping_sub(start) == key.len() && text.get(start..end) == Some(key);
                start = e.properties as usize;
                same
            })
        };
        let (inline, more) = self.ends.as_slices();
        found(inline).or_else(|| found(more))
    }

    fn iter(&self) -> impl Iterator<Item = Member<'_>> {
        let mut start = 0;
        // Where the text is kept is decided once, not per part.
        let text = self.text.as_str();
        self.ends.iter().map(move |e| {
            let part = |from: u32, to: u32| {
                // Every end is a `str` boundary (parts are appended whole): never empty here.
                text.get(from as usize..to as usize).unwrap_or_default()
            };
            let m = Member {
                key: part(start, e.key),
                value: part(e.key, e.value),
                properties: part(e.value, e.properties),
                encoded_value: e.encoded_value as usize,
            };
            start = e.properties;
            m
        })
    }
}

/// Builds [`Members`] one member at a time: each is appended to the text, then kept or rolled
/// back by [`Builder::commit`] (limits, duplicate keys).
struct Builder {
    members: Members,
    /// Where the member being built starts in the text.
    start: usize,
    /// Where its key ends.
    key_end: usize,
}

/// Why [`Builder::commit`] dropped a member.
struct OverLimit;

impl Builder {
    fn new(text: usize, members: usize) -> Builder {
        Builder {
            members: Members::with_capacity(text, members),
            start: 0,
            key_end: 0,
        }
    }

    /// Starts a member with its key.
    fn key(&mut self, key: &str) {
        self.start = self.members.text.len();
        self.members.text.push_str(key);
        self.key_end = self.members.text.len();
    }

    /// Drops the member being built.
    fn roll_back(&mut self) {
        self.members.text.truncate(self.start);
    }

    /// Keeps the member being built (its value, then its properties, were appended after the
    /// key; the value ends at `value_end`) unless it is over a limit or its key is already
    /// there. `encoded_value` is the value's percent-encoded length.
    fn commit(&mut self, value_end: usize, encoded_value: usize) -> Result<(), OverLimit> {
        let text = self.members.text.as_str().as_bytes();
        // Lengths, and the key as bytes: no `str` boundary checks.
        let key = text.get(self.start..self.key_end).unwrap_or_default();
        let properties = text.len().saturating_sub(value_end);
        let extra = member_len(key.len(), encoded_value, properties)
            + usize::from(!self.members.ends.is_empty());
        if self.members.ends.len() == MAX_MEMBERS
            || self.members.header_len + extra > MAX_BYTES
            || self.members.has_key(key)
        {
            self.roll_back();
            return Err(OverLimit);
        }
        // Within `MAX_BYTES` (checked above), so every offset fits a `u32`.
        let at = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        self.members.ends.push(Ends {
            key: at(self.key_end),
            value: at(value_end),
            properties: at(text.len()),
            encoded_value: at(encoded_value),
        });
        self.members.header_len += extra;
        Ok(())
    }

    /// Appends a member whose value is already decoded.
    fn push(&mut self, m: Member<'_>) -> Result<(), OverLimit> {
        self.key(m.key);
        self.members.text.push_str(m.value);
        let value_end = self.members.text.len();
        self.members.text.push_str(m.properties);
        self.commit(value_end, m.encoded_value)
    }

    fn finish(self) -> Baggage {
        Baggage(self.into_members().map(|m| Arc::new(Shared::Decoded(m))))
    }

    /// The members, `None` when there are none.
    fn into_members(self) -> Option<Members> {
        (!self.members.ends.is_empty()).then_some(self.members)
    }
}

/// What [`Baggage::parse_lines_counted`] dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaggageDrops {
    /// Members dropped because they broke the grammar.
    pub invalid: usize,
    /// Members dropped because of the member or byte limit (or a duplicated key).
    pub over_limit: usize,
}

/// Why a key or value could not be put into baggage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidBaggage {
    key: bool,
}

impl InvalidBaggage {
    /// The key is not an RFC 7230 token.
    pub fn is_invalid_key(&self) -> bool {
        self.key
    }
    /// The entry would take the baggage over [`MAX_MEMBERS`] or [`MAX_BYTES`].
    pub fn is_over_limit(&self) -> bool {
        !self.key
    }
}

impl fmt::Display for InvalidBaggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.key {
            "baggage key is not an RFC 7230 token"
        } else {
            "baggage would exceed its member or byte limit"
        })
    }
}

impl std::error::Error for InvalidBaggage {}

const fn tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

const fn baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Bytes written as `%XX` in a value: everything outside `baggage-octet`, and `%` itself.
/// `+` is encoded too (the spec allows encoding any octet): readers that form-decode, such as
/// OpenTelemetry Python and Java's `URLDecoder`, would otherwise read it as a space.
const fn must_encode(b: u8) -> bool {
    !baggage_octet(b) || b == b'%' || b == b'+'
}

/// The byte classes of the grammar, one table (one load per byte in the parsing loops).
const TOKEN: u8 = 1;
const OCTET: u8 = 2;
/// `%`: the value needs decoding.
const PERCENT: u8 = 4;
/// Written as `%XX` on the way out ([`must_encode`]).
const ENCODED: u8 = 8;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if tchar(b) { TOKEN } else { 0 }
            | if baggage_octet(b) { OCTET } else { 0 }
            | if b == b'%' { PERCENT } else { 0 }
            | if must_encode(b) { ENCODED } else { 0 };
        i += 1;
    }
    t
};

#[inline]
fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// True when `key` is an RFC 7230 token, as baggage keys must be.
#[inline]
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| class(b) & TOKEN != 0)
}

#[inline]
fn is_value(s: &str) -> bool {
    s.bytes().all(|b| class(b) & OCTET != 0)
}

#[inline]
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

#[inline]
fn trim_ows(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !is_ows(*c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_ows(*c)).map_or(start, |e| e + 1);
    // Space and tab are ASCII, so both ends are character boundaries.
    s.get(start..end).unwrap_or_default()
}

/// The length of `value` percent-encoded (see [`must_encode`]), without encoding it.
fn encoded_value_len(value: &str) -> usize {
    value.len() + 2 * value.bytes().filter(|&b| class(b) & ENCODED != 0).count()
}

/// Appends `value` percent-encoded (see [`must_encode`]; `%XX` in uppercase hex).
fn encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = value;
    while let Some(i) = rest.bytes().position(|b| class(b) & ENCODED != 0) {
        // `i` is the first byte to encode: everything before it is ASCII, so a boundary.
        let (plain, tail) = rest.split_at(i);
        out.push_str(plain);
        // Non-ASCII characters are encoded byte by byte, so the whole character goes.
        let n = tail.chars().next().map_or(1, char::len_utf8);
        for &b in &tail.as_bytes()[..n] {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        rest = &tail[n..];
    }
    out.push_str(rest);
}

/// How [`push_decoded`] treats decoded octets that are not UTF-8.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotUtf8 {
    /// W3C Baggage: they become U+FFFD (the member is kept).
    Replace,
    /// The member is dropped (Jaeger's `uberctx-*`).
    Drop,
}

/// Appends `value` percent-decoded to `out` (as `percent_encoding::percent_decode_str` reads
/// it: `%` and two hex digits make a byte, any other `%` stays). `None`: not UTF-8 and
/// `policy` is [`NotUtf8::Drop`] (`out` unchanged). Escapes of ASCII bytes (`%20`, `%2C`) are
/// appended as characters; the first escape of a byte above `0x7F` hands the whole value to
/// [`push_decoded_bytes`] (the bytes may not be UTF-8).
fn push_decoded(out: &mut Text, value: &str, policy: NotUtf8) -> Option<()> {
    let start = out.len();
    let mut rest = value;
    // A byte loop, not `str::find`: values are short, and `memchr`'s set-up costs more than
    // it saves on a few dozen bytes.
    while let Some(i) = rest.bytes().position(|b| b == b'%') {
        // `%` is ASCII, and so are hex digits: every split below is at a boundary.
        let (plain, tail) = rest.split_at(i);
        out.push_str(plain);
        match tail
            .as_bytes()
            .get(1..3)
            .and_then(|d| crate::hex::parse_u8(d, true))
        {
            Some(byte) if byte.is_ascii() => {
                out.push(char::from(byte));
                rest = &tail[3..];
            }
            Some(_) => {
                out.truncate(start);
                return push_decoded_bytes(out, value, policy);
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Some(())
}

/// [`push_decoded`] and [`encoded_value_len`] of what it appended, in one pass over `value`:
/// the decoded value's length percent-encoded. `None` as for [`push_decoded`].
fn push_decoded_counted(out: &mut Text, value: &str, policy: NotUtf8) -> Option<usize> {
    let start = out.len();
    let bytes = value.as_bytes();
    // Two per byte that is encoded on the way out (`%XX` for one byte).
    let mut extra = 0;
    // Where the run of bytes not yet appended starts.
    let mut plain = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let k = class(b);
        if k & PERCENT != 0 {
            match bytes
                .get(i + 1..i + 3)
                .and_then(|d| crate::hex::parse_u8(d, true))
            {
                Some(byte) if byte.is_ascii() => {
                    // `%` and hex digits are ASCII: `plain..i` is a run of whole characters.
                    out.push_str(value.get(plain..i).unwrap_or_default());
                    out.push(char::from(byte));
                    extra += 2 * usize::from(class(byte) & ENCODED != 0);
                    i += 3;
                    plain = i;
                    continue;
                }
                Some(_) => {
                    out.truncate(start);
                    push_decoded_bytes(out, value, policy)?;
                    return Some(encoded_value_len(out.get(start..).unwrap_or_default()));
                }
                // A `%` that starts no escape stays, and is encoded on the way out (below).
                None => {}
            }
        }
        extra += 2 * usize::from(k & ENCODED != 0);
        i += 1;
    }
    out.push_str(value.get(plain..).unwrap_or_default());
    Some(out.len() - start + extra)
}

/// [`push_decoded`] for values with escapes of non-ASCII bytes (values up to 256 bytes are
/// decoded on the stack).
fn push_decoded_bytes(out: &mut Text, value: &str, policy: NotUtf8) -> Option<()> {
    let mut stack = [0u8; 256];
    let heap: Vec<u8>;
    let decoded: &[u8] = if value.len() <= stack.len() {
        // Decoding never lengthens: at most `value.len()` bytes.
        let mut n = 0;
        for (slot, b) in stack.iter_mut().zip(percent_decode_str(value)) {
            *slot = b;
            n += 1;
        }
        &stack[..n]
    } else {
        heap = percent_decode_str(value).collect();
        &heap
    };
    match std::str::from_utf8(decoded) {
        Ok(s) => out.push_str(s),
        Err(_) if policy == NotUtf8::Replace => out.push_str(&String::from_utf8_lossy(decoded)),
        Err(_) => return None,
    }
    Some(())
}

/// Members from pairs whose values are percent-encoded (see [`Baggage::from_encoded_pairs`]).
fn decode_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Builder {
    let mut b = Builder::new(64, 4);
    decode_pairs_into(&mut b, pairs);
    b
}

/// [`decode_pairs`] into `b`, after what it holds.
fn decode_pairs_into<'a>(b: &mut Builder, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (key, value) in pairs {
        if !is_valid_key(key) {
            continue;
        }
        b.key(key);
        let text = &mut b.members.text;
        let Some(encoded) = push_decoded_counted(text, value, NotUtf8::Drop) else {
            b.roll_back();
            continue;
        };
        let value_end = text.len();
        let _ = b.commit(value_end, encoded);
    }
}

/// Parses one list member into `b`; `false` (and nothing kept) when it breaks the grammar.
/// `Err` when it is valid but over a limit. The general path: white space, properties.
fn parse_member(b: &mut Builder, raw: &str) -> Result<bool, OverLimit> {
    // `;` and `=` are ASCII, so splitting at their byte positions keeps `str` boundaries.
    let (kv, props) = match raw.bytes().position(|c| c == b';') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    let Some(eq) = kv.bytes().position(|c| c == b'=') else {
        return Ok(false);
    };
    let key = trim_ows(&kv[..eq]);
    let value = trim_ows(&kv[eq + 1..]);
    if !is_valid_key(key) || !is_value(value) {
        return Ok(false);
    }
    b.key(key);
    let text = &mut b.members.text;
    let value_start = text.len();
    // Without a `%`, the value is appended as it is.
    push_decoded(text, value, NotUtf8::Replace);
    let value_end = text.len();
    let encoded = encoded_value_len(text.get(value_start..).unwrap_or_default());
    for (i, prop) in props.into_iter().flat_map(|p| p.split(';')).enumerate() {
        let prop = trim_ows(prop);
        let (pk, pv) = match prop.split_once('=') {
            Some((k, v)) => (trim_ows(k), Some(trim_ows(v))),
            None => (prop, None),
        };
        if !is_valid_key(pk) || !pv.is_none_or(is_value) {
            b.roll_back();
            return Ok(false);
        }
        let text = &mut b.members.text;
        if i > 0 {
            text.push(';');
        }
        text.push_str(pk);
        if let Some(pv) = pv {
            text.push('=');
            text.push_str(pv);
        }
    }
    b.commit(value_end, encoded).map(|()| true)
}

/// Reads the member at the start of `line` in the common form `key=value` (no white space, no
/// properties), followed by `,` or the end. `Some((key, value, flags, rest))`: the key and value,
/// the [`CLASS`] bits of the value's bytes ORed together, the count of its bytes that are
/// encoded on the way out, and what follows the `,`. `None`: not in that form.
#[inline]
fn common_member(line: &str) -> Option<(&str, &str, u8, usize, &str)> {
    let bytes = line.as_bytes();
    let key_len = bytes.iter().position(|&c| class(c) & TOKEN == 0)?;
    if key_len == 0 || bytes[key_len] != b'=' {
        return None;
    }
    let (mut flags, mut encoded) = (0u8, 0usize);
    let mut end = key_len + 1;
    while let Some(&c) = bytes.get(end) {
        let k = class(c);
        if k & OCTET == 0 {
            break;
        }
        flags |= k;
        encoded += usize::from(k & ENCODED != 0);
        end += 1;
    }
    let rest = match bytes.get(end) {
        None => "",
        Some(b',') => &line[end + 1..],
        Some(_) => return None,
    };
    // Every split is next to an ASCII byte (`=`, `,`), so at a boundary.
    Some((
        &line[..key_len],
        &line[key_len + 1..end],
        flags,
        encoded,
        rest,
    ))
}

impl Baggage {
    /// Empty baggage.
    pub const fn empty() -> Self {
        Baggage(None)
    }

    /// Parses one or more `baggage` header lines (tolerantly, see the type docs).
    pub fn parse_lines<'a, I: IntoIterator<Item = &'a str>>(lines: I) -> Baggage {
        Self::parse_lines_counted(lines).0
    }

    /// Like [`Baggage::parse_lines`], also saying how many members were dropped and why.
    pub fn parse_lines_counted<'a, I: IntoIterator<Item = &'a str>>(
        lines: I,
    ) -> (Baggage, BaggageDrops) {
        let mut drops = BaggageDrops::default();
        let mut lines = lines.into_iter();
        // Most requests carry no `baggage` header: no builder for them.
        let Some(first) = lines.next() else {
            return (Baggage::empty(), drops);
        };
        let mut b = Builder::new(0, 0);
        for line in std::iter::once(first).chain(lines) {
            // Decoding never lengthens, and at most one member per comma.
            b.members.text.reserve(line.len().min(MAX_BYTES));
            if b.members.ends.is_empty() {
                let commas = line.bytes().filter(|&c| c == b',').count();
                b.members
                    .ends
                    .reserve(commas.saturating_add(1).min(MAX_MEMBERS));
            }
            let mut rest = line;
            loop {
                rest = rest.trim_start_matches([' ', '\t']);
                if rest.is_empty() {
                    break;
                }
                let kept = if let Some((key, value, flags, encoded, next)) = common_member(rest) {
                    rest = next;
                    b.key(key);
                    let text = &mut b.members.text;
                    let encoded = if flags & PERCENT == 0 {
                        text.push_str(value);
                        value.len() + 2 * encoded
                    } else {
                        // `Replace` keeps every value.
                        push_decoded_counted(text, value, NotUtf8::Replace).unwrap_or_default()
                    };
                    let value_end = text.len();
                    b.commit(value_end, encoded).map(|()| true)
                } else {
                    let (raw, next) = rest.split_once(',').unwrap_or((rest, ""));
                    rest = next;
                    if trim_ows(raw).is_empty() {
                        continue;
                    }
                    parse_member(&mut b, trim_ows(raw))
                };
                match kept {
                    Ok(true) => {}
                    Ok(false) => drops.invalid += 1,
                    Err(OverLimit) => drops.over_limit += 1,
                }
            }
        }
        if drops.invalid + drops.over_limit > 0 {
            log::debug!(
                "baggage: dropped {} invalid and {} over-limit members",
                drops.invalid,
                drops.over_limit
            );
        }
        (b.finish(), drops)
    }

    /// The members (decoded now if they came undecoded), `None` when there are none.
    fn members(&self) -> Option<&Members> {
        match self.0.as_deref()? {
            Shared::Decoded(members) => Some(members),
            Shared::Encoded { pairs, decoded } => decoded
                .get_or_init(|| decode_pairs(pairs.iter()).into_members())
                .as_ref(),
        }
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.members().is_none()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members().map_or(0, |m| m.ends.len())
    }

    /// The members in order.
    pub fn iter(&self) -> impl Iterator<Item = Member<'_>> {
        self.members().into_iter().flat_map(Members::iter)
    }

    /// The decoded value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members()?.get(key)
    }

    /// Rebuilds from `members` (each as it is, within the limits).
    fn rebuild<'a>(members: impl Iterator<Item = Member<'a>>, capacity: (usize, usize)) -> Builder {
        let mut b = Builder::new(capacity.0, capacity.1);
        for m in members {
            let _ = b.push(m);
        }
        b
    }

    fn capacity(&self) -> (usize, usize) {
        self.members()
            .map_or((0, 0), |m| (m.text.len(), m.ends.len()))
    }

    /// Returns baggage with `key=value` set (replacing an older value in place).
    pub fn insert(&self, key: &str, value: &str) -> Result<Baggage, InvalidBaggage> {
        if !is_valid_key(key) {
            return Err(InvalidBaggage { key: true });
        }
        let new = Member::new(key, value);
        let (text, count) = self.capacity();
        let mut b = Builder::new(text + key.len() + value.len(), count + 1);
        let mut replaced = false;
        for m in self.iter() {
            let m = if m.key == key {
                replaced = true;
                new
            } else {
                m
            };
            b.push(m)
                .map_err(|OverLimit| InvalidBaggage { key: false })?;
        }
        if !replaced {
            b.push(new)
                .map_err(|OverLimit| InvalidBaggage { key: false })?;
        }
        Ok(b.finish())
    }

    /// Returns baggage without `key`.
    pub fn remove(&self, key: &str) -> Baggage {
        Self::rebuild(self.iter().filter(|m| m.key != key), self.capacity()).finish()
    }

    /// Adds the members of `other` whose keys `self` lacks, within the limits (`self` wins).
    pub fn merge(&self, other: &Baggage) -> Baggage {
        self.merge_by(other, |a, b| a == b)
    }

    /// [`merge`](Baggage::merge), with keys that differ only in ASCII case counted as one: for
    /// baggage from two formats, one of which lowercases keys on the way (Jaeger's
    /// `uberctx-{key}` headers, whose names HTTP lowercases). One key in, one key out.
    pub fn merge_ignoring_key_case(&self, other: &Baggage) -> Baggage {
        self.merge_by(other, str::eq_ignore_ascii_case)
    }

    fn merge_by(&self, other: &Baggage, same: fn(&str, &str) -> bool) -> Baggage {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        let ((a, n), (c, m)) = (self.capacity(), other.capacity());
        let mut b = Self::rebuild(self.iter(), (a + c, n + m));
        for m in other.iter() {
            if !b.members.iter().any(|x| same(x.key, m.key)) {
                let _ = b.push(m);
            }
        }
        b.finish()
    }

    /// Builds baggage from already-decoded pairs, dropping invalid keys and anything over the
    /// limits.
    pub fn from_pairs<'a, I: IntoIterator<Item = (&'a str, Cow<'a, str>)>>(pairs: I) -> Baggage {
        let mut pairs = pairs.into_iter().peekable();
        if pairs.peek().is_none() {
            return Baggage::empty();
        }
        let mut b = Builder::new(64, 4);
        for (key, value) in pairs {
            if is_valid_key(key) {
                let _ = b.push(Member::new(key, &value));
            }
        }
        b.finish()
    }

    /// Builds baggage from pairs whose values are percent-encoded (Jaeger's `uberctx-*`
    /// headers): values are decoded; a pair whose key is not a token, or whose value is not
    /// UTF-8 once decoded, is dropped, and so is anything over the limits.
    pub(crate) fn from_encoded_pairs<'a>(
        mut pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Baggage {
        // Most requests carry no `uberctx-*` header: nothing made for them.
        let mut next = pairs.next();
        if next.is_none() {
            return Baggage::empty();
        }
        let mut kept = EncodedPairs::new();
        while let Some((key, value)) = next {
            if !kept.push(key, value) {
                // More than fit in place: decoded now.
                let mut b = decode_pairs(kept.iter());
                decode_pairs_into(&mut b, [(key, value)].into_iter().chain(pairs));
                return b.finish();
            }
            next = pairs.next();
        }
        // Decoded on the first read.
        Baggage(Some(Arc::new(Shared::Encoded {
            pairs: kept,
            decoded: OnceLock::new(),
        })))
    }

    /// The `baggage` header value: members percent-encoded, within [`MAX_BYTES`]; `None` when
    /// empty.
    pub fn header_value(&self) -> Option<String> {
        let members = self.members()?;
        // The exact length (kept since the members were added, and within `MAX_BYTES`), so
        // the `String` becomes a header value without reallocating.
        let mut out = String::with_capacity(members.header_len);
        for m in self.iter() {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(m.key);
            out.push('=');
            if m.encoded_value == m.value.len() {
                out.push_str(m.value);
            } else {
                encode_into(&mut out, m.value);
            }
            if !m.properties.is_empty() {
                out.push(';');
                out.push_str(m.properties);
            }
        }
        Some(out)
    }
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|m| (m.key, m.value)))
            .finish()
    }
}

/// Equal when the members are (in order), however each side was made or kept.
impl PartialEq for Baggage {
    fn eq(&self, other: &Self) -> bool {
        self.members() == other.members()
    }
}

impl Eq for Baggage {}

impl std::hash::Hash for Baggage {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.members().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encode set as `percent-encoding` spells it: the reference for [`must_encode`].
    const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b',')
        .add(b';')
        .add(b'\\')
        .add(b'%')
        .add(b'+');

    #[test]
    fn encoder_and_encoded_length_match_percent_encoding() {
        use percent_encoding::utf8_percent_encode;
        let mut all_ascii = String::new();
        for b in 0u8..128 {
            all_ascii.push(char::from(b));
        }
        for v in [
            all_ascii.as_str(),
            "",
            "München",
            "a b+c%d,e;f\"g\\h",
            "日本 語",
            "€x\u{10FFFF}",
        ] {
            let want: String = utf8_percent_encode(v, ENCODE).collect();
            assert_eq!(Member::new("k", v).encoded_value(), want, "{v:?}");
            assert_eq!(encoded_value_len(v), want.len(), "{v:?}");
        }
        assert_eq!(trim_ows(" \t a b \t"), "a b");
        assert_eq!(trim_ows(" \t "), "");
    }

    /// The straightforward reading the one-pass parser must agree with: each line split at
    /// `,`, each member at `;` and its first `=`, trimmed, checked, decoded; then the limits.
    /// Members as `(key, value, properties)`, with the drop counts.
    fn reference(lines: &[&str]) -> (Vec<(String, String, String)>, BaggageDrops) {
        let mut members: Vec<(String, String, String)> = Vec::new();
        let mut drops = BaggageDrops::default();
        let mut bytes = 0;
        for raw in lines.iter().flat_map(|l| l.split(',')) {
            if trim_ows(raw).is_empty() {
                continue;
            }
            let parsed = (|| {
                let mut parts = raw.split(';');
                let (k, v) = parts.next()?.split_once('=')?;
                let (k, v) = (trim_ows(k), trim_ows(v));
                if !is_valid_key(k) || !v.bytes().all(baggage_octet) {
                    return None;
                }
                let v = String::from_utf8_lossy(&percent_decode_str(v).collect::<Vec<u8>>())
                    .into_owned();
                let mut props = Vec::new();
                for p in parts {
                    let p = trim_ows(p);
                    let (pk, pv) = match p.split_once('=') {
                        Some((a, b)) => (trim_ows(a), Some(trim_ows(b))),
                        None => (p, None),
                    };
                    if !is_valid_key(pk) || !pv.is_none_or(|v| v.bytes().all(baggage_octet)) {
                        return None;
                    }
                    props.push(pv.map_or(pk.to_owned(), |v| format!("{pk}={v}")));
                }
                Some((k.to_owned(), v, props.join(";")))
            })();
            let Some(m) = parsed else {
                drops.invalid += 1;
                continue;
            };
            let encoded: String = percent_encoding::utf8_percent_encode(&m.1, ENCODE).collect();
            let props = if m.2.is_empty() { 0 } else { 1 + m.2.len() };
            let extra = m.0.len() + 1 + encoded.len() + props + usize::from(!members.is_empty());
            if members.len() == MAX_MEMBERS
                || bytes + extra > MAX_BYTES
                || members.iter().any(|x| x.0 == m.0)
            {
                drops.over_limit += 1;
                continue;
            }
            bytes += extra;
            members.push(m);
        }
        (members, drops)
    }

    fn owned(b: &Baggage) -> Vec<(String, String, String)> {
        b.iter()
            .map(|m| (m.key().into(), m.value().into(), m.properties().into()))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Near-valid lines (common members, white space, properties, escapes, bad bytes,
        /// repeated keys) parse as the reference reads them, drop counts included.
        #[test]
        fn one_pass_parser_agrees_with_the_reference(
            lines in proptest::collection::vec(
                "([ \t]?[a-dK+%]{0,3}[ \t]?=?[ \t]?([a-z0-9=+/]|%[0-9A-Fa-f]{0,2}|%C3%BC|%FF| |\t|\"|é){0,6}(;[ \t]?[a-c]{0,2}(=[a-z%]{0,2})?)?,?){0,6}",
                1..3,
            ),
        ) {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let (b, drops) = Baggage::parse_lines_counted(lines.iter().copied());
            let (want, want_drops) = reference(&lines);
            proptest::prop_assert_eq!(owned(&b), want);
            proptest::prop_assert_eq!(drops, want_drops);
            // The header is written at the length kept while parsing, exactly.
            if let Some(h) = b.header_value() {
                proptest::prop_assert_eq!(h.capacity(), h.len());
                proptest::prop_assert_eq!(Baggage::parse_lines([h.as_str()]), b);
            }
        }

        /// Near the byte limit: which members fit agrees with the reference.
        #[test]
        fn limits_agree_with_the_reference(sizes in proptest::collection::vec(0usize..3000, 1..8)) {
            let line: Vec<String> =
                sizes.iter().enumerate().map(|(i, n)| format!("k{i}={}", "v+".repeat(*n / 2))).collect();
            let line = line.join(",");
            let (b, drops) = Baggage::parse_lines_counted([line.as_str()]);
            let (want, want_drops) = reference(&[&line]);
            proptest::prop_assert_eq!(owned(&b), want);
            proptest::prop_assert_eq!(drops, want_drops);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// The one-pass decoder appends what `push_decoded` appends, and counts what
        /// `encoded_value_len` counts of it, under both policies.
        #[test]
        fn counted_decoding_agrees_with_decode_then_count(
            prefix in "[a-z]{0,3}",
            value in "([a-zA-Z0-9 +,;\"\\=é]|%[0-9A-Fa-fxz]{0,2}|%C3%BC|%E2%86%92|%FF|%C3){0,12}",
        ) {
            for policy in [NotUtf8::Replace, NotUtf8::Drop] {
                let mut want = Text::default();
                want.push_str(&prefix);
                let ok = push_decoded(&mut want, &value, policy).is_some();
                let mut got = Text::default();
                got.push_str(&prefix);
                let encoded = push_decoded_counted(&mut got, &value, policy);
                proptest::prop_assert_eq!(got.as_str(), want.as_str());
                let want_encoded =
                    ok.then(|| encoded_value_len(want.get(prefix.len()..).unwrap_or_default()));
                proptest::prop_assert_eq!(encoded, want_encoded, "{:?}", value);
            }
        }
    }

    #[test]
    fn text_in_place_and_on_the_heap_is_the_same_text() {
        use std::hash::BuildHasher;
        let mut inline = Text::default();
        let mut heap = Text::with_capacity(INLINE_TEXT + 1);
        assert!(matches!(heap, Text::Heap(_)));
        for t in [&mut inline, &mut heap] {
            t.push_str("ab");
            t.push('é');
            t.push_str("c");
        }
        assert!(matches!(inline, Text::Inline { .. }));
        assert_eq!(inline.as_str(), "abéc");
        assert_eq!(inline, heap);
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&inline), state.hash_one(&heap));
        inline.truncate(2);
        assert_eq!(inline.as_str(), "ab");
        inline.truncate(5);
        assert_eq!(inline.as_str(), "ab", "no longer");
        // Past the place: the text moves to the heap, whole.
        let long = "x".repeat(INLINE_TEXT);
        inline.push_str(&long);
        assert!(matches!(inline, Text::Heap(_)));
        assert_eq!(inline.as_str(), format!("ab{long}"));
        // Exactly full stays in place.
        let mut full = Text::default();
        full.push_str(&long);
        assert!(matches!(full, Text::Inline { .. }));
        assert_eq!(full.len(), INLINE_TEXT);
        full.reserve(1);
        assert!(matches!(full, Text::Heap(_)));
        assert_eq!(full.as_str(), long);
    }

    #[test]
    fn baggage_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<Baggage>();
    }

    #[test]
    fn baggage_equality_does_not_depend_on_where_the_text_is() {
        use std::hash::BuildHasher;
        // A long line reserves heap text; its one valid member makes the same baggage as a
        // short line, whose text stays in place.
        let long = format!("k=v,{}", "bad key=x,".repeat(20));
        let (a, b) = (
            Baggage::parse_lines([long.as_str()]),
            Baggage::parse_lines(["k=v"]),
        );
        assert!(matches!(a.members().map(|m| &m.text), Some(Text::Heap(_))));
        assert!(matches!(
            b.members().map(|m| &m.text),
            Some(Text::Inline { .. })
        ));
        assert_eq!(a, b);
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&a), state.hash_one(&b));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// `uberctx-*` pairs kept undecoded (few and short) read, compare and hash exactly as
        /// the same pairs decoded at once; past what fits in place they are decoded at once.
        #[test]
        fn encoded_pairs_read_as_if_decoded_at_once(
            pairs in proptest::collection::vec(
                ("[a-cK-]{0,3}( )?", "([a-z+]{0,40}|%[0-9A-Fa-f]{0,2}|%C3%BC|%FF| ){0,3}"),
                0..7,
            ),
        ) {
            use std::hash::BuildHasher;
            let pairs: Vec<(&str, &str)> =
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let lazy = Baggage::from_encoded_pairs(pairs.iter().copied());
            let eager = decode_pairs(pairs.iter().copied()).finish();
            let state = std::collections::hash_map::RandomState::new();
            // Hashed and compared before any other read, then read.
            proptest::prop_assert_eq!(state.hash_one(&lazy), state.hash_one(&eager));
            proptest::prop_assert!(lazy == eager);
            proptest::prop_assert_eq!(lazy.is_empty(), eager.is_empty());
            proptest::prop_assert_eq!(owned(&lazy), owned(&eager));
            proptest::prop_assert_eq!(lazy.header_value(), eager.header_value());
            let fits = pairs.len() <= INLINE
                && pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() <= INLINE_TEXT;
            let kept_undecoded = matches!(lazy.0.as_deref(), Some(Shared::Encoded { .. }));
            proptest::prop_assert_eq!(kept_undecoded, fits && !pairs.is_empty());
        }
    }

    #[test]
    fn encoded_pairs_none_valid_are_empty_baggage() {
        use std::hash::BuildHasher;
        let b = Baggage::from_encoded_pairs([("bad key", "v"), ("k", "%FF")].into_iter());
        assert!(matches!(b.0.as_deref(), Some(Shared::Encoded { .. })));
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&b), state.hash_one(Baggage::empty()));
        assert_eq!(b, Baggage::empty());
        assert!(b.is_empty());
        assert_eq!((b.len(), b.header_value()), (0, None));
        // A clone decodes once for both.
        let c = b.clone();
        assert!(c.is_empty() && Arc::ptr_eq(b.0.as_ref().unwrap(), c.0.as_ref().unwrap()));
    }

    #[test]
    fn encoded_pairs_are_decoded_and_undecodable_ones_dropped() {
        let b = Baggage::from_encoded_pairs(
            [
                ("a", "x%20y%2c%"),
                ("b", "%FF"),
                ("c", "M%C3%BCnchen%2"),
                ("d", "100%%41"),
                ("bad key", "v"),
            ]
            .into_iter(),
        );
        assert_eq!(
            owned(&b),
            [
                ("a".into(), "x y,%".into(), "".into()),
                ("c".into(), "München%2".into(), "".into()),
                ("d".into(), "100%A".into(), "".into()),
            ]
        );
    }

    #[test]
    fn no_lines_and_empty_lines_are_empty_baggage() {
        for lines in [&[][..], &[""][..], &[" , ", ""][..]] {
            let (b, drops) = Baggage::parse_lines_counted(lines.iter().copied());
            assert!(b.is_empty(), "{lines:?}");
            assert_eq!(b, Baggage::empty());
            assert_eq!((drops.invalid, drops.over_limit), (0, 0), "{lines:?}");
        }
    }

    #[test]
    fn more_members_than_kept_in_place() {
        let line: Vec<String> = (0..2 * INLINE + 1).map(|i| format!("k{i}=v{i}")).collect();
        let b = Baggage::parse_lines([line.join(",").as_str()]);
        assert_eq!(b.len(), 2 * INLINE + 1);
        assert_eq!(b.get("k8"), Some("v8"));
        assert_eq!(b.header_value().as_deref(), Some(line.join(",").as_str()));
        assert_eq!(b.remove("k0").get("k8"), Some("v8"));
        assert_eq!(b.remove("k0").len(), 2 * INLINE);
    }

    #[test]
    fn parses_spec_examples() {
        let b = Baggage::parse_lines(["userId=alice,serverNode=DF%2028,isProduction=false"]);
        assert_eq!(b.get("userId"), Some("alice"));
        assert_eq!(b.get("serverNode"), Some("DF 28"));
        assert_eq!(b.get("isProduction"), Some("false"));
        let b = Baggage::parse_lines([
            "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
        ]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().next().unwrap().properties(), "property1;property2");
        assert_eq!(b.get("key2"), Some("value2"));
        assert_eq!(
            b.iter().nth(2).unwrap().properties(),
            "propertyKey=propertyValue"
        );
    }

    #[test]
    fn value_keeps_equals_signs_whole() {
        let b = Baggage::parse_lines(["token=abc==,expr=a=b=c"]);
        assert_eq!(b.get("token"), Some("abc=="));
        assert_eq!(b.get("expr"), Some("a=b=c"));
        assert_eq!(b.header_value().unwrap(), "token=abc==,expr=a=b=c");
    }

    #[test]
    fn invalid_members_are_dropped_alone() {
        let (b, drops) =
            Baggage::parse_lines_counted(["a=1,no-equals,b c=2,c=\"q\",d=%FF,e=ok;bad prop,f=2"]);
        assert_eq!(
            b.iter().map(Member::key).collect::<Vec<_>>(),
            ["a", "d", "f"]
        );
        assert_eq!(drops.invalid, 4);
    }

    #[test]
    fn undecodable_octets_become_the_replacement_character() {
        let b = Baggage::parse_lines(["k=%FF,l=a%C3b,m=%E2%86%92"]);
        assert_eq!(b.get("k"), Some("\u{FFFD}"));
        assert_eq!(b.get("l"), Some("a\u{FFFD}b"));
        assert_eq!(b.get("m"), Some("→"));
    }

    #[test]
    fn empty_values_are_allowed() {
        let b = Baggage::parse_lines(["a="]);
        assert_eq!(b.get("a"), Some(""));
    }

    #[test]
    fn percent_encoding_round_trips_unicode_and_reserved() {
        let b = Baggage::empty().insert("k", "a b,c;d\\e%f\"g→").unwrap();
        let header = b.header_value().unwrap();
        assert_eq!(header, "k=a%20b%2Cc%3Bd%5Ce%25f%22g%E2%86%92");
        assert_eq!(
            Baggage::parse_lines([header.as_str()]).get("k"),
            Some("a b,c;d\\e%f\"g→")
        );
    }

    #[test]
    fn member_limit_truncates_in_order() {
        let header: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
        let (b, drops) = Baggage::parse_lines_counted([header.join(",").as_str()]);
        assert_eq!(b.len(), MAX_MEMBERS);
        assert_eq!(b.iter().last().unwrap().key(), "k179");
        assert_eq!(drops.over_limit, 20);
    }

    #[test]
    fn byte_limit_drops_whole_members() {
        let big = "v".repeat(4000);
        let header = format!("a={big},b={big},c={big},d=1");
        let (b, drops) = Baggage::parse_lines_counted([header.as_str()]);
        assert_eq!(
            b.iter().map(Member::key).collect::<Vec<_>>(),
            ["a", "b", "d"]
        );
        assert_eq!(drops.over_limit, 1);
        assert!(b.header_value().unwrap().len() <= MAX_BYTES);
    }

    #[test]
    fn insert_rejects_bad_key_and_over_limit() {
        assert!(
            Baggage::empty()
                .insert("bad key", "v")
                .unwrap_err()
                .is_invalid_key()
        );
        assert!(
            Baggage::empty()
                .insert("k", &"v".repeat(9000))
                .unwrap_err()
                .is_over_limit()
        );
    }

    #[test]
    fn duplicate_keys_keep_the_first() {
        let b = Baggage::parse_lines(["a=1,a=2", "a=3,b=4"]);
        assert_eq!(b.get("a"), Some("1"));
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn merge_prefers_self() {
        let a = Baggage::parse_lines(["x=1"]);
        let b = Baggage::parse_lines(["x=2,y=3"]);
        let m = a.merge(&b);
        assert_eq!(m.get("x"), Some("1"));
        assert_eq!(m.get("y"), Some("3"));
    }

    #[test]
    fn empty_baggage_injects_nothing() {
        assert_eq!(Baggage::parse_lines([" , "]).header_value(), None);
    }
}
