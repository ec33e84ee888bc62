//! TLS and mTLS: OTLP/HTTP and OTLP/gRPC to fake collectors with certificates from a test CA
//! (rcgen), configured the way `OTEL_EXPORTER_OTLP_{CERTIFICATE,CLIENT_KEY,CLIENT_CERTIFICATE}`
//! configure them. Wrong or missing credentials must fail the export (counted), not hang.
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fastrace::collector::{Reporter as _, SpanId, SpanRecord, TraceId};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use support::State;
use tracewire_export::{Pipeline, RetryPolicy};
use tracewire_otlp::{OtlpConfig, OtlpExporter, Protocol};

struct Pki {
    dir: PathBuf,
    ca_pem: String,
    server_cert: String,
    server_key: String,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn pki(tag: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("tracewire-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
    let (client_cert, client_key) = leaf(vec!["client".into()]);
    // A second, unrelated CA: its certificate must not be trusted for our server.
    let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other = CertifiedIssuer::self_signed(other, KeyPair::generate().unwrap()).unwrap();
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("other-ca.pem", other.pem()),
        ("client.pem", client_cert),
        ("client.key", client_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    Pki {
        dir,
        ca_pem: ca.pem(),
        server_cert,
        server_key,
    }
}

fn server_config(pki: &Pki, require_client: bool) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder.with_single_cert(chain, key).unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

fn record() -> Vec<SpanRecord> {
    vec![SpanRecord {
        trace_id: TraceId(1),
        span_id: SpanId(2),
        parent_id: SpanId(0),
        begin_time_unix_ns: 1,
        duration_ns: 1,
        name: Cow::Borrowed("tls"),
        properties: vec![],
        events: vec![],
        links: vec![],
    }]
}

/// Exports one span; returns (exported, failed).
fn export(cfg: OtlpConfig) -> (u64, u64) {
    let p = Pipeline::builder()
        .exporter(OtlpExporter::new(&cfg).unwrap())
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    p.reporter().report(record());
    assert!(p.flush(Duration::from_secs(20)));
    let c = p.counters();
    (c.exported, c.failed)
}

fn with_files(cfg: OtlpConfig, ca: Option<&Path>, client: Option<(&Path, &Path)>) -> OtlpConfig {
    OtlpConfig {
        certificate: ca.map(Path::to_path_buf),
        client_certificate: client.map(|(c, _)| c.to_path_buf()),
        client_key: client.map(|(_, k)| k.to_path_buf()),
        timeout: Some(Duration::from_secs(5)),
        ..cfg
    }
}

#[test]
fn https_with_ca_and_mtls() {
    let pki = pki("http");
    let state = Arc::new(State::default());
    let collector = support::Collector::https(server_config(&pki, true), state.clone());
    let url = format!("https://localhost:{}/v1/traces", collector.addr.port());
    let base = OtlpConfig::new(Protocol::HttpProtobuf).endpoint(url);
    let ca = pki.path("ca.pem");
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));

    assert_eq!(
        export(with_files(base.clone(), Some(&ca), Some((&cert, &key)))),
        (1, 0),
        "trusted CA + client certificate"
    );
    assert_eq!(collector.spans().len(), 1);
    assert_eq!(
        export(with_files(base.clone(), Some(&ca), None)),
        (0, 1),
        "server requires a client certificate"
    );
    assert_eq!(
        export(with_files(
            base.clone(),
            Some(&pki.path("other-ca.pem")),
            Some((&cert, &key))
        )),
        (0, 1),
        "server certificate from an untrusted CA"
    );
    assert_eq!(collector.spans().len(), 1);
}

#[test]
fn grpc_with_ca_and_mtls() {
    let pki = pki("grpc");
    let collector = support::Collector::grpc_tls(
        &pki.server_cert,
        &pki.server_key,
        Some(&pki.ca_pem),
        Arc::new(State::default()),
    );
    let url = format!("https://localhost:{}", collector.addr.port());
    let base = OtlpConfig::new(Protocol::Grpc).endpoint(url);
    let ca = pki.path("ca.pem");
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    assert_eq!(
        export(with_files(base.clone(), Some(&ca), Some((&cert, &key)))),
        (1, 0)
    );
    assert_eq!(collector.spans().len(), 1);
    assert_eq!(export(with_files(base.clone(), Some(&ca), None)), (0, 1));
    assert_eq!(collector.spans().len(), 1);
}

#[test]
fn unreadable_or_half_mtls_configuration_fails_at_build() {
    let cfg = OtlpConfig {
        certificate: Some("/nonexistent/ca.pem".into()),
        ..OtlpConfig::new(Protocol::HttpProtobuf).endpoint("https://localhost:4318/v1/traces")
    };
    assert_eq!(OtlpExporter::new(&cfg).unwrap_err().option(), "certificate");
    let pki = pki("half");
    let cfg = OtlpConfig {
        client_certificate: Some(pki.path("client.pem")),
        ..OtlpConfig::new(Protocol::HttpProtobuf).endpoint("https://localhost:4318/v1/traces")
    };
    assert_eq!(
        OtlpExporter::new(&cfg).unwrap_err().option(),
        "client_certificate"
    );
}
