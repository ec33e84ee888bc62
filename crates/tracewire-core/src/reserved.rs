//! The `tracewire.*` properties: what tracewire writes onto a fastrace span for the fields
//! fastrace has no room for, written and read **here only**.
//!
//! fastrace records a span's name, ids, times, string properties, events and links (a bare
//! [`SpanContext`] each). The W3C trace flags and `tracestate`, the remote-parent flag, and a
//! link's attributes and remote flag travel as properties with reserved keys. The root rule
//! and [`Link`](crate::Link) write them with the functions below; exporters read them back with
//! [`decode`] and never export a `tracewire.*` key as an attribute.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `tracewire.trace_flags` | two lowercase hex digits | the span's W3C trace flags |
//! | `tracewire.parent.remote` | `true` | the parent lives in another process |
//! | `tracewire.tracestate` | a validated `tracestate` | the span's `tracestate` |
//! | `tracewire.link.{span id, 16 hex}.{key}` | the attribute's value | an attribute of the link to that span |
//! | `tracewire.link_remote.{span id, 16 hex}` | `true` | the linked span lives in another process |
//!
//! A link to the span's own parent (a process span that is the child of its message's creation
//! context and links it) carries no `link_remote` property: it is remote when the parent is
//! (`tracewire.parent.remote`), and exporters read it so.
//!
//! [`SpanContext`]: fastrace::collector::SpanContext

use std::borrow::Cow;

use fastrace::collector::SpanId;

use crate::hex;

/// Reserved: present (`"true"`) when the span's parent came from another process.
pub const PARENT_REMOTE: &str = "tracewire.parent.remote";
/// Reserved: the W3C trace flags of the span as two lowercase hex digits (`"01"`, `"03"`).
pub const TRACE_FLAGS: &str = "tracewire.trace_flags";
/// Reserved: the validated W3C `tracestate` of the span, when not empty.
pub const TRACE_STATE: &str = "tracewire.tracestate";
/// Prefix shared by every reserved key; exporters skip properties that start with it.
pub const PREFIX: &str = "tracewire.";

const LINK: &str = "tracewire.link.";
const LINK_REMOTE: &str = "tracewire.link_remote.";

/// A reserved property, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserved<'a> {
    /// `tracewire.trace_flags`: the W3C trace flags.
    TraceFlags(u8),
    /// `tracewire.parent.remote`: whether the parent is remote.
    ParentRemote(bool),
    /// `tracewire.tracestate`.
    TraceState(&'a str),
    /// One attribute of the link to the span `link`.
    LinkAttribute {
        /// The linked span.
        link: SpanId,
        /// The attribute's key.
        key: &'a str,
        /// The attribute's value.
        value: &'a str,
    },
    /// The link to the span `link` points into another process.
    LinkRemote(SpanId),
    /// A `tracewire.*` key this version does not know (skipped, never exported).
    Unknown,
}

/// Reads a property: `None` for an ordinary attribute, `Some` for a reserved one.
///
/// ```
/// use tracewire_core::SpanId;
/// use tracewire_core::reserved::{self, Reserved};
///
/// assert_eq!(reserved::decode("http.route", "/x"), None);
/// assert_eq!(reserved::decode("tracewire.trace_flags", "03"), Some(Reserved::TraceFlags(3)));
/// let key = reserved::link_attribute_key(SpanId(0xab), "messaging.message.id");
/// assert_eq!(
///     reserved::decode(&key, "m-1"),
///     Some(Reserved::LinkAttribute { link: SpanId(0xab), key: "messaging.message.id", value: "m-1" })
/// );
/// ```
pub fn decode<'a>(key: &'a str, value: &'a str) -> Option<Reserved<'a>> {
    let rest = key.strip_prefix(PREFIX)?;
    Some(match rest {
        "trace_flags" => match hex::parse_u8(value.as_bytes(), false) {
            Some(flags) => Reserved::TraceFlags(flags),
            None => Reserved::Unknown,
        },
        "parent.remote" => Reserved::ParentRemote(value == "true"),
        "tracestate" => Reserved::TraceState(value),
        _ => {
            if let Some(link) = key.strip_prefix(LINK) {
                let (id, attr) = link.split_at_checked(16).unwrap_or(("", ""));
                match (hex::parse_u64(id.as_bytes(), false), attr.strip_prefix('.')) {
                    (Some(id), Some(attr)) if !attr.is_empty() => Reserved::LinkAttribute {
                        link: SpanId(id),
                        key: attr,
                        value,
                    },
                    _ => Reserved::Unknown,
                }
            } else if let Some(id) = key.strip_prefix(LINK_REMOTE) {
                match hex::parse_u64(id.as_bytes(), false).filter(|_| id.len() == 16) {
                    Some(id) if value == "true" => Reserved::LinkRemote(SpanId(id)),
                    _ => Reserved::Unknown,
                }
            } else {
                Reserved::Unknown
            }
        }
    })
}

