//! Kafka record headers as propagation carriers.
//!
//! Kafka header names are case-sensitive bytes, and a name may appear more than once;
//! propagation reads them case-insensitively (a peer may write `Traceparent`) and writes the
//! exact lowercase names of the formats (`traceparent`, `tracestate`, `baggage`: what
//! FastStream's case-sensitive `dict.get` reads). Values that are null or not UTF-8 are
//! skipped, never an error.
//!
//! A header whose **name** is not UTF-8 (a foreign producer can write one) makes rdkafka 0.39
//! panic when it is read (`BorrowedHeaders::try_get` unwraps the conversion); the extractor
//! reads each header behind [`std::panic::catch_unwind`] and skips such a header, so the
//! message is still handled, its other headers read. (The panic message is still printed by
//! the panic hook; your own code reading that header through rdkafka would panic too.)

use std::panic::{AssertUnwindSafe, catch_unwind};

use rdkafka::message::{Header, Headers, OwnedHeaders};
use tracewire_core::carrier::Walk;
use tracewire_core::{Extractor, Injector};

/// Reads propagation headers from the headers of a record (`BorrowedHeaders` of a consumed
/// message, `OwnedHeaders` of one being sent).
#[derive(Debug)]
pub struct HeaderExtractor<'a, H: ?Sized>(pub &'a H);

impl<H: ?Sized> Clone for HeaderExtractor<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H: ?Sized> Copy for HeaderExtractor<'_, H> {}

/// Header `index` of `headers`, or `None` when it is missing or cannot be read (a name that
/// is not UTF-8: rdkafka panics on it, caught here).
fn header<H: Headers + ?Sized>(headers: &H, index: usize) -> Option<Header<'_, &[u8]>> {
    match catch_unwind(AssertUnwindSafe(|| headers.try_get(index))) {
        Ok(header) => header,
        Err(_) => {
            log::debug!("Kafka header {index} has a name that is not UTF-8: skipped");
            None
        }
    }
}

/// The readable headers of a record with a text value, in order: `(name, value)`.
#[derive(Debug)]
pub struct Entries<'a, H: ?Sized> {
    headers: &'a H,
    index: usize,
    count: usize,
}

impl<'a, H: Headers + ?Sized> Entries<'a, H> {
    fn new(headers: &'a H) -> Self {
        Entries {
            headers,
            index: 0,
            count: headers.count(),
        }
    }

    /// The next readable header, its value as text when it is text.
    fn next_header(&mut self) -> Option<(&'a str, Option<&'a str>)> {
        while self.index < self.count {
            let i = self.index;
            self.index += 1;
            if let Some(h) = header(self.headers, i) {
                let value = h.value.and_then(|v| std::str::from_utf8(v).ok());
                return Some((h.key, value));
            }
        }
        None
    }
}

impl<'a, H: Headers + ?Sized> Iterator for Entries<'a, H> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        loop {
            let (key, value) = self.next_header()?;
            if let Some(value) = value {
                return Some((key, value));
            }
        }
    }
}

/// A header name a value iterator looks for: on the stack up to 64 bytes (every propagation
/// header name), so a lookup walks the headers once and allocates nothing.
#[derive(Clone, Debug)]
struct Name {
    inline: [u8; 64],
    len: usize,
    long: Option<String>,
}

impl Name {
    fn new(key: &str) -> Self {
        let mut inline = [0; 64];
        match inline.get_mut(..key.len()) {
            Some(buf) => {
                buf.copy_from_slice(key.as_bytes());
                Name {
                    inline,
                    len: key.len(),
                    long: None,
                }
            }
            None => Name {
                inline,
                len: 0,
                long: Some(key.to_owned()),
            },
        }
    }

    fn matches(&self, key: &str) -> bool {
        match &self.long {
            Some(long) => long.eq_ignore_ascii_case(key),
            None => self
                .inline
                .get(..self.len)
                .is_some_and(|name| name.eq_ignore_ascii_case(key.as_bytes())),
        }
    }
}

/// The values of one name (in any case), in order.
#[derive(Debug)]
pub struct Values<'a, H: ?Sized> {
    name: Name,
    entries: Entries<'a, H>,
}

impl<'a, H: Headers + ?Sized> Iterator for Values<'a, H> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let name = &self.name;
        self.entries
            .by_ref()
            .find_map(|(k, v)| name.matches(k).then_some(v))
    }
}

/// The names of the readable headers, in order.
#[derive(Debug)]
pub struct Keys<'a, H: ?Sized>(Entries<'a, H>);

impl<'a, H: Headers + ?Sized> Iterator for Keys<'a, H> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.0.next_header().map(|(k, _)| k)
    }
}

