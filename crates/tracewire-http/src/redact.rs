//! Redaction of `url.query` and `url.full`, as the OpenTelemetry URL conventions require.

use std::borrow::Cow;

/// The replacement for redacted values and credentials.
pub const REDACTED: &str = "REDACTED";

/// Query keys whose values are always redacted (semantic conventions, `url.query`).
const SENSITIVE_KEYS: [&str; 4] = ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// Redacts the values of the sensitive query keys (`AWSAccessKeyId`, `Signature`, `sig`,
/// `X-Goog-Signature`) in a query string (without the `?`). Keys are compared exactly;
/// everything else is kept byte for byte. No allocation when nothing is redacted.
///
/// ```
/// use tracewire_http::redact_query;
/// assert_eq!(redact_query("a=1&sig=abc&b"), "a=1&sig=REDACTED&b");
/// assert_eq!(redact_query("q=rust"), "q=rust");
/// ```
pub fn redact_query(query: &str) -> Cow<'_, str> {
    // A byte scan: `str::split` / `split_once` search with `memchr`, slow on short queries.
    let needs = query.as_bytes().split(|b| *b == b'&').any(|pair| {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        !value.is_empty()
            && value != REDACTED.as_bytes()
            && SENSITIVE_KEYS.iter().any(|k| k.as_bytes() == key)
    });
    if !needs {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len() + 8);
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, value)) if !value.is_empty() && SENSITIVE_KEYS.contains(&key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    Cow::Owned(out)
}

/// Redacts a full URL for `url.full`: credentials become `REDACTED:REDACTED@` and sensitive
/// query values are redacted (see [`redact_query`]). No allocation when nothing is redacted.
///
/// ```
/// use tracewire_http::redact_url;
/// assert_eq!(
///     redact_url("https://user:pw@example.com:8443/p?Signature=x&a=1#top"),
///     "https://REDACTED:REDACTED@example.com:8443/p?Signature=REDACTED&a=1#top"
/// );
/// assert_eq!(redact_url("http://127.0.0.1/ping"), "http://127.0.0.1/ping");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    // Neither credentials nor a query: nothing to redact (one byte scan; the common case).
    if !url.bytes().any(|b| b == b'@' || b == b'?') {
        return Cow::Borrowed(url);
    }
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let userinfo_end = rest[..authority_len].rfind('@');
    let (before_query, query, fragment) = split_query(url);
    let redacted_query = query.map(redact_query);
    let query_changed = matches!(redacted_query, Some(Cow::Owned(_)));
    if userinfo_end.is_none() && !query_changed {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len() + 24);
    match userinfo_end {
        Some(at) => {
            out.push_str(&url[..authority_start]);
            out.push_str("REDACTED:REDACTED@");
            out.push_str(&before_query[authority_start + at + 1..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(q) = redacted_query {
        out.push('?');
        out.push_str(&q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// `(before ?, query, fragment)`.
fn split_query(url: &str) -> (&str, Option<&str>, Option<&str>) {
    let (main, fragment) = match url.split_once('#') {
        Some((m, f)) => (m, Some(f)),
        None => (url, None),
    };
    match main.split_once('?') {
        Some((b, q)) => (b, Some(q), fragment),
        None => (main, None, fragment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_vectors() {
        let cases = [
            ("", ""),
            ("a=1", "a=1"),
            (
                "AWSAccessKeyId=AKIA&Signature=s",
                "AWSAccessKeyId=REDACTED&Signature=REDACTED",
            ),
            ("X-Goog-Signature=1&x=2", "X-Goog-Signature=REDACTED&x=2"),
            ("sig=", "sig="),
            ("sig", "sig"),
            ("SIG=1", "SIG=1"),
            ("a=1&&sig=2&", "a=1&&sig=REDACTED&"),
            ("signature=1", "signature=1"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_query(input), want, "{input}");
        }
        assert!(matches!(redact_query("a=1&b=2"), Cow::Borrowed(_)));
        assert!(matches!(redact_query("sig=REDACTED"), Cow::Borrowed(_)));
    }

    #[test]
    fn url_vectors() {
        let cases = [
            ("http://h/p", "http://h/p"),
            ("https://u@h/p", "https://REDACTED:REDACTED@h/p"),
            ("https://u:p@h", "https://REDACTED:REDACTED@h"),
            ("http://h/p?sig=1#f", "http://h/p?sig=REDACTED#f"),
            ("http://h/a@b", "http://h/a@b"),
            ("http://h?x=a@b", "http://h?x=a@b"),
            (
                "http://u:p@h:1/p?AWSAccessKeyId=k",
                "http://REDACTED:REDACTED@h:1/p?AWSAccessKeyId=REDACTED",
            ),
            ("/relative?sig=1", "/relative?sig=REDACTED"),
            ("http://h/p#top", "http://h/p#top"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
        for nothing_to_redact in [
            "http://h/p",
            "http://h/p#top",
            "http://h/a@b",
            "http://h?a=1",
        ] {
            assert!(
                matches!(redact_url(nothing_to_redact), Cow::Borrowed(_)),
                "{nothing_to_redact}"
            );
        }
    }
}
