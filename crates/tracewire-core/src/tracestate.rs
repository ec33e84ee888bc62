//! W3C `tracestate` (Trace Context Level 2): a validated, ordered list of vendor entries.

use std::fmt;
use std::sync::Arc;

/// The most list members a `tracestate` may hold (W3C Trace Context §3.3.1.1).
pub const MAX_MEMBERS: usize = 32;
/// The longest key: one leading character and up to 255 more.
pub const MAX_KEY_LEN: usize = 256;
/// The longest value.
pub const MAX_VALUE_LEN: usize = 256;

/// A validated W3C `tracestate`.
///
/// Stored as its canonical header value (members joined by `,`, no optional white space, empty
/// members removed), shared behind an `Arc`, so cloning is a reference-count increment and
/// injecting is a copy of one string. The empty state allocates nothing.
///
/// Grammar (W3C Trace Context Level 2):
///
/// ```text
/// list        = list-member 0*31( OWS "," OWS list-member )
/// list-member = (key "=" value) / OWS
/// key         = ( lcalpha / DIGIT ) 0*255 ( keychar )
/// keychar     = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
/// value       = 0*255(chr) nblk-chr
/// nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
/// chr         = %x20 / nblk-chr
/// ```
///
/// A header with any invalid member or more than 32 members is invalid as a whole:
/// [`TraceState::parse`] rejects it and extraction continues with an empty `tracestate` (the
/// spec's "vendors MUST discard the whole tracestate" for malformed input). A repeated key is
/// not malformed input to lose the header over: its first member is kept and the repeats are
/// dropped (what the W3C test suite's `test_tracestate_duplicated_keys` accepts).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TraceState(Option<Arc<str>>);

/// Why a `tracestate` (or a key/value given to [`TraceState::insert`]) was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTraceState {
    kind: InvalidKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvalidKind {
    Key,
    Value,
    Member,
    TooMany,
}

impl InvalidTraceState {
    fn new(kind: InvalidKind) -> Self {
        Self { kind }
    }
    /// A key broke the key grammar.
    pub fn is_invalid_key(&self) -> bool {
        self.kind == InvalidKind::Key
    }
    /// A value broke the value grammar.
    pub fn is_invalid_value(&self) -> bool {
        self.kind == InvalidKind::Value
    }
    /// A list member had no `=`.
    pub fn is_malformed_member(&self) -> bool {
        self.kind == InvalidKind::Member
    }
    /// More than [`MAX_MEMBERS`] members.
    pub fn is_too_many_members(&self) -> bool {
        self.kind == InvalidKind::TooMany
    }
}

impl fmt::Display for InvalidTraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            InvalidKind::Key => "invalid tracestate key",
            InvalidKind::Value => "invalid tracestate value",
            InvalidKind::Member => "tracestate list member without '='",
            InvalidKind::TooMany => "more than 32 tracestate list members",
        })
    }
}

impl std::error::Error for InvalidTraceState {}

const fn keychar(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@')
}

const fn nblk(c: u8) -> bool {
    matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e)
}

/// Byte classes as lookup tables: bit 0 `keychar`, bit 1 `nblk-chr`, bit 2 `chr`.
const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = (keychar(b) as u8) | ((nblk(b) as u8) << 1) | (((nblk(b) || b == b' ') as u8) << 2);
        i += 1;
    }
    t
};

#[inline]
fn is_keychar(b: u8) -> bool {
    CLASSES[b as usize] & 1 != 0
}

#[inline]
fn is_nblk(c: u8) -> bool {
    CLASSES[c as usize] & 2 != 0
}

/// Checks a key against `( lcalpha / DIGIT ) 0*255 ( keychar )`.
pub fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    matches!(b.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && b.len() <= MAX_KEY_LEN
        && b.iter().all(|&c| is_keychar(c))
}

/// Checks a value against `0*255(chr) nblk-chr`.
pub fn is_valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_VALUE_LEN
        && b.iter().all(|&c| CLASSES[c as usize] & 4 != 0)
        && b.last().is_some_and(|&c| is_nblk(c))
}

