//! Which RPC semantic conventions the spans carry: `OTEL_SEMCONV_STABILITY_OPT_IN`.

use tracewire_core::env::{self, OptIn};

/// The environment variable that opts in to the newer RPC conventions.
pub use tracewire_core::env::OTEL_SEMCONV_STABILITY_OPT_IN;

/// Which RPC semantic conventions to record.
///
/// | | `Legacy` (default) | `Stable` (`rpc`) | `Both` (`rpc/dup`) |
/// |---|---|---|---|
/// | system | `rpc.system=grpc` | `rpc.system.name=grpc` | both |
/// | service | `rpc.service=pkg.Service` | — | `rpc.service` |
/// | method | `rpc.method=Method` | `rpc.method=pkg.Service/Method` | `rpc.method=pkg.Service/Method` |
/// | status | `rpc.grpc.status_code=5` (int) | `rpc.response.status_code=NOT_FOUND` | both |
///
/// The span name (`pkg.Service/Method`), `server.*`, `network.peer.*`, `error.type` (the
/// status name, on errors) and the span status are the same in every mode. Under `Both`,
/// `rpc.method` can hold only one value and holds the newer, fully-qualified one (the legacy
/// method name stays readable from the span name and `rpc.service`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RpcConventions {
    /// The experimental conventions up to semconv 1.37 (what every gRPC instrumentation
    /// emits today).
    #[default]
    Legacy,
    /// The newer RPC conventions only (`OTEL_SEMCONV_STABILITY_OPT_IN=rpc`).
    Stable,
    /// Both (`OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup`; wins over `rpc` when both are listed).
    Both,
}

impl RpcConventions {
    /// Reads [`OTEL_SEMCONV_STABILITY_OPT_IN`] (a comma-separated list; other categories such
    /// as `http` are ignored).
    pub fn from_env() -> Self {
        Self::from_opt_in(env::var(OTEL_SEMCONV_STABILITY_OPT_IN).as_deref())
    }

    /// Parses a value of [`OTEL_SEMCONV_STABILITY_OPT_IN`]: `rpc/dup` → [`Both`](Self::Both),
    /// else `rpc` → [`Stable`](Self::Stable), else [`Legacy`](Self::Legacy). An `rpc/...`
    /// entry that is neither logs one warning ([`env::stability_opt_in`]).
    pub fn from_opt_in(value: Option<&str>) -> Self {
        match env::stability_opt_in(value, "rpc") {
            OptIn::Absent => RpcConventions::Legacy,
            OptIn::New => RpcConventions::Stable,
            OptIn::Duplicate => RpcConventions::Both,
        }
    }

    /// True when the legacy keys are recorded.
    pub fn legacy(self) -> bool {
        matches!(self, RpcConventions::Legacy | RpcConventions::Both)
    }

    /// True when the newer keys are recorded.
    pub fn stable(self) -> bool {
        matches!(self, RpcConventions::Stable | RpcConventions::Both)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_in_values() {
        use RpcConventions::*;
        for (v, want) in [
            (None, Legacy),
            (Some(""), Legacy),
            (Some("http"), Legacy),
            (Some("rpc"), Stable),
            (Some(" http , RPC "), Stable),
            (Some("rpc/dup"), Both),
            (Some("rpc,rpc/dup"), Both),
            (Some("rpc/dup,rpc"), Both),
            (Some("rpc/whatever"), Legacy),
            (Some("rpcx"), Legacy),
        ] {
            assert_eq!(RpcConventions::from_opt_in(v), want, "{v:?}");
        }
        assert!(Both.legacy() && Both.stable());
        assert!(Legacy.legacy() && !Legacy.stable());
        assert!(!Stable.legacy() && Stable.stable());
    }
}
