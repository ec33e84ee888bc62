//! [`Interner`]: repeated attribute values and span names as `&'static str`, so a recorded span
//! does not copy them every time — a route, a host, a subject, a queue name repeat on nearly
//! every span. Bounded: past its capacity (or for long values) the caller copies as before, so
//! high-cardinality input costs what it cost without interning, and never more memory.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

/// Values longer than this are never interned.
pub const MAX_LEN: usize = 256;

/// How many recent lookups each thread remembers (across every set).
const RECENT_LEN: usize = 4;

thread_local! {
    /// `(set, value)` of this thread's last lookups, round robin.
    static RECENT: [Cell<Option<(usize, &'static str)>>; RECENT_LEN] =
        const { [const { Cell::new(None) }; RECENT_LEN] };
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// A bounded set of interned strings. Each distinct value is leaked once (at most `capacity`
/// values of at most [`MAX_LEN`] bytes, so at most `capacity × 256` bytes per set).
///
/// ```
/// use tracewire_core::intern::Interner;
///
/// static SUBJECTS: Interner = Interner::new(2);
/// let a = SUBJECTS.get("orders").unwrap();
/// assert!(std::ptr::eq(a, SUBJECTS.get("orders").unwrap()), "one copy");
/// SUBJECTS.get("payments").unwrap();
/// assert_eq!(SUBJECTS.get("refunds"), None, "full: the caller copies");
/// assert!(matches!(SUBJECTS.cow("refunds"), std::borrow::Cow::Owned(_)));
/// ```
#[derive(Debug)]
pub struct Interner {
    map: RwLock<Option<HashMap<Box<str>, &'static str>>>,
    capacity: usize,
}

impl Interner {
    /// An empty set that interns at most `capacity` values.
    pub const fn new(capacity: usize) -> Self {
        Interner {
            map: RwLock::new(None),
            capacity,
        }
    }

    /// `value` as a `&'static str` if it is (or can still be) interned. The last few values
    /// a thread looked up are answered without the lock or a hash: a handler loop or a server
    /// thread asks for the same few values over and over.
    pub fn get(&self, value: &str) -> Option<&'static str> {
        if value.len() > MAX_LEN {
            return None;
        }
        let me = std::ptr::from_ref(self) as usize;
        let recent = RECENT.try_with(|r| {
            r.iter()
                .find_map(|c| c.get().filter(|(set, v)| *set == me && *v == value))
        });
        if let Ok(Some((_, v))) = recent {
            return Some(v);
        }
        let v = self.get_shared(value)?;
        let _ = RECENT.try_with(|r| {
            let i = NEXT.with(|n| {
                let i = n.get();
                n.set((i + 1) % RECENT_LEN);
                i
            });
            r[i].set(Some((me, v)));
        });
        Some(v)
    }

    fn get_shared(&self, value: &str) -> Option<&'static str> {
        if let Ok(map) = self.map.read() {
            if let Some(v) = map.as_ref().and_then(|m| m.get(value)) {
                return Some(v);
            }
        }
        let mut map = match self.map.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let map = map.get_or_insert_with(HashMap::new);
        if let Some(v) = map.get(value) {
            return Some(v);
        }
        if map.len() >= self.capacity {
            return None;
        }
        let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
        map.insert(value.into(), leaked);
        Some(leaked)
    }

    /// `value` interned, else copied.
    pub fn cow(&self, value: &str) -> Cow<'static, str> {
        match self.get(value) {
            Some(v) => Cow::Borrowed(v),
            None => Cow::Owned(value.to_owned()),
        }
    }

    /// An owned value interned (the copy is dropped) when there is room; a borrowed one as
    /// it is.
    pub fn cow_owned(&self, value: Cow<'static, str>) -> Cow<'static, str> {
        match value {
            Cow::Borrowed(_) => value,
            Cow::Owned(s) => match self.get(&s) {
                Some(v) => Cow::Borrowed(v),
                None => Cow::Owned(s),
            },
        }
    }
}

/// "0" to "255", for [`number`].
static SMALL: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..256u16).map(|n| n.to_string()).collect());

