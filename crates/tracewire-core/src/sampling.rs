//! Head samplers, chosen once and consulted by the root rule ([`crate::Tracer::start_root`])
//! for every integration.

use std::fmt;
use std::sync::Arc;

use fastrace::collector::TraceId;

use crate::context::{Sampling, TraceContext};
use crate::env::Warning;

/// A user-provided sampling rule, for [`Sampler::custom`].
pub trait ShouldSample: Send + Sync + 'static {
    /// Decides for a span named `name` in trace `trace_id`. `parent` is the parent context, if
    /// any (remote when [`TraceContext::remote`] is set; its [`TraceContext::sampling`] may be
    /// [`Sampling::Deferred`]).
    fn should_sample(&self, parent: Option<&TraceContext>, trace_id: TraceId, name: &str) -> bool;

    /// A description for diagnostics, e.g. `MySampler{0.3}`.
    fn description(&self) -> String;
}

/// A head sampler, as specified by OpenTelemetry.
#[derive(Clone)]
pub enum Sampler {
    /// Sample everything.
    AlwaysOn,
    /// Sample nothing (the context still propagates with the sampled flag off).
    AlwaysOff,
    /// Sample a fixed fraction of traces, decided on the trace id alone so every service of a
    /// trace agrees. Built with [`Sampler::trace_id_ratio`].
    TraceIdRatio(TraceIdRatio),
    /// Follow the parent's decision; use the `root` sampler for new traces and for parents
    /// that deferred the decision.
    ParentBased(Box<ParentBased>),
    /// A user-provided rule.
    Custom(Arc<dyn ShouldSample>),
}

/// The trace-id ratio rule: sampled when the low 64 bits of the trace id are below
/// `round(ratio · 2^64)` — the same rule as the OpenTelemetry Python and Go SDKs, so their
/// services and ours agree on every trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceIdRatio {
    ratio: f64,
    bound: u128,
}

impl TraceIdRatio {
    /// The configured ratio, clamped to `[0, 1]`.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The decision for `trace_id`.
    #[inline]
    pub fn samples(&self, trace_id: TraceId) -> bool {
        u128::from(trace_id.0 as u64) < self.bound
    }
}

/// The parts of a [`Sampler::ParentBased`] sampler.
#[derive(Clone)]
pub struct ParentBased {
    /// For new traces and deferred parents.
    pub root: Sampler,
    /// Remote parent, sampled (default: always on).
    pub remote_parent_sampled: Sampler,
    /// Remote parent, not sampled (default: always off).
    pub remote_parent_not_sampled: Sampler,
    /// Local parent, sampled (default: always on).
    pub local_parent_sampled: Sampler,
    /// Local parent, not sampled (default: always off).
    pub local_parent_not_sampled: Sampler,
}

impl Default for Sampler {
    /// `parentbased_always_on`, the OpenTelemetry default.
    fn default() -> Self {
        Sampler::parent_based(Sampler::AlwaysOn)
    }
}

/// `OTEL_TRACES_SAMPLER`
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

impl Sampler {
    /// Samples `ratio` of all traces (clamped to `[0, 1]`; NaN counts as 0).
    pub fn trace_id_ratio(ratio: f64) -> Sampler {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        // Ties round to even, like Python's `round()` in the OpenTelemetry SDK (only ratios
        // below 2^-11 can produce a tie).
        let bound = (ratio * 18_446_744_073_709_551_616.0).round_ties_even() as u128;
        Sampler::TraceIdRatio(TraceIdRatio { ratio, bound })
    }

    /// Follows the parent; `root` decides new traces.
    pub fn parent_based(root: Sampler) -> Sampler {
        Sampler::ParentBased(Box::new(ParentBased {
            root,
            remote_parent_sampled: Sampler::AlwaysOn,
            remote_parent_not_sampled: Sampler::AlwaysOff,
            local_parent_sampled: Sampler::AlwaysOn,
            local_parent_not_sampled: Sampler::AlwaysOff,
        }))
    }

    /// A user-provided rule.
    pub fn custom(rule: impl ShouldSample) -> Sampler {
        Sampler::Custom(Arc::new(rule))
    }

