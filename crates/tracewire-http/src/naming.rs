//! Span names (`{method} {route}`) and routes as attribute values, interned when there is
//! room.

use std::borrow::Cow;

use http::Method;

use crate::format::static_or_owned;
use crate::intern;
use crate::method::{KnownMethods, Normalized};

/// The semconv span name of a server span: `{method} {route}`, `{method}` when no route
/// matched, with `HTTP` in place of `_OTHER`. Never the raw path. Borrowed (no allocation)
/// when there is no route.
///
/// ```
/// use http::Method;
/// use tracewire_http::{KnownMethods, server_span_name};
///
/// let known = KnownMethods::default();
/// assert_eq!(server_span_name(known.normalize(&Method::GET), Some("/users/{id}")), "GET /users/{id}");
/// assert_eq!(server_span_name(known.normalize(&Method::POST), None), "POST");
/// let purge = Method::from_bytes(b"PURGE").unwrap();
/// assert_eq!(server_span_name(known.normalize(&purge), None), "HTTP");
/// assert_eq!(server_span_name(known.normalize(&purge), Some("/c")), "HTTP /c");
/// ```
pub fn server_span_name(method: Normalized<'_>, route: Option<&str>) -> Cow<'static, str> {
    let m = if method.is_other() {
        "HTTP"
    } else {
        method.method
    };
    match route {
        Some(route) if !route.is_empty() => Cow::Owned(format!("{m} {route}")),
        _ => static_or_owned(m),
    }
}

/// A server span's name, its normalised method and its route as an attribute value (the
/// name and route interned when there is room).
pub(crate) fn server_name<'m>(
    known: &'m KnownMethods,
    method: &'m Method,
    route: Option<&str>,
) -> (Cow<'static, str>, Normalized<'m>, Option<Cow<'static, str>>) {
    let method = known.normalize(method);
    let route = route.filter(|r| !r.is_empty());
    let Some(route) = route else {
        return (server_span_name(method, None), method, None);
    };
    match intern::route(route) {
        Some(e) => {
            let shown = if method.is_other() {
                "HTTP"
            } else {
                method.method
            };
            let name = match e.name(shown) {
                Some(name) => Cow::Borrowed(name),
                None => server_span_name(method, Some(route)),
            };
            (name, method, Some(Cow::Borrowed(e.route)))
        }
        None => (
            server_span_name(method, Some(route)),
            method,
            Some(Cow::Owned(route.to_owned())),
        ),
    }
}

/// A route as an attribute value: interned when there is room.
pub(crate) fn route_value(route: &str) -> Cow<'static, str> {
    match intern::route(route) {
        Some(e) => Cow::Borrowed(e.route),
        None => Cow::Owned(route.to_owned()),
    }
}
