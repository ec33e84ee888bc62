//! Typed property keys for `tracing` fields: a field `retries` recorded as an `i64` becomes the
//! fastrace property `retries:int`, which the export mapping sends as the integer attribute
//! `retries` ([`semconv::typed_key`], the one table of attribute types). Each suffixed key is
//! built once per field name and type and kept as a `&'static str`, so recording a typed field
//! costs no key formatting.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use tracewire_core::semconv::{self, TYPE_SUFFIXES, ValueType};

/// How many suffixed keys are kept process-wide. Field names are `&'static str`s of callsites,
/// so a program has a bounded number of them; past this (a program that leaks field names at
/// run time) each key is built per use instead, and no more memory is taken.
const CAPACITY: usize = 4096;

/// A field name (by address and length: callsite names are static) and a type.
type Key = (usize, usize, u8);

/// A multiplicative hash of the three words of a [`Key`] (the default SipHash would cost more
/// than the lookup it serves).
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type Map = HashMap<Key, &'static str, BuildHasherDefault<WordHasher>>;

static SHARED: Mutex<Option<Map>> = Mutex::new(None);

thread_local! {
    /// This thread's copy of the keys it used: no lock on the recording path.
    static LOCAL: RefCell<Map> = RefCell::new(Map::default());
}

fn suffix(ty: ValueType) -> &'static str {
    TYPE_SUFFIXES
        .iter()
        .find(|(_, t)| *t == ty)
        .map_or("", |(s, _)| s)
}

/// The property key for field `name` holding a value of type `ty`: `name` itself when the
/// conventions already give `name` that type (`http.response.status_code` is an int), else
/// `name` with the type's suffix.
pub(crate) fn typed(name: &'static str, ty: ValueType) -> Cow<'static, str> {
    if ty == ValueType::String {
        return Cow::Borrowed(name);
    }
    let key = (name.as_ptr() as usize, name.len(), ty as u8);
    let local = LOCAL.try_with(|m| m.try_borrow().ok().and_then(|m| m.get(&key).copied()));
    if let Ok(Some(k)) = local {
        return Cow::Borrowed(k);
    }
    // First use on this thread: the name itself when the conventions already type it so, else
    // the process-wide suffixed copy.
    let found = if semconv::typed_key(name).1 == ty {
        Some(name)
    } else {
        shared(key, name, ty)
    };
    match found {
        Some(k) => {
            let _ = LOCAL.try_with(|m| {
                if let Ok(mut m) = m.try_borrow_mut() {
                    m.insert(key, k);
                }
            });
            Cow::Borrowed(k)
        }
        None => Cow::Owned(build(name, ty)),
    }
}

fn build(name: &str, ty: ValueType) -> String {
    let suffix = suffix(ty);
    let mut s = String::with_capacity(name.len() + suffix.len());
    s.push_str(name);
    s.push_str(suffix);
    s
}

/// The process-wide key, leaked once (at most [`CAPACITY`] of them).
fn shared(key: Key, name: &str, ty: ValueType) -> Option<&'static str> {
    let mut map = match SHARED.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    let map = map.get_or_insert_with(Map::default);
    if let Some(k) = map.get(&key) {
        return Some(k);
    }
    if map.len() >= CAPACITY {
        return None;
    }
    let k: &'static str = Box::leak(build(name, ty).into_boxed_str());
    map.insert(key, k);
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_once_and_read_back_by_the_one_table() {
        // A callsite's field name: one `&'static str`.
        static RETRIES: &str = "retries";
        let a = typed(RETRIES, ValueType::Int);
        assert_eq!(a, "retries:int");
        assert_eq!(semconv::typed_key(&a), ("retries", ValueType::Int));
        let b = typed(RETRIES, ValueType::Int);
        assert!(
            matches!((&a, &b), (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y)),
            "one copy"
        );
        assert_eq!(typed("ratio", ValueType::Double), "ratio:double");
        assert_eq!(typed("cached", ValueType::Bool), "cached:bool");
        assert_eq!(typed("user", ValueType::String), "user");
        // Keys the conventions already type need no suffix.
        assert_eq!(
            typed("http.response.status_code", ValueType::Int),
            "http.response.status_code"
        );
        // Another thread gets the same process-wide copy.
        let there = std::thread::spawn(|| match typed(RETRIES, ValueType::Int) {
            Cow::Borrowed(k) => k.as_ptr() as usize,
            Cow::Owned(_) => 0,
        })
        .join()
        .unwrap();
        assert_eq!(there, a.as_ptr() as usize);
    }
}
