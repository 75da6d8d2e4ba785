//! The scheduler's TLS identity on disk: on first start a self-signed certificate is created in the state
//! directory (or the `--cert`/`--key` given are used). Clients either trust a CA file or pin the
//! certificate's SHA-256 fingerprint, which `rcc-scheduler fingerprint` prints.

use rcc_fs::{write_atomic, WriteOptions};
use rcc_link::tls::{Identity, TlsError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::path::Path;

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
        .map_err(|e| TlsError::file(&cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(&cert_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::file(&cert_path, "no certificate in file"));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::file(&key_path, e))?;
    Ok(Identity { chain, key })
}

fn create_self_signed(cert: &Path, key: &Path) -> Result<(), TlsError> {
    let names = vec!["rcc-scheduler".to_owned(), "localhost".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Config(e.to_string()))?;
    if let Some(dir) = cert.parent() {
        fs::create_dir_all(dir).map_err(|e| TlsError::file(dir, e))?;
    }
    write_atomic(key, generated.signing_key.serialize_pem().as_bytes(), WriteOptions::durable(0o600))
        .map_err(|e| TlsError::file(key, e))?;
    write_atomic(cert, generated.cert.pem().as_bytes(), WriteOptions::durable(0o644))
        .map_err(|e| TlsError::file(cert, e))
}
