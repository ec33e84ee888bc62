//! Every supported variable: parsing, defaults, precedence and invalid values (one warning
//! naming the variable, then the default). Variables are passed through a lookup map, so the
//! tests do not touch the process environment.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::time::Duration;

use tracewire::config::{Config, ExporterKind};
use tracewire::env::Warning;
use tracewire::export::ResourceValue;
use tracewire::{Format, Sampler};

fn read(vars: &[(&str, &str)]) -> (Config, Vec<Warning>) {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(&move |name| map.get(name).cloned())
}

fn warned(w: &[Warning]) -> Vec<&'static str> {
    w.iter().map(|w| w.variable).collect()
}

fn string(v: Option<&ResourceValue>) -> String {
    v.map(ToString::to_string).unwrap_or_default()
}

#[test]
fn defaults() {
    let (c, w) = read(&[]);
    assert!(w.is_empty(), "{w:?}");
    assert!(!c.disabled);
    assert!(string(c.resource.get("service.name")).starts_with("unknown_service:"));
    assert_eq!(string(c.resource.get("telemetry.sdk.name")), "tracewire");
    assert_eq!(string(c.resource.get("telemetry.sdk.language")), "rust");
    assert!(c.resource.get("process.pid").is_some());
    assert!(c.resource.get("os.type").is_some());
    assert!(c.resource.get("process.command_args").is_none());
    assert_eq!(
        c.propagators.formats(),
        [Format::TraceContext, Format::Baggage]
    );
    assert_eq!(c.sampler.description(), "ParentBased{root:AlwaysOnSampler}");
    assert_eq!(c.exporters, [ExporterKind::Otlp]);
    assert_eq!(c.otlp.protocol, "http/protobuf");
    assert_eq!(c.otlp.endpoint, None);
    assert_eq!(c.otlp.timeout, Duration::from_secs(10));
    assert!(!c.otlp.gzip && !c.otlp.insecure && c.otlp.headers.is_empty());
    assert_eq!(c.zipkin_endpoint, "http://localhost:9411/api/v2/spans");
    assert_eq!(c.zipkin_timeout, Duration::from_secs(10));
    assert_eq!(c.batch.scheduled_delay, Duration::from_millis(5000));
    assert_eq!(c.batch.export_timeout, Duration::from_millis(30000));
    assert_eq!(c.batch.max_queue_size, 2048);
    assert_eq!(c.batch.max_export_batch_size, 512);
    assert_eq!(c.limits, tracewire::export::SpanLimits::default());
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_default_endpoints_per_protocol() {
    let (c, _) = read(&[]);
    assert_eq!(
        tracewire::otlp_config(&c.otlp).traces_url(),
        "http://localhost:4318/v1/traces"
    );
    let (c, _) = read(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    assert_eq!(
        tracewire::otlp_config(&c.otlp).traces_url(),
        "http://localhost:4317"
    );
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_endpoint_generic_gets_path_specific_is_used_as_is() {
    let (c, w) = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
    assert!(w.is_empty());
    assert_eq!(
        tracewire::otlp_config(&c.otlp).traces_url(),
        "http://collector:4318/v1/traces"
    );
    let (c, _) = read(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://specific:9999/custom",
        ),
    ]);
    assert_eq!(
        tracewire::otlp_config(&c.otlp).traces_url(),
        "http://specific:9999/custom"
    );
    let (c, _) = read(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
    ]);
    assert_eq!(
        tracewire::otlp_config(&c.otlp).traces_url(),
        "http://collector:4317"
    );
}

#[test]
fn signal_specific_wins_for_every_otlp_setting() {
    let dir = std::env::temp_dir().join(format!("tracewire-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    for f in [&ca, &key, &cert] {
        std::fs::write(f, "pem").unwrap();
    }
    let (c, w) = read(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "api-key=s%3Dcret,x-tenant=t%201",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
        ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "TRUE"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/generic.pem"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            ca.to_str().unwrap(),
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            key.to_str().unwrap(),
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            cert.to_str().unwrap(),
        ),
    ]);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.otlp.protocol, "grpc");
    assert_eq!(
        c.otlp.headers,
        [
            ("api-key".to_owned(), "s=cret".to_owned()),
            ("x-tenant".to_owned(), "t 1".to_owned())
        ]
    );
    assert_eq!(c.otlp.timeout, Duration::from_millis(2500));
    assert!(c.otlp.gzip);
    assert!(c.otlp.insecure);
    assert_eq!(c.otlp.certificate.as_deref(), Some(ca.as_path()));
    assert_eq!(c.otlp.client_key.as_deref(), Some(key.as_path()));
    assert_eq!(c.otlp.client_certificate.as_deref(), Some(cert.as_path()));
    // Secrets never show in the debug output.
    let dbg = format!("{:?}", c.otlp);
    assert!(
        !dbg.contains("cret") && dbg.contains("api-key=<redacted>"),
        "{dbg}"
    );
}

