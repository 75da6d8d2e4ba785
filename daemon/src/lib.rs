//! `rccd`: rcc's daemon, started on demand by the wrapper. This library exists for the `rccd` binary and
//! its tests; nothing else imports it.
//!
//! It keeps warm state (file and compiler digests, directory listings), the local store and the
//! statistics, and answers the wrapper's compile requests. Modules:
//! - [`server`]: the Unix-socket listener (its own uid only, bounded waits), idle exit, shutdown.
//! - [`pipeline`]: the one path every compile takes (plan, local lookup, shared lookup, run, commit,
//!   upload) and the [`pipeline::Language`] trait whose steps differ by language.
//! - [`c_family`]: C, C++ and assembler calls to gcc and clang (direct, depend and preprocessor modes; misses
//!   sent to the pool).
//! - [`invocation`]: the request as the daemon sees it; [`scratch`]: its temporary files; [`stored`]:
//!   reading store entries (corrupt ones counted and dropped).
//! - [`rust`]: rustc calls (cargo's `RUSTC_WRAPPER`), keyed and stored their own way.
//! - [`key`]: what makes a compile's key (arguments, compiler identity, files, manifests).
//! - [`outputs`]: stored results and their restoration.
//! - [`persist`]: identity memos kept across restarts.
//! - [`remote`]: the shared cache (rcc-scheduler) as a second tier behind the local store.
//! - [`remote_exec`]: misses compiled on the remote pool when the local slots are full; [`pool_client`]:
//!   the local slots and packed compilers it counts on.
//! - [`store`]: the local store (zstd, atomic writes, reads checked against digest and key, owner-only, LRU
//!   eviction).
//! - [`stats`]: counters persisted across restarts.
//! - [`context`]: the state handlers share.
//! - [`in_flight`]: results stored after their compile returned, and who waits for them.
//!
//! `rccd worker` runs a pool worker from the `rcc-worker` crate; this library never sees the sandbox. Start
//! reading at [`server::run`], then [`pipeline::serve`]. ARCHITECTURE.md at the top of the repository
//! follows one compile through these modules and the crates they use.

pub mod c_family;
pub mod context;
pub mod in_flight;
pub mod invocation;
pub mod key;
pub mod outputs;
pub mod persist;
pub mod pipeline;
pub mod pool_client;
pub mod remote;
pub mod remote_exec;
pub mod rust;
pub mod scratch;
pub mod server;
pub mod stats;
pub mod store;
pub mod stored;
