use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;
use tracewire_core::Tracer;

use super::GrpcServerService;
use crate::conventions::RpcConventions;
use crate::record;

/// The gRPC health-checking service, excluded from tracing by default.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) tracer: Tracer,
    pub(crate) conventions: RpcConventions,
    pub(crate) excluded: Vec<Cow<'static, str>>,
    pub(crate) timeout: Option<Duration>,
}

impl ServerConfig {
    /// True when calls to the service of `path` are not traced: the service
    /// [`parse_path`](record::parse_path) reads in it is excluded.
    #[inline]
    pub(crate) fn is_excluded(&self, path: &str) -> bool {
        self.excluded.iter().any(|service| {
            // Most calls name no excluded service, and a comparison of the path's first bytes
            // says so without reading the whole path.
            path.get(1..)
                .and_then(|rest| rest.strip_prefix(service.as_ref()))
                .is_some_and(|after| after.starts_with('/'))
                && record::parse_path(path).is_some_and(|(s, _)| s == service.as_ref())
        })
    }
}

/// Traces the calls a tonic server handles: add it with
/// `tonic::transport::Server::builder().layer(GrpcServerLayer::new())`.
///
/// For each call it continues the trace in the request metadata (or starts a new one) with
/// [`Tracer::start_root`] — the configured propagators and the shared root rule — and records
/// a SERVER span named `package.Service/Method` with `rpc.*`, `server.address`/`server.port`
/// and `network.peer.address`/`network.peer.port`. The span lasts until the response stream
/// ends and takes its status from the `grpc-status` of the trailers (or of the headers, for a
/// trailers-only response). UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE
/// and DATA_LOSS mark it as an error; other codes (NOT_FOUND, INVALID_ARGUMENT, ...) are the
/// caller's problem and do not. A call dropped before its end (the client went away) is
/// recorded as CANCELLED, or as DEADLINE_EXCEEDED when its deadline had passed.
///
/// The handler runs with the span as fastrace's local parent and the trace context attached,
/// so its own spans nest under the call and its outgoing calls (through
/// [`GrpcClientLayer`](crate::GrpcClientLayer), `tracewire-reqwest`, ...) continue the trace.
///
/// Calls to the health-checking service ([`HEALTH_SERVICE`]) are not traced unless
/// [`include_service`](Self::include_service) says otherwise.
#[derive(Clone, Debug)]
pub struct GrpcServerLayer {
    config: Arc<ServerConfig>,
}

impl Default for GrpcServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcServerLayer {
    /// The [global tracer](Tracer::global), conventions from
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`, the health service excluded.
    pub fn new() -> Self {
        GrpcServerLayer {
            config: Arc::new(ServerConfig {
                tracer: Tracer::global(),
                conventions: RpcConventions::from_env(),
                excluded: vec![Cow::Borrowed(HEALTH_SERVICE)],
                timeout: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut ServerConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Uses this tracer (propagators, sampler, root options).
    pub fn with_tracer(mut self, tracer: Tracer) -> Self {
        self.config_mut().tracer = tracer;
        self
    }

    /// Records these RPC conventions instead of the ones `OTEL_SEMCONV_STABILITY_OPT_IN` asks
    /// for.
    pub fn with_conventions(mut self, conventions: RpcConventions) -> Self {
        self.config_mut().conventions = conventions;
        self
    }

    /// Does not trace calls to `service` (a fully-qualified name, `package.Service`).
    pub fn exclude_service(mut self, service: impl Into<Cow<'static, str>>) -> Self {
        let service = service.into();
        let config = self.config_mut();
        if !config.excluded.contains(&service) {
            config.excluded.push(service);
        }
        self
    }

    /// Traces calls to `service` again (e.g. [`HEALTH_SERVICE`], excluded by default).
    pub fn include_service(mut self, service: &str) -> Self {
        self.config_mut().excluded.retain(|s| s != service);
        self
    }

    /// The timeout given to `Server::builder().timeout(..)`, if any: tonic enforces it by
    /// dropping the call, and with it the layer records DEADLINE_EXCEEDED rather than
    /// CANCELLED. (Deadlines the client sends in `grpc-timeout` are read from the request.)
    pub fn with_server_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().timeout = Some(timeout);
        self
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerService::new(inner, self.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path read in one pass says what splitting it says (at the first `/`, both parts
    /// non-empty, no `/` in the method), and the exclusion follows the service it names.
    #[test]
    fn exclusion_reads_the_path_as_splitting_it_does() {
        let mut config = (*GrpcServerLayer::new().config).clone();
        config.excluded = ["grpc.health.v1.Health", "a", "", "a/b", "pkg.Svc"]
            .into_iter()
            .map(Cow::Borrowed)
            .collect();
        let paths = [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.health.v1.Health/",
            "/grpc.health.v1.Health",
            "/grpc.health.v1.Health/Check/x",
            "grpc.health.v1.Health/Check",
            "/grpc.health.v1.HealthX/Check",
            "/grpc.health.v1/Health/Check",
            "/a/m",
            "/a/b/m",
            "/a//m",
            "//m",
            "/",
            "",
            "/pkg.Svc/M",
            "/pkg.Svc2/M",
            "/tracewire.test.v1.Echo/Unary",
        ];
        let split = |path: &'static str| {
            let (service, method) = path.strip_prefix('/')?.split_once('/')?;
            (!service.is_empty() && !method.is_empty() && !method.contains('/'))
                .then_some((service, method))
        };
        for path in paths {
            assert_eq!(record::parse_path(path), split(path), "{path:?}");
            let by_split = split(path)
                .is_some_and(|(service, _)| config.excluded.iter().any(|e| e == service));
            assert_eq!(config.is_excluded(path), by_split, "{path:?}");
        }
        assert!(config.is_excluded("/grpc.health.v1.Health/Check"));
        assert!(!config.is_excluded("/tracewire.test.v1.Echo/Unary"));
        config.excluded.clear();
        assert!(!config.is_excluded("/grpc.health.v1.Health/Check"));
    }
}