fn values<'a, H: Headers + ?Sized>(headers: &'a H, key: &str) -> Values<'a, H> {
    Values {
        name: Name::new(key),
        entries: Entries::new(headers),
    }
}

impl<H: Headers + ?Sized> Extractor for HeaderExtractor<'_, H> {
    type Values<'b>
        = Values<'b, H>
    where
        Self: 'b;
    type Keys<'b>
        = Keys<'b, H>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Values<'_, H> {
        values(self.0, key)
    }

    fn keys(&self) -> Keys<'_, H> {
        Keys(Entries::new(self.0))
    }

    fn walk<'b>(&'b self, walk: &mut Walk<'b>) -> bool {
        walk.entries(Entries::new(self.0))
    }
}

/// Writes (and reads) propagation headers into the headers of a record being sent, made
/// when the first header is written; other headers are kept as they are. Take the headers
/// back with [`into_inner`](HeaderInjector::into_inner).
#[derive(Debug, Default)]
pub struct HeaderInjector(pub Option<OwnedHeaders>);

impl HeaderInjector {
    /// The headers (`None` when the record had none and nothing was written).
    pub fn into_inner(self) -> Option<OwnedHeaders> {
        self.0
    }

    fn insert(&mut self, key: &str, value: &str) {
        let headers = match self.0.take() {
            // Kafka keeps every header of a name: drop the old values of this one first.
            Some(h) if Keys(Entries::new(&h)).any(|k| k.eq_ignore_ascii_case(key)) => {
                without(&h, key)
            }
            Some(h) => h,
            None => OwnedHeaders::new_with_capacity(3),
        };
        self.0 = Some(headers.insert(Header {
            key,
            value: Some(value),
        }));
    }
}

/// A copy of `headers` without the headers named `key` (any case).
fn without(headers: &OwnedHeaders, key: &str) -> OwnedHeaders {
    let mut out = OwnedHeaders::new_with_capacity(headers.count() + 1);
    for i in 0..headers.count() {
        if let Some(h) = header(headers, i) {
            if !h.key.eq_ignore_ascii_case(key) {
                out = out.insert(h);
            }
        }
    }
    out
}

impl Extractor for HeaderInjector {
    type Values<'b>
        = Values<'b, OwnedHeaders>
    where
        Self: 'b;
    type Keys<'b>
        = Keys<'b, OwnedHeaders>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> Values<'_, OwnedHeaders> {
        match &self.0 {
            Some(h) => values(h, key),
            None => Values {
                name: Name::new(key),
                entries: Entries {
                    headers: empty(),
                    index: 0,
                    count: 0,
                },
            },
        }
    }

    fn keys(&self) -> Keys<'_, OwnedHeaders> {
        match &self.0 {
            Some(h) => Keys(Entries::new(h)),
            None => Keys(Entries {
                headers: empty(),
                index: 0,
                count: 0,
            }),
        }
    }

    fn walk<'b>(&'b self, walk: &mut Walk<'b>) -> bool {
        match &self.0 {
            Some(h) => walk.entries(Entries::new(h)),
            None => true,
        }
    }
}

/// An empty header list, for a carrier without headers (never read: its count is 0).
fn empty() -> &'static OwnedHeaders {
    static EMPTY: std::sync::OnceLock<OwnedHeaders> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| OwnedHeaders::new_with_capacity(0))
}

impl Injector for HeaderInjector {
    fn set(&mut self, key: &'static str, value: String) {
        self.insert(key, &value);
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        if key.is_empty() || key.contains('\0') {
            log::debug!("not a valid Kafka header name, not injected: {key:?}");
            return;
        }
        self.insert(key, &value);
    }
}

/// The text headers of a consumed record, read **once** for its process span (the extraction
/// and the facts both read them): up to eight on the stack, more in a `Vec`.
#[derive(Debug)]
pub(crate) struct Incoming<'m> {
    inline: [(&'m str, &'m str); 8],
    len: usize,
    spill: Vec<(&'m str, &'m str)>,
}

type Entry<'m> = (&'m str, &'m str);

/// The entries of an [`Incoming`], in order.
pub(crate) type IncomingEntries<'a> = std::iter::Copied<
    std::iter::Chain<std::slice::Iter<'a, Entry<'a>>, std::slice::Iter<'a, Entry<'a>>>,
>;