/// A number as text: borrowed for 0..=255 (ports, counts, sizes of small messages), else
/// formatted (into a string of exactly its length, without `fmt`'s machinery).
pub fn number(n: u64) -> Cow<'static, str> {
    match usize::try_from(n).ok().and_then(|i| SMALL.get(i)) {
        Some(s) => Cow::Borrowed(s.as_str()),
        None => Cow::Owned(decimal(n)),
    }
}

/// `n` in decimal.
fn decimal(n: u64) -> String {
    Decimal::new(n, 1).as_str().to_owned()
}

/// A number's decimal digits on the stack, without `fmt`'s machinery: what [`number`] and
/// the integrations' value writers (IP addresses, ports, decimal fractions) push.
///
/// ```
/// use tracewire_core::intern::Decimal;
/// assert_eq!(Decimal::new(50051, 1).as_str(), "50051");
/// assert_eq!(Decimal::new(25, 6).as_str(), "000025");
/// ```
#[derive(Clone, Copy)]
pub struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    /// `n` with at least `width` digits, zero-padded (at most 20, `u64::MAX`'s).
    pub fn new(mut n: u64, width: usize) -> Decimal {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        let min_start = digits.len().saturating_sub(width.max(1));
        while start > 0 && (n != 0 || start > min_start) {
            start -= 1;
            if let Some(d) = digits.get_mut(start) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
        }
        Decimal { digits, start }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // ASCII digits: the conversion cannot fail.
        std::str::from_utf8(self.digits.get(self.start..).unwrap_or_default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_to_string_zero_padded_to_its_width() {
        let numbers = [
            0u64,
            1,
            9,
            10,
            99,
            100,
            255,
            4222,
            65_535,
            1 << 53,
            u64::MAX - 1,
            u64::MAX,
        ];
        for n in numbers {
            for width in [0, 1, 2, 5, 6, 19, 20, 21, 64] {
                let plain = n.to_string();
                let expected = format!("{n:0width$}", width = width.min(20));
                assert_eq!(Decimal::new(n, width).as_str(), expected, "{n} {width}");
                assert_eq!(Decimal::new(n, 1).as_str(), plain);
            }
        }
    }

    #[test]
    fn small_numbers_are_borrowed_and_right() {
        for n in [0u64, 7, 10, 99, 100, 255, 256, 4222, u64::MAX] {
            let s = number(n);
            assert_eq!(s, n.to_string());
            assert_eq!(matches!(s, Cow::Borrowed(_)), n < 256, "{n}");
        }
    }

    #[test]
    fn bounded_and_the_recent_cache_returns_the_interned_values() {
        static SET: Interner = Interner::new(2);
        static OTHER: Interner = Interner::new(2);
        let a = SET.get("a").unwrap();
        assert!(std::ptr::eq(a, SET.get("a").unwrap()), "cache hit");
        let b = SET.get("b").unwrap();
        assert_eq!(SET.get("c"), None, "full: not cached either");
        assert!(matches!(SET.cow("c"), Cow::Owned(_)));
        assert!(std::ptr::eq(a, SET.get("a").unwrap()), "after a miss");
        assert!(std::ptr::eq(b, SET.get("b").unwrap()));
        // Another set does not answer from this one's entries.
        let other_a = OTHER.get("a").unwrap();
        assert!(!std::ptr::eq(a, other_a));
        assert!(std::ptr::eq(other_a, OTHER.get("a").unwrap()));
        // Another thread sees the same values.
        let there = std::thread::spawn(|| SET.get("a").map(|v| v.as_ptr() as usize))
            .join()
            .unwrap();
        assert_eq!(there, Some(a.as_ptr() as usize));
    }

    #[test]
    fn long_values_are_never_interned() {
        static SET: Interner = Interner::new(8);
        assert!(SET.get(&"x".repeat(MAX_LEN + 1)).is_none());
        assert!(SET.get(&"x".repeat(MAX_LEN)).is_some());
        let owned = SET.cow_owned(Cow::Owned("a".to_owned()));
        assert!(matches!(owned, Cow::Borrowed("a")));
    }
}
