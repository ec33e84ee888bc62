//! Hex encoding and decoding for trace and span ids, without allocation or formatting machinery.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Digit values by byte: `0..=15` for a hex digit, `BAD` for anything else. Two tables, so
/// the inner loops have no branches: `LOWER` (W3C `traceparent`: lowercase only) and `ANY`
/// (B3 and Jaeger extraction are tolerant of `A-F`).
const BAD: u8 = 0x10;
const LOWER: [u8; 256] = table(false);
const ANY: [u8; 256] = table(true);

const fn table(upper: bool) -> [u8; 256] {
    let mut t = [BAD; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        if upper {
            t[b'A' as usize + i] = 10 + i as u8;
        }
        i += 1;
    }
    t
}

/// Up to 16 digits, no length check; `None` if any byte is not a digit. The leading
/// `len % 8` digits go through the table, then 8 digits at a time through [`swar8`].
#[inline]
fn fold_u64(s: &[u8], upper: bool) -> Option<u64> {
    let (head, body) = s.split_at(s.len() % 8);
    let mut v = fold_table(head, upper)?;
    for chunk in body.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        v = (v << 32) | u64::from(swar8(u64::from_be_bytes(word), upper)?);
    }
    Some(v)
}

/// Byte-at-a-time decoding through the lookup table (up to 16 digits).
#[inline]
fn fold_table(s: &[u8], upper: bool) -> Option<u64> {
    let t = if upper { &ANY } else { &LOWER };
    let mut v: u64 = 0;
    let mut bad = 0u8;
    for &b in s {
        let d = t[b as usize];
        bad |= d;
        v = (v << 4) | u64::from(d & 0x0f);
    }
    (bad & BAD == 0).then_some(v)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Per byte of `x` (every byte below `0x80`): `0x80` where `lo <= byte <= hi`, else `0`.
/// No carry crosses a byte: each sum stays below `0x100`.
#[inline(always)]
const fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let ge_lo = x + ONES * (0x80 - lo as u64);
    let gt_hi = x + ONES * (0x7f - hi as u64);
    ge_lo & !gt_hi & HIGH
}

/// SWAR: validates and decodes 8 ASCII hex digits at once. `word` holds the digits
/// big-endian (first digit in the top byte). `upper`: `A-F` accepted too.
#[inline(always)]
fn swar8(word: u64, upper: bool) -> Option<u32> {
    if word & HIGH != 0 {
        return None;
    }
    let digit = in_range(word, b'0', b'9');
    // `| 0x20` folds `A-F` onto `a-f` (and nothing else onto them).
    let letters = if upper { word | (ONES * 0x20) } else { word };
    let letter = in_range(letters, b'a', b'f');
    if digit | letter != HIGH {
        return None;
    }
    // Digit value: the low nibble, plus 9 for letters (bit 6 is set only for letters).
    let n = (word & (ONES * 0x0f)) + ((word >> 6) & ONES) * 9;
    // Pack the 8 nibbles (one per byte) into 32 bits, first digit highest.
    let n = (n | (n >> 4)) & 0x00ff_00ff_00ff_00ff;
    let n = (n | (n >> 8)) & 0x0000_ffff_0000_ffff;
    Some((n | (n >> 16)) as u32)
}

/// Parses exactly 16 hex digits (two [`swar8`] steps, no length arithmetic).
#[inline]
pub(crate) fn parse_16(s: &[u8; 16], upper: bool) -> Option<u64> {
    let (hi, lo) = s.split_at(8);
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_be_bytes(w)
    };
    let hi = swar8(word(hi), upper)?;
    let lo = swar8(word(lo), upper)?;
    Some(u64::from(hi) << 32 | u64::from(lo))
}

