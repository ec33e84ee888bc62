//! Span names and routes as `&'static str`, so a sampled request does not format its span
//! name or copy its route: both come from the application's route table, a small and fixed
//! set. Bounded: past [`MAX_ROUTES`] distinct routes, callers fall back to allocating. The
//! same for `Host` values (split into address and port once) and user agents.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::RwLock;

use tracewire_core::intern::Interner;

/// The most routes interned (each costs its route string and ten short names, once).
pub(crate) const MAX_ROUTES: usize = 2048;

/// The methods with a precomputed name, in this order; the last is `HTTP` (for `_OTHER`).
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "HTTP",
];

pub(crate) struct Entry {
    pub(crate) route: &'static str,
    names: [&'static str; 10],
}

impl Entry {
    /// The span name for a normalised method shown as `shown` (`HTTP` for `_OTHER`).
    pub(crate) fn name(&self, shown: &str) -> Option<&'static str> {
        METHODS
            .iter()
            .position(|m| *m == shown)
            .map(|i| self.names[i])
    }
}

static ROUTES: RwLock<Option<HashMap<Box<str>, &'static Entry>>> = RwLock::new(None);

thread_local! {
    /// The last route this thread looked up: a server thread sees the same few routes over
    /// and over, and a hit skips the lock and the hash.
    static LAST_ROUTE: Cell<Option<&'static Entry>> = const { Cell::new(None) };
    /// The last `Host` this thread looked up.
    static LAST_HOST: Cell<Option<&'static Host>> = const { Cell::new(None) };
}

/// The interned entry for `route`, creating it if there is room.
pub(crate) fn route(route: &str) -> Option<&'static Entry> {
    if let Some(e) = LAST_ROUTE.try_with(Cell::get).ok().flatten() {
        if e.route == route {
            return Some(e);
        }
    }
    let e = route_slow(route)?;
    let _ = LAST_ROUTE.try_with(|c| c.set(Some(e)));
    Some(e)
}

fn route_slow(route: &str) -> Option<&'static Entry> {
    if let Ok(map) = ROUTES.read() {
        if let Some(e) = map.as_ref().and_then(|m| m.get(route)) {
            return Some(e);
        }
    }
    let mut map = match ROUTES.write() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(e) = map.get(route) {
        return Some(e);
    }
    if map.len() >= MAX_ROUTES {
        return None;
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let entry: &'static Entry = Box::leak(Box::new(Entry {
        route: leak(route.to_owned()),
        names: METHODS.map(|m| leak(format!("{m} {route}"))),
    }));
    map.insert(route.into(), entry);
    Some(entry)
}

/// `user_agent.original` values.
pub(crate) static USER_AGENTS: Interner = Interner::new(256);

/// The most `Host` values interned.
const MAX_HOSTS: usize = 64;

/// A `Host` value (or request-target authority), split into `server.address` and
/// `server.port` once.
pub(crate) struct Host {
    raw: &'static str,
    pub(crate) address: &'static str,
    pub(crate) port: Option<u16>,
    /// The port as `server.port` writes it, when the value spells it that way (a slice of the
    /// interned value: no string to make per request).
    pub(crate) port_text: Option<&'static str>,
}

static HOSTS: RwLock<Option<HashMap<Box<str>, &'static Host>>> = RwLock::new(None);

/// The interned, split `Host` value; `None` when it names no host, or when the set is full
/// (the caller splits it itself).
pub(crate) fn host(raw: &str) -> Option<&'static Host> {
    if let Some(h) = LAST_HOST.try_with(Cell::get).ok().flatten() {
        if h.raw == raw {
            return Some(h);
        }
    }
    let h = host_slow(raw)?;
    let _ = LAST_HOST.try_with(|c| c.set(Some(h)));
    Some(h)
}

fn host_slow(raw: &str) -> Option<&'static Host> {
    if raw.len() > 256 {
        return None;
    }
    if let Ok(map) = HOSTS.read() {
        if let Some(h) = map.as_ref().and_then(|m| m.get(raw)) {
            return Some(h);
        }
    }
    let mut map = match HOSTS.write() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(h) = map.get(raw) {
        return Some(h);
    }
    if map.len() >= MAX_HOSTS {
        return None;
    }
    let leaked: &'static str = Box::leak(raw.to_owned().into_boxed_str());
    let (address, port) = split_host_port(leaked)?;
    let port_text = leaked.rsplit_once(':').map(|(_, p)| p).filter(|p| {
        port.is_some_and(|n| p.parse() == Ok(n)) && (*p == "0" || !p.starts_with(['0', '+']))
    });
    let h: &'static Host = Box::leak(Box::new(Host {
        raw: leaked,
        address,
        port,
        port_text,
    }));
    map.insert(raw.into(), h);
    Some(h)
}

/// `host[:port]` / `[v6][:port]` → `(host, port)`.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.rsplit_once('@').map_or(s, |(_, h)| h);
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok())),
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_thread_cache_returns_the_interned_routes() {
        let r1 = route("/cache/{a}").unwrap();
        let r2 = route("/cache/{b}").unwrap();
        assert!(std::ptr::eq(r1, route("/cache/{a}").unwrap()));
        assert!(std::ptr::eq(r2, route("/cache/{b}").unwrap()));
        assert_eq!(r2.route, "/cache/{b}");
        assert_eq!(r1.name("POST"), Some("POST /cache/{a}"));
    }

    #[test]
    fn hosts_are_split_once() {
        let a = host("api.example:8080").unwrap();
        assert_eq!((a.address, a.port), ("api.example", Some(8080)));
        assert!(
            std::ptr::eq(a, host("api.example:8080").unwrap()),
            "cache hit"
        );
        let b = host("[::1]").unwrap();
        assert_eq!((b.address, b.port), ("::1", None));
        assert!(
            std::ptr::eq(a, host("api.example:8080").unwrap()),
            "after a miss"
        );
        assert!(host("").is_none(), "no host");
    }

    #[test]
    fn a_port_spelt_as_written_is_kept_as_text() {
        assert_eq!(host("text.example:18081").unwrap().port_text, Some("18081"));
        assert_eq!(host("[::1]:9000").unwrap().port_text, Some("9000"));
        assert_eq!(host("text.example").unwrap().port_text, None);
        // Spelt otherwise than `server.port` writes it: made from the number instead.
        assert_eq!(host("text.example:0081").unwrap().port, Some(81));
        assert_eq!(host("text.example:0081").unwrap().port_text, None);
        assert_eq!(host("text.example:+81").unwrap().port_text, None);
    }

    #[test]
    fn interns_once() {
        let a = route("/intern/{x}").unwrap();
        let b = route("/intern/{x}").unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.route, "/intern/{x}");
        assert_eq!(a.name("GET"), Some("GET /intern/{x}"));
        assert_eq!(a.name("HTTP"), Some("HTTP /intern/{x}"));
        assert_eq!(a.name("PURGE"), None);
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a.b:81"), Some(("a.b", Some(81))));
        assert_eq!(split_host_port("a.b"), Some(("a.b", None)));
        assert_eq!(split_host_port("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("u:p@h:1"), Some(("h", Some(1))));
        assert_eq!(split_host_port(""), None);
    }
}
