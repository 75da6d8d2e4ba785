//! QUIC endpoints of both ends of the link, configured in one place: TLS 1.3 with the `rcc/1` ALPN
//! ([`crate::tls`]), over quinn's tokio runtime.

use crate::tls::{client_config, server_config, Identity, TlsError, Trust};
use std::net::SocketAddr;
use std::sync::Arc;

/// A failure to set up an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// QUIC refused the TLS configuration.
    #[error("configuring QUIC: {0}")]
    Quic(String),
    /// The UDP socket could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// A server endpoint listening on `listen` (port 0: any free one) and presenting `identity`.
pub fn server(identity: Identity, listen: SocketAddr) -> Result<quinn::Endpoint, EndpointError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_config(identity)?)
        .map_err(|e| EndpointError::Quic(e.to_string()))?;
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    quinn::Endpoint::server(config, listen).map_err(|source| EndpointError::Bind { addr: listen, source })
}

/// A client endpoint on an ephemeral port of the family of `to`, trusting the scheduler by `trust`.
pub fn client(to: SocketAddr, trust: &Trust) -> Result<quinn::Endpoint, EndpointError> {
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(trust)?)
        .map_err(|e| EndpointError::Quic(e.to_string()))?;
    let bind = if to.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|source| EndpointError::Bind { addr: bind, source })?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    Ok(endpoint)
}
