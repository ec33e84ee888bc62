//! rustls client configuration from the OTLP certificate settings (feature `tls`).

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, OtlpConfig};

fn certs(option: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let list: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError::new(option, format!("cannot read {}: {e}", path.display())))?
        .collect();
    let list =
        list.map_err(|e| ConfigError::new(option, format!("bad PEM in {}: {e}", path.display())))?;
    if list.is_empty() {
        return Err(ConfigError::new(
            option,
            format!("no certificate in {}", path.display()),
        ));
    }
    Ok(list)
}

/// The TLS client configuration: the `certificate` file as the only trusted roots when set,
/// else the system's; a client identity when both `client_certificate` and `client_key` are
/// set (mTLS).
pub(crate) fn client_config(config: &OtlpConfig) -> Result<ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    match &config.certificate {
        Some(ca) => {
            for c in certs("certificate", ca)? {
                roots
                    .add(c)
                    .map_err(|e| ConfigError::new("certificate", e.to_string()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("certificate", e.to_string()))?
            .with_root_certificates(roots);
    match (&config.client_certificate, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certs("client_certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                ConfigError::new("client_key", format!("cannot read {}: {e}", key.display()))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ConfigError::new("client_key", e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(ConfigError::new(
            "client_certificate",
            "mTLS needs both the client certificate and the client key",
        )),
    }
}
