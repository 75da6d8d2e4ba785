//! `rcc-proto`: the part of rcc that every binary shares and that does no I/O of its own.
//!
//! - [`digest`]: [`Digest`] (SHA-256) and [`KeyHasher`], the canonical, versioned encoding that action keys
//!   are built with (never `Hash` or `Debug` output).
//! - [`frame`]: the length-prefixed, size-capped, versioned frame codec (the wrapper↔daemon socket and QUIC).
//! - [`ipc`]: the messages the wrapper and the daemon exchange.
//! - [`remote`]: the messages daemons and the scheduler exchange over QUIC.
//! - [`config`]: the effective settings, from defaults, the TOML config file and `RCC_*` variables, each with
//!   where it came from.
//! - [`vars`]: every `RCC_*` environment variable, declared once.
//! - [`stats`]: the persistent statistics and the reasons they are keyed by.
//!
//! Depends on serde, postcard, sha2, toml and dirs: never tokio, and no I/O of its own but [`config::load`],
//! so the synchronous wrapper, the daemon, the worker and the scheduler share one codec. Start reading at
//! [`ipc`] (one compile, wrapper to daemon) or [`remote`] (the QUIC protocol). ARCHITECTURE.md at the top of
//! the repository shows where each piece is used.
#![warn(missing_docs)]

pub mod config;
pub mod digest;
pub mod frame;
pub mod ipc;
pub mod remote;
pub mod stats;
pub mod vars;

pub use digest::{Digest, KeyHasher};
