#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod logs;
#[cfg(feature = "tracing")]
pub mod subscriber;

use std::fmt::Write as _;
use std::time::Duration;

pub use tracewire_core::*;
pub use tracewire_export as export;
#[cfg(feature = "otlp")]
pub use tracewire_otlp as otlp;
/// `tracing` spans in tracewire traces: [`tracing::layer()`] (the crate `tracewire-tracing`).
#[cfg(feature = "tracing")]
pub use tracewire_tracing as tracing;
#[cfg(feature = "zipkin")]
pub use tracewire_zipkin as zipkin;

/// The layer that records `tracing` spans in tracewire traces, with its defaults: same as
/// [`tracing::layer()`]. Add it to your own `tracing-subscriber` registry, or let
/// [`Builder::install_tracing_subscriber`] install one.
#[cfg(feature = "tracing")]
pub fn tracing_layer() -> tracewire_tracing::TracewireLayer {
    tracewire_tracing::layer()
}

use config::{Config, ExporterKind};
use tracewire_core::env::Warning;
use tracewire_export::console::ConsoleTree;
use tracewire_export::{Counters, Pipeline, Resource, SpanExporter};

/// Configures tracewire from the environment with defaults and installs it. Same as
/// `tracewire::builder().init()`.
pub fn init() -> Guard {
    builder().init()
}

/// A [`Builder`]: settings made in code win over the environment.
pub fn builder() -> Builder {
    Builder::default()
}

type LookupFn = Box<dyn Fn(&str) -> Option<String>>;

/// Configures tracewire. Every setting made here wins over the corresponding `OTEL_*`
/// variable; what is not set comes from the environment, then the spec defaults.
#[derive(Default)]
pub struct Builder {
    lookup: Option<LookupFn>,
    service_name: Option<String>,
    resource: Option<Resource>,
    propagators: Option<Propagators>,
    sampler: Option<Sampler>,
    exporters: Vec<Box<dyn SpanExporter>>,
    #[cfg(feature = "otlp")]
    otlp: Option<tracewire_otlp::OtlpConfig>,
    batch: Option<tracewire_export::BatchConfig>,
    retry: Option<tracewire_export::RetryPolicy>,
    simple: bool,
    command_args: bool,
    shutdown_timeout: Option<Duration>,
    report_interval: Option<Duration>,
    #[cfg(feature = "tracing")]
    tracing: Option<tracewire_tracing::TracewireLayer>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").finish_non_exhaustive()
    }
}

impl Builder {
    /// Reads configuration variables through `lookup` instead of the process environment
    /// (for tests, or to prefix/namespace variables).
    pub fn env_lookup(mut self, lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        self.lookup = Some(Box::new(lookup));
        self
    }

    /// `service.name` (wins over `OTEL_SERVICE_NAME`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Extra resource attributes (win over `OTEL_RESOURCE_ATTRIBUTES` and detection).
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Adds `process.command_args` to the resource (off by default: arguments may hold
    /// secrets).
    pub fn with_command_args(mut self) -> Self {
        self.command_args = true;
        self
    }

    /// Propagators (win over `OTEL_PROPAGATORS`).
    pub fn propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = Some(propagators);
        self
    }

    /// Sampler (wins over `OTEL_TRACES_SAMPLER`).
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Adds an exporter. Once any exporter is added in code, `OTEL_TRACES_EXPORTER` is not
    /// consulted.
    pub fn exporter(mut self, exporter: impl SpanExporter) -> Self {
        self.exporters.push(Box::new(exporter));
        self
    }

    /// OTLP settings (replace every `OTEL_EXPORTER_OTLP_*` variable) and use OTLP.
    #[cfg(feature = "otlp")]
    pub fn otlp(mut self, config: tracewire_otlp::OtlpConfig) -> Self {
        self.otlp = Some(config);
        self
    }

    /// Batching (replaces the `OTEL_BSP_*` variables).
    pub fn batch(mut self, batch: tracewire_export::BatchConfig) -> Self {
        self.batch = Some(batch);
        self
    }

    /// Retry policy.
    pub fn retry(mut self, retry: tracewire_export::RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Simple mode: export each trace as soon as fastrace reports it (debugging).
    pub fn simple(mut self, yes: bool) -> Self {
        self.simple = yes;
        self
    }

    /// How long the guard's drop waits for the final flush (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// How often fastrace hands finished spans to the pipeline (default 10 ms).
    pub fn report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = Some(interval);
        self
    }

