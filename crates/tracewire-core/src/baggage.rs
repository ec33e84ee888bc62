//! W3C Baggage: user-defined key/value pairs that travel with a request.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The most list members tracewire keeps. The W3C grammar allows 180
/// (`list-member 0*179( OWS "," OWS list-member )`); the spec requires at least 64.
pub const MAX_MEMBERS: usize = 180;
/// The most bytes of a serialized `baggage` header (W3C Baggage §3.3.1).
pub const MAX_BYTES: usize = 8192;

/// Everything outside `baggage-octet` is percent-encoded, and `%` itself.
/// `baggage-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
/// `+` is encoded too (the spec allows encoding any octet): readers that form-decode, such as
/// OpenTelemetry Python and Java's `URLDecoder`, would otherwise read it as a space.
const ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%')
    .add(b'+');

/// One baggage entry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Member {
    // The key immediately followed by the decoded value: one allocation per member.
    key_value: String,
    key_len: usize,
    properties: String,
}

impl Member {
    fn new(key: &str, value: &str, properties: String) -> Member {
        let mut key_value = String::with_capacity(key.len() + value.len());
        key_value.push_str(key);
        key_value.push_str(value);
        Member {
            key_value,
            key_len: key.len(),
            properties,
        }
    }
    /// The key (an RFC 7230 token).
    pub fn key(&self) -> &str {
        self.key_value.get(..self.key_len).unwrap_or_default()
    }
    /// The decoded value.
    pub fn value(&self) -> &str {
        self.key_value.get(self.key_len..).unwrap_or_default()
    }
    /// The member's properties (metadata) in canonical form, `k=v;flag`, or `""`.
    pub fn properties(&self) -> &str {
        &self.properties
    }
    fn encoded_len(&self) -> usize {
        let value = encoded_value_len(self.value());
        self.key_len
            + 1
            + value
            + if self.properties.is_empty() {
                0
            } else {
                1 + self.properties.len()
            }
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("key", &self.key())
            .field("value", &self.value())
            .field("properties", &self.properties)
            .finish()
    }
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
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Baggage(Option<Arc<Vec<Member>>>);

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

/// A byte class as a lookup table (one load per byte in the parsing loops): `tchar` when
/// `token`, else `baggage-octet`.
const fn byte_table(token: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if token {
            tchar(i as u8)
        } else {
            baggage_octet(i as u8)
        };
        i += 1;
    }
    t
}

const TCHAR: [bool; 256] = byte_table(true);
const BAGGAGE_OCTET: [bool; 256] = byte_table(false);

#[inline]
fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// True when `key` is an RFC 7230 token, as baggage keys must be.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_tchar)
}

#[inline]
fn is_baggage_octet(b: u8) -> bool {
    BAGGAGE_OCTET[b as usize]
}

#[inline]
fn trim_ows(s: &str) -> &str {
    let ows = |c: &u8| *c == b' ' || *c == b'\t';
    let b = s.as_bytes();
    let start = b.iter().position(|c| !ows(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ows(c)).map_or(start, |e| e + 1);
    // Space and tab are ASCII, so both ends are character boundaries.
    s.get(start..end).unwrap_or_default()
}

/// Bytes [`ENCODE`] turns into `%XX`, by ASCII byte (non-ASCII bytes always are). Derived from
/// `ENCODE` itself once, so the two cannot disagree.
fn encode_widths() -> &'static [u8; 128] {
    static WIDTHS: std::sync::OnceLock<[u8; 128]> = std::sync::OnceLock::new();
    WIDTHS.get_or_init(|| {
        let mut t = [1u8; 128];
        for (b, w) in (0u8..).zip(t.iter_mut()) {
            let one = [b];
            if let Ok(s) = std::str::from_utf8(&one) {
                *w = utf8_percent_encode(s, ENCODE).map(str::len).sum::<usize>() as u8;
            }
        }
        t
    })
}

/// The length of `value` percent-encoded with [`ENCODE`], without encoding it.
fn encoded_value_len(value: &str) -> usize {
    let widths = encode_widths();
    value
        .bytes()
        .map(|b| widths.get(usize::from(b)).map_or(3, |w| usize::from(*w)))
        .sum()
}