/// The property key of attribute `key` of the link to span `link`.
pub fn link_attribute_key(link: SpanId, key: &str) -> String {
    let mut s = String::with_capacity(LINK.len() + 17 + key.len());
    s.push_str(LINK);
    hex::push_u64(&mut s, link.0);
    s.push('.');
    s.push_str(key);
    s
}

/// The property that marks the link to span `link` as remote.
pub fn link_remote(link: SpanId) -> (Cow<'static, str>, Cow<'static, str>) {
    let mut s = String::with_capacity(LINK_REMOTE.len() + 16);
    s.push_str(LINK_REMOTE);
    hex::push_u64(&mut s, link.0);
    (Cow::Owned(s), Cow::Borrowed("true"))
}

/// The `tracewire.trace_flags` value of a flags byte (only the two defined bits are kept).
pub fn flags_value(flags: u8) -> &'static str {
    flags_str(flags)
}

pub(crate) fn flags_str(flags: u8) -> &'static str {
    match flags & 0x03 {
        0x00 => "00",
        0x01 => "01",
        0x02 => "02",
        _ => "03",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_key_reads_back() {
        for flags in 0..4u8 {
            assert_eq!(
                decode(TRACE_FLAGS, flags_str(flags)),
                Some(Reserved::TraceFlags(flags))
            );
        }
        assert_eq!(
            decode(PARENT_REMOTE, "true"),
            Some(Reserved::ParentRemote(true))
        );
        assert_eq!(
            decode(TRACE_STATE, "a=1"),
            Some(Reserved::TraceState("a=1"))
        );
        let id = SpanId(0x00f0_67aa_0ba9_02b7);
        let key = link_attribute_key(id, "k.with.dots");
        assert_eq!(key, "tracewire.link.00f067aa0ba902b7.k.with.dots");
        assert_eq!(
            decode(&key, "v"),
            Some(Reserved::LinkAttribute {
                link: id,
                key: "k.with.dots",
                value: "v"
            })
        );
        let (k, v) = link_remote(id);
        assert_eq!(decode(&k, &v), Some(Reserved::LinkRemote(id)));
    }

    #[test]
    fn malformed_reserved_keys_are_unknown_never_attributes() {
        for (k, v) in [
            ("tracewire.trace_flags", "zz"),
            ("tracewire.trace_flags", "1"),
            ("tracewire.link.", "v"),
            ("tracewire.link.00f067aa0ba902b7", "v"),
            ("tracewire.link.00f067aa0ba902b7.", "v"),
            ("tracewire.link.xyz", "v"),
            ("tracewire.link_remote.12", "true"),
            ("tracewire.future", "x"),
        ] {
            assert_eq!(decode(k, v), Some(Reserved::Unknown), "{k}");
        }
        assert_eq!(decode("tracewirex", "v"), None);
        assert_eq!(decode("span.kind", "server"), None);
    }
}
