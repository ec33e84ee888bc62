//! The effective configuration, read from the standard OpenTelemetry environment variables.
//!
//! Every variable of the spec's SDK configuration that applies to traces is read; an invalid
//! value gives one [`Warning`] naming the variable, then the default. Signal-specific
//! variables (`OTEL_EXPORTER_OTLP_TRACES_*`, `OTEL_SPAN_*`) win over the generic ones.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tracewire_core::env::Warning;
use tracewire_core::{Propagators, Sampler};
use tracewire_export::{BatchConfig, Resource, SpanLimits};

/// The variable names.
pub mod vars {
    /// `OTEL_SDK_DISABLED`
    pub const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
    /// `OTEL_SERVICE_NAME`
    pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// `OTEL_RESOURCE_ATTRIBUTES`
    pub const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// `OTEL_PROPAGATORS`
    pub const PROPAGATORS: &str = "OTEL_PROPAGATORS";
    /// `OTEL_TRACES_SAMPLER`
    pub const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
    /// `OTEL_TRACES_SAMPLER_ARG`
    pub const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    /// `OTEL_TRACES_EXPORTER`
    pub const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
    /// `OTEL_EXPORTER_ZIPKIN_ENDPOINT`
    pub const ZIPKIN_ENDPOINT: &str = "OTEL_EXPORTER_ZIPKIN_ENDPOINT";
    /// `OTEL_EXPORTER_ZIPKIN_TIMEOUT`
    pub const ZIPKIN_TIMEOUT: &str = "OTEL_EXPORTER_ZIPKIN_TIMEOUT";
    /// `OTEL_BSP_SCHEDULE_DELAY`
    pub const BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
    /// `OTEL_BSP_EXPORT_TIMEOUT`
    pub const BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
    /// `OTEL_BSP_MAX_QUEUE_SIZE`
    pub const BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`
    pub const BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`
    pub const ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT";
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`
    pub const ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_ATTRIBUTE_COUNT_LIMIT";
    /// `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`
    pub const SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT";
    /// `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`
    pub const SPAN_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT";
    /// `OTEL_SPAN_EVENT_COUNT_LIMIT`
    pub const SPAN_EVENT_COUNT_LIMIT: &str = "OTEL_SPAN_EVENT_COUNT_LIMIT";
    /// `OTEL_SPAN_LINK_COUNT_LIMIT`
    pub const SPAN_LINK_COUNT_LIMIT: &str = "OTEL_SPAN_LINK_COUNT_LIMIT";
    /// `OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`
    pub const EVENT_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT";
    /// `OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`
    pub const LINK_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT";

    /// The OTLP exporter settings: `(generic, traces-specific)` names per setting.
    pub mod otlp {
        /// Endpoint.
        pub const ENDPOINT: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        );
        /// Protocol.
        pub const PROTOCOL: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        );
        /// Headers.
        pub const HEADERS: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        );
        /// Timeout (ms).
        pub const TIMEOUT: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        );
        /// Compression.
        pub const COMPRESSION: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        );
        /// Insecure (gRPC).
        pub const INSECURE: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_INSECURE",
            "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
        );
        /// CA certificate file.
        pub const CERTIFICATE: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        );
        /// Client key file.
        pub const CLIENT_KEY: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
        );
        /// Client certificate file.
        pub const CLIENT_CERTIFICATE: (&str, &str) = (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        );
    }
}

/// An exporter named in `OTEL_TRACES_EXPORTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExporterKind {
    /// `otlp`
    Otlp,
    /// `zipkin`
    Zipkin,
    /// `console`: a readable tree per trace on stdout.
    Console,
}

/// OTLP exporter settings (a copy of `tracewire_otlp::OtlpConfig` that exists without the
/// `otlp` feature, so the configuration can always be read and described).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct OtlpSettings {
    /// `grpc`, `http/protobuf` (default) or `http/json`.
    pub protocol: String,
    /// The endpoint and whether it is the traces-specific one (used as-is).
    pub endpoint: Option<(String, bool)>,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Request timeout (default 10 s).
    pub timeout: Duration,
    /// gzip.
    pub gzip: bool,
    /// gRPC plain text for scheme-less endpoints.
    pub insecure: bool,
    /// CA file.
    pub certificate: Option<PathBuf>,
    /// Client key file.
    pub client_key: Option<PathBuf>,
    /// Client certificate file.
    pub client_certificate: Option<PathBuf>,
}

