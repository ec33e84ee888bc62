use std::borrow::Cow;
use std::sync::Arc;

use tower_layer::Layer;
use tracewire_core::Tracer;

use super::GrpcClientService;
use crate::conventions::RpcConventions;

#[derive(Clone, Debug)]
pub(crate) struct ClientConfig {
    pub(crate) tracer: Tracer,
    pub(crate) conventions: RpcConventions,
    pub(crate) server: Option<(Cow<'static, str>, Option<u16>)>,
}

/// Traces the calls a tonic client makes: wrap the `Channel` with it and give the result to
/// the generated client.
///
/// ```no_run
/// # use tracewire_tonic_testproto::pb;
/// use tower_layer::Layer as _;
/// use tracewire_tonic::GrpcClientLayer;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051")
///     .connect()
///     .await?;
/// let channel = GrpcClientLayer::new()
///     .with_server_address("127.0.0.1", Some(50051))
///     .layer(channel);
/// let mut client = pb::echo_client::EchoClient::new(channel);
/// # Ok(()) }
/// ```
///
/// Each call gets a CLIENT span named `package.Service/Method`, a child of the current span
/// ([`Tracer::start_child`]), and the span's context is written into the request metadata
/// with the tracer's propagators. Every status but OK marks the span as an error. The span
/// lasts until the response stream ends — for a streaming call, until the caller has read it
/// all (dropped earlier, the call is recorded as CANCELLED) — and takes its status from the
/// trailers or a trailers-only response; a transport failure is recorded with the error's
/// type as `error.type`. With no current trace there is nothing to continue: no span is
/// recorded and nothing is injected.
///
/// A `Channel` hides its endpoint from the layers above it, so `server.address` and
/// `server.port` come from [`with_server_uri`](Self::with_server_uri) or
/// [`with_server_address`](Self::with_server_address), or from the request URI when it
/// carries an authority.
#[derive(Clone, Debug)]
pub struct GrpcClientLayer {
    config: Arc<ClientConfig>,
}

impl Default for GrpcClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcClientLayer {
    /// The [global tracer](Tracer::global) and conventions from
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`.
    pub fn new() -> Self {
        GrpcClientLayer {
            config: Arc::new(ClientConfig {
                tracer: Tracer::global(),
                conventions: RpcConventions::from_env(),
                server: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut ClientConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Uses this tracer (its propagators write the metadata).
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

    /// The `server.address` and `server.port` of the endpoint the channel talks to.
    pub fn with_server_address(
        mut self,
        host: impl Into<Cow<'static, str>>,
        port: Option<u16>,
    ) -> Self {
        self.config_mut().server = Some((host.into(), port));
        self
    }

    /// `server.address` and `server.port` from the URI the channel was built from (the port
    /// defaults to 443 for `https`, 80 otherwise). A URI without a host changes nothing.
    pub fn with_server_uri(self, uri: &http::Uri) -> Self {
        let Some(host) = uri.host() else {
            return self;
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        self.with_server_address(host, Some(port))
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService::new(inner, self.config.clone())
    }
}