    /// Also installs a global `tracing` subscriber, so that `#[tracing::instrument]` spans and
    /// those of hyper, tonic, tower-http and other `tracing`-instrumented crates are recorded in
    /// tracewire traces ([`tracing_layer`]), log lines carry `trace_id` and `span_id`
    /// ([`logs::WithTraceIds`] over `tracing-subscriber`'s default format, on stdout), and
    /// `RUST_LOG` filters both (default `info`; see [`subscriber::filter`]). When a global
    /// subscriber is already set, `init` logs a warning and leaves it: add [`tracing_layer`] to
    /// it instead. Default: off.
    ///
    /// ```no_run
    /// let _guard = tracewire::builder()
    ///     .service_name("users")
    ///     .install_tracing_subscriber(true)
    ///     .init();
    /// ```
    #[cfg(feature = "tracing")]
    pub fn install_tracing_subscriber(mut self, yes: bool) -> Self {
        self.tracing = if yes {
            Some(self.tracing.take().unwrap_or_default())
        } else {
            None
        };
        self
    }

    /// [`install_tracing_subscriber`](Builder::install_tracing_subscriber) with this layer
    /// (event level, root spans).
    #[cfg(feature = "tracing")]
    pub fn tracing_layer(mut self, layer: tracewire_tracing::TracewireLayer) -> Self {
        self.tracing = Some(layer);
        self
    }

    /// The effective configuration and the warnings about invalid variables, without
    /// installing anything.
    pub fn config(&self) -> (Config, Vec<Warning>) {
        let (mut config, warnings) = match &self.lookup {
            Some(l) => Config::from_lookup(&**l),
            None => Config::from_env(),
        };
        if let Some(r) = &self.resource {
            config.resource = config.resource.merge(r);
        }
        if let Some(name) = &self.service_name {
            config
                .resource
                .set(tracewire_export::resource::SERVICE_NAME, name.clone());
        }
        if self.command_args {
            config.resource = config.resource.with_command_args();
        }
        if let Some(p) = &self.propagators {
            config.propagators = p.clone();
        }
        if let Some(s) = &self.sampler {
            config.sampler = s.clone();
        }
        if let Some(b) = &self.batch {
            config.batch = b.clone();
        }
        (config, warnings)
    }

    /// Builds the pipeline, installs it as fastrace's reporter and the tracer as
    /// [`Tracer::global`], logs one warning per invalid variable (`log`, target
    /// `tracewire`), and returns the guard that flushes on drop. Never panics: an exporter
    /// that cannot be built is skipped with a warning.
    ///
    /// The reporter only receives spans when the application enables fastrace's `enable`
    /// feature (libraries never do).
    pub fn init(mut self) -> Guard {
        let (config, warnings) = self.config();
        warnings.iter().for_each(Warning::emit);
        #[cfg(feature = "tracing")]
        if let Some(layer) = self.tracing.take() {
            let rust_log = match &self.lookup {
                Some(lookup) => lookup(subscriber::RUST_LOG),
                None => std::env::var(subscriber::RUST_LOG).ok(),
            };
            subscriber::install(layer, rust_log.as_deref());
        }
        let tracer = Tracer::new()
            .with_propagators(config.propagators.clone())
            .with_sampler(if config.disabled {
                Sampler::AlwaysOff
            } else {
                config.sampler.clone()
            });
        Tracer::set_global(tracer);
        let mut describe = describe_config(&config);
        let shutdown_timeout = self.shutdown_timeout.unwrap_or(Duration::from_secs(5));
        if config.disabled {
            describe.push_str("\nOTEL_SDK_DISABLED=true: nothing is recorded or exported");
            return Guard {
                pipeline: None,
                describe,
                shutdown_timeout,
            };
        }

        let mut builder = Pipeline::builder()
            .resource(config.resource.clone())
            .limits(config.limits.clone())
            .batch(config.batch.clone())
            .simple(self.simple);
        if let Some(r) = self.retry {
            builder = builder.retry(r);
        }
        let mut any = false;
        let code_exporters = !self.exporters.is_empty();
        for e in self.exporters {
            builder = builder.boxed_exporter(e);
            any = true;
        }
        #[cfg(feature = "otlp")]
        let code_otlp = self.otlp;
        #[cfg(feature = "otlp")]
        if let Some(cfg) = &code_otlp {
            match tracewire_otlp::OtlpExporter::new(cfg) {
                Ok(e) => {
                    builder = builder.exporter(e);
                    any = true;
                }
                Err(e) => Warning::new("otlp", e.to_string()).emit(),
            }
        }
        #[cfg(not(feature = "otlp"))]
        let code_otlp: Option<()> = None;
        if !code_exporters && code_otlp.is_none() {
            for kind in &config.exporters {
                if let Some(e) = build_exporter(*kind, &config) {
                    builder = builder.boxed_exporter(e);
                    any = true;
                }
            }
        }
        if !any {
            describe.push_str("\nno exporter: spans are not recorded");
            return Guard {
                pipeline: None,
                describe,
                shutdown_timeout,
            };
        }
        let pipeline = match builder.build() {
            Ok(p) => p,
            Err(e) => {
                Warning::new("tracewire", format!("cannot start the export thread: {e}")).emit();
                return Guard {
                    pipeline: None,
                    describe,
                    shutdown_timeout,
                };
            }
        };
        let _ = write!(describe, "\n{}", pipeline.describe());
        fastrace::set_reporter(
            pipeline.reporter(),
            fastrace::collector::Config::default()
                .report_interval(self.report_interval.unwrap_or(Duration::from_millis(10))),
        );
        Guard {
            pipeline: Some(pipeline),
            describe,
            shutdown_timeout,
        }
    }
}