impl fmt::Debug for OtlpSettings {
    /// Header values are redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, _)| format!("{k}=<redacted>"))
            .collect();
        f.debug_struct("OtlpSettings")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("insecure", &self.insecure)
            .field("certificate", &self.certificate)
            .field("client_key", &self.client_key)
            .field("client_certificate", &self.client_certificate)
            .finish()
    }
}

/// Everything [`crate::Builder::init`] will use.
#[derive(Clone, Debug)]
pub struct Config {
    /// `OTEL_SDK_DISABLED`: no spans are recorded or exported (context still propagates).
    pub disabled: bool,
    /// The resource (service name, detected attributes, `OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Resource,
    /// Propagators.
    pub propagators: Propagators,
    /// Sampler.
    pub sampler: Sampler,
    /// Exporters from `OTEL_TRACES_EXPORTER` (empty = `none`).
    pub exporters: Vec<ExporterKind>,
    /// OTLP settings.
    pub otlp: OtlpSettings,
    /// Zipkin endpoint.
    pub zipkin_endpoint: String,
    /// Zipkin timeout.
    pub zipkin_timeout: Duration,
    /// Batching.
    pub batch: BatchConfig,
    /// Span limits.
    pub limits: SpanLimits,
}

/// Reads variables: the process environment, or a map in tests.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn get(env: Lookup<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

fn parse_bool(env: Lookup<'_>, name: &'static str, w: &mut Vec<Warning>) -> Option<bool> {
    let v = get(env, name)?;
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => {
            w.push(Warning::new(
                name,
                format!("{v:?} is not true or false; using false"),
            ));
            None
        }
    }
}

fn parse_u64(env: Lookup<'_>, name: &'static str, w: &mut Vec<Warning>, default: u64) -> u64 {
    match get(env, name) {
        None => default,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                w.push(Warning::new(
                    name,
                    format!("{v:?} is not a non-negative integer; using {default}"),
                ));
                default
            }
        },
    }
}

/// A limit: the specific variable over the generic one; invalid values warn and give the
/// default.
fn limit(
    env: Lookup<'_>,
    specific: &'static str,
    generic: Option<&'static str>,
    w: &mut Vec<Warning>,
    default: Option<u64>,
) -> Option<u64> {
    for name in std::iter::once(specific).chain(generic) {
        if let Some(v) = get(env, name) {
            return match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    let d = default.map_or_else(|| "no limit".to_owned(), |d| d.to_string());
                    w.push(Warning::new(
                        name,
                        format!("{v:?} is not a non-negative integer; using {d}"),
                    ));
                    default
                }
            };
        }
    }
    default
}