/// True when `line` is a valid `tracestate` in canonical form: 1 to 8 members
/// `key=value` joined by single commas, no white space around members or keys, no empty
/// members, no duplicate keys. One pass over the bytes. `false` says nothing about validity:
/// the general parser then decides (more than 8 members are valid, for one).
fn is_canonical_line(line: &str) -> bool {
    let b = line.as_bytes();
    let mut keys: [&[u8]; 8] = [&[]; 8];
    let mut count = 0;
    let mut i = 0;
    loop {
        // Key: `[a-z0-9]` then key characters, up to `=`.
        let key_start = i;
        if !matches!(b.get(i), Some(b'a'..=b'z' | b'0'..=b'9')) {
            return false;
        }
        i += 1;
        while i < b.len() && is_keychar(b[i]) {
            i += 1;
        }
        if i - key_start > MAX_KEY_LEN || b.get(i) != Some(&b'=') {
            return false;
        }
        let key = &b[key_start..i];
        i += 1;
        // Value: value characters up to `,` or the end, the last one not blank.
        let value_start = i;
        while i < b.len() && CLASSES[b[i] as usize] & 4 != 0 {
            i += 1;
        }
        if i == value_start || i - value_start > MAX_VALUE_LEN || !is_nblk(b[i - 1]) {
            return false;
        }
        if count == keys.len() || keys[..count].contains(&key) {
            return false;
        }
        keys[count] = key;
        count += 1;
        match b.get(i) {
            None => return true,
            // A member must follow the comma (`,` at the end is an empty member).
            Some(b',') if i + 1 < b.len() => i += 1,
            Some(_) => return false,
        }
    }
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

impl TraceState {
    /// The empty `tracestate` (never injected).
    pub const fn empty() -> Self {
        TraceState(None)
    }

    /// Parses one or more header lines (each line a comma-separated list), as a receiver
    /// combines repeated `tracestate` headers.
    pub fn parse_lines<'a, I>(lines: I) -> Result<TraceState, InvalidTraceState>
    where
        I: IntoIterator<Item = &'a str>,
    {
        // The common case, one canonical line, is checked in one fused pass; anything else
        // (several lines, white space, empty members, any error) goes through the general
        // parser below, which gives the same result for canonical lines.
        let mut lines = lines.into_iter();
        let Some(first) = lines.next() else {
            return Ok(TraceState(None));
        };
        match lines.next() {
            None if is_canonical_line(first) => Ok(TraceState(Some(Arc::from(first)))),
            None => Self::parse_general(std::iter::once(first)),
            Some(second) => Self::parse_general([first, second].into_iter().chain(lines)),
        }
    }

    /// The general parser: any number of lines, white space, empty members, and the precise
    /// error for invalid input.
    fn parse_general<'a, I>(lines: I) -> Result<TraceState, InvalidTraceState>
    where
        I: Iterator<Item = &'a str>,
    {
        // One pass validates and remembers the members (borrowed: the first 8 on the stack,
        // more in a `Vec`); the state is then built with one allocation — none beyond the
        // `Arc` when a single line is already canonical, as conforming senders write it.
        let mut inline: [(&str, &str); 8] = [("", ""); 8];
        let mut spilled: Vec<(&str, &str)> = Vec::new();
        let mut count = 0usize;
        let mut canonical_len = 0usize;
        let mut line_count = 0usize;
        let mut only_line = "";
        for line in lines {
            line_count += 1;
            only_line = line;
            let bytes = line.as_bytes();
            let mut start = 0;
            while start <= bytes.len() {
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == b',')
                    .map_or(bytes.len(), |p| start + p);
                // `,` is ASCII: `start` and `end` are character boundaries.
                let member = trim_ows(line.get(start..end).unwrap_or_default());
                start = end + 1;
                if member.is_empty() {
                    continue;
                }
                let eq = member
                    .bytes()
                    .position(|b| b == b'=')
                    .ok_or(InvalidTraceState::new(InvalidKind::Member))?;
                let (key, value) = (&member[..eq], &member[eq + 1..]);
                if !is_valid_key(key) {
                    return Err(InvalidTraceState::new(InvalidKind::Key));
                }
                if !is_valid_value(value) {
                    return Err(InvalidTraceState::new(InvalidKind::Value));
                }
                let seen = if count <= inline.len() {
                    &inline[..count]
                } else {
                    &spilled[..]
                };
                // A repeated key: the first member stands, the repeat is dropped (the W3C test
                // suite's `foo=1,foo=2` keeps `foo`, it does not lose the whole header).
                if seen.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                if count == MAX_MEMBERS {
                    return Err(InvalidTraceState::new(InvalidKind::TooMany));
                }
                if count < inline.len() {
                    inline[count] = (key, value);
                } else {
                    if spilled.is_empty() {
                        spilled.extend_from_slice(&inline);
                    }
                    spilled.push((key, value));
                }
                count += 1;
                canonical_len += usize::from(canonical_len != 0) + member.len();
            }
        }
        if count == 0 {
            return Ok(TraceState(None));
        }
        // The canonical form is the members joined by `,`; a line of the same length holds
        // nothing else (no white space, no empty members), so it is the canonical form.
        if line_count == 1 && only_line.len() == canonical_len {
            return Ok(TraceState(Some(Arc::from(only_line))));
        }
        let members = if count <= inline.len() {
            &inline[..count]
        } else {
            &spilled[..]
        };
        let mut out = String::with_capacity(canonical_len);
        for (i, (key, value)) in members.iter().enumerate() {
            if i != 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
        Ok(TraceState::from_canonical(out))
    }

    /// Parses one header value.
    pub fn parse(header: &str) -> Result<TraceState, InvalidTraceState> {
        Self::parse_lines([header])
    }

    fn from_canonical(s: String) -> TraceState {
        if s.is_empty() {
            TraceState(None)
        } else {
            TraceState(Some(Arc::from(s)))
        }
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The canonical header value (`""` when empty).
    pub fn header_value(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// The members in order, as `(key, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_value()
            .split(',')
            .filter_map(|m| m.split_once('='))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        find(self.header_value(), key)
    }

    /// Returns a new state with `key=value` first and any older entry for `key` removed, as
    /// the spec asks of a vendor that updates its entry. When the list is full the last
    /// member is dropped.
    pub fn insert(&self, key: &str, value: &str) -> Result<TraceState, InvalidTraceState> {
        if !is_valid_key(key) {
            return Err(InvalidTraceState::new(InvalidKind::Key));
        }
        if !is_valid_value(value) {
            return Err(InvalidTraceState::new(InvalidKind::Value));
        }
        let mut out =
            String::with_capacity(key.len() + value.len() + 1 + self.header_value().len());
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        // The new entry plus at most 31 older ones.
        let older = self.iter().filter(|(k, _)| *k != key);
        for (k, v) in older.take(MAX_MEMBERS - 1) {
            out.push(',');
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        Ok(TraceState::from_canonical(out))
    }

    /// Returns a new state without `key`.
    pub fn remove(&self, key: &str) -> TraceState {
        let mut out = String::new();
        for (k, v) in self.iter().filter(|(k, _)| *k != key) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        TraceState::from_canonical(out)
    }
}

fn find<'a>(canonical: &'a str, key: &str) -> Option<&'a str> {
    if canonical.is_empty() {
        return None;
    }
    canonical
        .split(',')
        .filter_map(|m| m.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.header_value())
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_value())
    }
}

