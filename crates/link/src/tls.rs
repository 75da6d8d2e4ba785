//! TLS on the link: the scheduler's [`Identity`] as the server presents it, and how clients [`Trust`] it
//! (a CA file, or the certificate's SHA-256 fingerprint pinned). TLS 1.3 only, ring as the provider, the
//! `rcc/1` ALPN on both ends. Creating a self-signed identity is the scheduler's business
//! (`rcc-scheduler`'s `identity` module), not the link's.

use rcc_proto::Digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate chain and its key.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// SHA-256 of the leaf certificate, as clients pin it.
    pub fn fingerprint(&self) -> Digest {
        self.chain.first().map(|c| Digest::of(c.as_ref())).unwrap_or_default()
    }
}

/// A TLS setup failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Certificate generation or configuration failed.
    #[error("TLS: {0}")]
    Config(String),
}

impl TlsError {
    /// A failure of `path`.
    pub fn file(path: &Path, e: impl std::fmt::Display) -> TlsError {
        TlsError::File { path: path.to_owned(), message: e.to_string() }
    }
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::file(path, e)
}

/// How a client decides to trust the scheduler.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Certificates signed by the CAs in this PEM file.
    CaFile(PathBuf),
    /// Exactly the certificate with this SHA-256 fingerprint.
    Fingerprint(Digest),
}

/// A rustls client configuration for `trust`, speaking the rcc ALPN.
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = match trust {
        Trust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_err(path, e))? {
                roots.add(cert.map_err(|e| file_err(path, e))?).map_err(|e| file_err(path, e))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Fingerprint(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate { fingerprint: *fingerprint, provider }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![rcc_proto::remote::ALPN.to_vec()];
    Ok(config)
}

/// A rustls server configuration for an identity, speaking the rcc ALPN.
pub fn server_config(identity: Identity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![rcc_proto::remote::ALPN.to_vec()];
    Ok(config)
}

/// Accepts exactly one certificate, by fingerprint; signatures are still verified with it.
#[derive(Debug)]
struct PinnedCertificate {
    fingerprint: Digest,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Digest::of(end_entity.as_ref()) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "scheduler certificate fingerprint {} is not the pinned {}",
                Digest::of(end_entity.as_ref()),
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
