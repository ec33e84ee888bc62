//! Hex encoding and decoding for trace and span ids, without allocation or formatting machinery.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Decodes one hex digit. `upper` allows `A-F` as well (B3 and Jaeger extraction are tolerant;
/// W3C `traceparent` is lowercase only).
#[inline]
fn nibble(b: u8, upper: bool) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' if upper => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses 1 to 32 hex digits into a `u128`.
#[inline]
pub(crate) fn parse_u128(s: &[u8], upper: bool) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for &b in s {
        v = (v << 4) | u128::from(nibble(b, upper)?);
    }
    Some(v)
}

/// Parses 1 to 16 hex digits into a `u64`.
#[inline]
pub(crate) fn parse_u64(s: &[u8], upper: bool) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        v = (v << 4) | u64::from(nibble(b, upper)?);
    }
    Some(v)
}

/// Parses exactly two hex digits.
#[inline]
pub(crate) fn parse_u8(s: &[u8], upper: bool) -> Option<u8> {
    match s {
        [hi, lo] => Some((nibble(*hi, upper)? << 4) | nibble(*lo, upper)?),
        _ => None,
    }
}

/// Appends `value` as exactly 32 lowercase hex digits.
#[inline]
pub(crate) fn push_u128(out: &mut String, value: u128) {
    let mut buf = [0u8; 32];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = DIGITS[((value >> (124 - 4 * i)) & 0xf) as usize];
    }
    push_ascii(out, &buf);
}

/// Appends `value` as exactly 16 lowercase hex digits.
#[inline]
pub(crate) fn push_u64(out: &mut String, value: u64) {
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
    push_ascii(out, &buf);
}

/// Appends `value` as exactly 2 lowercase hex digits.
#[inline]
pub(crate) fn push_u8(out: &mut String, value: u8) {
    out.push(DIGITS[(value >> 4) as usize] as char);
    out.push(DIGITS[(value & 0xf) as usize] as char);
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
        let mut s = String::new();
        push_u128(&mut s, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(s, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            parse_u128(s.as_bytes(), false),
            Some(0x0af7651916cd43dd8448eb211c80319c)
        );
        let mut s = String::new();
        push_u64(&mut s, 0xb7ad6b7169203331);
        assert_eq!(s, "b7ad6b7169203331");
        assert_eq!(parse_u64(s.as_bytes(), false), Some(0xb7ad6b7169203331));
        let mut s = String::new();
        push_u8(&mut s, 3);
        assert_eq!(s, "03");
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
