//! Opt-in header capture (`http.request.header.<name>`) and `network.protocol.version`.

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Version};

/// `network.protocol.version` for an HTTP version: `1.0`, `1.1`, `2`, `3` (`0.9` for HTTP/0.9).
///
/// ```
/// assert_eq!(tracewire_http::protocol_version(http::Version::HTTP_11), "1.1");
/// assert_eq!(tracewire_http::protocol_version(http::Version::HTTP_2), "2");
/// ```
pub fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Which headers to record, each as one attribute `<prefix><lowercase name>` holding a JSON
/// array of the values (the semconv `string[]` type). Empty (nothing captured) by default:
/// headers may carry secrets, so capture is opt-in and by name.
#[derive(Clone, Debug, Default)]
pub struct HeaderCapture {
    names: Arc<[(HeaderName, Cow<'static, str>)]>,
}

impl HeaderCapture {
    /// Capture these headers; `prefix` is `semconv::HTTP_REQUEST_HEADER_PREFIX` or
    /// `semconv::HTTP_RESPONSE_HEADER_PREFIX`.
    pub fn new(prefix: &str, names: impl IntoIterator<Item = HeaderName>) -> Self {
        HeaderCapture {
            names: names
                .into_iter()
                .map(|n| {
                    let key = format!("{prefix}{}", n.as_str());
                    (n, Cow::Owned(key))
                })
                .collect(),
        }
    }

    /// True when nothing is captured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// How many headers are captured (at most one attribute each).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The properties for the headers present in `headers`.
    pub fn properties<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> impl Iterator<Item = (Cow<'static, str>, Cow<'static, str>)> + 'a {
        self.names.iter().filter_map(move |(name, key)| {
            let values = headers.get_all(name);
            let mut it = values.iter().peekable();
            it.peek()?;
            let mut json = String::from("[");
            for (i, v) in it.enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json_string(&mut json, &String::from_utf8_lossy(v.as_bytes()));
            }
            json.push(']');
            Some((key.clone(), Cow::Owned(json)))
        })
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_renders_json_arrays() {
        let cap = HeaderCapture::new(
            "http.request.header.",
            [
                HeaderName::from_static("x-id"),
                HeaderName::from_static("absent"),
            ],
        );
        let mut h = HeaderMap::new();
        h.append("x-id", "a".parse().unwrap());
        h.append("x-id", "b\"c".parse().unwrap());
        let props: Vec<_> = cap.properties(&h).collect();
        assert_eq!(props.len(), 1);
        assert_eq!(props[0].0, "http.request.header.x-id");
        assert_eq!(props[0].1, r#"["a","b\"c"]"#);
        assert!(HeaderCapture::default().properties(&h).next().is_none());
    }

    #[test]
    fn versions() {
        assert_eq!(protocol_version(Version::HTTP_10), "1.0");
        assert_eq!(protocol_version(Version::HTTP_3), "3");
        assert_eq!(protocol_version(Version::HTTP_09), "0.9");
    }
}