/// Parses a W3C-baggage-like `key=value,key=value` list, percent-decoding values (for
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`).
pub fn parse_pairs(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("{item:?} is not key=value"));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("{item:?} has an empty key"));
        }
        let v = percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("{item:?} is not valid percent-encoded UTF-8"))?;
        let k = percent_decode_str(k)
            .decode_utf8()
            .map_err(|_| format!("{item:?} is not valid percent-encoded UTF-8"))?;
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn valid_url(url: &str) -> bool {
    match url.parse::<http::Uri>() {
        Ok(u) => matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some(),
        Err(_) => false,
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> (Config, Vec<Warning>) {
        Config::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads variables through `env` (tests pass a map).
    pub fn from_lookup(env: Lookup<'_>) -> (Config, Vec<Warning>) {
        use vars::*;
        let mut w = Vec::new();

        let disabled = parse_bool(env, SDK_DISABLED, &mut w).unwrap_or(false);

        // Resource: detected < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME.
        let mut resource = Resource::detect(Resource::default_service_name());
        if let Some(v) = get(env, RESOURCE_ATTRIBUTES) {
            match parse_pairs(&v) {
                Ok(pairs) => {
                    for (k, v) in pairs {
                        resource.set(k, v);
                    }
                }
                Err(e) => w.push(Warning::new(
                    RESOURCE_ATTRIBUTES,
                    format!("{e}; the whole value is ignored"),
                )),
            }
        }
        if let Some(name) = get(env, SERVICE_NAME) {
            resource.set(
                tracewire_export::resource::SERVICE_NAME,
                name.trim().to_owned(),
            );
        }

        let (propagators, pw) = Propagators::parse_env(get(env, PROPAGATORS).as_deref());
        w.extend(pw);
        let (sampler, sw) = Sampler::parse_env(
            get(env, TRACES_SAMPLER).as_deref(),
            get(env, TRACES_SAMPLER_ARG).as_deref(),
        );
        w.extend(sw);

        let exporters = match get(env, TRACES_EXPORTER) {
            None => vec![ExporterKind::Otlp],
            Some(v) => {
                let mut list = Vec::new();
                let mut unknown = Vec::new();
                let mut none = false;
                for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let kind = match name.to_ascii_lowercase().as_str() {
                        "otlp" => Some(ExporterKind::Otlp),
                        "zipkin" => Some(ExporterKind::Zipkin),
                        "console" | "logging" => Some(ExporterKind::Console),
                        "none" => {
                            none = true;
                            None
                        }
                        _ => {
                            unknown.push(name.to_owned());
                            None
                        }
                    };
                    if let Some(k) = kind.filter(|k| !list.contains(k)) {
                        list.push(k);
                    }
                }
                if !unknown.is_empty() {
                    w.push(Warning::new(
                        TRACES_EXPORTER,
                        format!(
                            "ignoring unknown exporter(s) {} (supported: otlp, zipkin, console, none)",
                            unknown.join(", ")
                        ),
                    ));
                }
                if none {
                    Vec::new()
                } else if list.is_empty() {
                    vec![ExporterKind::Otlp]
                } else {
                    list
                }
            }
        };

        let otlp = otlp_settings(env, &mut w);

        let zipkin_endpoint = match get(env, ZIPKIN_ENDPOINT) {
            Some(u) if valid_url(u.trim()) => u.trim().to_owned(),
            Some(u) => {
                w.push(Warning::new(
                    ZIPKIN_ENDPOINT,
                    format!(
                        "{u:?} is not an http(s) URL; using http://localhost:9411/api/v2/spans"
                    ),
                ));
                "http://localhost:9411/api/v2/spans".to_owned()
            }
            None => "http://localhost:9411/api/v2/spans".to_owned(),
        };
        let zipkin_timeout = Duration::from_millis(parse_u64(env, ZIPKIN_TIMEOUT, &mut w, 10_000));

        let defaults = BatchConfig::default();
        let mut batch = BatchConfig {
            scheduled_delay: Duration::from_millis(parse_u64(
                env,
                BSP_SCHEDULE_DELAY,
                &mut w,
                5000,
            )),
            export_timeout: Duration::from_millis(parse_u64(
                env,
                BSP_EXPORT_TIMEOUT,
                &mut w,
                30_000,
            )),
            max_queue_size: parse_u64(env, BSP_MAX_QUEUE_SIZE, &mut w, 2048) as usize,
            max_export_batch_size: parse_u64(env, BSP_MAX_EXPORT_BATCH_SIZE, &mut w, 512) as usize,
            ..defaults
        };
        if batch.max_queue_size == 0 {
            w.push(Warning::new(
                BSP_MAX_QUEUE_SIZE,
                "0 is not a valid queue size; using 2048",
            ));
            batch.max_queue_size = 2048;
        }
        if batch.max_export_batch_size == 0 {
            w.push(Warning::new(
                BSP_MAX_EXPORT_BATCH_SIZE,
                "0 is not a valid batch size; using 512",
            ));
            batch.max_export_batch_size = 512;
        }
        if batch.max_export_batch_size > batch.max_queue_size {
            w.push(Warning::new(
                BSP_MAX_EXPORT_BATCH_SIZE,
                format!(
                    "{} is larger than the queue ({}); using the queue size",
                    batch.max_export_batch_size, batch.max_queue_size
                ),
            ));
            batch.max_export_batch_size = batch.max_queue_size;
        }

        let d = SpanLimits::default();
        let limits = SpanLimits {
            attribute_count: limit(
                env,
                SPAN_ATTRIBUTE_COUNT_LIMIT,
                Some(ATTRIBUTE_COUNT_LIMIT),
                &mut w,
                Some(d.attribute_count as u64),
            )
            .unwrap_or(128) as usize,
            attribute_value_length: limit(
                env,
                SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
                Some(ATTRIBUTE_VALUE_LENGTH_LIMIT),
                &mut w,
                None,
            )
            .map(|n| n as usize),
            event_count: limit(
                env,
                SPAN_EVENT_COUNT_LIMIT,
                None,
                &mut w,
                Some(d.event_count as u64),
            )
            .unwrap_or(128) as usize,
            link_count: limit(
                env,
                SPAN_LINK_COUNT_LIMIT,
                None,
                &mut w,
                Some(d.link_count as u64),
            )
            .unwrap_or(128) as usize,
            attributes_per_event: limit(
                env,
                EVENT_ATTRIBUTE_COUNT_LIMIT,
                Some(ATTRIBUTE_COUNT_LIMIT),
                &mut w,
                Some(d.attributes_per_event as u64),
            )
            .unwrap_or(128) as usize,
            attributes_per_link: limit(
                env,
                LINK_ATTRIBUTE_COUNT_LIMIT,
                Some(ATTRIBUTE_COUNT_LIMIT),
                &mut w,
                Some(d.attributes_per_link as u64),
            )
            .unwrap_or(128) as usize,
        };

        // One warning per variable (a generic limit is read for several limits).
        let mut seen = Vec::new();
        w.retain(|x| {
            let first = !seen.contains(&x.variable);
            seen.push(x.variable);
            first
        });
        (
            Config {
                disabled,
                resource,
                propagators,
                sampler,
                exporters,
                otlp,
                zipkin_endpoint,
                zipkin_timeout,
                batch,
                limits,
            },
            w,
        )
    }
}

/// The traces-specific variable if set, else the generic one: `(value, name, is_specific)`.
fn pick(
    env: Lookup<'_>,
    names: (&'static str, &'static str),
) -> Option<(String, &'static str, bool)> {
    if let Some(v) = get(env, names.1) {
        return Some((v, names.1, true));
    }
    get(env, names.0).map(|v| (v, names.0, false))
}

fn otlp_settings(env: Lookup<'_>, w: &mut Vec<Warning>) -> OtlpSettings {
    use vars::otlp::*;
    let mut s = OtlpSettings {
        protocol: "http/protobuf".to_owned(),
        timeout: Duration::from_secs(10),
        ..OtlpSettings::default()
    };
    if let Some((v, name, _)) = pick(env, PROTOCOL) {
        match v.trim() {
            p @ ("grpc" | "http/protobuf" | "http/json") => s.protocol = p.to_owned(),
            other => w.push(Warning::new(
                name,
                format!("unknown protocol {other:?} (grpc, http/protobuf, http/json); using http/protobuf"),
            )),
        }
    }
    if let Some((v, name, specific)) = pick(env, ENDPOINT) {
        let v = v.trim();
        // gRPC endpoints may omit the scheme (then `insecure` decides).
        let ok = valid_url(v) || (s.protocol == "grpc" && valid_url(&format!("http://{v}")));
        if ok {
            s.endpoint = Some((v.to_owned(), specific));
        } else {
            w.push(Warning::new(
                name,
                format!("{v:?} is not a valid URL; using the default endpoint"),
            ));
        }
    }
    if let Some((v, name, _)) = pick(env, HEADERS) {
        match parse_pairs(&v) {
            Ok(h) => s.headers = h,
            Err(e) => w.push(Warning::new(name, format!("{e}; no headers are sent"))),
        }
    }
    if let Some((v, name, _)) = pick(env, TIMEOUT) {
        match v.trim().parse::<u64>() {
            Ok(ms) => s.timeout = Duration::from_millis(ms),
            Err(_) => w.push(Warning::new(
                name,
                format!("{v:?} is not a number of milliseconds; using 10000"),
            )),
        }
    }
    if let Some((v, name, _)) = pick(env, COMPRESSION) {
        match v.trim().to_ascii_lowercase().as_str() {
            "gzip" => s.gzip = true,
            "none" => s.gzip = false,
            other => w.push(Warning::new(
                name,
                format!("unsupported compression {other:?} (gzip, none); using none"),
            )),
        }
    }
    if let Some((v, name, _)) = pick(env, INSECURE) {
        match v.trim().to_ascii_lowercase().as_str() {
            "true" => s.insecure = true,
            "false" => s.insecure = false,
            _ => w.push(Warning::new(
                name,
                format!("{v:?} is not true or false; using false"),
            )),
        }
    }
    let path = |names, w: &mut Vec<Warning>| {
        let (v, name, _) = pick(env, names)?;
        let p = PathBuf::from(v.trim());
        if p.is_file() {
            Some(p)
        } else {
            w.push(Warning::new(
                name,
                format!("{} is not a readable file; ignored", p.display()),
            ));
            None
        }
    };
    s.certificate = path(CERTIFICATE, w);
    s.client_key = path(CLIENT_KEY, w);
    s.client_certificate = path(CLIENT_CERTIFICATE, w);
    s
}
