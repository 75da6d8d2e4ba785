//! `rcc-scheduler`: the shared action cache and content-addressable storage, and the remote build pool's
//! dispatcher, served over QUIC. This library exists for the `rcc-scheduler` binary and its own tests;
//! nothing else imports it (clients and workers speak to it through `rcc-link`).
//!
//! - [`storage`]: blobs, action results and manifest lists behind the [`storage::Storage`] trait, keyed by
//!   (namespace, key); results are written once (first writer wins, an admin may replace) and every entry
//!   records its uploader and time; `invalidate` drops by key, uploader, namespace or time.
//!   [`storage::DiskStorage`] is the embedded default (files + a redb index, LRU eviction that keeps results
//!   consistent).
//! - [`identity`]: the scheduler's certificate on disk (self-signed on first start, or the one given).
//! - [`tokens`]: bearer tokens with scopes, expiry and namespaces (the one a token writes, those it reads),
//!   stored hashed; revocable.
//! - [`state`]: setting the state directory up once, under a lock (`init`), and reading it without creating.
//! - [`server`]: the QUIC service: one connection per peer, one request per stream.
//! - [`pool`]: the dispatch core (`rcc-dispatch`) as the service holds it: clock, worker ids, periodic checks,
//!   and undoing a convicted worker's results (audits).
//!
//! Start reading at [`server::serve`]. The wire protocol lives in `rcc_proto::remote`, its transport in
//! `rcc-link`, the dispatch rules in `rcc-dispatch`.

pub mod identity;
pub mod pool;
pub mod server;
pub mod state;
pub mod storage;
pub mod tokens;

#[cfg(test)]
mod tests;
