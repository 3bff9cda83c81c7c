//! TLS towards `protocol: https` upstreams: the client configs an endpoint is verified with.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use super::certs::{self, CertError};

/// A client config verifying against `roots`, offering HTTP/1.1 by ALPN.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, CertError> {
    let mut cfg = ClientConfig::builder_with_provider(certs::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Versions(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The system's trust anchors (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
pub fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in found.errors.iter().take(3) {
        tracing::warn!("reading system CA certificates: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates loaded");
    roots
}