#[test]
fn invalid_values_warn_once_naming_the_variable_then_default() {
    let cases: &[(&str, &str)] = &[
        ("OTEL_SDK_DISABLED", "yes"),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=1,broken"),
        ("OTEL_PROPAGATORS", "tracecontext,xray"),
        ("OTEL_TRACES_SAMPLER", "nope"),
        ("OTEL_TRACES_EXPORTER", "otlp,jaeger"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "::not a url::"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/thrift"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "maybe"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/key.pem"),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/nonexistent/cert.pem",
        ),
        ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "zipkin:9411"),
        ("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "-1"),
        ("OTEL_BSP_SCHEDULE_DELAY", "fast"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "1.5"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "lots"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "many"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "long"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "x"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "x"),
    ];
    let defaults = read(&[]).0;
    for (var, value) in cases {
        let (c, w) = read(&[(var, value)]);
        assert_eq!(warned(&w), [*var], "{var}={value}: {w:?}");
        // Defaults are kept.
        assert_eq!(c.disabled, defaults.disabled, "{var}");
        assert_eq!(c.otlp.protocol, defaults.otlp.protocol, "{var}");
        assert_eq!(c.otlp.endpoint, defaults.otlp.endpoint, "{var}");
        assert_eq!(c.otlp.timeout, defaults.otlp.timeout, "{var}");
        assert_eq!(c.otlp.gzip, defaults.otlp.gzip, "{var}");
        assert_eq!(c.otlp.certificate, None, "{var}");
        assert_eq!(c.zipkin_endpoint, defaults.zipkin_endpoint, "{var}");
        assert_eq!(c.zipkin_timeout, defaults.zipkin_timeout, "{var}");
        assert_eq!(c.batch, defaults.batch, "{var}");
        assert_eq!(c.limits, defaults.limits, "{var}");
    }
    // The resource value is discarded as a whole (spec).
    let (c, _) = read(&[("OTEL_RESOURCE_ATTRIBUTES", "a=1,broken")]);
    assert!(c.resource.get("a").is_none());
    // Unknown exporters are skipped, the known ones kept.
    let (c, _) = read(&[("OTEL_TRACES_EXPORTER", "otlp,jaeger")]);
    assert_eq!(c.exporters, [ExporterKind::Otlp]);
}

#[test]
fn sdk_disabled_service_name_and_resource_attributes() {
    let (c, w) = read(&[
        ("OTEL_SDK_DISABLED", "TRUE"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attrs,deployment.environment.name=prod%20eu,service.version=1.2.3,service.namespace=shop",
        ),
        ("OTEL_SERVICE_NAME", "checkout"),
    ]);
    assert!(w.is_empty(), "{w:?}");
    assert!(c.disabled);
    assert_eq!(string(c.resource.get("service.name")), "checkout");
    assert_eq!(
        string(c.resource.get("deployment.environment.name")),
        "prod eu"
    );
    assert_eq!(string(c.resource.get("service.version")), "1.2.3");
    assert_eq!(string(c.resource.get("service.namespace")), "shop");
    let (c, _) = read(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]);
    assert_eq!(string(c.resource.get("service.name")), "from-attrs");
}

#[test]
fn propagators_sampler_and_exporters() {
    let (c, w) = read(&[
        ("OTEL_PROPAGATORS", "b3multi,tracecontext"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ("OTEL_TRACES_EXPORTER", "zipkin, console,otlp,zipkin"),
    ]);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        c.propagators.formats(),
        [Format::B3Multi, Format::TraceContext]
    );
    assert_eq!(
        c.sampler.description(),
        "ParentBased{root:TraceIdRatioBased{0.25}}"
    );
    assert_eq!(
        c.exporters,
        [
            ExporterKind::Zipkin,
            ExporterKind::Console,
            ExporterKind::Otlp
        ]
    );
    let (c, _) = read(&[("OTEL_TRACES_EXPORTER", "none")]);
    assert!(c.exporters.is_empty());
    let (c, w) = read(&[
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
    ]);
    assert_eq!(warned(&w), ["OTEL_TRACES_SAMPLER_ARG"]);
    assert!(matches!(c.sampler, Sampler::TraceIdRatio(r) if r.ratio() == 1.0));
}

#[test]
fn batch_and_limits() {
    let (c, w) = read(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "2000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "20"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "3"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "4"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "5"),
        (
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
            "http://zipkin:9411/api/v2/spans",
        ),
        ("OTEL_EXPORTER_ZIPKIN_TIMEOUT", "1234"),
    ]);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.batch.scheduled_delay, Duration::from_millis(100));
    assert_eq!(c.batch.export_timeout, Duration::from_millis(2000));
    assert_eq!(c.batch.max_queue_size, 100);
    assert_eq!(c.batch.max_export_batch_size, 50);
    assert_eq!(c.limits.attribute_count, 20, "span-specific wins");
    assert_eq!(c.limits.attribute_value_length, Some(64), "generic applies");
    assert_eq!(c.limits.event_count, 3);
    assert_eq!(c.limits.link_count, 4);
    assert_eq!(c.limits.attributes_per_event, 5);
    assert_eq!(c.limits.attributes_per_link, 10, "generic attribute count");
    assert_eq!(c.zipkin_endpoint, "http://zipkin:9411/api/v2/spans");
    assert_eq!(c.zipkin_timeout, Duration::from_millis(1234));
    // Batch larger than the queue: warning, clamped.
    let (c, w) = read(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"),
    ]);
    assert_eq!(warned(&w), ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"]);
    assert_eq!(c.batch.max_export_batch_size, 100);
}

#[test]
fn code_wins_over_env() {
    let builder = tracewire::builder()
        .env_lookup(|name| match name {
            "OTEL_SERVICE_NAME" => Some("from-env".into()),
            "OTEL_TRACES_SAMPLER" => Some("always_off".into()),
            "OTEL_PROPAGATORS" => Some("b3".into()),
            _ => None,
        })
        .service_name("from-code")
        .sampler(Sampler::AlwaysOn)
        .propagators(tracewire::Propagators::new([Format::Jaeger]));
    let (c, _) = builder.config();
    assert_eq!(string(c.resource.get("service.name")), "from-code");
    assert_eq!(c.sampler.description(), "AlwaysOnSampler");
    assert_eq!(c.propagators.formats(), [Format::Jaeger]);
}
