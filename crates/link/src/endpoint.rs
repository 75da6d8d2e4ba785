//! QUIC endpoints of both ends of the link, configured in one place: TLS 1.3 with the `rcc/1` ALPN
//! ([`crate::tls`]), over quinn's tokio runtime.
//!
//! Both ends send keep-alives well within the idle timeout (30 s, or `RCC_LINK_IDLE_TIMEOUT_MS`), so a
//! connection waiting minutes for a long remote compile stays up. The server's connections start with a
//! small budget — [`PRE_AUTH_STREAMS`] streams and [`PRE_AUTH_WINDOW`] bytes in flight — which
//! [`open_budget`] raises once the peer has authenticated: a stranger can make the scheduler hold only a
//! few KiB.

use crate::tls::{client_config, server_config, Identity, TlsError, Trust};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// How long a connection may stay silent before it is dropped, unless `RCC_LINK_IDLE_TIMEOUT_MS` says
/// otherwise (the effective timeout is the shorter of both ends').
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams a peer may open at once before it authenticates.
pub const PRE_AUTH_STREAMS: u32 = 4;
/// Bytes a peer may have in flight on its connection before it authenticates.
pub const PRE_AUTH_WINDOW: u32 = 64 << 10;
/// Streams an authenticated peer may open at once (more wait for one to end).
pub const STREAMS: u32 = 256;
/// Bytes an authenticated peer may have in flight on its connection, all streams together.
pub const WINDOW: u32 = 16 << 20;
/// Bytes in flight on one stream (a request frame is at most 1 MiB; blob bodies stream through it).
pub const STREAM_WINDOW: u32 = 2 << 20;

/// The idle timeout in force: `RCC_LINK_IDLE_TIMEOUT_MS` when set to a number, else [`IDLE_TIMEOUT`].
pub fn idle_timeout() -> Duration {
    std::env::var(rcc_proto::vars::RCC_LINK_IDLE_TIMEOUT_MS)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|ms: &u64| *ms >= 100)
        .map_or(IDLE_TIMEOUT, Duration::from_millis)
}

/// The transport both ends use: the idle timeout, with keep-alives every third of it.
fn transport() -> quinn::TransportConfig {
    let idle = idle_timeout();
    let mut config = quinn::TransportConfig::default();
    // Not reached: `idle_timeout` is at most u64::MAX ms, and quinn takes up to 2^62 ms.
    config.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    config.keep_alive_interval(Some(idle / 3));
    config
}

/// Raises an authenticated connection's budget from the pre-authentication one to [`STREAMS`] streams
/// and [`WINDOW`] bytes in flight.
pub fn open_budget(conn: &quinn::Connection) {
    conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(STREAMS));
    conn.set_receive_window(quinn::VarInt::from_u32(WINDOW));
}

/// A server endpoint listening on `listen` (port 0: any free one) and presenting `identity`.
pub fn server(identity: Identity, listen: SocketAddr) -> Result<quinn::Endpoint, EndpointError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_config(identity)?)
        .map_err(|e| EndpointError::Quic(e.to_string()))?;
    let mut transport = transport();
    transport
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(PRE_AUTH_STREAMS))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .receive_window(quinn::VarInt::from_u32(PRE_AUTH_WINDOW))
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW));
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
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
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport()));
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}
