//! `rcc-scheduler`: the shared action cache and content-addressable storage (and, later, the worker pool's
//! dispatcher), served over QUIC.
//!
//! - [`storage`]: blobs and action results behind the [`storage::Storage`] trait; [`storage::DiskStorage`] is
//!   the embedded default (files + a redb index, LRU eviction that keeps results consistent).
//!
//! The wire protocol lives in `rcc_proto::remote`. See `../shared/DESIGN.md` for the whole system.

pub mod storage;