fn build_exporter(kind: ExporterKind, config: &Config) -> Option<Box<dyn SpanExporter>> {
    match kind {
        ExporterKind::Console => Some(Box::new(ConsoleTree::stdout())),
        #[cfg(feature = "otlp")]
        ExporterKind::Otlp => match tracewire_otlp::OtlpExporter::new(&otlp_config(&config.otlp)) {
            Ok(e) => Some(Box::new(e)),
            Err(e) => {
                Warning::new(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    format!("{e}; OTLP export is off"),
                )
                .emit();
                None
            }
        },
        #[cfg(feature = "zipkin")]
        ExporterKind::Zipkin => {
            match tracewire_zipkin::ZipkinExporter::new(
                &config.zipkin_endpoint,
                config.zipkin_timeout,
            ) {
                Ok(e) => Some(Box::new(e)),
                Err(e) => {
                    Warning::new(
                        config::vars::ZIPKIN_ENDPOINT,
                        format!("{e}; Zipkin export is off"),
                    )
                    .emit();
                    None
                }
            }
        }
        #[allow(unreachable_patterns)]
        other => {
            Warning::new(
                config::vars::TRACES_EXPORTER,
                format!("{other:?} is not compiled in (enable the tracewire feature); skipped"),
            )
            .emit();
            None
        }
    }
}

/// The OTLP exporter configuration for the settings read from the environment.
#[cfg(feature = "otlp")]
pub fn otlp_config(s: &config::OtlpSettings) -> tracewire_otlp::OtlpConfig {
    use tracewire_otlp::{Compression, Endpoint, OtlpConfig, Protocol};
    OtlpConfig {
        protocol: Protocol::from_name(&s.protocol).unwrap_or_default(),
        endpoint: match &s.endpoint {
            None => Endpoint::Default,
            Some((url, true)) => Endpoint::Traces(url.clone()),
            Some((url, false)) => Endpoint::Base(url.clone()),
        },
        headers: s.headers.clone(),
        timeout: Some(s.timeout),
        compression: if s.gzip {
            Compression::Gzip
        } else {
            Compression::None
        },
        insecure: s.insecure,
        certificate: s.certificate.clone(),
        client_key: s.client_key.clone(),
        client_certificate: s.client_certificate.clone(),
    }
}

fn describe_config(c: &Config) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "tracewire {}\ndisabled: {}\npropagators: {:?}\nsampler: {}\nexporters (env): {:?}\notlp: {:?}\nzipkin: {} (timeout {:?})",
        env!("CARGO_PKG_VERSION"),
        c.disabled,
        c.propagators.formats(),
        c.sampler.description(),
        c.exporters,
        c.otlp,
        c.zipkin_endpoint,
        c.zipkin_timeout,
    );
    s
}

/// Returned by [`init`]: flushes and shuts the pipeline down when dropped.
#[must_use = "dropping the guard flushes and stops export"]
pub struct Guard {
    pipeline: Option<Pipeline>,
    describe: String,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// The effective configuration, one setting per line; header values are redacted.
    /// Nothing is printed unless you print this.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Exports everything finished so far, waiting at most `timeout`. False on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.pipeline.as_ref().is_none_or(|p| p.flush(timeout))
    }

    /// The pipeline counters (all zero when nothing is exported).
    pub fn counters(&self) -> Counters {
        self.pipeline
            .as_ref()
            .map(Pipeline::counters)
            .unwrap_or_default()
    }

    /// The pipeline, when one runs.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.pipeline.take()
            && !p.shutdown(self.shutdown_timeout)
        {
            log::warn!(target: "tracewire", "shutdown: spans still unexported after {:?}", self.shutdown_timeout);
        }
    }
}