impl<'m> Incoming<'m> {
    pub(crate) fn new<H: Headers + ?Sized>(headers: Option<&'m H>) -> Self {
        let mut incoming = Incoming {
            inline: [("", ""); 8],
            len: 0,
            spill: Vec::new(),
        };
        if let Some(h) = headers {
            for entry in Entries::new(h) {
                match incoming.inline.get_mut(incoming.len) {
                    Some(slot) => {
                        *slot = entry;
                        incoming.len += 1;
                    }
                    None => incoming.spill.push(entry),
                }
            }
        }
        incoming
    }

    pub(crate) fn entries(&self) -> IncomingEntries<'_> {
        self.inline
            .get(..self.len)
            .unwrap_or_default()
            .iter()
            .chain(self.spill.iter())
            .copied()
    }

    /// The first value of `key` (any case), borrowed from the record.
    pub(crate) fn first(&self, key: &str) -> Option<&'m str> {
        self.inline
            .get(..self.len)
            .unwrap_or_default()
            .iter()
            .chain(self.spill.iter())
            .find_map(|(k, v)| k.eq_ignore_ascii_case(key).then_some(*v))
    }
}

/// The values of one name in an [`Incoming`].
pub(crate) struct IncomingValues<'a> {
    name: Name,
    entries: IncomingEntries<'a>,
}

impl<'a> Iterator for IncomingValues<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let name = &self.name;
        self.entries
            .by_ref()
            .find_map(|(k, v)| name.matches(k).then_some(v))
    }
}

fn entry_name<'a>(e: (&'a str, &'a str)) -> &'a str {
    e.0
}

impl Extractor for Incoming<'_> {
    type Values<'b>
        = IncomingValues<'b>
    where
        Self: 'b;
    type Keys<'b>
        = std::iter::Map<IncomingEntries<'b>, for<'a> fn((&'a str, &'a str)) -> &'a str>
    where
        Self: 'b;

    fn get_all(&self, key: &str) -> IncomingValues<'_> {
        IncomingValues {
            name: Name::new(key),
            entries: self.entries(),
        }
    }

    fn keys(&self) -> Self::Keys<'_> {
        let name: for<'a> fn((&'a str, &'a str)) -> &'a str = entry_name;
        self.entries().map(name)
    }

    fn walk<'b>(&'b self, walk: &mut Walk<'b>) -> bool {
        walk.entries(self.entries())
    }
}

/// The headers of a record being sent, as the send span reads and writes them: the record's
/// own headers read **once** (a snapshot borrowed from them), and what the propagators write
/// kept apart, then applied in one go ([`Outgoing::apply`]). Every read of rdkafka's headers is
/// a call into librdkafka and a UTF-8 check of the name; the send path reads them once.
#[derive(Debug, Default)]
pub(crate) struct Outgoing<'h> {
    existing: Vec<(&'h str, Option<&'h str>)>,
    added: Vec<(std::borrow::Cow<'static, str>, String)>,
    /// A written name is also among the record's own headers (they are dropped on apply).
    replaces: bool,
}

/// What the propagators wrote, to apply to the record's headers.
#[derive(Debug)]
pub(crate) struct Written {
    added: Vec<(std::borrow::Cow<'static, str>, String)>,
    replaces: bool,
}

impl<'h> Outgoing<'h> {
    pub(crate) fn new(headers: Option<&'h OwnedHeaders>) -> Self {
        let existing = match headers {
            Some(h) if h.count() > 0 => {
                let mut v = Vec::with_capacity(h.count());
                let mut e = Entries::new(h);
                while let Some(entry) = e.next_header() {
                    v.push(entry);
                }
                v
            }
            _ => Vec::new(),
        };
        Outgoing {
            existing,
            added: Vec::new(),
            replaces: false,
        }
    }

    /// The first text value of `key` (any case) among the record's own headers, borrowed from
    /// them.
    pub(crate) fn existing(&self, key: &str) -> Option<&'h str> {
        self.existing.iter().find_map(|(k, v)| {
            if k.eq_ignore_ascii_case(key) {
                *v
            } else {
                None
            }
        })
    }

    /// What was written, apart from the snapshot (which borrows the headers).
    pub(crate) fn written(self) -> Written {
        Written {
            added: self.added,
            replaces: self.replaces,
        }
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.existing
            .iter()
            .filter_map(|(k, v)| Some((*k, (*v)?)))
            .chain(self.added.iter().map(|(k, v)| (&**k, v.as_str())))
    }

    fn set_entry(&mut self, key: std::borrow::Cow<'static, str>, value: String) {
        self.added.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
        self.replaces |= self
            .existing
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(&key));
        self.added.push((key, value));
    }
}

