//! `rcc-proto`: the part of rcc that every binary shares and that does no I/O of its own.
//!
//! - [`digest`]: [`Digest`] (SHA-256) and [`KeyHasher`], the canonical, versioned encoding that action keys
//!   are built with (never `Hash` or `Debug` output).
//! - [`frame`]: the length-prefixed, size-capped, versioned frame codec used on the wrapper↔daemon socket.
//! - [`ipc`]: the messages the wrapper and the daemon exchange.
//! - [`remote`]: the messages daemons and the scheduler exchange over QUIC.
//! - [`config`]: the effective settings, from defaults, the TOML config file and `RCC_*` variables, each with
//!   where it came from.
//! - [`vars`]: every `RCC_*` environment variable, declared once.
//! - [`stats`]: the persistent statistics and the reasons they are keyed by.
//!
//! See `../shared/DESIGN.md` for how these pieces fit in the whole system.
#![warn(missing_docs)]

pub mod config;
pub mod digest;
pub mod frame;
pub mod ipc;
pub mod remote;
pub mod stats;
pub mod vars;

pub use digest::{Digest, KeyHasher};
