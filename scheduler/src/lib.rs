//! `rcc-scheduler`: the shared action cache and content-addressable storage (and, later, the worker pool's
//! dispatcher), served over QUIC.
//!
//! - [`storage`]: blobs and action results behind the [`storage::Storage`] trait; [`storage::DiskStorage`] is
//!   the embedded default (files + a redb index, LRU eviction that keeps results consistent).
//! - [`tls`]: the scheduler's certificate (self-signed on first start) and how clients trust it (CA file or
//!   pinned fingerprint).
//! - [`tokens`]: bearer tokens with scopes, stored hashed.
//! - [`server`]: the QUIC service; [`client`]: the matching client; [`wire`]: frames and blob bodies on
//!   QUIC streams.
//! - [`pool`]: the dispatch core as the service holds it (clock, worker ids, periodic checks).
//! - [`dispatch`]: the remote build pool's dispatch core (sans-IO): which worker runs which action, and when.
//!
//! The wire protocol itself lives in `rcc_proto::remote`. See `../shared/DESIGN.md` for the whole system.

pub mod client;
pub mod dispatch;
pub mod pool;
pub mod server;
pub mod storage;
pub mod tls;
pub mod tokens;
pub mod wire;

#[cfg(test)]
mod tests;