impl Written {
    /// The record's headers with what was written: appended, or — when a written name was
    /// there already — in place of the old values (Kafka keeps every header of a name).
    pub(crate) fn apply(self, headers: Option<OwnedHeaders>) -> Option<OwnedHeaders> {
        if self.added.is_empty() {
            return headers;
        }
        let mut out = match headers {
            Some(h) if self.replaces => {
                let mut out = OwnedHeaders::new_with_capacity(h.count() + self.added.len());
                for i in 0..h.count() {
                    if let Some(old) = header(&h, i) {
                        if !self
                            .added
                            .iter()
                            .any(|(k, _)| k.eq_ignore_ascii_case(old.key))
                        {
                            out = out.insert(old);
                        }
                    }
                }
                out
            }
            Some(h) => h,
            None => OwnedHeaders::new_with_capacity(self.added.len()),
        };
        for (key, value) in &self.added {
            out = out.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        Some(out)
    }
}

/// The values of one name in an [`Outgoing`].
pub(crate) struct OutgoingValues<'a> {
    name: Name,
    entries: Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>,
}

impl<'a> Iterator for OutgoingValues<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let name = &self.name;
        self.entries
            .by_ref()
            .find_map(|(k, v)| name.matches(k).then_some(v))
    }
}

type Existing<'h> = (&'h str, Option<&'h str>);
type Added = (std::borrow::Cow<'static, str>, String);

/// The names in an [`Outgoing`] (no allocation: asked on every send).
pub(crate) type OutgoingKeys<'a> = std::iter::Chain<
    std::iter::Map<std::slice::Iter<'a, Existing<'a>>, fn(&'a Existing<'a>) -> &'a str>,
    std::iter::Map<std::slice::Iter<'a, Added>, fn(&'a Added) -> &'a str>,
>;

fn existing_name<'a>(e: &'a Existing<'a>) -> &'a str {
    e.0
}

fn added_name(e: &Added) -> &str {
    &e.0
}

impl Extractor for Outgoing<'_> {
    type Values<'b>
        = OutgoingValues<'b>
    where
        Self: 'b;
    type Keys<'b>
        = OutgoingKeys<'b>
    where
        Self: 'b;

    /// Rare (headers that appear more than once): extraction goes through `walk`.
    fn get_all(&self, key: &str) -> OutgoingValues<'_> {
        OutgoingValues {
            name: Name::new(key),
            entries: Box::new(self.entries()),
        }
    }

    fn keys(&self) -> OutgoingKeys<'_> {
        let existing: for<'a> fn(&'a Existing<'a>) -> &'a str = existing_name;
        let added: for<'a> fn(&'a Added) -> &'a str = added_name;
        self.existing
            .iter()
            .map(existing)
            .chain(self.added.iter().map(added))
    }

    fn walk<'b>(&'b self, walk: &mut Walk<'b>) -> bool {
        walk.entries(self.entries())
    }
}

