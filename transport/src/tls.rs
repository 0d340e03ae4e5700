//! TLS trust for dialling the relay: the system's roots, plus a private CA when one is given.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;

use crate::TransportError;

/// A rustls client configuration trusting the system roots and, if given, the certificates in
/// `ca_file` (PEM). Uses the ring provider explicitly so no process-wide default is needed.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are not fatal: a private CA may be all the user needs.
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(%err, "skipping a system root certificate");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let ca_err = |reason: String| TransportError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no PEM certificate in the file".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let err = client_config(Some(empty.path())).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        assert!(client_config(None).is_ok());
    }
}
