//! DICOM over TLS to the PACS (PS3.15 Annex B, the BCP 195 profiles): the rustls client
//! configuration built from `[dicom.send.tls]` — the CA certificate(s) that signed the PACS's
//! certificate (the only ones trusted; the system's store is not used), and optionally our own
//! certificate and key for a PACS that asks for one (mutual TLS). The PACS's certificate is
//! verified (chain to the CA, validity dates, and the name: `server_name`, default `host`).
//! dicom-ul's `sync-tls` feature does the handshake on each connection. TLS 1.2 and 1.3 only,
//! rustls's safe cipher suites with the *ring* provider (as the receiver's `[dicom.tls]`). Reads
//! the PEM files once, at start; touches nothing else.

use crate::config::SendTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// A `[dicom.send.tls]` file or value that cannot work: the key, the file, what is wrong and
/// what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[dicom.send.tls] {key} {file}: {problem}; {todo}")]
pub struct TlsConfigError {
    pub key: &'static str,
    pub file: String,
    pub problem: String,
    pub todo: &'static str,
}

fn err(key: &'static str, file: &Path, problem: String, todo: &'static str) -> TlsConfigError {
    TlsConfigError { key, file: file.display().to_string(), problem, todo }
}

fn certs(key: &'static str, path: &Path, todo: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    // Read first: a missing or unreadable file says so, not "no certificate".
    std::fs::metadata(path).map_err(|e| err(key, path, format!("cannot read it: {e}"), todo))?;
    let list: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(key, path, format!("not a PEM file of certificates: {e}"), todo))?;
    if list.is_empty() {
        return Err(err(key, path, "no certificate in it (no -----BEGIN CERTIFICATE----- block)".into(), todo));
    }
    Ok(list)
}

const CA_TODO: &str = "give the PEM file of the CA certificate that signed the PACS's TLS certificate \
                       (ask the PACS's administrator)";
const CERT_TODO: &str = "give our client certificate (PEM, followed by any intermediates) registered with the PACS";
const KEY_TODO: &str = "give the client certificate's private key as PEM (PKCS#8, PKCS#1 or SEC1), readable by \
                        the sender's user";

/// The rustls client configuration for `tls`, and the name the PACS's certificate must carry
/// (`server_name`, else `host`). Every error names the key and the file.
pub fn client_config(tls: &SendTls, host: &str) -> Result<(Arc<ClientConfig>, String), TlsConfigError> {
    let name = tls.server_name.clone().unwrap_or_else(|| host.to_string());
    ServerName::try_from(name.clone()).map_err(|e| TlsConfigError {
        key: "server_name",
        file: format!("{name:?}"),
        problem: format!("not a DNS name or IP address: {e}"),
        todo: "set server_name to the name (or address) in the PACS's certificate",
    })?;
    // Deprecated in rustls 0.23.48 only for lacking post-quantum key exchange (see the
    // receiver's tls.rs): neither PS3.15's BCP 195 profiles nor DICOM peers offer it.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certs("ca", &tls.ca, CA_TODO)? {
        roots.add(c).map_err(|e| err("ca", &tls.ca, format!("not a usable CA certificate: {e}"), CA_TODO))?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("ca", &tls.ca, format!("TLS protocol versions: {e}"), CA_TODO))?
        .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certs("cert", cert, CERT_TODO)?;
            std::fs::metadata(key).map_err(|e| err("key", key, format!("cannot read it: {e}"), KEY_TODO))?;
            let pk = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| err("key", key, format!("no private key in it: {e}"), KEY_TODO))?;
            builder.with_client_auth_cert(chain, pk).map_err(|e| {
                err(
                    "key",
                    key,
                    format!("does not go with cert {}: {e}", cert.display()),
                    "give the private key of the client certificate named by `cert`",
                )
            })?
        }
        (Some(cert), None) => {
            return Err(err("cert", cert, "given without `key`".into(), "add `key`, the certificate's private key"))
        }
        (None, Some(key)) => {
            return Err(err("key", key, "given without `cert`".into(), "add `cert`, the client certificate"))
        }
    };
    Ok((Arc::new(config), name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tls(ca: &Path) -> SendTls {
        SendTls { ca: ca.to_path_buf(), cert: None, key: None, server_name: None }
    }

    #[test]
    fn missing_and_bad_files_are_named_with_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        let e = client_config(&tls(&missing), "pacs").expect_err("missing CA").to_string();
        assert!(e.contains("[dicom.send.tls] ca") && e.contains("nope.pem") && e.contains("cannot read"), "{e}");
        assert!(e.contains("CA certificate that signed the PACS"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").expect("write");
        let e = client_config(&tls(&junk), "pacs").expect_err("no certificate").to_string();
        assert!(e.contains("junk.pem") && e.contains("no certificate"), "{e}");
        let half = SendTls { cert: Some(PathBuf::from("/x/client.pem")), ..tls(&junk) };
        // The CA is checked first; with a CA that cannot load, its error comes first.
        assert!(client_config(&half, "pacs").expect_err("bad").to_string().contains("junk.pem"));
        let e = client_config(&tls(&junk), "not a name!").expect_err("bad name").to_string();
        assert!(e.contains("server_name"), "{e}");
    }
}