    /// True when a decision may read the span name (a [`Sampler::Custom`] rule anywhere in
    /// this sampler). The root rule builds the name for the sampler only then.
    pub fn uses_name(&self) -> bool {
        match self {
            Sampler::AlwaysOn | Sampler::AlwaysOff | Sampler::TraceIdRatio(_) => false,
            Sampler::ParentBased(pb) => [
                &pb.root,
                &pb.remote_parent_sampled,
                &pb.remote_parent_not_sampled,
                &pb.local_parent_sampled,
                &pb.local_parent_not_sampled,
            ]
            .into_iter()
            .any(Sampler::uses_name),
            Sampler::Custom(_) => true,
        }
    }

    /// The decision for a span named `name` in `trace_id` under `parent`.
    pub fn should_sample(
        &self,
        parent: Option<&TraceContext>,
        trace_id: TraceId,
        name: &str,
    ) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(r) => r.samples(trace_id),
            Sampler::ParentBased(pb) => {
                let Some(p) = parent.filter(|p| p.sampling != Sampling::Deferred) else {
                    return pb.root.should_sample(parent, trace_id, name);
                };
                let delegate = match (p.remote, p.is_sampled()) {
                    (true, true) => &pb.remote_parent_sampled,
                    (true, false) => &pb.remote_parent_not_sampled,
                    (false, true) => &pb.local_parent_sampled,
                    (false, false) => &pb.local_parent_not_sampled,
                };
                delegate.should_sample(parent, trace_id, name)
            }
            Sampler::Custom(rule) => rule.should_sample(parent, trace_id, name),
        }
    }

    /// The OpenTelemetry-style description (`ParentBased{root:TraceIdRatioBased{0.5}}`).
    pub fn description(&self) -> String {
        match self {
            Sampler::AlwaysOn => "AlwaysOnSampler".into(),
            Sampler::AlwaysOff => "AlwaysOffSampler".into(),
            Sampler::TraceIdRatio(r) => format!("TraceIdRatioBased{{{}}}", r.ratio),
            Sampler::ParentBased(pb) => format!("ParentBased{{root:{}}}", pb.root.description()),
            Sampler::Custom(rule) => rule.description(),
        }
    }

    /// Parses `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` per the OpenTelemetry spec.
    /// Names are case-insensitive. Unknown or unsupported samplers (`jaeger_remote`, `xray`)
    /// give a warning and the default `parentbased_always_on`; a ratio that is missing gives
    /// 1.0, one that is not a number in `[0, 1]` a warning and 1.0.
    pub fn parse_env(sampler: Option<&str>, arg: Option<&str>) -> (Sampler, Vec<Warning>) {
        let mut warnings = Vec::new();
        let Some(name) = sampler.map(str::trim).filter(|s| !s.is_empty()) else {
            return (Sampler::default(), warnings);
        };
        let ratio = |warnings: &mut Vec<Warning>| match arg.map(str::trim).filter(|a| !a.is_empty())
        {
            None => 1.0,
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    warnings.push(Warning::new(
                        OTEL_TRACES_SAMPLER_ARG,
                        format!("{a:?} is not a ratio between 0 and 1; using 1.0"),
                    ));
                    1.0
                }
            },
        };
        let s = match name.to_ascii_lowercase().as_str() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::trace_id_ratio(ratio(&mut warnings)),
            "parentbased_always_on" => Sampler::parent_based(Sampler::AlwaysOn),
            "parentbased_always_off" => Sampler::parent_based(Sampler::AlwaysOff),
            "parentbased_traceidratio" => {
                Sampler::parent_based(Sampler::trace_id_ratio(ratio(&mut warnings)))
            }
            other => {
                warnings.push(Warning::new(
                    OTEL_TRACES_SAMPLER,
                    format!(
                        "unknown or unsupported sampler {other:?}; using parentbased_always_on"
                    ),
                ));
                Sampler::default()
            }
        };
        (s, warnings)
    }

    /// [`Sampler::parse_env`] on the process environment; warnings are logged.
    pub fn from_env() -> Sampler {
        let (s, warnings) = Self::parse_env(
            crate::env::var(OTEL_TRACES_SAMPLER).as_deref(),
            crate::env::var(OTEL_TRACES_SAMPLER_ARG).as_deref(),
        );
        warnings.iter().for_each(Warning::emit);
        s
    }
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastrace::collector::SpanId;

    fn parent(remote: bool, sampling: Sampling) -> TraceContext {
        let mut cx = TraceContext::new(TraceId(1), SpanId(1), false);
        cx.remote = remote;
        cx.sampling = sampling;
        cx
    }

    #[test]
    fn ratio_is_consistent_on_low_64_bits() {
        let s = Sampler::trace_id_ratio(0.5);
        assert!(s.should_sample(None, TraceId(0x7fff_ffff_ffff_ffff), ""));
        assert!(!s.should_sample(None, TraceId(0x8000_0000_0000_0000), ""));
        // High bits do not matter.
        assert!(s.should_sample(None, TraceId(0xffff_0000_0000_0000_0000_0000_0000_0001), ""));
        assert!(Sampler::trace_id_ratio(1.0).should_sample(None, TraceId(u128::MAX), ""));
        assert!(!Sampler::trace_id_ratio(0.0).should_sample(None, TraceId(1), ""));
        assert_eq!(
            Sampler::trace_id_ratio(7.0).description(),
            "TraceIdRatioBased{1}"
        );
    }

    #[test]
    fn ratio_samples_about_the_ratio() {
        let s = Sampler::trace_id_ratio(0.25);
        let n = 100_000u32;
        let hits = (0..n)
            .filter(|_| s.should_sample(None, TraceId(fastrand::u128(..)), ""))
            .count();
        let share = hits as f64 / f64::from(n);
        assert!((share - 0.25).abs() < 0.01, "{share}");
    }

    #[test]
    fn parent_based_follows_parent_and_defers() {
        let s = Sampler::parent_based(Sampler::AlwaysOff);
        assert!(s.should_sample(Some(&parent(true, Sampling::Sampled)), TraceId(1), ""));
        assert!(s.should_sample(Some(&parent(true, Sampling::Debug)), TraceId(1), ""));
        assert!(!s.should_sample(Some(&parent(true, Sampling::NotSampled)), TraceId(1), ""));
        assert!(s.should_sample(Some(&parent(false, Sampling::Sampled)), TraceId(1), ""));
        assert!(
            !s.should_sample(Some(&parent(true, Sampling::Deferred)), TraceId(1), ""),
            "deferred → root sampler"
        );
        let s = Sampler::parent_based(Sampler::AlwaysOn);
        assert!(
            s.should_sample(Some(&parent(true, Sampling::Deferred)), TraceId(1), ""),
            "deferred is never unsampled by itself"
        );
        assert!(s.should_sample(None, TraceId(1), ""));
    }

    #[test]
    fn env_values() {
        let d = |s: Option<&str>, a: Option<&str>| {
            let (s, w) = Sampler::parse_env(s, a);
            (
                s.description(),
                w.iter().map(|w| w.variable).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            d(None, None),
            ("ParentBased{root:AlwaysOnSampler}".into(), vec![])
        );
        assert_eq!(
            d(Some("always_off"), None),
            ("AlwaysOffSampler".into(), vec![])
        );
        assert_eq!(
            d(Some("ALWAYS_ON"), None),
            ("AlwaysOnSampler".into(), vec![])
        );
        assert_eq!(
            d(Some("traceidratio"), Some("0.25")),
            ("TraceIdRatioBased{0.25}".into(), vec![])
        );
        assert_eq!(
            d(Some("traceidratio"), None),
            ("TraceIdRatioBased{1}".into(), vec![])
        );
        assert_eq!(
            d(Some("traceidratio"), Some("1.5")),
            (
                "TraceIdRatioBased{1}".into(),
                vec!["OTEL_TRACES_SAMPLER_ARG"]
            )
        );
        assert_eq!(
            d(Some("traceidratio"), Some("abc")),
            (
                "TraceIdRatioBased{1}".into(),
                vec!["OTEL_TRACES_SAMPLER_ARG"]
            )
        );
        assert_eq!(
            d(Some("parentbased_traceidratio"), Some("0.1")),
            ("ParentBased{root:TraceIdRatioBased{0.1}}".into(), vec![])
        );
        assert_eq!(
            d(Some("parentbased_always_off"), None),
            ("ParentBased{root:AlwaysOffSampler}".into(), vec![])
        );
        assert_eq!(
            d(Some("jaeger_remote"), None),
            (
                "ParentBased{root:AlwaysOnSampler}".into(),
                vec!["OTEL_TRACES_SAMPLER"]
            )
        );
        assert_eq!(
            d(Some("nonsense"), None),
            (
                "ParentBased{root:AlwaysOnSampler}".into(),
                vec!["OTEL_TRACES_SAMPLER"]
            )
        );
    }
}
