//! `rccd`: rcc's daemon.
//!
//! - [`store`]: the local store (zstd, atomic writes, digest-checked reads, LRU eviction).
//! - [`key`]: what makes a compile's key: argument understanding, compiler identity, file digests,
//!   direct-mode manifests.
//! - [`server`]: the Unix-socket listener and the per-compile protocol with the wrapper.
//! - [`stats`]: counters persisted across daemon restarts.
pub mod store;
