//! Propagators: reading a [`TraceContext`] and baggage from a carrier, and writing them back.
//!
//! | format | headers | module |
//! |---|---|---|
//! | `tracecontext` | `traceparent`, `tracestate` | [`w3c`] |
//! | `baggage` | `baggage` | [`w3c`] |
//! | `b3` | `b3` (inject); `b3` or `X-B3-*` (extract) | [`b3`] |
//! | `b3multi` | `X-B3-*` (inject); `b3` or `X-B3-*` (extract) | [`b3`] |
//! | `jaeger` | `uber-trace-id`, `uberctx-*`, `jaeger-debug-id` | [`jaeger`] |
//!
//! [`Propagators`] is the composite every integration uses: extraction tries the configured
//! formats in order and keeps the first valid trace context, merging baggage from every
//! baggage-carrying format; injection writes every configured format.

pub mod b3;
pub(crate) mod fields;
pub mod jaeger;
pub mod w3c;

pub use fields::HeaderTable;

use crate::baggage::Baggage;
use crate::carrier::{Extractor, Injector};
use crate::context::{Sampling, TraceContext};
use crate::env::Warning;
use crate::hex::IdDigits;

/// One propagation format, named as in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// W3C Trace Context (`traceparent` + `tracestate`).
    TraceContext,
    /// W3C Baggage.
    Baggage,
    /// B3, injected as the single `b3` header.
    B3,
    /// B3, injected as `X-B3-*` headers.
    B3Multi,
    /// Jaeger `uber-trace-id` with `uberctx-*` baggage.
    Jaeger,
}

impl Format {
    /// The `OTEL_PROPAGATORS` name.
    pub const fn name(self) -> &'static str {
        match self {
            Format::TraceContext => "tracecontext",
            Format::Baggage => "baggage",
            Format::B3 => "b3",
            Format::B3Multi => "b3multi",
            Format::Jaeger => "jaeger",
        }
    }

    /// Looks up an `OTEL_PROPAGATORS` name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Format> {
        [
            Format::TraceContext,
            Format::Baggage,
            Format::B3,
            Format::B3Multi,
            Format::Jaeger,
        ]
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The header names this format may write.
    pub const fn fields(self) -> &'static [&'static str] {
        match self {
            Format::TraceContext => &[w3c::TRACEPARENT, w3c::TRACESTATE],
            Format::Baggage => &[w3c::BAGGAGE],
            Format::B3 => &[b3::B3],
            Format::B3Multi => &[
                b3::X_B3_TRACE_ID,
                b3::X_B3_SPAN_ID,
                b3::X_B3_SAMPLED,
                b3::X_B3_FLAGS,
            ],
            Format::Jaeger => &[jaeger::UBER_TRACE_ID],
        }
    }
}

/// What a carrier held, before the root rule ([`crate::Tracer::start_root`]) decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The first valid remote context, in propagator order (its `baggage` is empty; see
    /// [`Extracted::baggage`]).
    pub context: Option<TraceContext>,
    /// Baggage merged from every baggage-carrying format (earlier formats win a key).
    pub baggage: Baggage,
    /// A sampling decision that arrived without ids (`b3: 0`, `b3: d`, `X-B3-Sampled` alone,
    /// `jaeger-debug-id`): a new trace is started with this decision.
    pub sampling_only: Option<Sampling>,
    /// The `jaeger-debug-id` header, when present.
    pub debug_id: Option<String>,
}

/// The composite propagator: an ordered, de-duplicated list of formats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagators {
    formats: Vec<Format>,
    /// The headers those formats read (see `fields`).
    wanted: u16,
}

impl Default for Propagators {
    /// `tracecontext,baggage`, the OpenTelemetry default.
    fn default() -> Self {
        Propagators::new([Format::TraceContext, Format::Baggage])
    }
}

/// The variable read by [`Propagators::from_env`].
pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";

