//! DICOM over TLS (PS3.15 Annex B, the BCP 195 profiles) for the receiver: the rustls server
//! configuration built from `[dicom.tls]` (certificate chain, private key, optionally the CA that
//! must have signed each sender's certificate). dicom-ul's `sync-tls` feature does the handshake
//! on each accepted connection (`establish_tls`). TLS 1.2 and 1.3 only, rustls's safe cipher
//! suites with the *ring* provider. Reads the three PEM files once, at start; touches nothing else.

use crate::config::Tls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let list: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("[dicom.tls] {what} {}: {e}; give a PEM file of certificates", path.display()))?;
    if list.is_empty() {
        return Err(format!(
            "[dicom.tls] {what} {}: no certificate in it (expected -----BEGIN CERTIFICATE----- blocks)",
            path.display()
        ));
    }
    Ok(list)
}

/// The rustls server configuration for `[dicom.tls]`; every error names the file and the key.
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, String> {
    // Deprecated in rustls 0.23.48 only for lacking post-quantum key exchange, which neither the
    // BCP 195 profiles of PS3.15 nor DICOM peers (DCMTK 3.6.7 with OpenSSL 3.0) offer;
    // aws-lc-rs has it but needs cmake and a large C build on every target.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&tls.cert, "cert")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        format!(
            "[dicom.tls] key {}: {e}; give the certificate's private key as PEM (PKCS#8, PKCS#1 or SEC1), \
             readable by the receiver's user",
            tls.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("[dicom.tls]: TLS protocol versions: {e}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca, "client_ca")? {
                roots.add(c).map_err(|e| format!("[dicom.tls] client_ca {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("[dicom.tls] client_ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "[dicom.tls] cert {} and key {}: {e}; the key must be the certificate's own",
            tls.cert.display(),
            tls.key.display()
        )
    })?;
    Ok(Arc::new(config))
}
