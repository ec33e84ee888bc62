//! Zipkin over HTTPS: a local receiver with a certificate from a test CA (rcgen); the exporter
//! trusting that CA delivers, one trusting another CA fails (counted).
#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fastrace::collector::{Reporter as _, SpanId, SpanRecord, TraceId};
use http_body_util::{BodyExt as _, Full};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracewire_export::{Pipeline, RetryPolicy};
use tracewire_zipkin::ZipkinExporter;

fn make_ca() -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let pem = ca.pem();
    (ca, pem)
}

#[test]
fn https_with_a_given_ca() {
    let dir = std::env::temp_dir().join(format!("tracewire-zipkin-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, ca_pem) = make_ca();
    let (_, other_pem) = make_ca();
    std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
    std::fs::write(dir.join("other.pem"), &other_pem).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));

    let posts = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let p2 = posts.clone();
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (acceptor, posts) = (acceptor.clone(), p2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let posts = posts.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let spans: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            posts.fetch_add(spans.as_array().unwrap().len(), Ordering::SeqCst);
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(202)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });

    let url = format!("https://localhost:{port}/api/v2/spans");
    let export = |ca_file: &str| {
        let exporter =
            ZipkinExporter::with_ca_certificate(&url, Duration::from_secs(5), &dir.join(ca_file))
                .unwrap();
        let p = Pipeline::builder()
            .exporter(exporter)
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        p.reporter().report(vec![SpanRecord {
            trace_id: TraceId(1),
            span_id: SpanId(2),
            parent_id: SpanId(0),
            begin_time_unix_ns: 1_000,
            duration_ns: 1_000,
            name: Cow::Borrowed("tls"),
            properties: vec![],
            events: vec![],
            links: vec![],
        }]);
        assert!(p.flush(Duration::from_secs(20)));
        let c = p.counters();
        (c.exported, c.failed)
    };
    assert_eq!(export("ca.pem"), (1, 0));
    assert_eq!(posts.load(Ordering::SeqCst), 1);
    assert_eq!(export("other.pem"), (0, 1), "untrusted server certificate");
    assert_eq!(posts.load(Ordering::SeqCst), 1);
    assert!(
        ZipkinExporter::with_ca_certificate(&url, Duration::from_secs(1), &dir.join("missing.pem"))
            .is_err()
    );
}
