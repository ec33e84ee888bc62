//! HTTP method normalisation (`http.request.method`, `http.request.method_original`).

use std::sync::Arc;

use http::Method;

/// The value of `http.request.method` for a method that is not known.
pub const OTHER: &str = "_OTHER";

/// Environment variable that replaces the list of known methods (comma-separated,
/// case-sensitive), as in the OpenTelemetry HTTP semantic conventions.
pub const OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS: &str = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS";

/// The methods recorded as themselves; every other method is recorded as `_OTHER` with the
/// original in `http.request.method_original`. The default list is the RFC 9110 methods plus
/// `PATCH` (RFC 5789).
///
/// ```
/// use http::Method;
/// use tracewire_http::KnownMethods;
///
/// let known = KnownMethods::default();
/// assert_eq!(known.normalize(&Method::GET).method, "GET");
/// let odd = Method::from_bytes(b"PURGE").unwrap();
/// let n = known.normalize(&odd);
/// assert_eq!((n.method, n.original), ("_OTHER", Some("PURGE")));
/// // Method names are case-sensitive.
/// assert_eq!(known.normalize(&Method::from_bytes(b"get").unwrap()).method, "_OTHER");
///
/// let custom = KnownMethods::new(["GET", "PURGE"]);
/// assert_eq!(custom.normalize(&odd).method, "PURGE");
/// assert_eq!(custom.normalize(&Method::POST).method, "_OTHER");
/// ```
#[derive(Clone, Debug, Default)]
pub struct KnownMethods {
    /// `None`: the default list (no allocation, matched on the `Method` constant).
    custom: Option<Arc<[Box<str>]>>,
}

/// A normalised method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// The value for `http.request.method`: a known method, or `_OTHER`.
    pub method: &'a str,
    /// The value for `http.request.method_original`, when it differs from `method`.
    pub original: Option<&'a str>,
}

impl Normalized<'_> {
    /// True for `_OTHER`.
    pub fn is_other(&self) -> bool {
        self.method == OTHER
    }
}

const DEFAULT: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

impl KnownMethods {
    /// Exactly these methods are known (case-sensitive; empty names are ignored).
    pub fn new<I, S>(methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list: Vec<Box<str>> = methods
            .into_iter()
            .filter_map(|m| {
                let m = m.as_ref().trim();
                (!m.is_empty()).then(|| m.into())
            })
            .collect();
        KnownMethods {
            custom: Some(list.into()),
        }
    }

    /// The list from `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` when set, else the default.
    pub fn from_env() -> Self {
        match std::env::var(OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS) {
            Ok(v) if !v.trim().is_empty() => KnownMethods::new(v.split(',')),
            _ => KnownMethods::default(),
        }
    }

    /// Normalises `method`.
    pub fn normalize<'a>(&'a self, method: &'a Method) -> Normalized<'a> {
        let known = match &self.custom {
            None => DEFAULT.contains(method),
            Some(list) => list.iter().any(|m| &**m == method.as_str()),
        };
        if known {
            Normalized {
                method: method.as_str(),
                original: None,
            }
        } else {
            Normalized {
                method: OTHER,
                original: Some(method.as_str()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list() {
        let k = KnownMethods::default();
        for m in DEFAULT {
            assert_eq!(k.normalize(&m).method, m.as_str());
            assert_eq!(k.normalize(&m).original, None);
        }
        let q = Method::from_bytes(b"QUERY").unwrap();
        assert!(k.normalize(&q).is_other());
    }

    #[test]
    fn custom_list_trims_and_skips_empty() {
        let k = KnownMethods::new([" GET", "", "FOO "]);
        assert_eq!(k.normalize(&Method::GET).method, "GET");
        assert_eq!(
            k.normalize(&Method::from_bytes(b"FOO").unwrap()).method,
            "FOO"
        );
        assert_eq!(k.normalize(&Method::POST).original, Some("POST"));
    }
}
