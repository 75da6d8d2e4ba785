//! TLS identity of the scheduler and how clients trust it.
//!
//! On first start the scheduler creates a self-signed certificate in its state directory (or uses the
//! `--cert`/`--key` it is given). Clients either trust a CA file or pin the certificate's SHA-256
//! fingerprint, which `rcc-scheduler fingerprint` prints.

use rcc_proto::Digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::fs;
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

fn file_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_owned(), message: e.to_string() }
}

/// Loads the given certificate and key, or the state directory's self-signed pair, creating it if absent.
pub fn load_or_create(state: &Path, cert: Option<&Path>, key: Option<&Path>) -> Result<Identity, TlsError> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned()),
        (None, None) => {
            let (c, k) = (state.join("cert.pem"), state.join("key.pem"));
            if !c.exists() || !k.exists() {
                create_self_signed(&c, &k)?;
            }
            (c, k)
        }
        _ => return Err(TlsError::Config("--cert and --key go together".into())),
    };
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(&cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(&cert_path, e))?;
    if chain.is_empty() {
        return Err(file_err(&cert_path, "no certificate in file"));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, e))?;
    Ok(Identity { chain, key })
}

fn create_self_signed(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let names = vec!["rcc-scheduler".to_owned(), "localhost".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Config(e.to_string()))?;
    if let Some(dir) = cert.parent() {
        fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
    fs::write(cert, generated.cert.pem()).map_err(|e| file_err(cert, e))
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))
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