/// Parses one list member; `None` if it breaks the grammar.
fn parse_member(raw: &str) -> Option<Member> {
    // `;` and `=` are ASCII, so splitting at their byte positions keeps `str` boundaries.
    let (kv, props) = match raw.bytes().position(|b| b == b';') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    let eq = kv.bytes().position(|b| b == b'=')?;
    let key = trim_ows(&kv[..eq]);
    let value = trim_ows(&kv[eq + 1..]);
    if !is_valid_key(key) || !value.bytes().all(is_baggage_octet) {
        return None;
    }
    // Key and decoded value go straight into the member's one buffer.
    let key_value = if value.as_bytes().contains(&b'%') {
        let mut key_value = Vec::with_capacity(key.len() + value.len());
        key_value.extend_from_slice(key.as_bytes());
        key_value.extend(percent_decode_str(value));
        // W3C Baggage: decoded octets that are not UTF-8 become U+FFFD (the member is kept).
        // The key is ASCII, so it stays as it was, ahead of the value.
        String::from_utf8(key_value)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    } else {
        let mut key_value = String::with_capacity(key.len() + value.len());
        key_value.push_str(key);
        key_value.push_str(value);
        key_value
    };
    let mut properties = String::new();
    for prop in props.into_iter().flat_map(|p| p.split(';')) {
        let prop = trim_ows(prop);
        let (pk, pv) = match prop.split_once('=') {
            Some((k, v)) => (trim_ows(k), Some(trim_ows(v))),
            None => (prop, None),
        };
        if !is_valid_key(pk) || !pv.is_none_or(|v| v.bytes().all(is_baggage_octet)) {
            return None;
        }
        if !properties.is_empty() {
            properties.push(';');
        }
        properties.push_str(pk);
        if let Some(pv) = pv {
            properties.push('=');
            properties.push_str(pv);
        }
    }
    Some(Member {
        key_value,
        key_len: key.len(),
        properties,
    })
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
        let mut members: Vec<Member> = Vec::new();
        let mut drops = BaggageDrops::default();
        let mut bytes = 0usize;
        for line in lines {
            if members.is_empty() {
                let commas = line.bytes().filter(|&b| b == b',').count();
                members.reserve(commas.saturating_add(1).min(MAX_MEMBERS));
            }
            for raw in line.split(',') {
                if trim_ows(raw).is_empty() {
                    continue;
                }
                let Some(member) = parse_member(raw) else {
                    drops.invalid += 1;
                    continue;
                };
                let extra = member.encoded_len() + usize::from(!members.is_empty());
                if members.len() == MAX_MEMBERS
                    || bytes + extra > MAX_BYTES
                    || members.iter().any(|m| m.key() == member.key())
                {
                    drops.over_limit += 1;
                    continue;
                }
                bytes += extra;
                members.push(member);
            }
        }
        if drops.invalid + drops.over_limit > 0 {
            log::debug!(
                "baggage: dropped {} invalid and {} over-limit members",
                drops.invalid,
                drops.over_limit
            );
        }
        (Self::from_vec(members), drops)
    }

    fn from_vec(members: Vec<Member>) -> Baggage {
        if members.is_empty() {
            Baggage(None)
        } else {
            Baggage(Some(Arc::new(members)))
        }
    }

    fn members(&self) -> &[Member] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// The members in order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members().iter()
    }

    /// The decoded value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members()
            .iter()
            .find(|m| m.key() == key)
            .map(Member::value)
    }

    /// Returns baggage with `key=value` set (replacing an older value in place).
    pub fn insert(&self, key: &str, value: &str) -> Result<Baggage, InvalidBaggage> {
        if !is_valid_key(key) {
            return Err(InvalidBaggage { key: true });
        }
        let mut members = self.members().to_vec();
        let member = Member::new(key, value, String::new());
        match members.iter_mut().find(|m| m.key() == key) {
            Some(slot) => *slot = member,
            None => members.push(member),
        }
        let bytes: usize =
            members.iter().map(Member::encoded_len).sum::<usize>() + members.len() - 1;
        if members.len() > MAX_MEMBERS || bytes > MAX_BYTES {
            return Err(InvalidBaggage { key: false });
        }
        Ok(Self::from_vec(members))
    }

    /// Returns baggage without `key`.
    pub fn remove(&self, key: &str) -> Baggage {
        Self::from_vec(
            self.members()
                .iter()
                .filter(|m| m.key() != key)
                .cloned()
                .collect(),
        )
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
        let mut members = self.members().to_vec();
        let mut bytes: usize =
            members.iter().map(Member::encoded_len).sum::<usize>() + members.len() - 1;
        for m in other.members() {
            let extra = m.encoded_len() + 1;
            if members.len() < MAX_MEMBERS
                && bytes + extra <= MAX_BYTES
                && !members.iter().any(|x| same(x.key(), m.key()))
            {
                bytes += extra;
                members.push(m.clone());
            }
        }
        Self::from_vec(members)
    }

    /// Builds baggage from already-decoded pairs (as Jaeger's `uberctx-*` headers give them),
    /// dropping invalid keys and anything over the limits.
    pub fn from_pairs<'a, I: IntoIterator<Item = (&'a str, Cow<'a, str>)>>(pairs: I) -> Baggage {
        let mut members: Vec<Member> = Vec::new();
        let mut bytes = 0usize;
        for (key, value) in pairs {
            if !is_valid_key(key) || members.iter().any(|m| m.key() == key) {
                continue;
            }
            let member = Member::new(key, &value, String::new());
            let extra = member.encoded_len() + usize::from(!members.is_empty());
            if members.len() == MAX_MEMBERS || bytes + extra > MAX_BYTES {
                continue;
            }
            bytes += extra;
            members.push(member);
        }
        Self::from_vec(members)
    }

    /// The `baggage` header value: members percent-encoded, within [`MAX_BYTES`]; `None` when
    /// empty.
    pub fn header_value(&self) -> Option<String> {
        let members = self.members();
        if members.is_empty() {
            return None;
        }
        // The exact length, so the `String` becomes a header value without reallocating.
        let len = members.iter().map(Member::encoded_len).sum::<usize>() + members.len() - 1;
        let mut out = String::with_capacity(len.min(MAX_BYTES));
        for m in members {
            let start = out.len();
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(m.key());
            out.push('=');
            out.extend(utf8_percent_encode(m.value(), ENCODE));
            if !m.properties.is_empty() {
                out.push(';');
                out.push_str(&m.properties);
            }
            if out.len() > MAX_BYTES {
                out.truncate(start);
                break;
            }
        }
        Some(out)
    }
}

/// Percent-encodes a baggage value (exposed for the Jaeger `uberctx-*` headers), into a
/// `String` of exactly the encoded length (so a header value takes it without reallocating).
pub(crate) fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(encoded_value_len(value));
    out.extend(utf8_percent_encode(value, ENCODE));
    out
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|m| (m.key(), m.value())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_length_matches_the_encoder() {
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
        ] {
            let encoded: usize = utf8_percent_encode(v, ENCODE).map(str::len).sum();
            assert_eq!(encoded_value_len(v), encoded, "{v:?}");
        }
        assert_eq!(trim_ows(" \t a b \t"), "a b");
        assert_eq!(trim_ows(" \t "), "");
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
