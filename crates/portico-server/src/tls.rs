//! TLS (rustls with the ring provider): the server configuration, loaded from PEM files, and
//! replaceable while serving so that a reload takes a new certificate without dropping a
//! connection (sessions already established keep theirs; new handshakes get the new one);
//! and the client configuration for `https://` upstream targets.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The protocols Portico offers with ALPN, most preferred first (`h2` only while HTTP/2 is
/// enabled).
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A TLS listener's configuration, which a reload replaces.
pub struct Tls {
    config: ArcSwap<ServerConfig>,
}

impl Tls {
    /// Loads a certificate chain and its key (PEM files); `http2` offers `h2` with ALPN.
    pub fn load(cert: &Path, key: &Path, http2: bool) -> Result<Tls, String> {
        Ok(Tls {
            config: ArcSwap::from_pointee(server_config(cert, key, http2)?),
        })
    }

    /// Loads a new certificate and key for the handshakes from now on; on error the current
    /// ones stay.
    pub fn reload(&self, cert: &Path, key: &Path, http2: bool) -> Result<(), String> {
        self.config
            .store(Arc::new(server_config(cert, key, http2)?));
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }
}

/// A server configuration for a certificate chain and key read from PEM files: TLS 1.2 and
/// 1.3 with rustls's safe defaults, no client certificates, ALPN as [`ALPN`] (without `h2`
/// unless `http2`).
pub fn server_config(cert: &Path, key: &Path, http2: bool) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificates from {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read certificates from {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = alpn(http2);
    Ok(config)
}

/// A client configuration for `https://` upstream targets: certificates verified against the
/// CA certificates in the PEM file `ca`, or the system's trust store without one; TLS 1.2 and
/// 1.3; ALPN `h2` and `http/1.1` when `http2`, else `http/1.1` only.
pub fn client_config(ca: Option<&Path>, http2: bool) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("cannot read certificates from {}: {e}", ca.display()))?
            {
                let cert = cert
                    .map_err(|e| format!("cannot read certificates from {}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{} holds no certificate", ca.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "the system trust store has no usable CA certificate; give the upstream `tls.ca`"
                        .to_string(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn(http2);
    Ok(config)
}

/// [`ALPN`], without `h2` unless `http2`.
fn alpn(http2: bool) -> Vec<Vec<u8>> {
    ALPN.iter()
        .filter(|p| http2 || **p != b"h2")
        .map(|p| p.to_vec())
        .collect()
}