impl Propagators {
    /// The given formats, in order, duplicates removed.
    pub fn new(formats: impl IntoIterator<Item = Format>) -> Self {
        let mut out = Vec::new();
        for f in formats {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        Propagators {
            wanted: fields::wanted(&out),
            formats: out,
        }
    }

    /// No propagation at all (`OTEL_PROPAGATORS=none`).
    pub fn none() -> Self {
        Propagators {
            formats: Vec::new(),
            wanted: 0,
        }
    }

    /// Every format: `tracecontext,baggage,b3,jaeger` — useful at a gateway that must accept
    /// anything.
    pub fn all() -> Self {
        Propagators::new([
            Format::TraceContext,
            Format::Baggage,
            Format::B3,
            Format::Jaeger,
        ])
    }

    /// The configured formats, in order.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    /// Every header name injection may write (Jaeger's `uberctx-*` are dynamic and not listed).
    pub fn fields(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.formats.iter().flat_map(|f| f.fields().iter().copied())
    }

    /// Parses an `OTEL_PROPAGATORS` value per the OpenTelemetry spec: comma-separated,
    /// case-insensitive, duplicates removed; `none` (anywhere) disables propagation; unknown or
    /// unsupported names are ignored with one warning; unset or empty gives the default
    /// `tracecontext,baggage`.
    pub fn parse_env(value: Option<&str>) -> (Propagators, Vec<Warning>) {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return (Propagators::default(), Vec::new());
        };
        let mut formats = Vec::new();
        let mut unknown = Vec::new();
        let mut none = false;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.eq_ignore_ascii_case("none") {
                none = true;
            } else if let Some(f) = Format::from_name(name) {
                formats.push(f);
            } else {
                unknown.push(name);
            }
        }
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            warnings.push(Warning::new(
                OTEL_PROPAGATORS,
                format!(
                    "ignoring unknown or unsupported propagator(s) {} (supported: tracecontext, baggage, b3, b3multi, jaeger, none)",
                    unknown.join(", ")
                ),
            ));
        }
        if none {
            return (Propagators::none(), warnings);
        }
        (Propagators::new(formats), warnings)
    }

    /// [`Propagators::parse_env`] on the process environment; warnings are logged.
    pub fn from_env() -> Propagators {
        let (p, warnings) = Self::parse_env(crate::env::var(OTEL_PROPAGATORS).as_deref());
        warnings.iter().for_each(Warning::emit);
        p
    }

    /// Reads whatever the carrier holds. Never fails: malformed input yields no context (and a
    /// `log::debug!` line saying why).
    ///
    /// A carrier that supports [`Extractor::walk`] is walked once; any other is asked for
    /// each header the formats read.
    pub fn extract<E: Extractor + ?Sized>(&self, carrier: &E) -> Extracted {
        if self.formats.is_empty() {
            return Extracted::default();
        }
        let mut fields = fields::Fields::new(carrier, self.wanted);
        fields.read();
        let carrier = &fields;
        // The common case of a request that starts a trace: none of the headers is there, so
        // no format has anything to parse or merge.
        if carrier.holds_none() {
            return Extracted::default();
        }
        let mut out = Extracted::default();
        for &format in &self.formats {
            match format {
                Format::TraceContext => {
                    if out.context.is_none() {
                        out.context = w3c::extract(carrier);
                    }
                }
                Format::Baggage => merge(&mut out.baggage, w3c::extract_baggage(carrier)),
                Format::B3 | Format::B3Multi => {
                    if out.context.is_none() {
                        match b3::extract(carrier) {
                            Some(b3::B3Extract::Context(cx)) => out.context = Some(cx),
                            Some(b3::B3Extract::SamplingOnly(s)) => {
                                out.sampling_only.get_or_insert(s);
                            }
                            None => {}
                        }
                    }
                }
                Format::Jaeger => {
                    if out.context.is_none() {
                        out.context = jaeger::extract(carrier);
                        if out.context.is_none() {
                            if let Some(id) = jaeger::extract_debug_id(carrier) {
                                out.debug_id = Some(id);
                                out.sampling_only.get_or_insert(Sampling::Debug);
                            }
                        }
                    }
                    merge(&mut out.baggage, jaeger::extract_baggage(carrier));
                }
            }
        }
        if out.context.is_some() {
            out.sampling_only = None;
            out.debug_id = None;
        }
        out
    }

    /// Writes `cx` (and its baggage) in every configured format. A context with a zero trace or
    /// span id ([`TraceContext::is_valid`] false) writes no trace headers — receivers would
    /// reject them — only its baggage.
    pub fn inject<I: Injector + ?Sized>(&self, cx: &TraceContext, carrier: &mut I) {
        // The ids in hex, made once for every format that writes them (all but baggage).
        let ids = (cx.is_valid() && self.formats.iter().any(|f| *f != Format::Baggage))
            .then(|| IdDigits::new(cx.trace_id.0, cx.span_id.0));
        for &format in &self.formats {
            match (format, &ids) {
                (Format::TraceContext, Some(ids)) => w3c::inject(cx, ids, carrier),
                (Format::Baggage, _) => w3c::inject_baggage(&cx.baggage, carrier),
                (Format::B3, Some(ids)) => b3::inject_single(cx, ids, carrier),
                (Format::B3Multi, Some(ids)) => b3::inject_multi(cx, ids, carrier),
                (Format::Jaeger, ids) => {
                    if let Some(ids) = ids {
                        jaeger::inject(cx, ids, carrier);
                    }
                    jaeger::inject_baggage(&cx.baggage, carrier);
                }
                (Format::TraceContext | Format::B3 | Format::B3Multi, None) => {}
            }
        }
    }
}