impl Injector for Outgoing<'_> {
    fn set(&mut self, key: &'static str, value: String) {
        self.set_entry(std::borrow::Cow::Borrowed(key), value);
    }

    fn set_dynamic(&mut self, key: &str, value: String) {
        if key.is_empty() || key.contains('\0') {
            log::debug!("not a valid Kafka header name, not injected: {key:?}");
            return;
        }
        self.set_entry(std::borrow::Cow::Owned(key.to_owned()), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracewire_core::{Format, Propagators, SpanId, TraceContext, TraceId};

    fn headers(pairs: &[(&str, Option<&[u8]>)]) -> OwnedHeaders {
        pairs.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header { key: k, value: *v })
        })
    }

    /// Every header, in order, with its value.
    fn entries(h: &OwnedHeaders) -> Vec<(String, Option<Vec<u8>>)> {
        (0..h.count())
            .map(|i| {
                let h = h.get(i);
                (h.key.to_owned(), h.value.map(<[u8]>::to_vec))
            })
            .collect()
    }

    #[test]
    fn reads_any_case_skips_null_and_binary_values() {
        let h = headers(&[
            ("x-null", None),
            ("x-bin", Some(&[0xff, 0xfe][..])),
            (
                "Traceparent",
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
            ("Uberctx-Tenant", Some(b"acme")),
        ]);
        let e = Propagators::all().extract(&HeaderExtractor(&h));
        assert_eq!(
            e.context.map(|c| c.trace_id),
            Some(TraceId(0x4bf92f3577b34da6a3ce929d0e0e4736))
        );
        assert_eq!(e.baggage.get("Tenant"), Some("acme"));
        let x = HeaderExtractor(&h);
        assert_eq!(
            x.keys().collect::<Vec<_>>(),
            ["x-null", "x-bin", "Traceparent", "Uberctx-Tenant"]
        );
        assert_eq!(x.get("x-bin"), None);
        assert_eq!(x.get("x-null"), None);
        assert_eq!(x.get("UBERCTX-TENANT"), Some("acme"));
    }

    #[test]
    fn writes_lowercase_replaces_its_own_names_and_keeps_the_rest() {
        let mut cx = TraceContext::new(TraceId(1), SpanId(2), true);
        cx.baggage = tracewire_core::Baggage::parse_lines(["user=x"]);
        cx.trace_state = tracewire_core::TraceState::parse("new=2").unwrap();
        let mut carrier = HeaderInjector(Some(headers(&[
            ("correlation_id", Some(b"c-1")),
            ("Tracestate", Some(b"old=1")),
            ("x-null", None),
        ])));
        Propagators::new([Format::TraceContext, Format::Baggage]).inject(&cx, &mut carrier);
        let h = carrier.into_inner().unwrap();
        let all = entries(&h);
        assert_eq!(
            all,
            [
                ("correlation_id".to_owned(), Some(b"c-1".to_vec())),
                ("x-null".to_owned(), None),
                (
                    "traceparent".to_owned(),
                    Some(b"00-00000000000000000000000000000001-0000000000000002-01".to_vec())
                ),
                ("tracestate".to_owned(), Some(b"new=2".to_vec())),
                ("baggage".to_owned(), Some(b"user=x".to_vec())),
            ]
        );
    }

    #[test]
    fn the_send_path_reads_the_headers_once_and_writes_like_the_injector() {
        let mut cx = TraceContext::new(TraceId(1), SpanId(2), true);
        cx.trace_state = tracewire_core::TraceState::parse("new=2").unwrap();
        let original = headers(&[
            ("correlation_id", Some(b"c-1")),
            ("Tracestate", Some(b"old=1")),
            ("x-null", None),
        ]);
        let mut carrier = Outgoing::new(Some(&original));
        assert_eq!(carrier.existing("CORRELATION_ID"), Some("c-1"));
        assert_eq!(carrier.get("tracestate"), Some("old=1"));
        assert_eq!(carrier.keys().count(), 3);
        Propagators::new([Format::TraceContext]).inject(&cx, &mut carrier);
        assert_eq!(carrier.get("traceparent").map(str::len), Some(55));
        let h = carrier.written().apply(Some(original.clone())).unwrap();
        let all = entries(&h);
        assert_eq!(
            all,
            [
                ("correlation_id".to_owned(), Some(b"c-1".to_vec())),
                ("x-null".to_owned(), None),
                (
                    "traceparent".to_owned(),
                    Some(b"00-00000000000000000000000000000001-0000000000000002-01".to_vec())
                ),
                ("tracestate".to_owned(), Some(b"new=2".to_vec())),
            ]
        );
        // Nothing written: the headers as they were; none and nothing: none.
        assert_eq!(
            Outgoing::new(Some(&original))
                .written()
                .apply(Some(original.clone()))
                .map(|h| h.count()),
            Some(3)
        );
        assert!(Outgoing::new(None).written().apply(None).is_none());
    }

    #[test]
    fn a_consumed_record_is_read_once_eight_on_the_stack_more_spilled() {
        let names: Vec<String> = (0..10).map(|i| format!("x-{i}")).collect();
        let mut pairs: Vec<(&str, Option<&[u8]>)> = names
            .iter()
            .map(|n| (n.as_str(), Some(&b"v"[..])))
            .collect();
        pairs.insert(3, ("x-bin", Some(&[0xff][..])));
        pairs.push((
            "TraceParent",
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ));
        let h = headers(&pairs);
        let incoming = Incoming::new(Some(&h));
        assert_eq!(incoming.keys().count(), 11, "text values only");
        assert_eq!(incoming.first("X-9"), Some("v"));
        assert_eq!(incoming.get_all("x-0").collect::<Vec<_>>(), ["v"]);
        let e = Propagators::all().extract(&incoming);
        assert_eq!(
            e.context.map(|c| c.span_id),
            Some(SpanId(0x00f067aa0ba902b7))
        );
        assert_eq!(Incoming::new(None::<&OwnedHeaders>).keys().count(), 0);
    }

    #[test]
    fn an_empty_carrier_reads_as_empty_and_allocates_on_first_write() {
        let mut carrier = HeaderInjector::default();
        assert!(carrier.keys().next().is_none());
        assert_eq!(carrier.get("traceparent"), None);
        carrier.set_dynamic("", "v".into());
        carrier.set_dynamic("a\0b", "v".into());
        assert!(carrier.0.is_none());
        carrier.set("traceparent", "v".into());
        assert_eq!(carrier.get("traceparent"), Some("v"));
    }
}