impl std::str::FromStr for TraceState {
    type Err = InvalidTraceState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceState::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_parse_and_canonicalise() {
        let ts = TraceState::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").unwrap();
        assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(ts.header_value(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        let ts = TraceState::parse(" a=1 ,\t, b=2 ,").unwrap();
        assert_eq!(ts.header_value(), "a=1,b=2");
        let ts = TraceState::parse_lines(["a=1", "b=2,c=3"]).unwrap();
        assert_eq!(ts.header_value(), "a=1,b=2,c=3");
    }

    #[test]
    fn level2_keys_may_start_with_digit_and_contain_at() {
        assert!(TraceState::parse("1vendor=x").is_ok());
        assert!(TraceState::parse("tenant@sys=x").is_ok());
        assert!(TraceState::parse("0@1=x").is_ok());
        assert!(TraceState::parse("a/b*c_d-e=x").is_ok());
    }

    #[test]
    fn invalid_members_reject_the_whole_header() {
        assert!(TraceState::parse("Upper=1").unwrap_err().is_invalid_key());
        assert!(TraceState::parse("_a=1").unwrap_err().is_invalid_key());
        assert!(
            TraceState::parse("a=1,b")
                .unwrap_err()
                .is_malformed_member()
        );
        assert!(TraceState::parse("a=").unwrap_err().is_invalid_value());
        assert!(TraceState::parse("a=x=y").unwrap_err().is_invalid_value());
        assert!(
            TraceState::parse("a=\u{7f}")
                .unwrap_err()
                .is_invalid_value()
        );
        // Repeated keys: the first member stands (W3C `test_tracestate_duplicated_keys`).
        assert_eq!(TraceState::parse("a=1,a=2").unwrap().header_value(), "a=1");
        assert_eq!(
            TraceState::parse("foo=1,foo=1").unwrap().header_value(),
            "foo=1"
        );
        assert_eq!(
            TraceState::parse("b=1, a=2 ,b=3,c=4")
                .unwrap()
                .header_value(),
            "b=1,a=2,c=4"
        );
        let long_key = format!("{}=v", "k".repeat(257));
        assert!(TraceState::parse(&long_key).unwrap_err().is_invalid_key());
        let ok_key = format!("{}=v", "k".repeat(256));
        assert!(TraceState::parse(&ok_key).is_ok());
        let long_value = format!("k={}", "v".repeat(257));
        assert!(
            TraceState::parse(&long_value)
                .unwrap_err()
                .is_invalid_value()
        );
        let ok_value = format!("k={}", "v".repeat(256));
        assert!(TraceState::parse(&ok_value).is_ok());
    }

    #[test]
    fn value_may_contain_inner_spaces_but_not_end_with_one() {
        assert_eq!(TraceState::parse("a=b c").unwrap().get("a"), Some("b c"));
        // A trailing space is optional white space around the member, so it is trimmed.
        assert_eq!(TraceState::parse("a=bc ").unwrap().get("a"), Some("bc"));
    }

    #[test]
    fn member_limit_is_32() {
        let ok: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(TraceState::parse(&ok.join(",")).is_ok());
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(
            TraceState::parse(&too_many.join(","))
                .unwrap_err()
                .is_too_many_members()
        );
    }

    #[test]
    fn insert_moves_key_to_front_and_caps_length() {
        let ts = TraceState::parse("a=1,b=2").unwrap();
        assert_eq!(ts.insert("b", "3").unwrap().header_value(), "b=3,a=1");
        assert_eq!(ts.remove("a").header_value(), "b=2");
        assert!(ts.remove("a").remove("b").is_empty());
        let full: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        let ts = TraceState::parse(&full.join(",")).unwrap();
        let ts = ts.insert("new", "1").unwrap();
        assert_eq!(ts.iter().count(), 32);
        assert_eq!(ts.get("k31"), None);
        assert!(ts.insert("Bad", "1").unwrap_err().is_invalid_key());
    }

    #[test]
    fn many_members_and_duplicates_past_the_inline_ones() {
        let members: Vec<String> = (0..20).map(|i| format!("k{i}=v{i}")).collect();
        let ts = TraceState::parse_lines([&*members[..10].join(","), &*members[10..].join(" , ")])
            .unwrap();
        assert_eq!(ts.header_value(), members.join(","));
        let dup = format!("{},k3=x", members.join(","));
        assert_eq!(
            TraceState::parse(&dup).unwrap().header_value(),
            members.join(",")
        );
        let dup = format!("{},k15=x", members.join(","));
        assert_eq!(
            TraceState::parse(&dup).unwrap().header_value(),
            members.join(",")
        );
        let canonical = members[..5].join(",");
        assert_eq!(
            TraceState::parse(&canonical).unwrap().header_value(),
            canonical
        );
    }

    #[test]
    fn empty_is_empty() {
        assert!(TraceState::parse("").unwrap().is_empty());
        assert!(TraceState::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn canonical_fast_path_cases() {
        for ok in [
            "a=1",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            "t@v=x y",
            "a= b",
        ] {
            assert!(is_canonical_line(ok), "{ok}");
        }
        for other in [
            "",
            "a=1,",
            ",a=1",
            "a=1,,b=2",
            " a=1",
            "a=1 ",
            "a =1",
            "a=",
            "A=1",
            "a=1,a=2",
            "a=b=c",
            "a",
            "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9",
        ] {
            assert!(!is_canonical_line(other), "{other}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// One line, mostly near-valid: the fused canonical check plus the general parser
        /// give exactly what the general parser alone gives (state or error kind).
        #[test]
        fn fast_path_agrees_with_the_general_parser(
            line in "([a-z0-9@*_/-]{0,4}[= ,\tA!~]?[a-zA-Z0-9 =,~!]{0,5}[,]?){0,11}",
        ) {
            proptest::prop_assert_eq!(
                TraceState::parse_lines([line.as_str()]),
                TraceState::parse_general(std::iter::once(line.as_str()))
            );
        }
    }
}