/// Baggage from one more format: earlier formats win a key, and keys that differ only in case
/// are one key (Jaeger's come lowercased through HTTP: `userId` sent as W3C baggage and as
/// `uberctx-userId` must not come back as two keys).
fn merge(into: &mut Baggage, more: Baggage) {
    if into.is_empty() {
        // What the merge would return, without a clone of `more` and a drop.
        *into = more;
    } else if !more.is_empty() {
        *into = into.merge_ignoring_key_case(&more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::Pairs;
    use fastrace::collector::TraceId;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn env_parsing() {
        let (p, w) = Propagators::parse_env(None);
        assert_eq!(p.formats(), [Format::TraceContext, Format::Baggage]);
        assert!(w.is_empty());
        let (p, w) = Propagators::parse_env(Some("  "));
        assert_eq!(p, Propagators::default());
        assert!(w.is_empty());
        let (p, w) = Propagators::parse_env(Some("B3, jaeger,b3,xray,bogus"));
        assert_eq!(p.formats(), [Format::B3, Format::Jaeger]);
        assert_eq!(w.len(), 1, "one warning for all unknown names");
        assert!(w[0].message.contains("xray, bogus"));
        assert_eq!(w[0].variable, "OTEL_PROPAGATORS");
        let (p, _) = Propagators::parse_env(Some("tracecontext,none"));
        assert!(p.formats().is_empty());
        let (p, _) = Propagators::parse_env(Some("b3multi,"));
        assert_eq!(p.formats(), [Format::B3Multi]);
    }

    /// The same entries, never walked: every read goes to the carrier.
    struct Unwalked(Pairs);

    impl Extractor for Unwalked {
        type Values<'a> = <Pairs as Extractor>::Values<'a>;
        type Keys<'a> = <Pairs as Extractor>::Keys<'a>;

        fn get_all(&self, key: &str) -> Self::Values<'_> {
            self.0.get_all(key)
        }

        fn keys(&self) -> Self::Keys<'_> {
            self.0.keys()
        }
    }

    #[test]
    fn a_carrier_without_propagation_headers_yields_nothing_and_one_header_is_enough() {
        let every = Propagators::new([
            Format::TraceContext,
            Format::Baggage,
            Format::B3Multi,
            Format::Jaeger,
        ]);
        let unrelated = [
            ("host", "api.example"),
            ("user-agent", "curl/8"),
            ("x-b3-parentspanid", "e457b5a2e4d86bd1"),
            ("traceparents", TP),
            ("uberctx", "no key"),
        ];
        for p in [every.clone(), Propagators::all(), Propagators::default()] {
            let none = Pairs::from_pairs(unrelated);
            assert_eq!(p.extract(&none), Extracted::default(), "{p:?}");
            assert_eq!(p.extract(&Unwalked(none)), Extracted::default(), "{p:?}");
        }
        // Any one header read by a configured format is read, as when the carrier is not
        // walked (each of these alone makes the extraction non-empty).
        for one in [
            ("traceparent", TP),
            ("baggage", "k=v"),
            ("b3", "0"),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "1"),
            ("uber-trace-id", "1:2:0:1"),
            ("jaeger-debug-id", "abc"),
            ("uberctx-user", "alice"),
        ] {
            let pairs = || Pairs::from_pairs(unrelated.into_iter().chain([one]));
            let walked = every.extract(&pairs());
            assert_ne!(walked, Extracted::default(), "{one:?}");
            assert_eq!(walked, every.extract(&Unwalked(pairs())), "{one:?}");
        }
    }

    #[test]
    fn first_valid_context_wins_and_baggage_merges() {
        let c = Pairs::from_pairs([
            (
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("uber-trace-id", "1:2:0:1"),
            ("baggage", "a=1,b=2"),
            ("uberctx-b", "3"),
            ("uberctx-c", "4"),
        ]);
        let p = Propagators::new([
            Format::TraceContext,
            Format::Baggage,
            Format::Jaeger,
            Format::B3,
        ]);
        let e = p.extract(&c);
        assert_eq!(
            e.context.unwrap().trace_id,
            TraceId(1),
            "jaeger comes before b3 here"
        );
        assert_eq!(
            (e.baggage.get("a"), e.baggage.get("b"), e.baggage.get("c")),
            (Some("1"), Some("2"), Some("4"))
        );
        let p = Propagators::new([Format::B3, Format::Jaeger]);
        assert_eq!(
            p.extract(&c).context.unwrap().trace_id,
            TraceId(0x80f198ee56343ba864fe8b2a57d3eff7)
        );
    }

    #[test]
    fn one_baggage_key_through_w3c_and_jaeger_stays_one_key() {
        let p = Propagators::new([Format::TraceContext, Format::Baggage, Format::Jaeger]);
        let mut cx = p
            .extract(&Pairs::from_pairs([("traceparent", TP)]))
            .context
            .unwrap();
        cx.baggage = Baggage::parse_lines(["userId=alice"]);
        let mut out = Pairs::new();
        p.inject(&cx, &mut out);
        // HTTP lowercases header names on the way.
        let hop: Vec<(String, String)> = out
            .0
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let back = p.extract(&Pairs(hop)).baggage;
        assert_eq!(
            back.iter()
                .map(|m| (m.key(), m.value()))
                .collect::<Vec<_>>(),
            [("userId", "alice")]
        );
        // Jaeger first: its (lowercased) key stands.
        let p = Propagators::new([Format::Jaeger, Format::Baggage]);
        let e = p.extract(&Pairs::from_pairs([
            ("uberctx-userid", "alice"),
            ("baggage", "userId=alice,other=1"),
        ]));
        assert_eq!(
            e.baggage.iter().map(|m| m.key()).collect::<Vec<_>>(),
            ["userid", "other"]
        );
    }

    #[test]
    fn unconfigured_formats_are_ignored() {
        let c = Pairs::from_pairs([
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("baggage", "a=1"),
        ]);
        let e = Propagators::new([Format::TraceContext]).extract(&c);
        assert_eq!(e, Extracted::default());
    }

    #[test]
    fn sampling_only_and_debug_id() {
        let c = Pairs::from_pairs([("b3", "0")]);
        assert_eq!(
            Propagators::all().extract(&c).sampling_only,
            Some(Sampling::NotSampled)
        );
        let c = Pairs::from_pairs([("jaeger-debug-id", "abc")]);
        let e = Propagators::new([Format::Jaeger]).extract(&c);
        assert_eq!(
            (e.sampling_only, e.debug_id.as_deref()),
            (Some(Sampling::Debug), Some("abc"))
        );
        let c = Pairs::from_pairs([("jaeger-debug-id", "abc"), ("traceparent", TP)]);
        let e = Propagators::all().extract(&c);
        assert_eq!(
            (e.sampling_only, e.debug_id),
            (None, None),
            "a real parent wins"
        );
    }

    #[test]
    fn inject_writes_every_format() {
        let mut cx = Propagators::default()
            .extract(&Pairs::from_pairs([("traceparent", TP)]))
            .context
            .unwrap();
        cx.baggage = Baggage::parse_lines(["k=v%20w"]);
        let mut out = Pairs::new();
        Propagators::new([
            Format::TraceContext,
            Format::Baggage,
            Format::B3,
            Format::B3Multi,
            Format::Jaeger,
        ])
        .inject(&cx, &mut out);
        let keys: Vec<&str> = out.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "traceparent",
                "baggage",
                "b3",
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-sampled",
                "uber-trace-id",
                "uberctx-k"
            ]
        );
        assert_eq!(out.get("baggage"), Some("k=v%20w"));
        let mut out = Pairs::new();
        Propagators::none().inject(&cx, &mut out);
        assert!(out.0.is_empty());
    }
}
