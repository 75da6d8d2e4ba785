//! What every connection handler shares, passed explicitly.

use crate::in_flight::InFlight;
use crate::key::files::FileCache;
use crate::key::identity::IdentityCache;
use crate::pool_client::PoolClient;
use crate::remote::Remote;
use crate::rust::toolchain::ToolchainCache;
use crate::stats::StatsBook;
use crate::store::Store;
use rcc_proto::config::Config;
use std::path::PathBuf;
use std::sync::Arc;

/// Shared state of the daemon's handlers.
pub struct Context {
    /// Effective settings at start.
    pub config: Config,
    /// The local store.
    pub store: Store,
    /// Memoized file digests and listings.
    pub files: FileCache,
    /// Memoized compiler identities.
    pub identities: IdentityCache,
    /// Memoized rustc toolchain identities.
    pub toolchains: ToolchainCache,
    /// Statistics (shared with background uploads).
    pub stats: Arc<StatsBook>,
    /// The shared cache, when a scheduler is configured.
    pub remote: Option<Arc<Remote>>,
    /// Scratch directory for depfiles and preprocessed output.
    pub tmp_dir: PathBuf,
    /// Results being stored after their compile returned.
    pub in_flight: InFlight,
    /// Local compile slots and packed compilers, for misses sent to the pool.
    pub pool: PoolClient,
}
