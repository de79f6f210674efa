//! TLS (rustls with the ring provider): the server configuration, loaded from PEM files, and
//! replaceable while serving so that a reload takes a new certificate without dropping a
//! connection (sessions already established keep theirs; new handshakes get the new one);
//! and the client configuration for `https://` upstream targets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The protocols Portico offers with ALPN, most preferred first (`h2` only while HTTP/2 is
/// enabled).
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why a TLS configuration could not be made.
#[derive(Debug)]
pub enum TlsError {
    /// A PEM file that cannot be read as certificates or a key.
    Pem {
        /// The file.
        file: PathBuf,
        /// What it was read for: "certificates", "a private key".
        what: &'static str,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM file that holds no certificate.
    NoCertificate(PathBuf),
    /// A CA certificate rustls cannot use.
    BadCa {
        /// The file.
        file: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The system trust store has no usable CA certificate.
    NoSystemRoots,
    /// The certificate and key do not go together, or the protocol versions cannot be set.
    Config(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Pem { file, what, source } => {
                write!(f, "cannot read {what} from {}: {source}", file.display())
            }
            TlsError::NoCertificate(file) => write!(f, "{} holds no certificate", file.display()),
            TlsError::BadCa { file, source } => {
                write!(f, "{}: unusable CA certificate: {source}", file.display())
            }
            TlsError::NoSystemRoots => f.write_str(
                "the system trust store has no usable CA certificate; give the upstream `tls.ca`",
            ),
            TlsError::Config(e) => write!(f, "the certificate and key do not go together: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { source, .. } => Some(source),
            TlsError::BadCa { source, .. } => Some(source),
            TlsError::Config(e) => Some(e),
            TlsError::NoCertificate(_) | TlsError::NoSystemRoots => None,
        }
    }
}

fn pem(file: &Path, what: &'static str) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError {
    move |source| TlsError::Pem {
        file: file.to_path_buf(),
        what,
        source,
    }
}

/// A TLS listener's configuration, which a reload replaces.
pub struct Tls {
    config: ArcSwap<ServerConfig>,
}

impl Tls {
    /// Loads a certificate chain and its key (PEM files); `http2` offers `h2` with ALPN.
    pub fn load(cert: &Path, key: &Path, http2: bool) -> Result<Tls, TlsError> {
        Ok(Tls {
            config: ArcSwap::from_pointee(server_config(cert, key, http2)?),
        })
    }

    /// Loads a new certificate and key for the handshakes from now on; on error the current
    /// ones stay.
    pub fn reload(&self, cert: &Path, key: &Path, http2: bool) -> Result<(), TlsError> {
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
pub fn server_config(cert: &Path, key: &Path, http2: bool) -> Result<ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(pem(cert, "certificates"))?
        .collect::<Result<_, _>>()
        .map_err(pem(cert, "certificates"))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem(key, "a private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = alpn(http2);
    Ok(config)
}

/// A client configuration for `https://` upstream targets: certificates verified against the
/// CA certificates in the PEM file `ca`, or the system's trust store without one; TLS 1.2 and
/// 1.3; ALPN `h2` and `http/1.1` when `http2`, else `http/1.1` only.
pub fn client_config(ca: Option<&Path>, http2: bool) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in CertificateDer::pem_file_iter(ca).map_err(pem(ca, "certificates"))? {
                let cert = cert.map_err(pem(ca, "certificates"))?;
                roots.add(cert).map_err(|source| TlsError::BadCa {
                    file: ca.to_path_buf(),
                    source,
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate(ca.to_path_buf()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::NoSystemRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
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
