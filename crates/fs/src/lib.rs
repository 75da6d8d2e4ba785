//! `rcc-fs`: file handling that every part of rcc shares, so that each rule lives in one place.
//!
//! - [`atomic`]: the one atomic file writer (temp file beside the target, rename) and the fsync policy;
//!   every cache, store, memo, statistics file, pack and CAS blob is written through it.
//! - [`digest`]: a file's content digest, streamed.
//! - [`beneath`]: working inside a directory someone else controls (a toolchain pack's tree, a sandboxed
//!   action's outputs) through `openat2`, never following a link nor leaving it.
//! - [`links`]: following a path's symbolic links one component at a time, recording each link met (for
//!   toolchain packs and sandbox mounts).
//! - [`private`]: owner-only directories and the uid at the other end of a Unix socket.
//!
//! Depends on rcc-proto (the digest) and tempfile; no async runtime. Start reading at
//! [`atomic::write_atomic`].
#![warn(missing_docs)]

pub mod atomic;
pub mod beneath;
pub mod digest;
pub mod links;
pub mod private;

pub use atomic::{write_atomic, AtomicFile, Durability, WriteOptions};
pub use beneath::Beneath;
pub use digest::digest_file;