/// Parses 1 to 32 hex digits into a `u128`.
#[inline]
pub(crate) fn parse_u128(s: &[u8], upper: bool) -> Option<u128> {
    match s.len() {
        0 => None,
        1..=16 => fold_u64(s, upper).map(u128::from),
        17..=32 => {
            let (hi, lo) = s.split_at(s.len() - 16);
            let hi = fold_u64(hi, upper)?;
            let lo = fold_u64(lo, upper)?;
            Some((u128::from(hi) << 64) | u128::from(lo))
        }
        _ => None,
    }
}

/// Parses 1 to 16 hex digits into a `u64`.
#[inline]
pub(crate) fn parse_u64(s: &[u8], upper: bool) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    fold_u64(s, upper)
}

/// Parses exactly two hex digits.
#[inline]
pub(crate) fn parse_u8(s: &[u8], upper: bool) -> Option<u8> {
    match s {
        [_, _] => fold_u64(s, upper).map(|v| v as u8),
        _ => None,
    }
}

/// Appends `value` as exactly 16 lowercase hex digits.
#[inline]
pub(crate) fn push_u64(out: &mut String, value: u64) {
    push_ascii(out, &encode_u64(value));
}

/// SWAR: the 16 lowercase hex digits of `value`, 8 per `u64` step.
#[inline]
fn encode_u64(value: u64) -> [u8; 16] {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&digits8((value >> 32) as u32).to_be_bytes());
    buf[8..].copy_from_slice(&digits8(value as u32).to_be_bytes());
    buf
}

/// The 8 hex digits of `x` as ASCII, first digit in the top byte: each nibble spread into a
/// byte of its own, then `'0'` added, plus `'a' - '0' - 10` where the nibble is above 9 (found
/// by carry-free addition: `n + 0x76` reaches `0x80` exactly when `n >= 10`).
#[inline(always)]
fn digits8(x: u32) -> u64 {
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x | (x << 4)) & (ONES * 0x0f);
    let letters = ((x + ONES * 0x76) & HIGH) >> 7;
    x + ONES * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)
}

/// The hex digits of a trace id and a span id, encoded once for every format one injection
/// writes (`tracecontext`, `b3`, `X-B3-*` and `uber-trace-id` all carry both).
#[derive(Clone, Copy)]
pub(crate) struct IdDigits {
    trace: [u8; 32],
    span: [u8; 16],
}

impl IdDigits {
    #[inline]
    pub(crate) fn new(trace_id: u128, span_id: u64) -> Self {
        let mut trace = [0u8; 32];
        trace[..16].copy_from_slice(&encode_u64((trace_id >> 64) as u64));
        trace[16..].copy_from_slice(&encode_u64(trace_id as u64));
        IdDigits {
            trace,
            span: encode_u64(span_id),
        }
    }
}

/// An ASCII header value (ids in hex, separators) put together on the stack, then copied once
/// into a `String` of exactly its length — so a header value takes it without reallocating.
/// Only whole `&str`s ([`Ascii::text`]) and hex digits are ever appended, so the bytes are
/// always UTF-8 and [`Ascii::finish`] need not check them again.
pub(crate) struct Ascii<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Ascii<N> {
    #[inline]
    pub(crate) fn new() -> Self {
        Ascii {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends a separator. Past `N` bytes nothing is appended: callers size `N` for the
    /// longest value they write.
    #[inline]
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        self.push(s.as_bytes())
    }

    /// Appends `b` whole, or nothing if it does not fit. Callers pass UTF-8 only.
    #[inline]
    fn push(&mut self, b: &[u8]) -> &mut Self {
        if let Some(to) = self.buf.get_mut(self.len..self.len + b.len()) {
            to.copy_from_slice(b);
            self.len += b.len();
        }
        debug_assert!(self.len <= N, "hex::Ascii<{N}> too short");
        self
    }

    /// Appends the 32 digits of the trace id.
    #[inline]
    pub(crate) fn trace_id(&mut self, ids: &IdDigits) -> &mut Self {
        self.push(&ids.trace)
    }

    /// Appends the 16 digits of the span id.
    #[inline]
    pub(crate) fn span_id(&mut self, ids: &IdDigits) -> &mut Self {
        self.push(&ids.span)
    }

    /// Appends exactly 2 lowercase hex digits.
    #[inline]
    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.push(&[
            DIGITS[usize::from(value >> 4)],
            DIGITS[usize::from(value & 0xf)],
        ])
    }

