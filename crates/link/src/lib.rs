//! `rcc-link`: rcc's QUIC link to the scheduler, used by the daemon (shared cache, pool client), the pool
//! worker, the scheduler's own server side and the tests.
//!
//! - [`client`]: [`Client`], one authenticated QUIC connection to the scheduler, one stream per request
//!   (blobs, action results, execution, status, the worker's registration stream).
//! - [`wire`]: moving `rcc_proto::remote` frames and zstd blob bodies over quinn streams, every length
//!   bounded before it is read.
//! - [`tls`]: the scheduler's [`tls::Identity`] and how a client [`tls::Trust`]s it (CA file or pinned
//!   fingerprint); TLS 1.3 and the `rcc/1` ALPN.
//! - [`endpoint`]: the QUIC endpoints of both ends (server and client), configured in one place.
//! - [`backoff`]: [`Backoff`] and [`Hold`], waiting after failures before dialling again.
//!
//! Depends on rcc-proto (the messages and the frame codec), tokio, quinn and rustls; never on the daemon,
//! the worker or the scheduler. Start reading at [`client::Client::connect`].
#![warn(missing_docs)]

pub mod backoff;
pub mod client;
pub mod endpoint;
pub mod tls;
pub mod wire;

pub use backoff::{Backoff, Hold};
pub use client::{Client, ClientError};