    /// The value as a `String` of exactly its length.
    #[inline]
    pub(crate) fn finish(&self) -> String {
        self.as_str().to_owned()
    }

    /// The value so far.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: `push` appends whole byte strings only, and its callers append either a
        // `&str` (`text`) or hex digits from `DIGITS` (`u64`, `u8`, and `trace_id`/`span_id`
        // from an `IdDigits`, whose private fields only `encode_u64` fills): the bytes are
        // UTF-8.
        // (`str::from_utf8` here cost ~60 instructions per header value, a tenth of an
        // injected `b3` header.)
        #[allow(unsafe_code)]
        unsafe {
            std::str::from_utf8_unchecked(bytes)
        }
    }

    /// Keeps the first `len` bytes (nothing changes if that would split a character, so the
    /// bytes stay UTF-8).
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        if self.as_str().is_char_boundary(len) {
            self.len = len;
        }
    }

    /// Room for `n` more bytes.
    #[inline]
    pub(crate) fn fits(&self, n: usize) -> bool {
        self.len + n <= N
    }
}

#[inline]
fn push_ascii(out: &mut String, ascii: &[u8]) {
    // Every byte comes from DIGITS, so this is ASCII and the conversion cannot fail.
    if let Ok(s) = std::str::from_utf8(ascii) {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = Ascii::<32>::new()
            .trace_id(&IdDigits::new(0x0af7651916cd43dd8448eb211c80319c, 1))
            .finish();
        assert_eq!(s, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            parse_u128(s.as_bytes(), false),
            Some(0x0af7651916cd43dd8448eb211c80319c)
        );
        let mut s = String::new();
        push_u64(&mut s, 0xb7ad6b7169203331);
        assert_eq!(s, "b7ad6b7169203331");
        assert_eq!(parse_u64(s.as_bytes(), false), Some(0xb7ad6b7169203331));
        assert_eq!(Ascii::<2>::new().u8(3).finish(), "03");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// The SWAR encoder writes what `format!` writes.
        #[test]
        fn encoder_matches_format(v in proptest::prelude::any::<u128>()) {
            let s = Ascii::<32>::new().trace_id(&IdDigits::new(v, 1)).finish();
            proptest::prop_assert_eq!(s, format!("{v:032x}"));
            let mut s = String::new();
            push_u64(&mut s, v as u64);
            proptest::prop_assert_eq!(s, format!("{:016x}", v as u64));
        }
    }

    #[test]
    fn ascii_values_are_exact() {
        let ids = IdDigits::new(0xabc, 0x1f);
        let s = Ascii::<54>::new()
            .trace_id(&ids)
            .text(":")
            .span_id(&ids)
            .text(":0:")
            .u8(0x3)
            .finish();
        assert_eq!(s, "00000000000000000000000000000abc:000000000000001f:0:03");
        assert_eq!(s.capacity(), s.len());
    }

    #[test]
    fn text_is_appended_whole_and_truncated_at_boundaries() {
        let mut a = Ascii::<8>::new();
        a.text("ab");
        assert!(a.fits(6) && !a.fits(7));
        a.text("ü").text("too long");
        assert_eq!(a.as_str(), "abü", "a piece that does not fit is left out");
        a.truncate(3);
        assert_eq!(a.as_str(), "abü", "not inside a character");
        a.truncate(9);
        assert_eq!(a.as_str(), "abü", "not past the end");
        a.truncate(2);
        assert_eq!(a.text("-x").finish(), "ab-x");
    }

    /// Every nibble value in every digit position.
    #[test]
    fn encoder_every_nibble_in_every_position() {
        for pos in 0..16 {
            for n in 0..16u64 {
                let v = n << (4 * pos) | 0x1111_1111_1111_1111 & !(0xf << (4 * pos));
                let mut s = String::new();
                push_u64(&mut s, v);
                assert_eq!(s, format!("{v:016x}"));
            }
        }
    }

    #[test]
    fn every_byte_decodes_as_the_reference_says() {
        fn reference(b: u8, upper: bool) -> Option<u64> {
            match b {
                b'0'..=b'9' => Some(u64::from(b - b'0')),
                b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
                b'A'..=b'F' if upper => Some(u64::from(b - b'A' + 10)),
                _ => None,
            }
        }
        for upper in [false, true] {
            for b in 0..=255u8 {
                assert_eq!(parse_u64(&[b], upper), reference(b, upper), "{b:#x}");
                let want = reference(b, upper).map(|d| u128::from(d) | (0xf << 124));
                let mut s = vec![b'f'];
                s.extend(std::iter::repeat_n(b'0', 30));
                s.push(b);
                assert_eq!(parse_u128(&s, upper), want, "{b:#x} last of 32");
            }
        }
        assert_eq!(
            parse_u128(b"0123456789abcdef0", false),
            Some(0x0123456789abcdef0)
        );
        assert_eq!(
            parse_u128(b"ffffffffffffffffffffffffffffffff", false),
            Some(u128::MAX)
        );
        assert_eq!(parse_u128(&[b'1'; 33], false), None);
        assert_eq!(parse_u8(b"fF", true), Some(0xff));
    }

    /// The simple reference: one digit at a time with `char::to_digit`.
    fn reference_parse(s: &[u8], upper: bool) -> Option<u128> {
        if s.is_empty() || s.len() > 32 {
            return None;
        }
        let mut v: u128 = 0;
        for &b in s {
            if !upper && b.is_ascii_uppercase() {
                return None;
            }
            v = (v << 4) | u128::from(char::from(b).to_digit(16)?);
        }
        Some(v)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Every length from 0 to 33, bytes mostly hex digits (of both cases) with any byte
        /// mixed in: the SWAR decoder agrees with the reference, for every parser.
        #[test]
        fn swar_matches_the_reference(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                    1 => proptest::prelude::any::<u8>(),
                ],
                0..=33,
            ),
            upper in proptest::prelude::any::<bool>(),
        ) {
            let want = reference_parse(&s, upper);
            proptest::prop_assert_eq!(parse_u128(&s, upper), want);
            let want64 = want.filter(|_| s.len() <= 16).map(|v| v as u64);
            proptest::prop_assert_eq!(parse_u64(&s, upper), want64);
            let want8 = want.filter(|_| s.len() == 2).map(|v| v as u8);
            proptest::prop_assert_eq!(parse_u8(&s, upper), want8);
            if let Ok(exact) = <&[u8; 16]>::try_from(s.as_slice()) {
                proptest::prop_assert_eq!(parse_16(exact, upper), want64);
            }
        }
    }

    /// Every byte in every position of an 8-digit SWAR word, both case modes.
    #[test]
    fn swar_every_byte_in_every_position() {
        for upper in [false, true] {
            for pos in 0..16 {
                for b in 0..=255u8 {
                    let mut s = *b"0123456789abcdef";
                    s[pos] = b;
                    assert_eq!(
                        parse_u64(&s, upper),
                        reference_parse(&s, upper).map(|v| v as u64),
                        "{b:#x} at {pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn case_and_length_rules() {
        assert_eq!(parse_u64(b"ABC", false), None);
        assert_eq!(parse_u64(b"ABC", true), Some(0xabc));
        assert_eq!(parse_u64(b"", true), None);
        assert_eq!(parse_u64(b"00000000000000001", true), None);
        assert_eq!(parse_u8(b"0", false), None);
        assert_eq!(parse_u8(b"0g", false), None);
    }
}
